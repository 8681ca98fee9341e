"""The recorder: every frame of the camera to an OME-TIFF or OME-Zarr file, on its own thread.

A recording is one more consumer of the engine, with a *buffered* subscription: the capture thread
queues every frame for it (a reference, not a copy) and never waits for it. The recorder thread
takes frames from that queue and writes them, so a slow disk shows as a growing queue, never as a
slower camera or a stuttering live view. The queue is bounded by memory (``buffer_budget``); when
it is full the engine counts the frames it could not queue, and the recorder stops (by default)
with a clear error instead of leaving silent holes.

Policies, each stated once here:

- **Stops** after ``frames`` frames, after ``duration`` seconds of frames (counted from the first
  recorded frame's timestamp), or at ``stop()`` — frames already queued when you call ``stop()``
  are still written. Whatever stops it, the file is closed with its metadata complete.
- **Dropped frames**: camera-side gaps (``FrameMeta.dropped_before``) are counted and written into
  each frame's metadata and the summary; the recording goes on. Buffer overflow (the disk did not
  keep up): ``on_overflow="stop"`` (default) writes every frame up to the first lost one, then
  stops with a ``RecordingError`` — the file has no holes; ``on_overflow="continue"`` records on
  and counts the lost frames per frame (``missed_before``) and in the summary.
- **Disk full, unwritable folder**: stops with a ``RecordingError`` saying so; the file keeps every
  frame written before, readable. The live view is unaffected (only the recorder's subscription
  ends).
- **Camera fault** (unplugged, stalled): the engine recovers cameras by itself, so the recorder
  waits, and carries on when frames come back (the pause is noted in the metadata, under
  "interruptions"). If the camera is not back within ``fault_timeout`` seconds the recording stops
  with a ``RecordingError``; ``fault_timeout=None`` waits until ``stop()``.
- **Settings**: exposure and gain may change during a recording (each frame stores its own). A
  change of frame size or pixel format ends the recording with a ``RecordingError`` (one file holds
  one image shape).

Progress is a ``RecordingProgress`` snapshot: ``rec.progress``, ``rec.status()`` (a dict for REST),
and the psygnal events ``rec.events.progress`` (a few times a second) and ``rec.events.finished``.
Event handlers run on the recorder thread: keep them short.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from psygnal import Signal, SignalGroup

from .._version import __version__
from ..engine import Engine, Subscription
from ..errors import CameraError, FrameTimeout, LabcamError
from ..frame import PIXEL_FORMATS, Frame
from .paths import RecordingFormat, check_output_path
from .files import FrameWriter, RecordingInfo
from .writers import open_writer

log = logging.getLogger("labcam.recording")

# The buffer holds at most this much memory, and at most this share of the memory available when
# the recording starts: enough for seconds of a fast camera, never enough to push the machine
# into swap.
MAX_BUFFER_BYTES = 1 << 30
MAX_BUFFER_SHARE = 0.25
MIN_BUFFER_FRAMES = 4
# Used when the available memory cannot be read (non-Linux without sysconf).
FALLBACK_AVAILABLE_BYTES = 2 << 30
# How often the recorder thread wakes while no frame comes (to notice a dead camera or the end of
# a duration); frames themselves wake it at once.
TICK_S = 0.1
# Progress events at most this often.
PROGRESS_INTERVAL_S = 0.25
DEFAULT_FAULT_TIMEOUT_S = 10.0
# Show a progress bar by default for recordings at least this long.
PROGRESS_MIN_FRAMES = 100
PROGRESS_MIN_SECONDS = 5.0

# What recordings name as the software that wrote them.
SOFTWARE = f"labcam {__version__}"

State = Literal["recording", "finishing", "done", "failed"]


class RecordingError(LabcamError):
    """A recording stopped early: disk full or not writable, disk too slow, camera lost, shape changed.

    The message says what happened and how many frames the (readable) file holds; ``reason`` is
    one word for programs: "disk", "overflow", "camera", "format" or "error".
    """

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class RecordingEvents(SignalGroup):
    """Signals of one recording. Handlers run on the recorder thread: keep them short."""

    progress = Signal(object)  # RecordingProgress, a few times a second while recording
    finished = Signal(object)  # RecordingProgress, once, when the file is closed (done or failed)


@dataclass(frozen=True)
class RecordingProgress:
    """A snapshot of a recording. ``to_dict()`` gives the JSON form used by ``status()`` and REST."""

    state: State
    path: str
    format: str
    frames_written: int
    frames_target: int | None
    duration_target_s: float | None
    elapsed_s: float  # from the first recorded frame's timestamp to the last one's
    bytes_written: int  # pixel bytes
    mb_per_s: float  # data recorded per second of recording (1 MB = 1e6 bytes)
    write_mb_per_s: float  # how fast the disk took it while writing (the headroom: >> mb_per_s)
    fps: float
    dropped_camera: int  # frame numbers the camera skipped during the recording
    dropped_overflow: int  # frames the full buffer turned away (the disk did not keep up)
    buffered: int  # frames waiting in memory to be written
    buffer_capacity: int
    interruptions: int  # camera faults the recording waited through
    stop_reason: str | None = None  # "frames" | "duration" | "stopped" | RecordingError.reason
    error: str | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_camera + self.dropped_overflow

    @property
    def mb_written(self) -> float:
        return self.bytes_written / 1e6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped"] = self.dropped
        d["mb_written"] = round(self.mb_written, 3)
        for k in ("elapsed_s", "mb_per_s", "write_mb_per_s", "fps"):
            d[k] = round(d[k], 3)
        return d


@dataclass
class _Interruption:
    reason: str
    lost_at: float  # epoch seconds
    after_frames: int  # frames written before it
    recovered_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "lost_at": self.lost_at, "after_frames": self.after_frames, "recovered_at": self.recovered_at}


def available_memory() -> int:
    """Bytes of memory available to new allocations without swapping (best effort)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return FALLBACK_AVAILABLE_BYTES


def buffer_budget(frame_bytes: int, *, max_bytes: int | None = None) -> int:
    """Frames the recorder may queue: min(1 GiB, 25 % of available memory) / frame size (>= 4)."""
    budget = min(MAX_BUFFER_BYTES, int(available_memory() * MAX_BUFFER_SHARE))
    if max_bytes is not None:
        budget = min(budget, max_bytes)
    return max(MIN_BUFFER_FRAMES, budget // max(1, frame_bytes))


def _frame_bytes_for(settings: Any) -> int:
    _, _, w, h = settings.roi
    fmt = settings.pixel_format
    per_pixel = 3 if fmt == "rgb8" else (1 if PIXEL_FORMATS.get(fmt, 8) <= 8 else 2)
    return int(w) * int(h) * per_pixel


class Recorder:
    """One recording from an engine to a file, on its own thread; also the handle to follow it.

    Create and start with ``Camera.record`` (or ``Recorder(engine, path, ...).start()``). The file
    is created when the ``Recorder`` is made, so a bad path, an existing file or an unwritable
    folder raise at once (``ValueError`` / ``RecordingError``), not later on the thread.

    >>> rec = cam.record("run1.ome.zarr", frames=500)     # doctest: +SKIP
    >>> rec.wait()                                       # doctest: +SKIP
    >>> rec.status()["frames_written"]                   # doctest: +SKIP
    500
    """

    def __init__(
        self,
        engine: Engine,
        path: str | os.PathLike[str],
        *,
        frames: int | None = None,
        duration: float | None = None,
        format: str | None = None,
        overwrite: bool = False,
        on_overflow: Literal["stop", "continue"] = "stop",
        fault_timeout: float | None = DEFAULT_FAULT_TIMEOUT_S,
        buffer_frames: int | None = None,
        max_buffer_bytes: int | None = None,
        fsync: bool = True,
        progress_interval: float | None = None,
        writer_factory: Callable[[Path, RecordingFormat, bool, int | None], FrameWriter] | None = None,
    ) -> None:
        self.frames_target = _check_frames(frames)
        self.duration_target = _check_duration(duration)
        if on_overflow not in ("stop", "continue"):
            raise ValueError(f"on_overflow={on_overflow!r} is not allowed: 'stop' or 'continue'")
        if fault_timeout is not None and not (isinstance(fault_timeout, (int, float)) and fault_timeout >= 0):
            raise ValueError(f"fault_timeout={fault_timeout!r} is not allowed: seconds >= 0, or None to wait for ever")
        if buffer_frames is not None and (isinstance(buffer_frames, bool) or not isinstance(buffer_frames, int) or buffer_frames < 1):
            raise ValueError(f"buffer_frames={buffer_frames!r} is not allowed: a whole number >= 1")
        self.engine = engine
        self.on_overflow = on_overflow
        self.progress_interval = PROGRESS_INTERVAL_S if progress_interval is None else float(progress_interval)
        self.fault_timeout = None if fault_timeout is None else float(fault_timeout)
        self.path, self.format = check_output_path(path, format, overwrite=overwrite)
        self.events = RecordingEvents()
        frame_bytes = _frame_bytes_for(engine.settings)
        self.buffer_capacity = buffer_frames or buffer_budget(frame_bytes, max_bytes=max_buffer_bytes)

        # Create the file now: permission and disk problems are the caller's to see, at once.
        try:
            if writer_factory is None:
                self._writer = open_writer(self.path, self.format, overwrite=overwrite, expected_frames=self.frames_target, fsync=fsync)
            else:
                self._writer = writer_factory(self.path, self.format, overwrite, self.frames_target)
        except OSError as exc:
            raise RecordingError(str(exc), "disk") from exc
        except ImportError as exc:  # OME-Zarr without zarr-python (the [recording] extra); nothing was created
            raise RecordingError(f"cannot record {self.format}: {exc}; pip install 'labcam[recording]'", "error") from exc

        self._sub: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._state: State = "recording"
        self._stop_reason: str | None = None
        self.error: RecordingError | None = None
        # counters (written by the recorder thread, read by anyone)
        self._first_ts: float | None = None  # timestamps of the first and last frame written
        self._last_ts: float | None = None
        self._write_seconds = 0.0
        self._dropped_camera = 0
        self._overflow_in_file = 0
        self._last_number: int | None = None
        self._interruptions: list[_Interruption] = []
        self._fault_since: float | None = None
        self._last_progress = 0.0
        self._info: RecordingInfo | None = None
        self._first_meta: dict[str, Any] | None = None
        self.close_seconds: float | None = None  # how long closing the file took (metadata, fsync)
        self._last_meta: dict[str, Any] | None = None
        self._started_epoch = time.time()

    # -- the handle -------------------------------------------------------------------------------
    def start(self) -> Recorder:
        """Subscribe to the engine (frames captured from now on are recorded) and start the thread."""
        if self._thread is not None:
            return self
        name = f"recording:{self.path.name}"
        try:
            self._sub = self.engine.subscribe(name, buffer=self.buffer_capacity)
        except CameraError as exc:
            self._writer.close({"frames_written": 0, "stop_reason": "error", "error": str(exc)})
            raise RecordingError(f"cannot start recording {str(self.path)!r}: {exc}", "camera") from exc
        self.engine.events.camera_lost.connect(self._on_camera_lost)
        self.engine.events.camera_recovered.connect(self._on_camera_recovered)
        self._thread = threading.Thread(target=self._run, name=f"labcam-{name}", daemon=True)
        self._thread.start()
        _active.add(self)
        return self

    @property
    def progress(self) -> RecordingProgress:
        """What the recording has done so far (a snapshot)."""
        w = self._writer
        elapsed = 0.0
        first_ts, last_ts = self._first_ts, self._last_ts
        if first_ts is not None and last_ts is not None:
            # The frames' own time span, not the writer's: writes start late and then catch up
            # (the first OME-Zarr recording in a process sets up zarr while frames queue up).
            elapsed = last_ts - first_ts
        written = w.frames_written
        sub = self._sub
        buffered = sub.pending if sub is not None else 0
        overflow = sub.missed if sub is not None else 0
        return RecordingProgress(
            state=self._state,
            path=str(self.path),
            format=self.format,
            frames_written=written,
            frames_target=self.frames_target,
            duration_target_s=self.duration_target,
            elapsed_s=elapsed,
            bytes_written=w.bytes_written,
            mb_per_s=w.bytes_written / 1e6 / elapsed if elapsed > 0 else 0.0,
            write_mb_per_s=w.bytes_written / 1e6 / self._write_seconds if self._write_seconds > 0 else 0.0,
            fps=(written - 1) / elapsed if elapsed > 0 and written > 1 else 0.0,
            dropped_camera=self._dropped_camera,
            dropped_overflow=overflow,
            buffered=buffered,
            buffer_capacity=self.buffer_capacity,
            interruptions=len(self._interruptions),
            stop_reason=self._stop_reason,
            error=None if self.error is None else str(self.error),
        )

    def status(self) -> dict[str, Any]:
        """``progress`` as a JSON-ready dict (what the REST status returns)."""
        return self.progress.to_dict()

    @property
    def state(self) -> State:
        return self._state

    @property
    def done(self) -> bool:
        """True once the file is closed (whether the recording succeeded or not)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None, *, raise_error: bool = True) -> bool:
        """Block until the recording has finished and its file is closed.

        Returns False if ``timeout`` seconds passed first. If the recording failed, raises its
        ``RecordingError`` (``raise_error=False``: returns True and leaves it in ``error``).
        """
        if not self._done.wait(timeout):
            return False
        if raise_error and self.error is not None:
            raise self.error
        return True

    def stop(self, *, wait: bool = True, timeout: float | None = None) -> RecordingProgress:
        """End the recording: frames queued so far are still written, then the file is closed.

        Returns the progress (final when ``wait`` is true and it finished within ``timeout``).
        Never raises for a failed recording: look at ``error``.
        """
        self._stop_requested.set()
        sub = self._sub
        if sub is not None:
            sub.close()  # no more frames; wakes the recorder thread at once (queued frames stay)
        if self._thread is None:
            # never started: close the (empty) file
            self._finish(None)
        elif wait:
            self._done.wait(timeout)
        return self.progress

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        p = self.progress
        target = f"/{p.frames_target}" if p.frames_target else ""
        return f"<Recording {p.path!r} {p.state} {p.frames_written}{target} frames, dropped={p.dropped}>"

    # -- engine events (capture thread: only note the time) -------------------------------------
    def _on_camera_lost(self, why: str) -> None:
        with self._lock:
            if not self._done.is_set():
                self._interruptions.append(_Interruption(why, time.time(), self._writer.frames_written))

    def _on_camera_recovered(self) -> None:
        with self._lock:
            if self._interruptions and self._interruptions[-1].recovered_at is None:
                self._interruptions[-1].recovered_at = time.time()

    # -- the recorder thread ----------------------------------------------------------------------
    def _run(self) -> None:
        error: RecordingError | None = None
        try:
            self._loop()
        except RecordingError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - any failure must still close the file readable
            log.exception("recording %s failed", self.path)
            error = RecordingError(f"recording {str(self.path)!r} failed: {exc}; {self._writer.frames_written} frames are in the file")
            error.__cause__ = exc
        self._finish(error)

    def _loop(self) -> None:
        sub = self._sub
        assert sub is not None
        deadline_ts: float | None = None  # frames stamped at or after this end a duration recording
        while True:
            if self._stop_requested.is_set():
                self._stop_reason = "stopped"
                self._drain(sub, deadline_ts)
                return
            try:
                frame = sub.next(TICK_S)
            except FrameTimeout:
                frame = None
            except CameraError:
                if self._stop_requested.is_set():
                    continue  # stop() closed the subscription: drain above
                self._drain(sub, deadline_ts)  # the engine closed: keep what it had already queued
                raise RecordingError(
                    f"the camera was closed during the recording; {self._writer.frames_written} frames are in {str(self.path)!r}",
                    "camera",
                ) from None
            if frame is None:
                if deadline_ts is not None and time.time() >= deadline_ts + TICK_S:
                    # no frame came since the end of the duration: nothing more to record
                    self._stop_reason = "duration"
                    sub.close()
                    self._drain(sub, deadline_ts)
                    return
                self._check_camera()
                continue
            self._camera_ok()
            if deadline_ts is not None and frame.meta.timestamp >= deadline_ts:
                self._stop_reason = "duration"
                sub.close()
                self._drain(sub, deadline_ts)
                return
            self._record(frame, sub)
            if self._first_ts is not None and deadline_ts is None and self.duration_target is not None:
                deadline_ts = self._first_ts + self.duration_target
            if self.frames_target is not None and self._writer.frames_written >= self.frames_target:
                self._stop_reason = "frames"
                sub.close()
                return
            if sub.missed and self.on_overflow == "stop":
                # The buffer was full: write what came before the first lost frame, then stop.
                sub.close()
                self._drain(sub, deadline_ts, until_gap=True)
                raise self._overflow_error(sub.missed)
            self._maybe_progress()

    def _drain(self, sub: Subscription, deadline_ts: float | None, *, until_gap: bool = False) -> None:
        """Write the frames still queued (the subscription is closed: no new ones arrive)."""
        while True:
            frame = sub.poll()
            if frame is None:
                return
            if deadline_ts is not None and frame.meta.timestamp >= deadline_ts:
                return
            if self.frames_target is not None and self._writer.frames_written >= self.frames_target:
                return
            if until_gap and self._overflow_gap(frame):
                return
            self._record(frame, sub)

    def _overflow_gap(self, frame: Frame) -> int:
        """Frame numbers missing before ``frame`` that the camera did not account for (buffer overflow)."""
        if self._last_number is None:
            return 0
        gap = frame.meta.frame_number - self._last_number - 1
        if gap < 0:  # numbering restarted (a camera that lost its counter on replug): unknown
            return 0
        return max(0, gap - frame.meta.dropped_before)

    def _record(self, frame: Frame, sub: Subscription) -> None:
        w = self._writer
        m = frame.meta
        if w.info is None:
            self._info = RecordingInfo.from_frame(
                frame.array,
                m.pixel_format,
                pixel_size_um=self.engine.description.pixel_size_um,
                fps=self.engine.settings.fps,
                name=self.path.name,
                camera=self.engine.description.to_dict(),
                settings=self.engine.settings.to_dict(),
                started=m.timestamp,
                software=SOFTWARE,
            )
            try:
                w.begin(self._info)
            except OSError as exc:
                raise RecordingError(str(exc), "disk") from exc
            self._first_ts = m.timestamp
        else:
            info = w.info
            if frame.array.shape != info.frame_shape or str(frame.array.dtype) != info.dtype:
                raise RecordingError(
                    "the frame size or pixel format changed during the recording "
                    f"({'x'.join(map(str, info.frame_shape))} {info.dtype} -> "
                    f"{'x'.join(map(str, frame.array.shape))} {frame.array.dtype}); "
                    f"{w.frames_written} frames are in {str(self.path)!r}",
                    "format",
                )
        first = w.frames_written == 0
        dropped_before = 0 if first else int(m.dropped_before)
        missed_before = 0 if first else self._overflow_gap(frame)
        meta = {
            "index": w.frames_written,
            "frame_number": int(m.frame_number),
            "timestamp": float(m.timestamp),
            "exposure_ms": float(m.exposure_ms),
            "gain_db": float(m.gain_db),
            "dropped_before": dropped_before,
            "missed_before": missed_before,
        }
        t0 = time.perf_counter()
        try:
            w.write(frame.array, meta)
        except OSError as exc:
            raise RecordingError(f"{exc}; the recording stopped with {w.frames_written} frames, which the file keeps", "disk") from exc
        self._write_seconds += time.perf_counter() - t0
        if first:
            self._first_meta = meta
        self._last_meta = meta
        self._last_ts = meta["timestamp"]
        self._dropped_camera += dropped_before
        self._overflow_in_file += missed_before
        self._last_number = int(m.frame_number)

    def _overflow_error(self, missed: int) -> RecordingError:
        p = self.progress
        fps = self.engine.status.fps or self.engine.settings.fps
        camera_mb_s = fps * (self._info.frame_bytes if self._info else 0) / 1e6
        return RecordingError(
            f"the disk could not keep up: the recording buffer ({self.buffer_capacity} frames) was full and "
            f"{missed} frame(s) could not be queued; stopped with {p.frames_written} frames in {str(self.path)!r} "
            f"(no gaps). The disk took {p.write_mb_per_s:.0f} MB/s while writing; the camera delivers about "
            f"{camera_mb_s:.0f} MB/s ({fps:.0f} frames/s). Record to a faster disk, lower the frame rate or ROI, or pass "
            "on_overflow='continue' to record on and count the lost frames",
            "overflow",
        )

    def _check_camera(self) -> None:
        """No frame for a tick: apply the camera-fault policy."""
        state = self.engine.status
        if state.state in ("lost", "stalled"):
            now = time.monotonic()
            if self._fault_since is None:
                self._fault_since = now
                log.warning("recording %s: camera %s (%s); waiting", self.path.name, state.state, state.message)
            if self.fault_timeout is not None and now - self._fault_since >= self.fault_timeout:
                raise RecordingError(
                    f"the camera is {state.state} ({state.message or 'no frames'}) and did not come back within "
                    f"{self.fault_timeout:g} s; the recording stopped with {self._writer.frames_written} frames "
                    f"in {str(self.path)!r}",
                    "camera",
                )
        elif state.state == "closed":
            raise RecordingError(
                f"the camera was closed during the recording; {self._writer.frames_written} frames are in {str(self.path)!r}",
                "camera",
            )

    def _camera_ok(self) -> None:
        self._fault_since = None

    def _maybe_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= self.progress_interval:
            self._last_progress = now
            self._emit(self.events.progress)

    def _emit(self, signal: Any) -> None:
        try:
            signal.emit(self.progress)
        except Exception:  # noqa: BLE001 - a broken handler must not break the recording
            log.exception("recording %s: progress handler failed", self.path.name)

    def _summary(self) -> dict[str, Any]:
        p = self.progress
        first, last = self._first_meta, self._last_meta
        with self._lock:
            interruptions = [i.to_dict() for i in self._interruptions]
        return {
            "frames_written": p.frames_written,
            "frames_requested": self.frames_target,
            "duration_requested_s": self.duration_target,
            "stop_reason": p.stop_reason,
            "error": p.error,
            "dropped_camera": p.dropped_camera,
            "dropped_overflow": p.dropped_overflow,
            "dropped_overflow_in_file": self._overflow_in_file,
            "dropped": p.dropped,
            "overflow_policy": self.on_overflow,
            "buffer_frames": self.buffer_capacity,
            "first_frame_number": first["frame_number"] if first else None,
            "last_frame_number": last["frame_number"] if last else None,
            "first_timestamp": first["timestamp"] if first else None,
            "last_timestamp": last["timestamp"] if last else None,
            "elapsed_s": round(p.elapsed_s, 6),
            "mb_per_s": round(p.mb_per_s, 3),
            "interruptions": interruptions,
            "camera": self.engine.description.to_dict(),
            "settings_at_start": self._info.settings if self._info else self.engine.settings.to_dict(),
            "software": SOFTWARE,
        }

    def _finish(self, error: RecordingError | None) -> None:
        if self._done.is_set():
            return
        sub = self._sub
        if sub is not None:
            sub.close()
        for sig, slot in ((self.engine.events.camera_lost, self._on_camera_lost), (self.engine.events.camera_recovered, self._on_camera_recovered)):
            try:
                sig.disconnect(slot)
            except Exception:  # noqa: BLE001 - not connected (never started)
                pass
        if error is not None:
            self.error = error
            self._stop_reason = error.reason
        elif self._stop_reason is None:
            self._stop_reason = "stopped"
        self._state = "finishing"
        t0 = time.perf_counter()
        try:
            self._writer.close(self._summary())
        except Exception as exc:  # noqa: BLE001 - report, but never leave the handle hanging
            log.exception("recording %s: closing the file failed", self.path)
            if self.error is None:
                self.error = RecordingError(f"closing {str(self.path)!r} failed: {exc}", "disk")
                self._stop_reason = "error"
        self.close_seconds = time.perf_counter() - t0
        self._state = "failed" if self.error is not None else "done"
        if self.error is not None:
            log.error("recording %s: %s", self.path.name, self.error)
        self._done.set()
        _active.discard(self)
        self._emit(self.events.finished)


# The name the rest of labcam uses for the handle ``Camera.record`` returns.
Recording = Recorder

# Recordings still running when the interpreter exits are stopped cleanly (queued frames written,
# metadata closed) rather than cut off like a crash: the recorder thread is a daemon thread.
_active: weakref.WeakSet[Recorder] = weakref.WeakSet()
EXIT_STOP_TIMEOUT_S = 30.0


@atexit.register
def _stop_all_at_exit() -> None:
    for rec in list(_active):
        rec.stop(wait=True, timeout=EXIT_STOP_TIMEOUT_S)


def start_recording(
    engine: Engine, path: str | os.PathLike[str], *, progress: bool | None = None, **options: Any
) -> Recorder:
    """Create and start a ``Recorder`` (what ``Camera.record`` does), with a progress bar if asked.

    ``options`` are the ``Recorder``'s (``frames``, ``duration``, ``format``, ``overwrite``, ...).
    """
    rec = Recorder(engine, path, **options)
    if progress is None:
        progress = (rec.frames_target or 0) >= PROGRESS_MIN_FRAMES or (rec.duration_target or 0) >= PROGRESS_MIN_SECONDS
    if progress:
        attach_progress_bar(rec)
    return rec.start()


def attach_progress_bar(rec: Recorder) -> None:
    """Show a tqdm progress bar (a widget in notebooks) that follows ``rec``; nothing without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the [jupyter] extra
        return
    if rec.frames_target is not None:
        bar = tqdm(total=rec.frames_target, desc=f"recording {rec.path.name}", unit="frame", leave=True)
    elif rec.duration_target is not None:
        bar = tqdm(total=rec.duration_target, desc=f"recording {rec.path.name}", unit="s", leave=True,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s {postfix}")
    else:
        bar = tqdm(desc=f"recording {rec.path.name}", unit="frame", leave=True)

    def update(p: RecordingProgress) -> None:
        value = p.elapsed_s if rec.frames_target is None and rec.duration_target is not None else p.frames_written
        if rec.duration_target is not None and rec.frames_target is None:
            value = min(value, rec.duration_target)
        bar.n = value
        bar.set_postfix_str(f"{p.frames_written} frames, {p.mb_per_s:.0f} MB/s, dropped {p.dropped}", refresh=False)
        bar.refresh()

    def finished(p: RecordingProgress) -> None:
        update(p)
        if p.error:
            bar.set_postfix_str(f"FAILED after {p.frames_written} frames: {p.error[:80]}")
        bar.close()

    rec.events.progress.connect(update)
    rec.events.finished.connect(finished)
    # keep the closures alive as long as the recording (psygnal holds functions strongly, but be explicit)
    rec._progress_bar = (bar, update, finished)  # type: ignore[attr-defined]


def _check_frames(frames: Any) -> int | None:
    if frames is None:
        return None
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        if isinstance(frames, np.integer) and frames >= 1:
            return int(frames)
        raise ValueError(f"frames={frames!r} is not allowed: a whole number >= 1, or None")
    return int(frames)


def _check_duration(duration: Any) -> float | None:
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration={duration!r} is not allowed: seconds > 0, or None")
    return float(duration)


__all__ = [
    "RecordingError",
    "RecordingEvents",
    "RecordingProgress",
    "Recorder",
    "Recording",
    "attach_progress_bar",
    "available_memory",
    "buffer_budget",
    "start_recording",
]
