"""Choosing the camera: a PixeLINK camera when asked for (or present), else the simulated one.

Also the camera specs of ``labcam serve --camera SPEC`` (repeatable: one host, several cameras) and
the rule that names each camera's ``cameras/<id>/`` routes (docs/configuration.md):

- ``SPEC`` is ``DRIVER[:OPTION,OPTION...]``: ``DRIVER`` one of ``auto``, ``pixelink``, ``simulated``;
  each ``OPTION`` is ``key=value``, and for ``pixelink`` a bare number is its serial
  (``pixelink:7020`` = ``pixelink:serial=7020``). Keys: ``name`` (the camera id), ``fps``,
  ``exposure_ms``, ``gain_db``, ``bit_depth`` (8, 12, 16), ``serial``; for the simulated camera
  (and ``auto``'s fallback) also ``width``, ``height``, ``seed``. ``-`` in a key counts as ``_``.
- The camera id: its ``name``; else ``default`` for a host's only camera; else
  ``<driver>-<serial>``, with every run of characters other than ``A-Z a-z 0-9 _ -`` made one
  ``-``, cut to 64. Ids match ``[A-Za-z0-9_-]{1,64}`` and differ within a host.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..camera_info import DEFAULT_CAMERA_ID, check_camera_id
from ..errors import CameraUnavailable
from ..hosts import HostInfo, host_holding
from .base import CameraDriver

log = logging.getLogger("labcam")

CAMERA_CHOICES = ("auto", "pixelink", "simulated")
BIT_DEPTHS = {8: "mono8", 12: "mono12", 16: "mono16"}
_COMMON_KEYS = ("name", "serial", "fps", "exposure_ms", "gain_db", "bit_depth")
_SIMULATED_KEYS = ("width", "height", "seed")
SPEC_KEYS = {
    "pixelink": _COMMON_KEYS,
    "simulated": _COMMON_KEYS + _SIMULATED_KEYS,
    "auto": _COMMON_KEYS + _SIMULATED_KEYS,
}


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
    # Each driver module is imported when its camera is asked for (~10-20 ms each), not with
    # labcam; the PixeLINK SDK itself is imported, bounded, when the driver opens.
    from .pixelink import PixelinkCamera

    driver = PixelinkCamera(serial, **_accepted_by(PixelinkCamera, options, exclude={"serial"}))
    driver.open()
    return driver


def _open_simulated(options: dict[str, Any], *, strict: bool) -> CameraDriver:
    # Imported here so that choosing a PixeLINK camera never pays for the simulator (see above).
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


# -- camera specs (labcam serve --camera SPEC) ------------------------------------------------------
@dataclass(frozen=True)
class CameraSpec:
    """One ``--camera`` of ``labcam serve``: which driver, its id if named, and its own options.

    ``serial`` is the PixeLINK serial number (``pixelink``, ``auto``) or the simulated camera's
    reported serial (``simulated``). ``options`` are ``open_camera`` options (``width``,
    ``pixel_format``, ``fps``, ...); they override the host-wide defaults given to ``open``.
    """

    driver: str = "auto"
    name: str | None = None
    serial: int | str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> CameraSpec:
        """``"pixelink:7020,name=bf"`` and the like; ``ValueError`` saying what is wrong, and how."""
        driver, _, rest = text.strip().partition(":")
        if driver not in CAMERA_CHOICES:
            raise ValueError(
                f"camera {text!r}: {driver!r} is not a camera; a spec is DRIVER[:key=value,...] with "
                f"DRIVER one of {', '.join(CAMERA_CHOICES)} (e.g. pixelink:7020 or simulated:name=sim2,width=640)"
            )
        allowed = SPEC_KEYS[driver]
        name: str | None = None
        serial: int | str | None = None
        options: dict[str, Any] = {}
        for item in (part.strip() for part in rest.split(",")) if rest else ():
            key, eq, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not eq and driver == "pixelink" and key.isdigit():
                key, value = "serial", key  # pixelink:7020
            elif not eq or not value.strip():
                raise ValueError(f"camera {text!r}: {item!r} is not key=value (keys: {', '.join(allowed)})")
            if key not in allowed:
                raise ValueError(f"camera {text!r}: {key!r} is not an option of {driver} cameras (keys: {', '.join(allowed)})")
            if key in options or (key == "name" and name is not None) or (key == "serial" and serial is not None):
                raise ValueError(f"camera {text!r}: {key!r} is given twice")
            value = value.strip()
            if key == "name":
                name = check_camera_id(value)
            elif key == "serial":
                serial = value if driver == "simulated" else _number(text, key, value, int, lambda v: v > 0, "> 0")
            elif key == "bit_depth":
                depth = _number(text, key, value, int, lambda v: v in BIT_DEPTHS, "8, 12 or 16")
                options["pixel_format"] = BIT_DEPTHS[depth]
            elif key in ("width", "height"):
                options[key] = _number(text, key, value, int, lambda v: 16 <= v <= 65536, "from 16 to 65536")
            elif key == "seed":
                options[key] = _number(text, key, value, int, lambda v: True, "a whole number")
            elif key == "gain_db":
                options[key] = _number(text, key, value, float, lambda v: v == v, "a number")
            else:  # fps, exposure_ms
                options[key] = _number(text, key, value, float, lambda v: v > 0, "a number > 0")
        return cls(driver, name, serial, options)

    def open(self, *, serial: int | None = None, **defaults: Any) -> CameraDriver:
        """Open the camera: the host-wide ``defaults`` (and ``serial``), overridden by this spec's."""
        options = {**defaults, **self.options}
        if self.driver == "simulated":
            if self.serial is not None:  # the serial it reports (open_camera's serial is PixeLINK's)
                options["serial"] = str(self.serial)
            return _open_simulated(options, strict=True)
        own_serial = self.serial if isinstance(self.serial, int) else serial
        return open_camera(self.driver, serial=own_serial, **options)


def _number(text: str, key: str, value: str, kind: type, ok: Any, allowed: str) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"camera {text!r}: {key}={value!r} is not allowed: {allowed}") from None
    if not ok(number):
        raise ValueError(f"camera {text!r}: {key}={value!r} is not allowed: {allowed}")
    return number


def camera_id(name: str | None, driver: str, serial: str, *, alone: bool) -> str:
    """A camera's id by the rule in the module docstring: its name, ``default``, or ``<driver>-<serial>``."""
    if name is not None:
        return check_camera_id(name)
    if alone:
        return DEFAULT_CAMERA_ID
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{driver}-{serial}")[:64]
