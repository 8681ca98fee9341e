"""``Throughput``: what one connection has sent, and at what rate over the last stats tick."""

from __future__ import annotations

import time


class Throughput:
    """Frames and bytes sent on one connection; ``tick`` turns the last interval's into rates."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.fps = 0.0
        self.bytes_per_s = 0.0
        self._at = time.monotonic()
        self._frames_then = 0
        self._bytes_then = 0

    def count(self, nbytes: int) -> None:
        """One frame of ``nbytes`` went out."""
        self.frames += 1
        self.bytes += nbytes

    def tick(self, now: float) -> None:
        """Rates since the previous tick (``now``: ``time.monotonic()``)."""
        dt = max(now - self._at, 1e-6)
        self.fps = (self.frames - self._frames_then) / dt
        self.bytes_per_s = (self.bytes - self._bytes_then) / dt
        self._at, self._frames_then, self._bytes_then = now, self.frames, self.bytes


__all__ = ["Throughput"]
