"""Choosing the camera: a PixeLINK camera when asked for (or present), else the simulated one."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..errors import CameraUnavailable
from ..hosts import HostInfo, host_holding
from .base import CameraDriver

log = logging.getLogger("labcam")

CAMERA_CHOICES = ("auto", "pixelink", "simulated")


class CameraHeldByHost(CameraUnavailable):
    """The camera is streamed by another labcam process (``host``): relay it or connect to it."""

    def __init__(self, host: HostInfo) -> None:
        super().__init__(
            f"the PixeLINK camera {host.serial} is in use by labcam serve at {host.url} (pid {host.pid}): "
            f"use labcam.connect({host.url!r}), or stop that server"
        )
        self.host = host


def open_camera(camera: str = "auto", *, serial: int | None = None, **options: Any) -> CameraDriver:
    """Open and return the camera driver ``camera`` names.

    ``camera``:
        "pixelink": the PixeLINK camera with serial number ``serial`` (the first one found when
        None), or ``CameraUnavailable`` saying why it cannot be used (SDK missing, no camera,
        camera busy). Never a silent simulation.
        "simulated": the simulated camera.
        "auto": the PixeLINK camera if it can be opened; otherwise the simulated camera, after
        ONE warning on the "labcam" logger giving the reason.
        Either way, a camera that is busy because another labcam process streams it raises
        ``CameraHeldByHost`` naming that host (``labcam.hosts.host_holding``): never a simulation.

    ``options`` are initial settings (``exposure_ms``, ``gain_db``, ``fps``, ``roi``,
    ``pixel_format``, ``trigger_mode``) and options of one camera only (the simulator's
    ``width``, ``height``, ``seed``...; PixeLINK's ``api``). The PixeLINK camera takes only the
    options it understands and ignores the others, so simulator options never break it; so does
    the simulated camera when "auto" falls back to it. Asked for by name ("simulated"), the
    simulated camera gets every option, and an option it does not know is an error.
    ``serial`` only concerns PixeLINK cameras.

    Raises ``ValueError`` for an unknown ``camera``, ``CameraUnavailable`` (explicit "pixelink")
    and ``SettingError`` for a setting the chosen camera does not allow.
    """
    if camera not in CAMERA_CHOICES:
        raise ValueError(f"camera={camera!r} is not a camera; choose one of {', '.join(CAMERA_CHOICES)}")
    if camera == "simulated":
        return _open_simulated(options, strict=True)
    try:
        return _open_pixelink(serial, options)
    except CameraUnavailable as exc:
        held = _held_by_labcam(exc, serial)
        if held is not None:
            raise held from exc  # never a simulation while labcam streams the real camera
        if camera == "pixelink":
            raise
        log.warning("PixeLINK camera not used (%s): streaming from the simulated camera", exc)
        return _open_simulated(options, strict=False)


def _held_by_labcam(exc: CameraUnavailable, serial: int | None) -> CameraHeldByHost | None:
    """``CameraHeldByHost`` when the camera is busy because a labcam host holds it. Which other
    program holds a busy camera neither the PixeLINK SDK nor the OS can tell reliably (the SDK says
    only "in use"), so for anything but labcam the error keeps saying "another program"."""
    if "busy" not in str(exc):
        return None
    host = host_holding("pixelink", serial)
    return CameraHeldByHost(host) if host is not None else None


def _open_pixelink(serial: int | None, options: dict[str, Any]) -> CameraDriver:
    from .pixelink import PixelinkCamera

    driver = PixelinkCamera(serial, **_accepted_by(PixelinkCamera, options, exclude={"serial"}))
    driver.open()
    return driver


def _open_simulated(options: dict[str, Any], *, strict: bool) -> CameraDriver:
    # Imported here so that choosing a PixeLINK camera never pays for the simulator's setup.
    from .simulated import SimulatedCamera

    driver = SimulatedCamera(**(options if strict else _accepted_by(SimulatedCamera, options, exclude={"serial"})))
    driver.open()
    return driver


def _accepted_by(cls: type, options: dict[str, Any], exclude: set[str]) -> dict[str, Any]:
    """The ``options`` that ``cls``'s constructor has a parameter for (all of them if it takes **kwargs)."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {k: v for k, v in options.items() if k not in exclude}
    ignored = sorted(k for k in options if k not in parameters or k in exclude)
    if ignored:
        log.debug("%s ignores options it does not take: %s", cls.__name__, ", ".join(ignored))
    return {k: v for k, v in options.items() if k in parameters and k not in exclude}
