"""Flow control of a live view: a window of frames in flight, a one-frame slot and an fps cap.

Shared by the stream server (``labcam.server.stream.StreamHandler``: acknowledged by WebSocket
pongs) and the live view's comm sender (``labcam.widget.LiveView``: acknowledged by the page's
``ack`` messages). The rule is the same for both, latest frame wins: at most ``size`` frames are sent
and not yet acknowledged; a frame that arrives while the window is full waits in a one-frame slot,
where a newer one replaces it (counted in ``skipped``). Nothing is queued, so a slow viewer holds at
most ``size`` frames plus one, and only ever sees fresh ones.

Acknowledgements are cumulative (acknowledging frame n acknowledges every earlier one). Two ways
out when they do not come:

- ``ack_timeout``: a frame unacknowledged for this long no longer counts (``lost``): a busy kernel
  holds the page's acks in its shell queue, and the view should still get ``size`` frames per
  timeout instead of freezing.
- ``fallback_after``: if no frame was ever acknowledged this long after one was sent (a host whose
  pongs never reach us), count frames being *written* instead (``written``/``write_done``): the
  weaker "drained into the socket" window.

The window's size is fixed (the widget's comm) or set by a ``WindowSizer`` from what the
acknowledgements measure (the stream server): enough frames to fill the link's round trip at the
rate it delivers, plus one, so a long round trip does not cap the frame rate and a slow link does
not queue more than about two frames.

Not thread-safe: the server uses it on its event loop, the widget under its own lock.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

# An fps cap lets a frame through this early (seconds) so camera jitter does not halve the rate.
FPS_SLACK_S = 0.002
# Send times kept for unacknowledged frames (for delivery times and the fallback): a bound, since a
# window that falls back counts writes and stops recording them.
MAX_TRACKED = 64
# Weight of the newest sample in the delivery-time moving average.
DELIVERY_WEIGHT = 0.2
# WindowSizer: the delivery rate is measured over the acknowledgements of about this long ...
RATE_SPAN_S = 1.0
# ... the base round trip is the smallest delivery time seen over this long ...
BASE_SPAN_S = 10.0
# ... and if the window holds frames back (within the last RATE_SPAN_S) while no frame went into an
# empty pipe for this long, it drains to one frame until one has (a clean sample: the round trip
# without our own queue in it).
PROBE_AFTER_S = 4.0
# Frames in flight beyond what fills the round trip: the one being serialised at the bottleneck is
# already in the base round trip, so this is what may queue, and what lets the window grow.
WINDOW_HEADROOM = 1
WINDOW_MIN = 2
WINDOW_MAX = 32


class FpsCap:
    """At most ``fps`` frames per second on average (None: no cap).

    ``delay(now)`` is how long the next frame must wait; ``take(now)`` records one that went. The
    schedule advances by one period per frame so arrival jitter does not lower the average, and
    re-anchors after a gap so a pause is not followed by a burst.
    """

    def __init__(self, fps: float | None = None, slack: float = FPS_SLACK_S) -> None:
        self._fps = fps
        self.slack = slack
        self._next_due = 0.0

    @property
    def fps(self) -> float | None:
        return self._fps

    @fps.setter
    def fps(self, value: float | None) -> None:
        if value != self._fps:
            self._fps = value
            self._next_due = 0.0

    def delay(self, now: float) -> float:
        """Seconds until a frame may go (0: now)."""
        if not self._fps:
            return 0.0
        return max(0.0, self._next_due - self.slack - now)

    def take(self, now: float) -> None:
        """A frame went at ``now``: schedule the next."""
        if not self._fps:
            return
        period = 1.0 / self._fps
        if now - self._next_due > period:
            self._next_due = now + period  # first frame, or after a gap: re-anchor, no burst
        else:
            self._next_due += period  # keeps the average at the cap despite arrival jitter


class WindowSizer:
    """The window a link needs: delivered frame rate × base round trip, in frames, plus headroom.

    Fed one event per acknowledgement (``delivered``): when, how long the newest acknowledged
    frame took from send to acknowledgement, how many frames and bytes it acknowledged, and whether
    that frame was sent into an empty pipe. From these it keeps

    - ``fps`` and ``bytes_per_s``: what was acknowledged over the last ``RATE_SPAN_S``: the link's
      rate when the link is the limit, the camera's (or the viewer's reading) rate otherwise;
    - ``base_s``: the smallest delivery time over ``BASE_SPAN_S`` (round trip + one frame's
      serialisation; frames queued behind others only make samples larger);

    and sizes ``window = ceil(fps × base_s) + WINDOW_HEADROOM`` within [``WINDOW_MIN``,
    ``WINDOW_MAX``]. Why it settles: limited by the window, ``fps × base_s`` is the window itself,
    so the headroom lets it grow by a frame; limited by the link or the camera, it is the frames the
    round trip holds, and the headroom is all that can queue (about one frame time plus the one
    being sent). From delays alone a queue of our own cannot be told from a longer round trip (in
    flight = rate × delay either way). So when the window holds frames back (``held_back``) and no
    frame went into an empty pipe for ``PROBE_AFTER_S``, ``probing`` holds the window at one frame
    until one has: that frame's delivery time is the round trip as it is now, and becomes the base
    (so a round trip that grew is followed within seconds). It costs one round trip of fewer frames
    every few seconds, and only a viewer the window limits; one it does not limit queues nothing.
    """

    def __init__(self, minimum: int = WINDOW_MIN, maximum: int = WINDOW_MAX, headroom: int = WINDOW_HEADROOM) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.headroom = headroom
        self._acks: deque[tuple[float, int, int]] = deque()  # (time, frames, bytes) acknowledged
        self._delays: deque[tuple[float, float]] = deque()  # (time, delivery seconds), increasing
        self._clean_at: float | None = None  # the last acknowledgement of a frame sent into an empty pipe
        self._started: float | None = None
        self._held_back_at: float | None = None
        self.probing = False
        self.fps: float | None = None
        self.bytes_per_s: float | None = None
        self.window = minimum

    @property
    def base_s(self) -> float | None:
        """The base round trip (smallest recent delivery time), None before the first."""
        return self._delays[0][1] if self._delays else None

    def delivered(self, now: float, delivery_s: float, frames: int, nbytes: int, *, clean: bool) -> None:
        """An acknowledgement at ``now`` of ``frames`` frames (``nbytes`` bytes); the newest took
        ``delivery_s`` from send to acknowledgement; ``clean``: it was sent with nothing in flight."""
        if self._started is None:
            self._started = now
        self._acks.append((now, frames, nbytes))
        while len(self._acks) > 2 and self._acks[1][0] <= now - RATE_SPAN_S:
            self._acks.popleft()  # keep one acknowledgement at or before the span: the anchor
        if clean and self.probing:
            self._delays.clear()  # the probe measured the round trip as it is now
        # A monotonic deque: the front is the smallest delivery time of the last BASE_SPAN_S.
        while self._delays and self._delays[-1][1] >= delivery_s:
            self._delays.pop()
        self._delays.append((now, delivery_s))
        while self._delays[0][0] < now - BASE_SPAN_S:
            self._delays.popleft()
        if clean:
            self._clean_at = now
            self.probing = False
        elif (
            self._held_back_at is not None and now - self._held_back_at < RATE_SPAN_S
            and now - (self._clean_at if self._clean_at is not None else self._started) > PROBE_AFTER_S
        ):
            self.probing = True
        self._resize(now)

    def held_back(self, now: float) -> None:
        """A frame had to wait because the window was full (the window, or the link, is the limit;
        not while probing, which holds frames back by itself)."""
        if not self.probing:
            self._held_back_at = now

    def _resize(self, now: float) -> None:
        anchor = self._acks[0][0]
        span = now - anchor
        if len(self._acks) < 2 or span <= 0:
            return
        frames = sum(f for _, f, _ in list(self._acks)[1:])
        self.fps = frames / span
        self.bytes_per_s = sum(b for _, _, b in list(self._acks)[1:]) / span
        base = self.base_s or 0.0
        self.window = max(self.minimum, min(self.maximum, math.ceil(self.fps * base - 1e-9) + self.headroom))

    @property
    def limit(self) -> int:
        """Frames that may be in flight now: the window, or one while probing the base round trip."""
        return 1 if self.probing else self.window


class FrameWindow(Generic[T]):
    """Frames in flight (at most ``size``), their acknowledgements, the one-frame slot and the fps cap.

    ``offer(frame, now)`` returns the frame when it may be sent now, else keeps it in the slot (or
    drops it: above the fps cap). The sender then calls ``sent(now)`` (its sequence number, for the
    acknowledgement) and, whenever the window may have opened, ``take_pending(now)``.
    """

    def __init__(
        self, size: int, *, ack_timeout: float | None = None, fallback_after: float | None = None,
        fps: float | None = None, sizer: WindowSizer | None = None,
    ) -> None:
        self._size = size
        self.sizer = sizer  # when given, it sets the size from what the acknowledgements measure
        self.ack_timeout = ack_timeout
        self.fallback_after = fallback_after
        self.cap = FpsCap(fps)
        self.seq = 0  # frames sent (the last one's sequence number)
        self._done = 0  # highest sequence number acknowledged or given up on
        self._sent_at: dict[int, float] = {}  # seq -> send time of unacknowledged frames (bounded)
        self._sent_bytes: dict[int, tuple[int, bool]] = {}  # seq -> (bytes, sent into an empty pipe)
        self.writing = 0  # frames whose write has not finished (the fallback's window)
        self.ever_acked = False
        self.fallback = False
        self.pending: T | None = None
        # figures
        self.acked = 0
        self.lost = 0  # given up after ack_timeout
        self.skipped = 0  # replaced in the slot
        self.max_in_flight = 0
        self.rtt_ms: float | None = None  # the last acknowledged frame's send -> ack time
        self.delivery_ms: float | None = None  # its moving average

    @property
    def size(self) -> int:
        """Frames that may be in flight now (the sizer's limit, if there is one)."""
        return self.sizer.limit if self.sizer is not None else self._size

    @size.setter
    def size(self, value: int) -> None:
        self._size = value

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet acknowledged (in fallback: not yet written)."""
        return self.writing if self.fallback else self.seq - self._done

    def is_open(self, now: float) -> bool:
        """Whether a frame may go now (gives up on overdue acknowledgements first)."""
        if self.in_flight >= self.size:
            self._expire(now)
        return self.in_flight < self.size

    def offer(self, frame: T, now: float) -> T | None:
        """A new frame: returned if it may go now, else kept in the slot (None). A frame above the
        fps cap is dropped (not ``skipped``: the viewer asked for fewer)."""
        if self.cap.delay(now) > 0:
            return None
        self.cap.take(now)
        if self.pending is not None:
            self.skipped += 1  # replaced by a newer one, or overtaken by this one
            self.pending = None
        if self.is_open(now):
            return frame
        self.pending = frame
        if self.sizer is not None:
            self.sizer.held_back(now)
        return None

    def take_pending(self, now: float) -> T | None:
        """The frame in the slot, if the window has room for it now."""
        if self.pending is None or not self.is_open(now):
            return None
        frame, self.pending = self.pending, None
        return frame

    def sent(self, now: float, *, writing: bool = False, nbytes: int = 0) -> int:
        """A frame (of ``nbytes``) went at ``now``: its sequence number. ``writing``: call
        ``write_done`` when its write finishes (the fallback counts those)."""
        clean = self.in_flight == 0
        self.seq += 1
        if writing:
            self.writing += 1
        if not self.fallback and len(self._sent_at) < MAX_TRACKED:
            self._sent_at[self.seq] = now
            self._sent_bytes[self.seq] = (nbytes, clean)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self.seq

    def write_done(self) -> None:
        self.writing -= 1

    def ack(self, seq: int, now: float) -> bool:
        """Frame ``seq`` (and every earlier one) arrived. False for a stale or unknown number."""
        if seq <= self._done or seq > self.seq:
            return False  # stale (acks may be coalesced, or given up on) or not ours
        frames = seq - self._done
        self.acked += frames
        self._done = seq
        self.ever_acked = True
        self.fallback = False
        sent = self._sent_at.pop(seq, None)
        nbytes, clean = self._sent_bytes.pop(seq, (0, False))
        for old in [k for k in self._sent_at if k < seq]:
            del self._sent_at[old]
            nbytes += self._sent_bytes.pop(old, (0, False))[0]
        if sent is not None:
            ms = (now - sent) * 1000.0
            self.rtt_ms = ms
            self.delivery_ms = ms if self.delivery_ms is None else self.delivery_ms + DELIVERY_WEIGHT * (ms - self.delivery_ms)
            if self.sizer is not None:
                self.sizer.delivered(now, now - sent, frames, nbytes, clean=clean)
        return True

    def clear(self) -> None:
        """Forget every frame in flight and the slot (a new stream starts)."""
        self._done = self.seq
        self._sent_at.clear()
        self._sent_bytes.clear()
        self.pending = None

    def _expire(self, now: float) -> None:
        if self.ack_timeout is not None:
            overdue = [s for s, t in self._sent_at.items() if now - t > self.ack_timeout]
            for s in overdue:
                del self._sent_at[s]
                self._sent_bytes.pop(s, None)
            if overdue:
                self.lost += max(overdue) - self._done
                self._done = max(overdue)
        if (
            self.fallback_after is not None and not self.ever_acked and not self.fallback
            and self._sent_at and not self.writing
            and now - min(self._sent_at.values()) > self.fallback_after
        ):
            self.fallback = True
            self._sent_at.clear()
            self._sent_bytes.clear()


__all__ = ["FPS_SLACK_S", "FpsCap", "FrameWindow", "WindowSizer"]
