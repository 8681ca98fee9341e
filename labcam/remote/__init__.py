"""``labcam.connect()``: the scripted camera API over the network, for kernels and other processes.

The camera lives in one server process (a Jupyter server with the labcam extension, or
``labcam serve``); any number of kernels and scripts reach it through ``RemoteCamera``, which has
the same methods as the in-process ``labcam.Camera``: ``snap``, ``acquire``, ``frames``,
``timelapse``, ``settings``/``set`` and the setting properties, ``description``, ``status``,
``live``, ``close``, and ``record`` (into the server's recordings folder). A kernel restart only
drops its connections; the camera keeps streaming, and recordings keep running, for everybody else.

One job per module:

- ``transport``: JSON over HTTP (``HttpClient``, with labcam's error mapping) and the lossless raw
  WebSocket ``ws/camera/frames`` (``FrameSocket``: the camera's own numbers at full bit depth, one
  binary message per frame, no encoding), all WebSockets on one private asyncio loop in a daemon
  thread (``IOThread``), so the sync API works inside Jupyter kernels whose own loop is already
  running, and ``async for`` works from any loop;
- ``camera``: ``RemoteCamera`` and ``RemoteFrameStream``, the camera facade;
- ``recording``: ``RemoteRecording``, a recording the server writes, followed over REST;
- ``preview``: ``RemotePreview``, the view-aware preview stream (``RemoteCamera.preview``) as numpy
  arrays: raw counts decoded exactly, or the viewers' JPEG;
- ``discovery``: which Jupyter server this kernel belongs to (``jpserver-*.json``);
- here: ``connect``, which finds the server and the labcam in it.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from ..camera_info import check_camera_id
from ..errors import CameraUnavailable
from .camera import RemoteCamera, RemoteFrameStream
from .discovery import discover_jupyter_server, running_jupyter_servers
from .preview import PreviewFrame, RemotePreview
from .recording import RemoteRecording
from .transport import AuthenticationError, HttpClient


def connect(
    url: str | None = None, *, token: str | None = None, camera: str | None = None, timeout: float = 10.0
) -> RemoteCamera:
    """A ``RemoteCamera`` for the camera of a labcam server: the same API as ``labcam.open()``.

    With a ``url``: any Jupyter server with the labcam extension (``http://host:8888/base/``; the
    camera is under ``labcam/``) or a ``labcam serve`` server (``http://host:8001/``); which one is
    found out by asking ``labcam/api/camera``, then ``api/camera``. ``token`` is the server's token
    (Jupyter's, or ``labcam serve --token``); a URL copied from Jupyter's log with ``?token=...``
    works as it is.

    Without a ``url``, in this order:

    1. ``LABCAM_URL`` (and ``LABCAM_TOKEN``) from the environment, if set;
    2. the Jupyter server that started this kernel: the live ``jpserver-<pid>.json`` files in Jupyter's
       runtime directory (``JUPYTER_RUNTIME_DIR`` or jupyter_core's default; files of dead processes
       are ignored) are matched against the kernel's parent process (``JPY_PARENT_PID``, set by
       jupyter_client, or the OS parent pid);
    3. else the server whose ``root_dir`` holds this notebook (``JPY_SESSION_NAME``, else the current
       directory), the innermost if roots are nested;
    4. else the only server running.

    The token comes from that server's json file. No server, or several that fit equally: a
    ``CameraUnavailable`` that lists what was found and says to pass ``url``/``token``.

    ``camera``: the id of one of the host's cameras (``GET api/cameras`` lists them; ``labcam serve
    --camera ... --camera ...``): everything then goes to its routes under ``cameras/<id>/``,
    ``.live()`` included. None: the host's first camera. An unknown id: ``CameraUnavailable`` naming
    the ids the host has.

    Errors: ``CameraUnavailable`` when nothing answers ("cannot reach labcam at http://…: connection
    refused") or no labcam is there; ``AuthenticationError`` (a ``PermissionError``) for a missing or
    wrong token; later, ``SettingError`` for invalid settings, as in-process.
    """
    if url is None and os.environ.get("LABCAM_URL"):
        url = os.environ["LABCAM_URL"]
        token = token if token is not None else os.environ.get("LABCAM_TOKEN") or None
    if url is None:
        url, found_token = discover_jupyter_server()
        token = token if token is not None else found_token
    if not re.match(r"^https?://", url):
        raise ValueError(f"url={url!r} is not allowed: an http:// or https:// address")
    # A URL pasted from Jupyter's log carries its token: take it from there.
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        query_token = urllib.parse.parse_qs(parts.query).get("token", [None])[-1]
        token = token if token is not None else query_token
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    base = url if url.endswith("/") else url + "/"
    # A Jupyter server serves the camera under labcam/; labcam serve at its root. A URL that already
    # ends in labcam/ answers on the second probe.
    tried = []
    if camera is not None:
        check_camera_id(camera)
    for root in (urllib.parse.urljoin(base, "labcam/"), base):
        http = HttpClient(root, token, timeout)
        try:
            http.request("GET", "api/camera")
        except CameraUnavailable as exc:
            if "404" not in str(exc):
                raise  # unreachable: the same for both probes
            tried.append(urllib.parse.urljoin(root, "api/camera"))
            continue
        if camera is not None:
            root = _camera_root(http, root, camera)
        return RemoteCamera(root, token=token, timeout=timeout)
    raise CameraUnavailable(
        f"no labcam at {base}: {' and '.join(tried)} answered 404 "
        "(for Jupyter: is the labcam_jupyter server extension enabled? `jupyter server extension list`)"
    )


def _camera_root(http: HttpClient, root: str, camera: str) -> str:
    """The root of camera ``camera`` of the host at ``root``: ``cameras/<id>/``, checked."""
    camera_root = urllib.parse.urljoin(root, f"cameras/{camera}/")
    try:
        HttpClient(camera_root, http.token, http.timeout).request("GET", "api/camera")
    except CameraUnavailable as exc:
        if "404" not in str(exc):
            raise
        try:
            known = [c["id"] for c in http.request("GET", "api/cameras")["cameras"]]
        except (CameraUnavailable, KeyError, TypeError):
            known = []
        has = f"its cameras are {', '.join(map(repr, known))}" if known else "it serves one camera only"
        raise CameraUnavailable(f"no camera {camera!r} at {root}: {has}") from None
    return camera_root


__all__ = [
    "AuthenticationError",
    "PreviewFrame",
    "RemoteCamera",
    "RemoteFrameStream",
    "RemotePreview",
    "RemoteRecording",
    "connect",
    "discover_jupyter_server",
    "running_jupyter_servers",
]
