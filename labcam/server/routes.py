"""The routes of every labcam host, and the contract between the handler logic and its hosts.

The handler logic lives in ``stream`` (the live stream), ``rawframes`` (lossless frames), ``rest``
(camera, settings, snap, stats, static files, test page) and ``recording_handlers``. Those classes
know nothing about who hosts them: no authentication, no origin policy, no CORS, no application
settings. A host makes concrete handlers by composing its own security/auth classes with these and
mounts them with ``route_table``:

- standalone (``labcam.server.app``): ``class StreamHandler(StandaloneSecurity, stream.StreamHandler)``;
- Jupyter (``jupyter_server_ext/labcam_jupyter/handlers.py``):
  ``class StreamHandler(ExtensionHandlerMixin, WebSocketMixin, stream.StreamHandler, JupyterHandler)``
  with an ``on_pong`` that calls ``self.record_pong(data)`` (``WebSocketMixin.on_pong`` does not chain),
  and ``class CameraHandler(ExtensionHandlerMixin, rest.CameraHandler, APIHandler)`` for REST.

The contract with hosts:

- every handler takes the service through ``initialize(self, service, **kwargs)`` and passes the
  remaining keyword arguments on with ``super().initialize(**kwargs)`` (cooperative, so
  ``ExtensionHandlerMixin.initialize(name, ...)`` can sit in front);
- the logic defines no ``prepare``, ``check_origin``, ``get_current_user``, ``set_default_headers``
  or ``options``: those are the host's;
- ``StreamHandler.open``/``on_close``/``on_pong`` call ``super()`` so host mixins placed after the
  logic still run; a host mixin placed *before* it that defines ``on_pong`` without chaining (Jupyter's
  ``WebSocketMixin`` does) should call ``self.record_pong(data)`` from its own ``on_pong``: pongs are
  how the stream knows a frame reached the client (see ``labcam.server.stream``). Without them the stream
  still works, with the weaker "written to the socket" window;
- WebSocket keep-alive pings are the host's (``ping_interval``); the logic only sets
  ``max_message_size`` (64 KiB, close 1009 beyond).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tornado import web

from ..camera_info import check_camera_id
from .rawframes import RawFramesHandler
from .recording_handlers import RecordingHandler, RecordingsHandler
from .recordings import ID_PATTERN
from .rest import CameraHandler, SettingsHandler, SnapHandler, StaticHandler, StatsHandler, TestPageHandler
from .service import LabcamService
from .stream import StreamHandler


@dataclass(frozen=True)
class HandlerClasses:
    """The concrete classes a host mounts; ``static``/``page`` None to leave them out."""

    stream: type[web.RequestHandler] = StreamHandler
    camera: type[web.RequestHandler] = CameraHandler
    settings: type[web.RequestHandler] = SettingsHandler
    snap: type[web.RequestHandler] = SnapHandler
    stats: type[web.RequestHandler] = StatsHandler
    static: type[web.RequestHandler] | None = StaticHandler
    page: type[web.RequestHandler] | None = TestPageHandler
    raw: type[web.RequestHandler] | None = RawFramesHandler  # lossless frames for labcam.connect()
    recordings: type[web.RequestHandler] | None = RecordingsHandler  # list, start
    recording: type[web.RequestHandler] | None = RecordingHandler  # status, stop
    # Hosts of several cameras (host_route_table): api/cameras, and the 404 for an unknown id.
    cameras: type[web.RequestHandler] | None = None
    unknown_camera: type[web.RequestHandler] | None = None


ROUTES: tuple[tuple[str, str], ...] = (
    ("ws/camera/stream", "stream"),
    ("ws/camera/frames", "raw"),
    ("api/camera", "camera"),
    ("api/camera/settings", "settings"),
    ("api/camera/snap", "snap"),
    ("api/camera/stats", "stats"),
    ("api/recordings", "recordings"),
    (f"api/recordings/({ID_PATTERN})(/stop)?", "recording"),
    ("static/(.*)", "static"),
    ("", "page"),
)
"""Paths relative to the host's labcam root, and the ``HandlerClasses`` field serving each."""


def route_table(
    service: LabcamService,
    classes: HandlerClasses = HandlerClasses(),
    *,
    prefix: str = "/",
    **extra_kwargs: Any,
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Tornado rules for every labcam route under ``prefix`` (e.g. "/" or "/user/x/labcam/").

    Every handler gets ``service=service`` plus ``extra_kwargs`` (Jupyter: ``name="labcam"`` for
    ``ExtensionHandlerMixin``) in ``initialize``.
    """
    stripped = prefix.strip("/")
    base = "/" + stripped + "/" if stripped else "/"
    kwargs = {"service": service, **extra_kwargs}
    rules: list[tuple[str, type[web.RequestHandler], dict[str, Any]]] = []
    for rel, field_name in ROUTES:
        cls = getattr(classes, field_name)
        if cls is None:
            continue
        if rel == "":
            pattern = re.escape(base.rstrip("/")) + "/?"  # the page, with or without the slash
        else:
            pattern = re.escape(base) + rel
        rules.append((pattern, cls, dict(kwargs)))
    return rules


def host_route_table(
    cameras: Mapping[str, LabcamService],
    classes: HandlerClasses = HandlerClasses(),
    *,
    prefix: str = "/",
    **extra_kwargs: Any,
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Tornado rules for a host of one or more cameras (``id -> service``, the first first).

    Every camera gets every route of ``ROUTES`` under ``cameras/<id>/``; the first also keeps them
    at ``prefix`` itself (``ws/camera/stream``, ``api/camera``, ..., so single-camera clients are
    unchanged). ``api/cameras`` lists them, and ``cameras/<other>/...`` answers 404 naming the ids
    (``classes.cameras`` / ``classes.unknown_camera``; left out when None).
    """
    if not cameras:
        raise ValueError("a host serves at least one camera")
    for camera_id in cameras:
        check_camera_id(camera_id)
    stripped = prefix.strip("/")
    base = "/" + stripped + "/" if stripped else "/"
    first = next(iter(cameras.values()))
    rules = route_table(first, classes, prefix=base, **extra_kwargs)
    for camera_id, service in cameras.items():
        rules += route_table(service, classes, prefix=f"{base}cameras/{camera_id}/", **extra_kwargs)
    listing = {"service": first, "cameras": cameras, **extra_kwargs}
    if classes.cameras is not None:
        rules.append((re.escape(base) + "api/cameras", classes.cameras, dict(listing)))
    if classes.unknown_camera is not None:  # last: it catches only what no camera's route matched
        rules.append((re.escape(base) + r"cameras/([^/]*)(/.*)?", classes.unknown_camera, dict(listing)))
    return rules

__all__ = ["ROUTES", "HandlerClasses", "host_route_table", "route_table"]
