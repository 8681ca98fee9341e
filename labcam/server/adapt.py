"""``quality=auto``: one viewer's JPEG quality, then size, then frame rate, chosen to fit its link.

Pure logic, no I/O: the stream handler feeds ``AutoQuality.update`` once a second with what its
flow-control window measured (``Measurement``) and follows the ``Choice`` it returns.

Viewers with equal variants share one encode, so the choice is a rung of a small **ladder** of
variants (quality 80/60/40/25 at full, half and quarter width), and auto viewers on one rung still
share encodes. Below the last rung the frame rate is capped (a per-viewer cap, no encode of its own).

The rule, once a second:

- **Behind** (frames take longer than ``LATENCY_TARGET_MS`` beyond the base round trip to arrive,
  or a third of that while the window holds frames back, more than ``BEHIND_SKIP_SHARE`` of them):
  frames queue in the network, so the link is the limit, and what it delivered is its capacity.
  Frames held back *without* a longer delay are a window still growing to a long round trip (its
  delivered rate is no capacity): not behind. Go to the best rung whose frames, at the camera
  rate, fit in ``FILL`` of it (predicted from the current rung's measured bytes and the ladder's
  byte ratios), or cap the frame rate on the last rung.
- **Keeping up** for ``STEP_UP_AFTER_S``: one rung up (or a higher fps cap), if the capacity last
  measured says it fits in ``FILL_UP`` (less than ``FILL``: hysteresis), or if that measurement is
  older than ``CAPACITY_MAX_AGE_S`` (a probe; if the link cannot carry it the next update is behind
  and steps back down).

Options the viewer gave are pinned: with ``max_width`` only quality (and fps) adapt, with ``fps``
that rate is the ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (JPEG quality, width divisor), best first: quality first, then size. Bytes relative to the first,
# measured on the simulated specimen at 1280x1024 (simplejpeg): used only to predict between rungs.
LADDER: tuple[tuple[int, int], ...] = (
    (80, 1), (60, 1), (40, 1), (25, 1), (60, 2), (40, 2), (25, 2), (60, 4), (40, 4), (25, 4),
)
LADDER_BYTES = (1.0, 0.70, 0.55, 0.43, 0.28, 0.21, 0.16, 0.105, 0.078, 0.058)
FILL = 0.8  # the share of the measured capacity a choice may use (the rest drains queues)
FILL_UP = 0.65  # ... and the share a step up must fit in
BEHIND_SKIP_SHARE = 0.1
LATENCY_TARGET_MS = 60.0  # delivery time beyond the base round trip that counts as behind
STEP_UP_AFTER_S = 3.0
CAPACITY_MAX_AGE_S = 15.0
MIN_FPS = 1.0
SETTLE_S = 1.5  # after a step down, the next second still measures the old rung's frames


@dataclass(frozen=True)
class Measurement:
    """What one viewer's window measured since the last update."""

    frames_sent: int  # frames that went (in this interval)
    frames_skipped: int  # frames the window held back and a newer one replaced
    delivered_bytes_per_s: float | None  # acknowledged over the last second
    delivery_ms: float | None  # send -> acknowledgement, moving average
    base_rtt_ms: float | None
    frame_bytes: float | None  # the current rung's frames, as sent
    camera_fps: float  # the rate frames come at (the camera's, or the viewer's own fps cap)


@dataclass(frozen=True)
class Choice:
    """A rung of the ladder and an fps cap (None: the camera rate), and why."""

    quality: int
    scale: int  # width divisor: 1, 2, 4
    fps: float | None
    reason: str


class AutoQuality:
    """One auto viewer's choice (see the module docstring). ``scales``: the width divisors allowed
    (``(1,)`` when the viewer pinned ``max_width``)."""

    def __init__(self, *, scales: tuple[int, ...] = (1, 2, 4)) -> None:
        self.scales = scales
        self.rungs = [i for i, (_, s) in enumerate(LADDER) if s in scales]
        self.rung = 0  # index into self.rungs
        self.fps_cap: float | None = None
        self.capacity: float | None = None  # bytes/s the link delivered when last behind
        self._capacity_at: float | None = None
        self._steady_since: float | None = None
        self._settle_until: float | None = None
        self.choice = self._choice("start: the best rung until the link is measured")

    def _choice(self, reason: str) -> Choice:
        quality, scale = LADDER[self.rungs[self.rung]]
        self.choice = Choice(quality, scale, self.fps_cap, reason)
        return self.choice

    def _relative(self, rung: int) -> float:
        return LADDER_BYTES[self.rungs[rung]]

    def _predict(self, rung: int, m: Measurement) -> float | None:
        """Bytes per frame at ``rung``, from the current rung's measured frames."""
        if not m.frame_bytes:
            return None
        return m.frame_bytes * self._relative(rung) / self._relative(self.rung)

    def update(self, now: float, m: Measurement) -> Choice:
        if self._settle_until is not None and now < self._settle_until:
            return self.choice  # the frames measured were still partly the previous rung's
        offered = m.frames_sent + m.frames_skipped
        skipping = offered > 0 and m.frames_skipped > BEHIND_SKIP_SHARE * offered
        queued_ms = None if m.delivery_ms is None or m.base_rtt_ms is None else m.delivery_ms - m.base_rtt_ms
        late = queued_ms is not None and queued_ms > LATENCY_TARGET_MS
        skipping = skipping and queued_ms is not None and queued_ms > LATENCY_TARGET_MS / 3
        if (skipping or late) and m.delivered_bytes_per_s and m.frame_bytes:
            self._steady_since = None
            self.capacity, self._capacity_at = m.delivered_bytes_per_s, now
            before = self.choice
            choice = self._fit(m, "behind: " + ("frames late" if late else "frames skipped"))
            if (choice.quality, choice.scale, choice.fps) != (before.quality, before.scale, before.fps):
                self._settle_until = now + SETTLE_S
            return choice
        if self._steady_since is None:
            self._steady_since = now
            return self.choice
        if now - self._steady_since < STEP_UP_AFTER_S:
            return self.choice
        self._steady_since = now  # the next step up waits as long again
        return self._step_up(now, m)

    def _fit(self, m: Measurement, why: str) -> Choice:
        """The best rung (then fps cap) that fits in FILL of the capacity just measured."""
        assert self.capacity is not None
        budget = FILL * self.capacity
        for rung in range(len(self.rungs)):
            size = self._predict(rung, m)
            if size is not None and size * m.camera_fps <= budget:
                self.rung, self.fps_cap = rung, None
                return self._choice(f"{why}; {_rate(self.capacity)} measured, {LADDER[self.rungs[rung]][0]} "
                                    f"at 1/{LADDER[self.rungs[rung]][1]} width fits")
        last = len(self.rungs) - 1
        size = self._predict(last, m) or 1.0  # (update() asks only with frames measured)
        self.rung = last
        self.fps_cap = max(MIN_FPS, math.floor(budget / size))
        return self._choice(f"{why}; {_rate(self.capacity)} measured: the smallest frames at {self.fps_cap:g} fps")

    def _step_up(self, now: float, m: Measurement) -> Choice:
        fresh = self.capacity is not None and self._capacity_at is not None and now - self._capacity_at < CAPACITY_MAX_AGE_S
        if self.fps_cap is not None:
            want_fps = min(m.camera_fps if self.fps_cap >= m.camera_fps else self.fps_cap * 1.5, 1000.0)
            size = m.frame_bytes or 0.0
            if not fresh or size * want_fps <= FILL_UP * (self.capacity or 0.0):
                self.fps_cap = None if want_fps >= m.camera_fps else float(math.floor(want_fps))
                return self._choice("keeping up: a higher frame rate" + ("" if fresh else " (probe)"))
            return self.choice
        if self.rung == 0:
            return self._choice("keeping up at the best rung")
        size = self._predict(self.rung - 1, m)
        if not fresh or (size is not None and size * m.camera_fps <= FILL_UP * (self.capacity or 0.0)):
            self.rung -= 1
            return self._choice("keeping up: one rung up" + ("" if fresh else " (probe)"))
        return self.choice


def _rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s * 8 / 1e6:.1f} Mbit/s"


__all__ = ["LADDER", "AutoQuality", "Choice", "Measurement"]
