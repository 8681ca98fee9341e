"""Relaying a camera host: serve another labcam process's camera as if it were one's own.

The Jupyter extension uses it when a ``labcam serve`` already holds the camera (or
``LabcamApp.camera_url`` names one): instead of opening the camera it relays the host.

- ``target``: where the host is (a fixed URL and token, or found afresh among the running hosts at
  every attempt) and the check that a URL answers like a labcam host;
- ``upstream``: one WebSocket to the host's stream per distinct set of stream options, kept up with
  back-off while the host comes and goes, and the request-id map that routes replies;
- ``fanout``: the local viewers: each follows one upstream, with the stream's own flow control
  (``labcam.flow.FrameWindow``: latest wins, at most 2 in flight), so a slow viewer never slows the
  upstream or the others, and each frame is still encoded once, by the host;
- ``proxy``: REST requests and the raw frames (``ws/camera/frames``), passed through with the
  host's token.

Host-agnostic like ``labcam.server``'s handlers: no authentication here; a host composes the
handler logic with its own (``jupyter_server_ext/labcam_jupyter/relay.py``).
"""

from __future__ import annotations

from .fanout import RelayStreamHandler, StreamRelay
from .proxy import RawFramesPipe, RestProxyHandler
from .target import HostAddress, RelayError, RelayTarget, check_host

__all__ = [
    "HostAddress",
    "RawFramesPipe",
    "RelayError",
    "RelayStreamHandler",
    "RelayTarget",
    "RestProxyHandler",
    "StreamRelay",
    "check_host",
]
