"""``encoding=h264`` in the preview hub: one ``H264Encoder`` per variant, frames in order.

The hub's JPEG path may encode several frames of a variant at once and drop one that finishes
late; an H.264 stream cannot: each access unit depends on the one before it. So an H.264 variant
has **one encode in flight** (the hub gives it one mapper), every frame it encodes is delivered,
and frames the hub skips before encoding (its one-frame slot) are simply never part of the stream.
Viewers that join or fall behind ask for a keyframe (``request_keyframe``); the encoder serves
requests at most once per ``KEYFRAME_SPACING`` frames, together, and puts an IDR every ``gop``
frames anyway (``DEFAULT_GOP``: a viewer whose request was lost still starts within a GOP).

The encoder is made on the first frame (its size is the mapped image's) and made again when the
size changes (a new ROI): its first access unit is an IDR.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..frame import Frame
from ..wire import preview_header
from .display import DisplayMapper
from .h264 import H264Encoder

DEFAULT_GOP = 60  # frames: 2 s at 30 fps, the backstop for keyframe requests
KEYFRAME_SPACING = 10  # frames between keyframes asked for by viewers (a rate limit)


def h264_available() -> str | None:
    """None when H.264 can be encoded here, else why not (for the viewer's ``error``)."""
    try:
        import av
    except ImportError:
        return 'this server has no PyAV, so no H.264: install "labcam[h264]", or use encoding=jpeg'
    if "libx264" not in av.codecs_available:
        return "this server's PyAV has no libx264 encoder, so no H.264: use encoding=jpeg"
    return None


class H264VariantEncoder:
    """The stateful encoder of one H.264 variant (called on one worker thread at a time)."""

    def __init__(self, *, bitrate: int | None, gop: int | None, fps: float = 30.0) -> None:
        self.bitrate, self.gop, self.fps = bitrate, gop or DEFAULT_GOP, fps
        self._encoder: H264Encoder | None = None
        self._lock = threading.Lock()  # request_keyframe (loop) against a new encoder (worker)

    def request_keyframe(self) -> None:
        with self._lock:
            if self._encoder is not None:
                self._encoder.request_keyframe()

    def encode(self, frame: Frame, mapper: DisplayMapper) -> tuple[bytes, dict, float]:
        """(access unit, frame header with ``keyframe`` and ``codec``, encode ms)."""
        t0 = time.perf_counter()
        image, (lo, hi) = mapper.map(frame.array, frame.meta.bit_depth)
        height, width = image.shape[:2]
        enc = self._encoder
        if enc is None or (enc.width, enc.height) != (width, height):
            enc = H264Encoder(width, height, fps=self.fps, bitrate=self.bitrate, gop=self.gop,
                              keyframe_spacing=KEYFRAME_SPACING)
            with self._lock:
                self._encoder = enc
        unit = enc.encode(np.ascontiguousarray(image) if image.ndim == 3 else image)
        header = preview_header(frame, enc.encoded_size[0], enc.encoded_size[1], (lo, hi))
        header.update(encoding="h264", keyframe=unit.keyframe, codec=unit.codec)
        return unit.data, header, (time.perf_counter() - t0) * 1000.0


__all__ = ["DEFAULT_GOP", "KEYFRAME_SPACING", "H264VariantEncoder", "h264_available"]
