"""What a camera is and what it is doing: the value types ``CameraDescription`` and ``EngineStatus``.

Both are immutable snapshots with a ``to_dict()`` JSON form, shared by the drivers, the engine, the
servers and ``labcam.connect()`` (which rebuilds them from that form), so none of those needs
another's module to name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


DEFAULT_CAMERA_ID = "default"
"""The id of a host's only camera, unless it is named: its routes are cameras/default/... and the
legacy ones (api/camera, ws/camera/stream, ...)."""


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
