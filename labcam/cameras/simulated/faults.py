"""Fault injection for the simulated camera: timeouts, dropped frames, stalls and unplugging.

``FaultState`` is what the faults have set up and the driver acts on when it reads a frame,
reconnects or starts. It is guarded by the camera's lock, the condition a blocked ``read_frame``
waits on, so every fault wakes that read and it notices the fault at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["FaultState", "SimulatedFaults"]


@dataclass
class FaultState:
    """Pending faults and the plug state of one simulated camera (guarded by the camera's lock)."""

    timeouts: int = 0  # reads still to fail with FrameTimeout, at once
    drops: int = 0  # frames lost before the next delivered one (also overwritten hardware triggers)
    stall_until: float = 0.0  # monotonic time before which no frame is delivered
    plugged: bool = True
    replug_ready: bool = False  # plugged back in: the next reconnect() succeeds
    replug_countdown: int | None = None  # reconnect() attempts still to fail before it succeeds
    resume_after_replug: bool = False  # streaming when unplugged: streams again when back


class SimulatedFaults:
    """Camera misbehaviour on demand, for tests of what sits on top of a camera. Thread-safe.

    >>> cam = SimulatedCamera(width=64, height=48); cam.open(); cam.start()
    >>> cam.faults.drop_frames(3)   # the next frame arrives with frame_number 3 higher than usual
    >>> cam.faults.disconnect()     # reads raise CameraDisconnected; reconnect() is False ...
    >>> cam.reconnect()
    False
    >>> cam.faults.replug()         # ... until the camera is plugged back in
    >>> cam.reconnect(), cam.streaming
    (True, True)
    >>> cam.close()

    ``stop_streaming`` (called with the lock held) ends the camera's stream when it is unplugged
    and says whether it was streaming; ``is_open`` says whether the camera is open.
    """

    def __init__(
        self,
        cond: threading.Condition,
        state: FaultState,
        *,
        stop_streaming: Callable[[], bool],
        is_open: Callable[[], bool],
    ) -> None:
        self._cond = cond
        self._state = state
        self._stop_streaming = stop_streaming
        self._is_open = is_open

    def timeouts(self, n: int = 1) -> None:
        """The next ``n`` reads raise ``FrameTimeout``, at once (they do not wait the timeout)."""
        with self._cond:
            self._state.timeouts += max(0, int(n))
            self._cond.notify_all()

    def drop_frames(self, k: int = 1) -> None:
        """Lose the next ``k`` frames: they are exposed (numbers and time slots pass) but never
        delivered, so the next delivered frame shows a gap of ``k`` frame numbers."""
        with self._cond:
            self._state.drops += max(0, int(k))
            self._cond.notify_all()

    def stall(self, seconds: float) -> None:
        """Hang the camera: no frame is delivered for ``seconds`` from now (reads with a shorter
        timeout really wait and raise ``FrameTimeout``); afterwards the schedule restarts."""
        with self._cond:
            self._state.stall_until = max(self._state.stall_until, time.monotonic() + max(0.0, seconds))
            self._cond.notify_all()

    def disconnect(self, *, reconnect_after: int | None = None) -> None:
        """Unplug the camera: a blocked read and every later one raise ``CameraDisconnected``,
        ``start``/settings changes raise it too, and ``open`` raises ``CameraUnavailable``.

        ``reconnect()`` returns False until ``replug()`` is called, or, with ``reconnect_after=n``,
        for the next ``n`` attempts and then succeeds by itself.
        """
        state = self._state
        with self._cond:
            if state.plugged:
                state.plugged = False
                state.resume_after_replug = self._stop_streaming()
            state.replug_ready = reconnect_after is not None and reconnect_after <= 0
            state.replug_countdown = reconnect_after if reconnect_after and reconnect_after > 0 else None
            self._cond.notify_all()

    def replug(self) -> None:
        """Plug the camera back in: the next ``reconnect()`` returns True (same settings, and
        streaming again if it was streaming when it went away). Before ``open()``, lets it open."""
        state = self._state
        with self._cond:
            state.replug_ready = True
            state.replug_countdown = None
            if not self._is_open():
                state.plugged = True
            self._cond.notify_all()

    def clear(self) -> None:
        """Cancel pending timeouts, drops and stalls (an unplugged camera stays unplugged)."""
        state = self._state
        with self._cond:
            state.timeouts = 0
            state.drops = 0
            state.stall_until = 0.0
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        """False between ``disconnect()`` and a successful ``reconnect()``."""
        return self._state.plugged

    @property
    def pending(self) -> dict[str, float]:
        """What is still to happen: {"timeouts": n, "drops": k, "stall_s": seconds left}."""
        state = self._state
        with self._cond:
            return {
                "timeouts": state.timeouts,
                "drops": state.drops,
                "stall_s": max(0.0, state.stall_until - time.monotonic()),
            }
