"""The capture engine: one camera, one capture thread, any number of consumers.

The capture thread is the only caller of the driver's blocking ``read_frame``. Each frame it gets
is published into a single "latest frame" slot (a reference, never a copy) and the consumers are
told. A consumer is a ``Subscription``:

- a *latest* subscription (the default) always gets the newest frame it has not seen; a slow one
  simply skips frames (counted in ``missed``), so it costs the capture nothing and holds no memory;
- a *buffered* subscription (``buffer=N``) gets every frame through its own FIFO of at most N
  frames; when it falls N frames behind, further frames are counted in ``missed`` instead of queued.
  Recordings and ``acquire`` use it.

The engine starts the camera when the first consumer subscribes and stops it ``idle_grace``
seconds after the last one leaves, so a reconnecting page does not restart the camera. Camera
faults are retried and reported through ``events`` and ``status``; consumers never see them except
as a pause in frames.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from psygnal import Signal, SignalGroup

from .camera_info import CameraDescription, EngineStatus
from .cameras.base import CameraDriver
from .errors import CameraDisconnected, CameraError, FrameTimeout, StreamStopped
from .frame import Frame
from .settings import Settings, SettingSpecs, validate_changes

log = logging.getLogger("labcam")

# A read that gets no frame for this many frame periods (and at least MIN_READ_TIMEOUT seconds)
# counts as a timeout. Generous, because a timeout is only a symptom: it is the burst that matters.
READ_TIMEOUT_PERIODS = 5.0
MIN_READ_TIMEOUT = 1.0
# This many timeouts in a row make the camera "stalled" in the status (it is still retried).
TIMEOUT_BURST = 3
# How often a lost camera is looked for again: first after RECONNECT_INTERVAL seconds, then
# backing off by RECONNECT_BACKOFF per attempt up to RECONNECT_MAX_INTERVAL (a replug is still
# noticed within a few seconds, and an absent camera costs nothing).
RECONNECT_INTERVAL = 0.5
RECONNECT_BACKOFF = 1.5
RECONNECT_MAX_INTERVAL = 4.0
# A read that fails is followed by a pause before the next, so a failing driver never makes the
# capture loop spin: FAILURE_BACKOFF seconds after the first failure in a row, doubling up to
# MAX_FAILURE_BACKOFF. The pause counts from the start of the failed read, so a read that already
# waited that long (a real timeout, e.g. waiting for a hardware trigger) is retried at once.
FAILURE_BACKOFF = 0.01
MAX_FAILURE_BACKOFF = 1.0


class EngineEvents(SignalGroup):
    """State changes of the engine. Handlers run on the thread that caused the change (often the
    capture thread): keep them short, and hand work to your own thread or event loop."""

    settings_changed = Signal(object)  # Settings now in force
    streaming_started = Signal()
    streaming_stopped = Signal()
    camera_lost = Signal(str)  # why
    camera_recovered = Signal()
    frames_dropped = Signal(int)  # how many frame numbers the camera skipped just now
    status_changed = Signal(object)  # EngineStatus


class Subscription:
    """One consumer's access to the engine's frames. Create with ``Engine.subscribe``.

    Thread-safe for one consumer thread (or one asyncio task) at a time.
    """

    def __init__(self, engine: Engine, name: str, buffer: int) -> None:
        self._engine = engine
        self.name = name
        self.buffered = buffer > 0
        self._buffer_limit = buffer
        self._queue: collections.deque[Frame] = collections.deque()
        self._last_seq = engine._seq  # "next frame" means one captured after subscribing
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.closed = False
        self.delivered = 0
        self.missed = 0  # frames this consumer did not get (skipped, or buffer overflow)

    # -- the consumer's side --------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Frames waiting to be read: the buffer's fill for a buffered subscription, else 0 or 1."""
        with self._engine._cond:
            if self.buffered:
                return len(self._queue)
            return int(self._engine._seq > self._last_seq and self._engine._latest is not None)

    def poll(self) -> Frame | None:
        """The next frame if one is ready, else None. Never blocks."""
        with self._engine._cond:
            return self._take()

    def next(self, timeout: float | None = None) -> Frame:
        """Block until the next frame and return it.

        Raises ``FrameTimeout`` when none came within ``timeout`` seconds, ``CameraError`` when the
        subscription or engine is closed.
        """
        cond = self._engine._cond
        deadline = None if timeout is None else time.monotonic() + timeout
        with cond:
            while True:
                frame = self._take()
                if frame is not None:
                    return frame
                self._raise_if_closed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise FrameTimeout(f"no frame within {timeout:g} s ({self._engine.status.state})")
                cond.wait(remaining)

    async def anext(self, timeout: float | None = None) -> Frame:
        """Like ``next`` for asyncio code: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._engine._cond:
                frame = self._take()
                if frame is not None:
                    return frame
                self._raise_if_closed()
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            remaining = None if deadline is None else deadline - loop.time()
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                raise FrameTimeout(f"no frame within {timeout:g} s ({self._engine.status.state})") from None

    def close(self) -> None:
        """Stop receiving frames. Safe to call twice."""
        self._engine._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = f"buffered({self._buffer_limit})" if self.buffered else "latest"
        return f"<Subscription {self.name!r} {kind} delivered={self.delivered} missed={self.missed}>"

    # -- called with the engine's condition held -----------------------------------------------
    def _take(self) -> Frame | None:
        if self.buffered:
            if not self._queue:
                return None
            frame = self._queue.popleft()
        else:
            seq = self._engine._seq
            if seq <= self._last_seq or self._engine._latest is None:
                return None
            if self.delivered:
                self.missed += seq - self._last_seq - 1
            self._last_seq = seq
            frame = self._engine._latest
        self.delivered += 1
        return frame

    def _offer(self, frame: Frame) -> None:
        if self.buffered:
            if len(self._queue) >= self._buffer_limit:
                self.missed += 1
            else:
                self._queue.append(frame)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed: its waiter is gone with it
                pass

    def _raise_if_closed(self) -> None:
        if self.closed:
            raise CameraError(f"subscription {self.name!r} is closed")
        if self._engine._closed:
            raise CameraError("the camera engine is closed")


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Engine:
    """Owns one opened camera driver and shares its frames.

    >>> from labcam.cameras.simulated import SimulatedCamera
    >>> cam = SimulatedCamera(width=64, height=48); cam.open()
    >>> engine = Engine(cam)
    >>> with engine.subscribe("doc") as sub:
    ...     frame = sub.next(timeout=5)
    >>> frame.array.shape
    (48, 64)
    >>> engine.close()
    """

    def __init__(self, driver: CameraDriver, *, idle_grace: float = 2.0) -> None:
        self.driver = driver
        self.idle_grace = idle_grace
        self.events = EngineEvents()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0
        self._subs: list[Subscription] = []
        self._keepalive = 0  # holds from start_live()-style users that want the camera on
        self._closed = False
        # Start/stop/settings changes are serialised by this lock, never held while waiting for frames.
        self._control = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._capture_finished = threading.Event()  # set by the capture thread as it ends
        self._idle_timer: threading.Timer | None = None
        # status
        self._state = "idle"
        self._message = ""
        self._frames = 0
        self._dropped = 0
        self._timeouts = 0
        self._arrivals: collections.deque[float] = collections.deque(maxlen=32)
        self._last_frame_number: int | None = None

    # -- what the camera is and does ------------------------------------------------------------
    @property
    def description(self) -> CameraDescription:
        return self.driver.description

    @property
    def settings(self) -> Settings:
        return self.driver.settings

    @property
    def specs(self) -> SettingSpecs:
        return self.driver.specs

    @property
    def latest(self) -> Frame | None:
        """The newest frame captured, or None before the first."""
        return self._latest

    @property
    def status(self) -> EngineStatus:
        with self._cond:
            arrivals = list(self._arrivals)
            consumers = len(self._subs)
        fps = 0.0
        if self._state == "streaming" and len(arrivals) >= 2 and time.monotonic() - arrivals[-1] < 2.0:
            fps = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
        return EngineStatus(
            state=self._state,
            frames=self._frames,
            dropped=self._dropped,
            timeouts=self._timeouts,
            fps=fps,
            consumers=consumers,
            message=self._message,
        )

    @property
    def running(self) -> bool:
        """True while the capture thread runs (the camera streams or is being recovered)."""
        return self._thread is not None and not self._capture_finished.is_set()

    # -- consumers --------------------------------------------------------------------------------
    def subscribe(self, name: str = "", *, buffer: int = 0) -> Subscription:
        """Add a consumer and start the camera if it is the first.

        ``buffer=0``: latest frame wins. ``buffer=N``: every frame, through a FIFO of at most N.
        """
        if buffer < 0:
            raise ValueError(f"buffer={buffer!r} is not allowed: 0 (latest frame) or a positive frame count")
        with self._control:
            if self._closed:
                raise CameraError("the camera engine is closed")
            with self._cond:
                sub = Subscription(self, name or f"consumer-{len(self._subs) + 1}", buffer)
                self._subs.append(sub)
            self._cancel_idle_timer()
            self._start_capture()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._control:
            with self._cond:
                if sub.closed:
                    return
                sub.closed = True
                self._subs.remove(sub)
                sub._wake()
                self._cond.notify_all()
            self._schedule_idle_stop()

    def hold(self) -> None:
        """Keep the camera streaming without consuming frames (``release`` undoes it)."""
        with self._control:
            self._keepalive += 1
            self._cancel_idle_timer()
            self._start_capture()

    def release(self) -> None:
        with self._control:
            if self._keepalive > 0:
                self._keepalive -= 1
                self._schedule_idle_stop()

    def snap(self, timeout: float = 5.0) -> Frame:
        """The next frame captured after this call (the camera keeps streaming for others)."""
        with self.subscribe("snap") as sub:
            return sub.next(timeout)

    # -- settings -------------------------------------------------------------------------------
    def update_settings(self, changes: Mapping[str, Any]) -> Settings:
        """Validate and apply ``changes``; returns the settings in force (as read back).

        A change the camera cannot make while streaming (ROI, pixel format) pauses the capture for
        the change; consumers just see a short gap. Bad input raises ``SettingError`` and changes
        nothing.
        """
        with self._control:
            current = self.driver.settings
            new = validate_changes(self.driver.specs, current, changes)  # fail before touching anything
            changed = [k for k in changes if getattr(new, k) != getattr(current, k)]
            restart = self.running and any(
                not self.driver.specs[name].settable_while_streaming for name in changed
            )
            if restart:
                self._stop_capture()
            try:
                result = self.driver.update_settings(changes)
            finally:
                if restart:
                    self._start_capture()
        if changed:
            self.events.settings_changed.emit(result)
        return result

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the camera, wake every waiting consumer with an error, and close the driver."""
        with self._control:
            if self._closed:
                return
            self._cancel_idle_timer()
            self._stop_capture()
            with self._cond:
                self._closed = True
                for sub in self._subs:
                    sub._wake()
                self._cond.notify_all()
            self._set_state("closed")
            self.driver.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wanted(self) -> bool:
        return bool(self._subs) or self._keepalive > 0

    def _schedule_idle_stop(self) -> None:
        if self._wanted() or not self.running:
            return
        self._cancel_idle_timer()
        if self.idle_grace <= 0:
            self._stop_capture()
            return
        timer = threading.Timer(self.idle_grace, self._idle_stop)
        timer.daemon = True
        timer.name = "labcam-idle-stop"
        self._idle_timer = timer
        timer.start()

    def _idle_stop(self) -> None:
        with self._control:
            if self._idle_timer is not None and not self._wanted():
                self._idle_timer = None
                self._stop_capture()

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _start_capture(self) -> None:
        if self.running:
            return
        if self._thread is not None:  # a capture that ended by itself (camera failed to start)
            self._thread.join()
        self._stop_requested.clear()
        self._capture_finished.clear()
        self._thread = threading.Thread(target=self._capture_loop, name="labcam-capture", daemon=True)
        self._thread.start()

    def _stop_capture(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop_requested.set()
        self.driver.stop()  # wakes a read_frame blocked in the SDK
        thread.join()
        self._thread = None

    # -- the capture thread ---------------------------------------------------------------------
    def _capture_loop(self) -> None:
        try:
            self._capture()
        finally:
            self._capture_finished.set()
            self.events.streaming_stopped.emit()

    def _capture(self) -> None:
        try:
            self.driver.start()
        except CameraDisconnected as exc:
            self._lost(str(exc))
            if not self._recover():
                self._set_state("idle")
                return
        except CameraError as exc:
            log.error("camera failed to start: %s", exc)
            self._set_state("lost", f"failed to start: {exc}")
            return
        self._set_state("streaming")
        self.events.streaming_started.emit()
        timeouts_in_a_row = 0
        failures_in_a_row = 0  # reads that raised anything, for the back-off
        while not self._stop_requested.is_set():
            started = time.monotonic()
            try:
                frame = self.driver.read_frame(self._read_timeout())
            except StreamStopped:
                # stop() interrupted the read (the loop condition decides), or the driver keeps
                # saying so by itself: then never retry at once, and restart the stream once per burst.
                failures_in_a_row += 1
                if not self._stop_requested.is_set() and failures_in_a_row == TIMEOUT_BURST:
                    self._restart_stream()
                self._back_off(started, failures_in_a_row)
                continue
            except FrameTimeout as exc:
                self._timeouts += 1
                timeouts_in_a_row += 1
                failures_in_a_row += 1
                # Waiting for a hardware trigger is not a fault: no stalled state for it.
                if timeouts_in_a_row == TIMEOUT_BURST and self.settings.trigger_mode != "hardware":
                    log.warning("camera stalled: %d timeouts in a row (%s)", timeouts_in_a_row, exc)
                    self._set_state("stalled", f"{timeouts_in_a_row} frame timeouts in a row")
                self._back_off(started, failures_in_a_row)
                continue
            except CameraDisconnected as exc:
                self._lost(str(exc))
                if not self._recover():
                    break
                timeouts_in_a_row = failures_in_a_row = 0
                continue
            except CameraError as exc:
                # Other camera errors: counted like timeouts, so a persistent one shows as stalled.
                # The driver decides whether the camera is gone (its liveness probe); the engine
                # logs the first of a burst and backs off.
                self._timeouts += 1
                timeouts_in_a_row += 1
                failures_in_a_row += 1
                if failures_in_a_row == 1:
                    log.error("camera error: %s", exc)
                else:
                    log.debug("camera error (%d in a row): %s", failures_in_a_row, exc)
                if timeouts_in_a_row >= TIMEOUT_BURST:
                    self._set_state("stalled", str(exc))
                self._back_off(started, failures_in_a_row)
                continue
            failures_in_a_row = 0
            if timeouts_in_a_row:
                timeouts_in_a_row = 0
                if self._state == "stalled":
                    self._set_state("streaming")
            self._publish(frame)
        try:
            self.driver.stop()
        except CameraError as exc:
            log.debug("stopping the camera: %s", exc)
        if self._state != "closed":
            self._set_state("idle")

    def _restart_stream(self) -> None:
        """Stop and start the camera: the stream ended although nobody stopped it."""
        log.warning("the camera's stream keeps ending by itself: restarting it")
        try:
            self.driver.stop()
            self.driver.start()
        except CameraError as exc:
            log.debug("restarting the stream: %s", exc)

    def _back_off(self, started: float, failures_in_a_row: int) -> None:
        """Pause after a failed read (see FAILURE_BACKOFF); returns early when capture is stopped."""
        delay = min(MAX_FAILURE_BACKOFF, FAILURE_BACKOFF * 2 ** min(failures_in_a_row - 1, 30))
        remaining = started + delay - time.monotonic()
        if remaining > 0:
            self._stop_requested.wait(remaining)

    def _read_timeout(self) -> float:
        s = self.settings
        return max(MIN_READ_TIMEOUT, READ_TIMEOUT_PERIODS / s.fps + s.exposure_ms / 1000.0)

    def _publish(self, frame: Frame) -> None:
        number = frame.meta.frame_number
        gap = 0
        if self._last_frame_number is not None and number > self._last_frame_number + 1:
            gap = number - self._last_frame_number - 1
            frame = replace(frame, meta=replace(frame.meta, dropped_before=gap))
        self._last_frame_number = number
        with self._cond:
            self._latest = frame
            self._seq += 1
            self._frames += 1
            if gap:
                self._dropped += gap
            self._arrivals.append(time.monotonic())
            for sub in self._subs:
                sub._offer(frame)
            self._cond.notify_all()
        if gap:
            self.events.frames_dropped.emit(gap)

    def _lost(self, why: str) -> None:
        log.warning("camera lost: %s", why)
        self._set_state("lost", why)
        self.events.camera_lost.emit(why)

    def _recover(self) -> bool:
        """Look for the camera until it is back (True) or capture is being stopped (False)."""
        interval = RECONNECT_INTERVAL
        while not self._stop_requested.wait(interval):
            interval = min(RECONNECT_MAX_INTERVAL, interval * RECONNECT_BACKOFF)
            try:
                back = self.driver.reconnect()
                if back and not self.driver.streaming:
                    self.driver.start()
            except CameraError as exc:
                log.debug("reconnect failed: %s", exc)
                back = False
            if back:
                # Frame numbers may restart after a replug: do not count that as drops.
                self._last_frame_number = None
                log.warning("camera recovered")
                self._set_state("streaming")
                self.events.camera_recovered.emit()
                return True
        return False

    def _set_state(self, state: str, message: str = "") -> None:
        if state == self._state and message == self._message:
            return
        self._state = state
        self._message = message
        self.events.status_changed.emit(self.status)
