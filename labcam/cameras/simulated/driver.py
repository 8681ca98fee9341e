"""The simulated camera's driver: settings, life cycle, pacing and numbering like a real camera.

What the frames look like is ``specimen.py``; misbehaviour on demand is ``faults.py``.

Timing (free-running mode)
    Frame ``k`` after ``start()`` is due at ``t0 + k / fps`` (absolute deadlines, so sleep errors
    do not accumulate), and its timestamp is the epoch time of that deadline. The simulated sensor
    has no frame buffer: a frame is "exposed" when it is read. If the reader is late by less than a
    frame period the schedule holds; if it is later than that (or rendering cannot keep up with
    ``fps``) the frame is produced at once, stamped with the current time, and the schedule is
    re-anchored there -- there is no burst of catch-up frames and no frame numbers are skipped,
    because such frames were never taken. Frame numbers count from ``open()`` and continue across
    ``stop()``/``start()`` and reconnects, like the counter of a USB camera that stays powered;
    gaps appear only through ``faults.drop_frames`` (or a hardware-trigger overflow).

Timing (triggered modes)
    ``software``: each ``read_frame`` triggers one exposure and returns ``exposure_ms`` later.
    ``hardware``: each ``trigger()`` call (while streaming) exposes one frame, delivered
    ``exposure_ms`` after the trigger and stamped then; ``read_frame`` waits for triggers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...camera_info import CameraDescription
from ...errors import CameraDisconnected, CameraError, CameraUnavailable, FrameTimeout, StreamStopped
from ...frame import PIXEL_FORMATS, Frame, FrameMeta
from ...settings import TRIGGER_MODES, Settings, SettingSpec, SettingSpecs, validate_changes
from ..base import CameraDriver
from .faults import FaultState, SimulatedFaults
from .specimen import Motion, RenderState

__all__ = ["SimulatedCamera"]

# Limits of the settings.
EXPOSURE_RANGE_MS = (0.01, 2000.0)
GAIN_RANGE_DB = (0.0, 24.0)
MIN_FPS = 0.1
ROI_STEP = 2
ROI_MIN = 16
MAX_SENSOR_SIDE = 8192
MAX_PENDING_TRIGGERS = 64  # hardware triggers beyond this overwrite the oldest (a dropped frame)


@dataclass
class _Schedule:
    """Free-running deadlines: the next frame is due at ``anchor + k / fps`` (monotonic clock)."""

    anchor: float = 0.0
    k: int = 1
    last: float = 0.0  # when the last frame was taken (or the stream started)
    triggers: deque[float] = field(default_factory=deque)  # hardware trigger times, oldest first


class SimulatedCamera(CameraDriver):
    """A simulated microscope camera (``specimen.py`` says what it shows and how; this module's
    docstring, how frames are timed).

    >>> cam = SimulatedCamera(width=640, height=480, seed=1)
    >>> cam.open(); cam.start()
    >>> frame = cam.read_frame(timeout=1.0)
    >>> bool((frame.array == cam.expected_frame(frame.meta.frame_number)).all())
    True
    >>> cam.close()

    Beyond the driver interface: ``trigger()`` (hardware trigger mode), ``faults`` (misbehaviour
    for tests, see ``SimulatedFaults``), ``expected_frame(n)`` and ``stage_drift(n)``.
    """

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 1024,
        pixel_format: str = "mono8",
        fps: float = 30.0,
        exposure_ms: float = 10.0,
        gain_db: float = 0.0,
        seed: int = 0,
        serial: str = "SIM-0001",
        max_fps: float = 1000.0,
        trigger_mode: str = "free_running",
        roi: tuple[int, int, int, int] | None = None,
        pixel_size_um: float = 0.65,
    ) -> None:
        super().__init__()
        for name, side in (("width", width), ("height", height)):
            ok = isinstance(side, int) and not isinstance(side, bool) and ROI_MIN <= side <= MAX_SENSOR_SIDE
            if not ok or side % ROI_STEP:
                raise ValueError(
                    f"{name}={side!r}: the sensor side must be an even number of pixels "
                    f"from {ROI_MIN} to {MAX_SENSOR_SIDE}"
                )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed={seed!r}: must be an integer")
        if not (isinstance(max_fps, (int, float)) and math.isfinite(max_fps) and max_fps >= MIN_FPS):
            raise ValueError(f"max_fps={max_fps!r}: must be a number of frames/s >= {MIN_FPS}")
        self._seed = seed
        self._sensor = (width, height)
        self._description = CameraDescription(
            driver="simulated",
            model="labcam simulated microscope",
            serial=serial,
            sensor_width=width,
            sensor_height=height,
            pixel_formats=tuple(PIXEL_FORMATS),
            max_bit_depth=16,
            pixel_size_um=pixel_size_um,
        )
        self._specs = SettingSpecs(
            {
                "exposure_ms": SettingSpec("exposure_ms", "float", "ms", *EXPOSURE_RANGE_MS),
                "gain_db": SettingSpec("gain_db", "float", "dB", *GAIN_RANGE_DB),
                "fps": SettingSpec("fps", "float", "frames/s", MIN_FPS, float(max_fps)),
                "roi": SettingSpec(
                    "roi", "roi", "px", minimum=ROI_MIN, sensor=(width, height), step=ROI_STEP,
                    settable_while_streaming=False,
                ),
                "pixel_format": SettingSpec(
                    "pixel_format", "choice", choices=tuple(PIXEL_FORMATS), settable_while_streaming=False
                ),
                "trigger_mode": SettingSpec("trigger_mode", "choice", choices=TRIGGER_MODES),
            }
        )
        initial: dict[str, Any] = {
            "exposure_ms": exposure_ms,
            "gain_db": gain_db,
            "fps": fps,
            "roi": (0, 0, width, height) if roi is None else roi,
            "pixel_format": pixel_format,
            "trigger_mode": trigger_mode,
        }
        # Raises SettingError (a ValueError) naming the bad value, like update_settings would.
        self._settings: Settings = validate_changes(self._specs, Settings(**initial), initial)

        # Everything below is guarded by _lock; _cond wakes a waiting read_frame.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state: RenderState | None = None
        self._is_open = False
        self._streaming = False
        self._fault_state = FaultState()  # pending faults and the plug state, set through self.faults
        self._next_number = 0
        self._schedule = _Schedule()
        self._reads_waiting = 0
        # Timestamps are derived from the monotonic clock (deadlines), mapped once to epoch seconds.
        self._epoch_minus_mono = time.time() - time.monotonic()
        self.faults = SimulatedFaults(
            self._cond, self._fault_state, stop_streaming=self._stop_for_unplug, is_open=lambda: self._is_open
        )

    # -- identity -----------------------------------------------------------------------------
    @property
    def description(self) -> CameraDescription:
        return self._description

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def specs(self) -> SettingSpecs:
        return self._specs

    @property
    def seed(self) -> int:
        return self._seed

    def __repr__(self) -> str:
        w, h = self._sensor
        s = self._settings
        serial = self._description.serial
        return f"SimulatedCamera({w}x{h}, {s.pixel_format}, seed={self._seed}, serial={serial!r})"

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Render the specimen for the current settings (once per process and sensor size: the
        rendering is cached) and make the camera ready to start."""
        with self._cond:
            if self._is_open:
                return
            if not self._fault_state.plugged:
                serial = self._description.serial
                raise CameraUnavailable(f"simulated camera {serial} is unplugged (faults.disconnect())")
        state = self._state_for(self._settings)  # slow the first time: outside the lock
        with self._cond:
            self._state = state
            self._is_open = True
            self._next_number = 0

    def close(self) -> None:
        """Stop and release the camera (the shared specimen cache stays). Safe to call twice."""
        with self._cond:
            self._streaming = False
            self._fault_state.resume_after_replug = False
            self._is_open = False
            self._state = None
            self._schedule.triggers.clear()
            self._cond.notify_all()

    def start(self) -> None:
        """Start streaming: the first frame is due one frame period from now."""
        with self._cond:
            if not self._fault_state.plugged:
                raise CameraDisconnected(f"simulated camera {self._description.serial} is unplugged")
            if not self._is_open:
                raise CameraError("the simulated camera is not open: call open() first")
            if self._streaming:
                return
            self._streaming = True
            self._restart_schedule(time.monotonic())
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop streaming; a ``read_frame`` waiting in another thread raises ``StreamStopped``."""
        with self._cond:
            self._streaming = False
            self._fault_state.resume_after_replug = False
            self._schedule.triggers.clear()
            self._cond.notify_all()

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def reads_waiting(self) -> int:
        """How many ``read_frame`` calls are blocked waiting right now (lets tests act on a
        blocked read without sleeping)."""
        return self._reads_waiting

    def reconnect(self) -> bool:
        """Get an unplugged camera back (see ``SimulatedFaults.disconnect``): True when it is back,
        with the same settings and streaming again if it was streaming when it went away."""
        with self._cond:
            if not self._is_open:
                return False
            if self._fault_state.plugged:
                return True
            if self._fault_state.replug_countdown is not None:
                if self._fault_state.replug_countdown > 0:
                    self._fault_state.replug_countdown -= 1
                    return False
                self._fault_state.replug_countdown = None
                self._fault_state.replug_ready = True
            if not self._fault_state.replug_ready:
                return False
            return self._replugged()

    def _stop_for_unplug(self) -> bool:
        # Called by faults.disconnect() with the lock held: the stream ends; True if it was on.
        was_streaming = self._streaming
        self._streaming = False
        self._schedule.triggers.clear()
        return was_streaming

    def _replugged(self) -> bool:
        # Called with the lock held. Settings never changed while unplugged (changes were refused),
        # so the camera is back exactly as it was; frame numbers continue.
        self._fault_state.plugged = True
        self._fault_state.replug_ready = False
        if self._fault_state.resume_after_replug:
            self._streaming = True
            self._restart_schedule(time.monotonic())
        self._fault_state.resume_after_replug = False
        self._cond.notify_all()
        return True

    # -- frames -------------------------------------------------------------------------------
    def trigger(self) -> bool:
        """Send a hardware trigger: in ``hardware`` trigger mode while streaming, one frame is
        exposed now and delivered ``exposure_ms`` later. Ignored (False) otherwise, as a camera
        ignores trigger pulses it is not waiting for."""
        with self._cond:
            if not (self._streaming and self._settings.trigger_mode == "hardware"):
                return False
            triggers = self._schedule.triggers
            if len(triggers) >= MAX_PENDING_TRIGGERS:
                triggers.popleft()  # its frame was overwritten in the camera's buffer
                self._fault_state.drops += 1
            triggers.append(time.monotonic())
            self._cond.notify_all()
            return True

    def read_frame(self, timeout: float) -> Frame:
        """Wait until the next frame is due (interruptibly) and return it.

        Raises ``FrameTimeout`` when it is not due within ``timeout`` seconds (after waiting that
        long), ``StreamStopped`` when not streaming or ``stop()`` is called meanwhile, and
        ``CameraDisconnected`` when the camera is unplugged.
        """
        call_deadline = time.monotonic() + max(0.0, float(timeout))
        software_start: float | None = None
        with self._cond:
            while True:
                if not self._fault_state.plugged:
                    raise CameraDisconnected(f"simulated camera {self._description.serial} was unplugged")
                if not self._streaming:
                    raise StreamStopped("the simulated camera is not streaming")
                if self._fault_state.timeouts:
                    self._fault_state.timeouts -= 1
                    left = self._fault_state.timeouts
                    raise FrameTimeout(f"simulated timeout (faults.timeouts), {left} more to come")
                now = time.monotonic()
                settings = self._settings
                exposure_s = settings.exposure_ms / 1000.0
                sched = self._schedule
                if settings.trigger_mode == "free_running":
                    due = sched.anchor + (sched.k + self._fault_state.drops) / settings.fps
                elif settings.trigger_mode == "software":
                    if software_start is None:  # the read itself is the software trigger
                        software_start = max(now, self._fault_state.stall_until)
                    due = software_start + exposure_s
                else:
                    due = sched.triggers[0] + exposure_s if sched.triggers else math.inf
                target = max(due, self._fault_state.stall_until)
                if now >= target:
                    break
                if now >= call_deadline:
                    what = "trigger" if due == math.inf else "frame"
                    raise FrameTimeout(f"no {what} within {timeout:g} s ({settings.trigger_mode})")
                # Wakes early on stop(), faults, triggers and settings changes: then re-evaluate.
                self._reads_waiting += 1
                try:
                    self._cond.wait(min(target, call_deadline) - now)
                finally:
                    self._reads_waiting -= 1
            stamp = self._take(settings, due, target, now)
            number = self._next_number + self._fault_state.drops
            self._next_number = number + 1
            self._fault_state.drops = 0
            state = self._state
        if state is None or state.settings != settings:  # closed meanwhile, or settings just swapped
            state = self._state_for(settings)
        # Rendering happens outside the lock: stop() and settings changes never wait for it.
        array = state.render(number)
        meta = FrameMeta(
            frame_number=number,
            timestamp=stamp + self._epoch_minus_mono,
            exposure_ms=settings.exposure_ms,
            gain_db=settings.gain_db,
            roi=settings.roi,
            pixel_format=settings.pixel_format,
            camera_serial=self._description.serial,
        )
        return Frame(array, meta)

    def _take(self, settings: Settings, due: float, target: float, now: float) -> float:
        """Advance the schedule for the frame being taken (lock held); return its monotonic time."""
        sched = self._schedule
        mode = settings.trigger_mode
        if mode == "hardware":
            sched.triggers.popleft()
        if mode != "free_running":
            sched.last = target
            return target
        period = 1.0 / settings.fps
        if now - target >= period:
            # A frame period or more late (slow reader or rendering slower than fps): take it now
            # and count the next deadlines from here -- no burst of catch-up frames.
            stamp = now
            sched.anchor, sched.k = now, 1
        elif target > due:  # after a stall: restart the schedule from its end
            stamp = target
            sched.anchor, sched.k = target, 1
        else:  # on schedule (dropped frames used up their time slots too)
            stamp = due
            sched.k += self._fault_state.drops + 1
        sched.last = stamp
        return stamp

    def _restart_schedule(self, start: float) -> None:
        sched = self._schedule
        sched.anchor, sched.k, sched.last = start, 1, start
        sched.triggers.clear()

    # -- settings -----------------------------------------------------------------------------
    def _apply_settings(self, new: Settings, changed: frozenset[str]) -> Settings:
        if not self._fault_state.plugged:
            raise CameraDisconnected(f"simulated camera {self._description.serial} is unplugged")
        # Build the new render state first (exposure changes rescale the textures; may take a
        # moment on large sensors) while frames keep coming from the old one.
        state = self._state_for(new) if self._is_open else None
        with self._cond:
            self._settings = new
            if self._is_open:
                self._state = state
            if changed & {"fps", "trigger_mode"}:
                # New period or mode: deadlines count from the last frame, not from the stream start.
                sched = self._schedule
                sched.anchor, sched.k = sched.last, 1
                if "trigger_mode" in changed:
                    sched.triggers.clear()
            self._cond.notify_all()
        return new

    def _state_for(self, settings: Settings) -> RenderState:
        current = self._state
        if current is not None and current.settings == settings:
            return current
        return RenderState(self._seed, self._sensor, settings)

    # -- for tests and analysis ---------------------------------------------------------------
    def expected_frame(
        self, frame_number: int, *, settings: Settings | Mapping[str, Any] | None = None, noise: bool = True
    ) -> np.ndarray:
        """The pixels frame ``frame_number`` has (or would have) with ``settings``.

        ``settings``: None for the current settings, a ``Settings``, or a mapping of changes to the
        current settings (validated like ``update_settings``, e.g. ``{"gain_db": 6}``).
        ``noise=False`` gives the noise-free image (the mean the noisy frames scatter around).
        Works whether or not the camera is open; returns a new, writable array.
        """
        if settings is None:
            s = self._settings
        elif isinstance(settings, Settings):
            s = settings
        else:
            s = validate_changes(self._specs, self._settings, settings)
        return self._state_for(s).render(int(frame_number), noise=noise)

    def stage_drift(self, frame_number: int) -> tuple[int, int]:
        """The stage position (dx, dy) in pixels for frame ``frame_number``: tissue seen at sensor
        pixel (x, y) in frame a is at (x - (dx_b - dx_a), y - (dy_b - dy_a)) in frame b. The cell
        sheet moves up to CRAWL_PX more (it crawls over the tissue)."""
        return Motion.for_seed(self._seed).stage(int(frame_number))

    # -- convenience --------------------------------------------------------------------------
    def __enter__(self) -> SimulatedCamera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
