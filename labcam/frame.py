"""A frame: the pixels of one exposure plus what is known about how it was taken."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PIXEL_FORMATS: dict[str, int] = {"mono8": 8, "mono12": 12, "mono16": 16, "rgb8": 8}
"""Pixel formats labcam knows, with their significant bits per sample.

mono12 and mono16 frames are uint16 arrays holding values in [0, 2**bits); rgb8 is (H, W, 3) uint8.
"""


@dataclass(frozen=True)
class FrameMeta:
    """Metadata of one frame. ``timestamp`` is the capture time in epoch seconds."""

    frame_number: int
    timestamp: float
    exposure_ms: float
    gain_db: float
    roi: tuple[int, int, int, int]  # x, y, width, height on the sensor
    pixel_format: str
    camera_serial: str
    dropped_before: int = 0  # frames the camera numbered but labcam never received, just before this one

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS[self.pixel_format]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roi"] = list(self.roi)
        d["bit_depth"] = self.bit_depth
        return d


@dataclass(frozen=True)
class Frame:
    """One captured frame. ``array`` is read-only: it is shared by every consumer of the engine."""

    array: np.ndarray
    meta: FrameMeta = field(repr=False)

    def __post_init__(self) -> None:
        self.array.flags.writeable = False

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"Frame(#{m.frame_number}, {self.width}x{self.height} {m.pixel_format}, "
            f"exposure={m.exposure_ms:g} ms, gain={m.gain_db:g} dB)"
        )
