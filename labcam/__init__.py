"""labcam: live lab-camera streaming into Jupyter, web apps and analysis scripts.

The public surface:

- ``labcam.open(camera="auto", ...)`` → ``Camera``: snap, acquire, frames, time-lapse, settings.
- ``labcam.connect(url=None, token=None, camera=None)`` → ``RemoteCamera``: the same API for a camera served by
  a Jupyter server (the kernel's own, found without arguments) or ``labcam serve``.
- ``Frame``/``FrameMeta``/``Stack``: what acquisitions return.
- ``Settings`` and the errors in ``labcam.errors``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .camera import Camera, FrameStream, Stack
from .camera_info import EngineStatus
from .cameras.selection import open_camera
from .engine import Engine
from .errors import (
    CameraDisconnected,
    CameraError,
    CameraUnavailable,
    FrameTimeout,
    LabcamError,
    SettingError,
)
from .frame import Frame, FrameMeta
from .settings import Settings

if TYPE_CHECKING:
    from .remote import RemoteCamera
    from .widget import LiveView as _WidgetLiveView


def open(camera: str = "auto", *, serial: int | None = None, idle_grace: float = 2.0, **options: Any) -> Camera:
    """Open a camera for scripted acquisition.

    ``camera``: "auto" (a PixeLINK camera when one is present, else the simulated camera, with one
    warning in the log saying why), "pixelink" (an error with the reason when unavailable) or
    "simulated". ``options`` are initial settings and, for the simulated camera, its shape:
    ``width``, ``height``, ``pixel_format``, ``fps``, ``exposure_ms``, ``gain_db``, ``seed``.

    >>> import labcam
    >>> with labcam.open("simulated", width=256, height=256) as cam:
    ...     cam.snap().shape
    (256, 256)
    """
    driver = open_camera(camera, serial=serial, **options)
    return Camera(Engine(driver, idle_grace=idle_grace))


def connect(
    url: str | None = None, *, token: str | None = None, camera: str | None = None, timeout: float = 10.0
) -> RemoteCamera:
    """The camera of a labcam server (the Jupyter server running this kernel, another Jupyter
    server, or ``labcam serve``), with the same API as ``open()``. See ``labcam.remote.connect``."""
    # The client (tornado's WebSocket client, ~50 ms) loads on the first connect(), not with labcam.
    from .remote import connect as _connect

    return _connect(url, token=token, camera=camera, timeout=timeout)


def __getattr__(name: str) -> Any:
    # The live view needs ipywidgets/anywidget (the [jupyter] extra): imported on first use only,
    # so scripts and the server start without them.
    if name == "LiveView":
        return _live_view_class()
    raise AttributeError(f"module 'labcam' has no attribute {name!r}")


@functools.cache
def _live_view_class() -> type[_WidgetLiveView]:
    from .widget import LiveView as WidgetLiveView

    class LiveView(WidgetLiveView):
        __doc__ = WidgetLiveView.__doc__

        def __init__(self, camera: Any = None, **options: Any) -> None:
            # The widget never makes cameras: a view without one that falls back to the comm opens
            # its camera with the package's connect().
            options.setdefault("connect", _connect_when_called)
            super().__init__(camera, **options)

    LiveView.__module__, LiveView.__qualname__ = __name__, "LiveView"
    return LiveView


def _connect_when_called(url: str | None = None, *, token: str | None = None) -> RemoteCamera:
    # labcam.connect as the package holds it at the time of the call (tests replace it there).
    return connect(url, token=token)


__all__ = [
    "LiveView",
    "Camera",
    "CameraDisconnected",
    "CameraError",
    "CameraUnavailable",
    "Engine",
    "EngineStatus",
    "Frame",
    "FrameMeta",
    "FrameStream",
    "FrameTimeout",
    "LabcamError",
    "SettingError",
    "Settings",
    "Stack",
    "connect",
    "open",
]
