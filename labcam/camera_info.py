"""What a camera is and what it is doing: the value types ``CameraDescription`` and ``EngineStatus``,
and the rule for camera ids.

Both are immutable snapshots with a ``to_dict()`` JSON form, shared by the drivers, the engine, the
servers and ``labcam.connect()`` (which rebuilds them from that form), so none of those needs
another's module to name them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CAMERA_ID = "default"
"""The id of a host's only camera, unless it is named: its routes are cameras/default/... and the
legacy ones (api/camera, ws/camera/stream, ...)."""

CAMERA_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""What a camera id may be: it becomes a URL path (``cameras/<id>/``) and a folder name."""


def check_camera_id(camera_id: str) -> str:
    """``camera_id`` if it is a valid camera id, else ``ValueError`` stating the rule."""
    if not re.fullmatch(CAMERA_ID_PATTERN, camera_id):
        raise ValueError(
            f"camera id {camera_id!r} is not allowed: 1 to 64 letters, digits, '_' or '-' (it becomes a URL path)"
        )
    return camera_id


@dataclass(frozen=True)
class CameraDescription:
    """What a camera is: shown to users and clients, never changes while the camera is open."""

    driver: str  # "simulated" or "pixelink"
    model: str
    serial: str
    sensor_width: int
    sensor_height: int
    pixel_formats: tuple[str, ...]
    max_bit_depth: int
    firmware: str = ""
    pixel_size_um: float | None = None  # object-side pixel size when known (for OME metadata)
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "model": self.model,
            "serial": self.serial,
            "sensor_width": self.sensor_width,
            "sensor_height": self.sensor_height,
            "pixel_formats": list(self.pixel_formats),
            "max_bit_depth": self.max_bit_depth,
            "firmware": self.firmware,
            "pixel_size_um": self.pixel_size_um,
            **dict(self.extra),
        }


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of what the engine is doing."""

    state: str  # "idle" | "streaming" | "stalled" | "lost" | "closed"
    frames: int  # frames captured since the engine was created
    dropped: int  # frame numbers the camera skipped (never received)
    timeouts: int
    fps: float  # measured capture rate over the last second or so
    consumers: int
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "frames": self.frames,
            "dropped": self.dropped,
            "timeouts": self.timeouts,
            "fps": round(self.fps, 2),
            "consumers": self.consumers,
            "message": self.message,
        }


__all__ = ["CameraDescription", "EngineStatus"]
