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

Not thread-safe: the server uses it on its event loop, the widget under its own lock.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

# An fps cap lets a frame through this early (seconds) so camera jitter does not halve the rate.
FPS_SLACK_S = 0.002
# Send times kept for unacknowledged frames (for delivery times and the fallback): a bound, since a
# window that falls back counts writes and stops recording them.
MAX_TRACKED = 64
# Weight of the newest sample in the delivery-time moving average.
DELIVERY_WEIGHT = 0.2


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


class FrameWindow(Generic[T]):
    """Frames in flight (at most ``size``), their acknowledgements, the one-frame slot and the fps cap.

    ``offer(frame, now)`` returns the frame when it may be sent now, else keeps it in the slot (or
    drops it: above the fps cap). The sender then calls ``sent(now)`` (its sequence number, for the
    acknowledgement) and, whenever the window may have opened, ``take_pending(now)``.
    """

    def __init__(
        self, size: int, *, ack_timeout: float | None = None, fallback_after: float | None = None,
        fps: float | None = None,
    ) -> None:
        self.size = size
        self.ack_timeout = ack_timeout
        self.fallback_after = fallback_after
        self.cap = FpsCap(fps)
        self.seq = 0  # frames sent (the last one's sequence number)
        self._done = 0  # highest sequence number acknowledged or given up on
        self._sent_at: dict[int, float] = {}  # seq -> send time of unacknowledged frames (bounded)
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
        return None

    def take_pending(self, now: float) -> T | None:
        """The frame in the slot, if the window has room for it now."""
        if self.pending is None or not self.is_open(now):
            return None
        frame, self.pending = self.pending, None
        return frame

    def sent(self, now: float, *, writing: bool = False) -> int:
        """A frame went at ``now``: its sequence number. ``writing``: call ``write_done`` when its
        write finishes (the fallback counts those)."""
        self.seq += 1
        if writing:
            self.writing += 1
        if not self.fallback and len(self._sent_at) < MAX_TRACKED:
            self._sent_at[self.seq] = now
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self.seq

    def write_done(self) -> None:
        self.writing -= 1

    def ack(self, seq: int, now: float) -> bool:
        """Frame ``seq`` (and every earlier one) arrived. False for a stale or unknown number."""
        if seq <= self._done or seq > self.seq:
            return False  # stale (acks may be coalesced, or given up on) or not ours
        self.acked += seq - self._done
        self._done = seq
        self.ever_acked = True
        self.fallback = False
        sent = self._sent_at.pop(seq, None)
        for old in [k for k in self._sent_at if k < seq]:
            del self._sent_at[old]
        if sent is not None:
            ms = (now - sent) * 1000.0
            self.rtt_ms = ms
            self.delivery_ms = ms if self.delivery_ms is None else self.delivery_ms + DELIVERY_WEIGHT * (ms - self.delivery_ms)
        return True

    def clear(self) -> None:
        """Forget every frame in flight and the slot (a new stream starts)."""
        self._done = self.seq
        self._sent_at.clear()
        self.pending = None

    def _expire(self, now: float) -> None:
        if self.ack_timeout is not None:
            overdue = [s for s, t in self._sent_at.items() if now - t > self.ack_timeout]
            for s in overdue:
                del self._sent_at[s]
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


__all__ = ["FPS_SLACK_S", "FpsCap", "FrameWindow"]
