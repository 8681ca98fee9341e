"""Fault injection for the simulated camera: timeouts, dropped frames, stalls and unplugging.

The faults act on the camera's own state under its lock, so a read blocked in another thread
notices them at once (the driver's ``read_frame`` re-evaluates whenever it is woken).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: the driver imports this module
    from .driver import SimulatedCamera

__all__ = ["SimulatedFaults"]


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
    """

    def __init__(self, camera: SimulatedCamera) -> None:
        self._cam = camera

    def timeouts(self, n: int = 1) -> None:
        """The next ``n`` reads raise ``FrameTimeout``, at once (they do not wait the timeout)."""
        with self._cam._cond:
            self._cam._pending_timeouts += max(0, int(n))
            self._cam._cond.notify_all()

    def drop_frames(self, k: int = 1) -> None:
        """Lose the next ``k`` frames: they are exposed (numbers and time slots pass) but never
        delivered, so the next delivered frame shows a gap of ``k`` frame numbers."""
        with self._cam._cond:
            self._cam._pending_drops += max(0, int(k))
            self._cam._cond.notify_all()

    def stall(self, seconds: float) -> None:
        """Hang the camera: no frame is delivered for ``seconds`` from now (reads with a shorter
        timeout really wait and raise ``FrameTimeout``); afterwards the schedule restarts."""
        with self._cam._cond:
            self._cam._stall_until = max(self._cam._stall_until, time.monotonic() + max(0.0, seconds))
            self._cam._cond.notify_all()

    def disconnect(self, *, reconnect_after: int | None = None) -> None:
        """Unplug the camera: a blocked read and every later one raise ``CameraDisconnected``,
        ``start``/settings changes raise it too, and ``open`` raises ``CameraUnavailable``.

        ``reconnect()`` returns False until ``replug()`` is called, or, with ``reconnect_after=n``,
        for the next ``n`` attempts and then succeeds by itself.
        """
        cam = self._cam
        with cam._cond:
            if cam._plugged:
                cam._plugged = False
                cam._resume_after_replug = cam._streaming
                cam._streaming = False
                cam._schedule.triggers.clear()
            cam._replug_ready = reconnect_after is not None and reconnect_after <= 0
            cam._replug_countdown = reconnect_after if reconnect_after and reconnect_after > 0 else None
            cam._cond.notify_all()

    def replug(self) -> None:
        """Plug the camera back in: the next ``reconnect()`` returns True (same settings, and
        streaming again if it was streaming when it went away). Before ``open()``, lets it open."""
        with self._cam._cond:
            self._cam._replug_ready = True
            self._cam._replug_countdown = None
            if not self._cam._is_open:
                self._cam._plugged = True
            self._cam._cond.notify_all()

    def clear(self) -> None:
        """Cancel pending timeouts, drops and stalls (an unplugged camera stays unplugged)."""
        with self._cam._cond:
            self._cam._pending_timeouts = 0
            self._cam._pending_drops = 0
            self._cam._stall_until = 0.0
            self._cam._cond.notify_all()

    @property
    def connected(self) -> bool:
        """False between ``disconnect()`` and a successful ``reconnect()``."""
        return self._cam._plugged

    @property
    def pending(self) -> dict[str, float]:
        """What is still to happen: {"timeouts": n, "drops": k, "stall_s": seconds left}."""
        with self._cam._cond:
            return {
                "timeouts": self._cam._pending_timeouts,
                "drops": self._cam._pending_drops,
                "stall_s": max(0.0, self._cam._stall_until - time.monotonic()),
            }
