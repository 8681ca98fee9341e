"""PixeLINK cameras, through the vendor's ``pixelinkWrapper`` package (the PixeLINK 4.0 API).

How this driver uses the SDK follows /work/shared/reference/pixelink-api.md (sections 2 and 4):

* ``pixelinkWrapper`` loads the native library while it is imported and fails in many ways when
  the SDK is missing, so it is imported lazily in ``open`` and every failure becomes
  ``CameraUnavailable`` with the reason. On Linux its version probe runs
  ``find $PIXELINK_SDK_LIB``, which scans the current folder tree when the variable is unset: the
  driver first points the variable at the SDK's library in its usual install folders, and runs
  the import in a thread, off the lock, waiting ``import_timeout`` seconds at most.
* Optional features (TRIGGER, GAIN, FRAME_RATE, PIXEL_ADDRESSING, ROI) that a model lacks are
  never written; their settings are left out of ``specs`` and ``Settings.to_dict()``.
* Failed reads of any code, not only the known "camera gone" ones, lead to a liveness probe
  after a few in a row (``_PROBE_AFTER_TIMEOUTS``); a camera that does not answer it is lost.
* A positive return code means the camera chose another value (another Bayer order, a rounded
  ROI): the driver reads it back and uses it.
* Every SDK call returns a tuple ``(rc, payload...)``; ``rc < 0`` is an error and the payload is
  then missing. Positive codes are warnings (``ApiSuccessParametersChanged`` means "rounded").
* Cameras are chosen by serial number. Settings are written in a fixed order, with the stream
  stopped where the camera demands it, and always read back: the camera rounds and clamps.
  The SDK speaks seconds for exposure; labcam speaks milliseconds.
* ``getNextFrame`` blocks without a timeout argument; ``setStreamState(STOP)`` from another thread
  is the documented way to wake it. ``read_frame`` therefore arms a deadline that stops and
  restarts the stream if a read outlives its timeout (e.g. waiting for a hardware trigger).
* The handle is never uninitialized while a read is inside ``getNextFrame``.

Threads: the engine's capture thread calls ``read_frame``; any other thread may call the rest.
``_lock`` guards the handle and every SDK call except the blocking ``getNextFrame``, which runs
without it so ``stop`` can get in. Methods named ``*_locked`` expect the caller to hold ``_lock``.
"""

from __future__ import annotations

import ctypes
import glob
import importlib
import importlib.util
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..camera_info import CameraDescription
from ..errors import (
    CameraDisconnected,
    CameraError,
    CameraUnavailable,
    FrameTimeout,
    SettingError,
    StreamStopped,
)
from ..frame import Frame, FrameMeta
from ..settings import TRIGGER_MODES, Settings, SettingSpec, SettingSpecs, validate_changes
from .base import CameraDriver

log = logging.getLogger(__name__)

_PROBE_AFTER_TIMEOUTS = 3
"""SDK timeouts (or other failed reads) in a row after which the camera is asked whether it is still there."""

_RELEASE_WAIT_S = 5.0
"""How long ``close`` waits for a read to leave ``getNextFrame`` after stopping the stream."""

_SHIFT_FROM_MSB = {"mono12": 4, "mono16": 0}
"""Right shift of the camera's MSB-aligned 16-bit samples, per labcam format (mono12 -> < 4096)."""

_FEATURE_OF_SETTING = {"trigger_mode": "TRIGGER", "gain_db": "GAIN", "fps": "FRAME_RATE", "roi": "ROI"}
"""labcam settings backed by an optional PixeLINK feature (a model may lack it); PIXEL_ADDRESSING
is optional too, but it is no setting (it is only reset to 1x1 where present)."""

_SETTING_ORDER = ("trigger_mode", "pixel_format", "roi", "fps", "exposure_ms", "gain_db")
"""The order settings are written in (reference section 4): triggering off first, then what changes
the image size, then timing. Exposure and frame rate limit each other; see ``_write_settings_locked``."""


IMPORT_TIMEOUT_S = 10.0
"""How long ``open`` waits for ``import pixelinkWrapper`` before giving up with the reason."""

SDK_LIBRARY_DIRS = (
    "$PIXELINK_SDK_ROOT/lib",  # what the Linux SDK's installer exports, next to PIXELINK_SDK_LIB
    "/opt/pixelink/lib",
    "/opt/PixeLINK/lib",
    "/usr/local/pixelink/lib",
    "/usr/local/lib",
    "/usr/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
)
"""Where the PixeLINK Linux SDK's ``libPxLApi.so.<version>`` is looked for when
``$PIXELINK_SDK_LIB`` is unset (each folder itself, not its subfolders)."""


class _ImportJob:
    """One ``import pixelinkWrapper`` running in its own daemon thread.

    The import can take minutes (the wrapper's version probe runs ``find $PIXELINK_SDK_LIB``)
    and cannot be interrupted, so callers wait for it with a timeout; a later ``open`` waits for
    the same job rather than starting a second import.
    """

    def __init__(self) -> None:
        self.done = threading.Event()
        self.api: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        threading.Thread(target=self._run, name="labcam-pixelink-import", daemon=True).start()

    def _run(self) -> None:
        try:
            self.api = importlib.import_module("pixelinkWrapper").PxLApi
        except BaseException as exc:  # handed to the waiting open(); see _import_pxlapi
            self.error = exc
        finally:
            self.done.set()


_import_lock = threading.Lock()
_import_job: _ImportJob | None = None


def _locate_sdk_library() -> str | None:
    """Point ``$PIXELINK_SDK_LIB`` at the SDK's library before the wrapper's probe searches for it.

    Unset, the wrapper's ``find`` would search the current folder tree (minutes from ``/``, and
    a ValueError in the end). Returns the library used, or None when none was found.
    """
    configured = os.environ.get("PIXELINK_SDK_LIB")
    if configured:
        log.info("PixeLINK SDK library: $PIXELINK_SDK_LIB=%s", configured)
        return configured
    for folder in SDK_LIBRARY_DIRS:
        found = sorted(glob.glob(os.path.join(os.path.expandvars(folder), "libPxLApi*.so.*")), key=len)
        if found and "$" not in os.path.expandvars(folder):
            library = found[-1]  # the fullest version suffix (libPxLApi.so.4.2.2.11, not .so.4)
            os.environ["PIXELINK_SDK_LIB"] = library
            log.info("PixeLINK SDK library: %s (found in %s; $PIXELINK_SDK_LIB was unset)", library, folder)
            return library
    log.warning("PixeLINK SDK library: $PIXELINK_SDK_LIB is unset and no libPxLApi*.so.* is in %s",
                ", ".join(SDK_LIBRARY_DIRS))
    return None


def _import_pxlapi(timeout: float = IMPORT_TIMEOUT_S) -> Any:
    """Import ``pixelinkWrapper`` and return its ``PxLApi`` class, or raise ``CameraUnavailable``.

    The wrapper loads ``libPxLApi.so`` (or ``PxLAPI40.dll``) in its class body and runs a version
    probe, so without the native SDK the *import* raises OSError, ValueError, IndexError,
    CalledProcessError or a Windows registry error; anything it raises means "not usable".
    The version WARNING it may print to stdout is harmless and ignored. The import runs in a
    thread and is waited for at most ``timeout`` seconds, never under a driver's lock.
    """
    global _import_job
    loaded = sys.modules.get("pixelinkWrapper")
    if loaded is not None and hasattr(loaded, "PxLApi"):
        return loaded.PxLApi
    try:
        installed = importlib.util.find_spec("pixelinkWrapper") is not None
    except (ImportError, ValueError):  # a module entry of None or without a spec: not importable
        installed = False
    if not installed:
        raise CameraUnavailable("PixeLINK SDK not usable: the pixelinkWrapper package is not installed "
                                "(pip install pixelinkWrapper)")
    with _import_lock:
        # A finished import left its module in sys.modules (checked above) or failed: try again.
        if _import_job is None or _import_job.done.is_set():
            if sys.platform.startswith("linux") and _locate_sdk_library() is None:
                raise CameraUnavailable(
                    "PixeLINK SDK not usable: no libPxLApi*.so.* found ($PIXELINK_SDK_LIB is unset and the SDK "
                    f"is not in {', '.join(SDK_LIBRARY_DIRS)}); install the PixeLINK Linux SDK or set "
                    "PIXELINK_SDK_LIB to its library file")
            _import_job = _ImportJob()
        job = _import_job
    if not job.done.wait(timeout):
        raise CameraUnavailable(
            f"PixeLINK SDK not usable: importing pixelinkWrapper did not finish within {timeout:g} s (its version "
            f"probe runs find $PIXELINK_SDK_LIB={os.environ.get('PIXELINK_SDK_LIB', '')!r}); check that "
            "PIXELINK_SDK_LIB names the SDK's libPxLApi.so.<version> file")
    exc = job.error
    if exc is None:
        return job.api
    if isinstance(exc, ModuleNotFoundError) and exc.name == "pixelinkWrapper":
        reason = "the pixelinkWrapper package is not installed (pip install pixelinkWrapper)"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    raise CameraUnavailable(f"PixeLINK SDK not usable: {reason}") from exc


class _Codes:
    """The SDK return codes the driver reacts to, grouped, plus names for messages."""

    def __init__(self, api: Any) -> None:
        rc = api.ReturnCode
        self.names = {v: k for k, v in vars(rc).items() if isinstance(v, int) and not k.startswith("_")}
        self.parameters_changed = rc.ApiSuccessParametersChanged
        self.low_memory = rc.ApiSuccessLowMemory
        self.frame_loss = rc.ApiSuccessWithFrameLoss
        self.in_use = rc.ApiCameraInUseError
        self.buffer_too_small = rc.ApiBufferTooSmall
        self.not_supported = rc.ApiNotSupportedError
        self.not_while_streaming = rc.ApiNotPermittedWhileStreaming
        self.timeouts = frozenset({rc.ApiCameraTimeoutError, rc.ApiTimeoutError})
        # The stream ended under the read: stop() was called (or someone else stopped it).
        self.stopped = frozenset({rc.ApiStreamStopped, rc.ApiNoStreamError})
        # The camera is gone (unplugged, powered off, handle invalid after a replug).
        # Codes missing from older wrappers are skipped.
        self.lost = frozenset(getattr(rc, name) for name in (
            "ApiNoCameraError", "ApiNoCameraAvailableError", "ApiInvalidHandleError", "ApiHardwareError",
            "ApiIOError", "ApiRequiresControlAccess", "ApiNoDeviceError", "ApiLinkDriverError",
            "ApiDriverCommunicationError",
        ) if hasattr(rc, name))
        # The camera refused a value: a setting problem, not a camera fault.
        self.refused = frozenset({
            rc.ApiOutOfRangeError, rc.ApiInvalidParameterError, rc.ApiNotSupportedError,
            getattr(rc, "ApiUnsupportedPixelFormatError", rc.ApiInvalidParameterError),
        })

    def name(self, rc: int) -> str:
        return self.names.get(rc, f"0x{rc & 0xFFFFFFFF:08X}")


def _from_camera(value: float, scale: float = 1.0) -> float:
    """A camera value (a C float) in labcam units without float32 noise: 0.0073000001 s -> 7.3 ms."""
    return round(float(f"{value:.7g}") * scale, 9)


def _text(raw: bytes) -> str:
    """A C string field of an SDK structure (the wrapper hands them out as bytes)."""
    return raw.decode("utf-8", "replace").strip() if isinstance(raw, (bytes, bytearray)) else str(raw)


@dataclass(frozen=True)
class _Feature:
    """What ``getCameraFeatures`` says about one feature."""

    flags: int
    ranges: tuple[tuple[float, float], ...]  # (min, max) per parameter


class _Read(NamedTuple):
    """The outcome of one ``getNextFrame`` call."""

    rc: int
    desc: Any
    buffer: Any
    deadline_hit: bool  # the read outlived its timeout and the stream was stopped to end it


class PixelinkCamera(CameraDriver):
    """A PixeLINK camera chosen by serial number (``serial=None``: the first camera found).

    The keyword arguments are the settings applied at ``open`` (``roi=None``: the whole sensor).
    ``api`` replaces ``pixelinkWrapper.PxLApi`` (tests inject a fake through it); ``import_timeout``
    bounds the wrapper's import (seconds).

    Optional features a model lacks (TRIGGER, GAIN, FRAME_RATE, PIXEL_ADDRESSING, ROI) are never
    written, and their settings are left out of ``specs`` and of ``settings.to_dict()``
    (``Settings.absent``); the attribute then holds what the camera does anyway (0 dB, the whole
    sensor, free running, its own frame rate).
    ``pixel_format`` is one of mono8, mono12, mono16 (camera MONO8 / MONO16) and, on colour
    cameras, rgb8 (the camera's Bayer8 data converted by the SDK's ``formatImage``).
    """

    _codes: _Codes  # the SDK's return codes, grouped; set by open() together with _api

    def __init__(
        self,
        serial: int | None = None,
        *,
        exposure_ms: float = 10.0,
        gain_db: float = 0.0,
        fps: float = 30.0,
        roi: tuple[int, int, int, int] | None = None,
        pixel_format: str = "mono8",
        trigger_mode: str = "free_running",
        api: Any = None,
        import_timeout: float = IMPORT_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self._requested_serial = None if serial is None else int(serial)
        self._requested: dict[str, Any] = {
            "exposure_ms": exposure_ms, "gain_db": gain_db, "fps": fps, "roi": roi,
            "pixel_format": pixel_format, "trigger_mode": trigger_mode,
        }
        self._api_override = api
        self._import_timeout = import_timeout
        self._api: Any = None  # the PxLApi class; self._codes is set with it, by open()

        self._lock = threading.Lock()
        self._read_done = threading.Condition(self._lock)  # notified when a read leaves getNextFrame
        self._handle: int | None = None
        self._serial: int | None = None
        self._description: CameraDescription | None = None
        self._settings: Settings | None = None
        self._specs: SettingSpecs | None = None
        self._formats: dict[str, int] = {}  # labcam pixel format -> camera PixelFormat value
        self._has_trigger = False  # the camera has the TRIGGER feature
        self._present: frozenset[int] = frozenset()  # FeatureIds the camera has
        self._absent: frozenset[str] = frozenset()  # labcam settings it lacks the feature for
        self._sensor: tuple[int, int] = (0, 0)
        self._trigger_source: str | None = None  # "software", "line1".."line4", "action"; None: free running
        self._opening = False  # inside open(): failures are reported to the caller, not logged

        self._streaming = False
        self._lost = False  # the camera went away; reconnect() may bring it back
        self._resume_streaming = False  # restart streaming on reconnect
        self._closed = False
        self._buffer: Any = None  # ctypes buffer getNextFrame fills; replaced, never resized
        self._clock_offset: float | None = None  # wall clock minus camera clock, set at start
        self._consecutive_timeouts = 0
        self._consecutive_errors = 0  # failed reads in a row that were neither timeouts nor stops
        self._last_read_rc: int | None = None
        self._reading = False  # a read is inside getNextFrame
        self._read_token = 0
        self._deadline_hit = False
        self._deadline = _ReadDeadline(self._on_read_deadline)

    # -- identity -------------------------------------------------------------------------------
    @property
    def description(self) -> CameraDescription:
        if self._description is None:
            raise CameraError("the PixeLINK camera has not been opened")
        return self._description

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise CameraError("the PixeLINK camera has not been opened")
        return self._settings

    @property
    def specs(self) -> SettingSpecs:
        if self._specs is None:
            raise CameraError("the PixeLINK camera has not been opened")
        return self._specs

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def trigger_source(self) -> str | None:
        """What triggers frames, as the camera last reported: None (free running), "software", or
        the input of a hardware trigger ("line1" to "line4", "action"; all shown as "hardware")."""
        return self._trigger_source

    @property
    def absent_features(self) -> frozenset[str]:
        """The labcam settings this camera has no feature for (never written, not in ``specs``)."""
        return self._absent

    # -- life cycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Find the camera, take control of it, and apply the constructor's settings.

        Raises ``CameraUnavailable`` (SDK not usable, no camera, camera busy) or ``SettingError``
        (a constructor setting this camera does not allow); the camera is released on failure.
        """
        with self._lock:
            if self._handle is not None:
                return
        # Off the lock: the import may take long (it is bounded), and nothing else waits for it.
        api = self._api_override if self._api_override is not None else _import_pxlapi(self._import_timeout)
        with self._lock:
            if self._handle is not None:
                return
            self._api = api
            self._codes = _Codes(self._api)
            serial = self._choose_serial_locked()
            self._handle = self._initialize_locked(serial)
            self._serial = serial
            if self._closed:  # opened again after close(): close() ended the deadline thread
                self._deadline = _ReadDeadline(self._on_read_deadline)
            self._closed = self._lost = False
            self._opening = True
            try:
                self._describe_locked()
                self._settings = self._configure_locked(self._initial_settings())
            except (CameraUnavailable, SettingError):
                self._release_handle_locked()
                raise
            except CameraError as exc:  # lost or failing while being set up: not usable
                self._release_handle_locked()
                self._lost = False
                raise CameraUnavailable(f"PixeLINK camera {serial} could not be set up: {exc}") from exc
            except BaseException:
                self._release_handle_locked()
                raise
            finally:
                self._opening = False
        log.info("opened PixeLINK camera %s (%s)", serial, self.description.model)

    def close(self) -> None:
        """Stop streaming, wait for a blocked read to return, then release the camera."""
        with self._lock:
            self._closed = True
            self._streaming = self._resume_streaming = False
            self._release_handle_locked()
        self._deadline.close()

    def _choose_serial_locked(self) -> int:
        ret = self._api.getNumberCameras()
        if ret[0] < 0:
            raise CameraUnavailable(f"PixeLINK SDK could not list cameras ({self._codes.name(ret[0])})")
        serials = [int(info.CameraSerialNum) for info in ret[1]]
        if not serials:
            raise CameraUnavailable("no PixeLINK camera found")
        wanted = self._requested_serial
        if wanted is None:
            return serials[0]
        if wanted not in serials:
            found = ", ".join(str(s) for s in serials)
            raise CameraUnavailable(f"no PixeLINK camera with serial {wanted} found (connected: {found})")
        return wanted

    def _initialize_locked(self, serial: int) -> int:
        # ISSUE_STREAM_STOP: a previous program may have left the camera streaming.
        ret = self._api.initialize(serial, self._api.InitializeExFlags.ISSUE_STREAM_STOP)
        rc = ret[0]
        if rc == self._codes.in_use:
            raise CameraUnavailable(f"PixeLINK camera {serial} is busy (in use by another program)")
        if rc < 0:
            raise CameraUnavailable(f"PixeLINK camera {serial} could not be opened ({self._codes.name(rc)})")
        return int(ret[1])

    def _initial_settings(self) -> Settings:
        """The constructor's settings, checked against this camera's specs (SettingError if not allowed).

        Settings the camera has no feature for are dropped (logged): the camera cannot do them.
        """
        requested = dict(self._requested)
        if requested["roi"] is None:
            requested["roi"] = (0, 0, *self._sensor)
        for name in sorted(self._absent):
            log.info("PixeLINK camera %s has no %s feature: %s=%r is not applied", self._serial,
                     _FEATURE_OF_SETTING[name], name, requested.pop(name))
        # Every present field is replaced, so the base only needs the right shape; absent ones
        # hold what the camera does anyway (read back by _read_settings_locked).
        base = Settings(exposure_ms=0.0, gain_db=0.0, fps=1.0, roi=(0, 0, *self._sensor), pixel_format="mono8",
                        absent=self._absent)
        return validate_changes(self.specs, base, requested)

    # -- streaming ------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._require_connected_locked()
            if not self._streaming:
                self._start_locked()

    def _start_locked(self) -> None:
        self._buffer = self._new_buffer_locked()
        rc = self._api.setStreamState(self._handle, self._api.StreamState.START)[0]
        if rc < 0:
            raise self._error_locked("setStreamState(START)", rc)
        if rc == self._codes.low_memory:
            log.warning("PixeLINK camera %s: streaming with little USB buffer memory "
                        "(ApiSuccessLowMemory); frames may be lost", self._serial)
        self._clock_offset = self._camera_clock_offset_locked()
        self._consecutive_timeouts = self._consecutive_errors = 0
        self._streaming = True

    def stop(self) -> None:
        """Stop streaming. A ``read_frame`` blocked in another thread returns with ``StreamStopped``."""
        with self._lock:
            self._resume_streaming = False
            if not self._streaming:
                return
            self._streaming = False
            if self._handle is not None:
                # Wakes a getNextFrame blocked in the capture thread (SDK sample aborttrigger.cpp).
                rc = self._api.setStreamState(self._handle, self._api.StreamState.STOP)[0]
                if rc < 0:
                    log.debug("PixeLINK camera %s: STOP answered %s", self._serial, self._codes.name(rc))

    def read_frame(self, timeout: float) -> Frame:
        """Wait up to ``timeout`` seconds for the next frame and return it as a fresh array.

        SDK timeouts are retried until ``timeout``; after several in a row the camera is probed
        and ``CameraDisconnected`` raised if it does not answer. ``StreamStopped`` when ``stop``
        interrupted the read, ``FrameTimeout`` when no frame came in time.
        """
        deadline = time.monotonic() + timeout
        buffer_regrown = False
        last_timeout: int | None = None  # the SDK's last timeout code in this call, for the message
        while True:
            read = self._read_once(deadline)
            codes = self._codes
            if read.rc >= 0:
                self._consecutive_timeouts = self._consecutive_errors = 0
                if read.rc == codes.frame_loss:
                    log.debug("PixeLINK camera %s reports lost frames before #%s", self._serial,
                              read.desc.u64FrameNumber or read.desc.uFrameNumber)
                return self._to_frame(read.buffer, read.desc)
            if read.deadline_hit and read.rc in codes.stopped:
                self._count_timeout(read.rc)
                raise self._timeout_error(timeout, last_timeout)
            if read.rc in codes.stopped:
                if self._lost:  # another thread found the camera gone and stopped the stream
                    raise CameraDisconnected(f"PixeLINK camera {self._serial} disconnected")
                if self._streaming:  # not stop(): the stream ended by itself, which a gone camera may do
                    self._count_error(read.rc)
                raise StreamStopped(f"the PixeLINK camera {self._serial} stopped streaming")
            if read.rc in codes.timeouts:
                last_timeout = read.rc
                self._count_timeout(read.rc)
                if time.monotonic() >= deadline:
                    raise self._timeout_error(timeout, last_timeout)
                continue
            if read.rc in codes.lost:
                with self._lock:
                    raise self._mark_lost_locked(read.rc)
            if read.rc != codes.buffer_too_small or buffer_regrown:
                # Any other code, known or not (the SDK defines about a hundred): after a few in
                # a row, ask the camera whether it is still there, as for timeouts.
                self._count_error(read.rc)
            if read.rc == codes.buffer_too_small and not buffer_regrown:
                # The image got bigger than the buffer (its size changed behind our back):
                # size a new buffer from the camera's features and re-read the settings.
                with self._lock:
                    self._buffer = self._new_buffer_locked()
                    self._settings = self._read_settings_locked(self.settings.pixel_format)
                buffer_regrown = True
                continue
            with self._lock:
                # The first of a run is logged; the engine backs off and retries the rest.
                raise self._error_locked("getNextFrame", read.rc, logged=self._consecutive_errors <= 1)

    # -- raw access for ``labcam selftest`` ------------------------------------------------------
    def read_raw_frame(self, timeout: float) -> tuple[Any, Any]:
        """One frame exactly as the camera sent it: (a copy of the SDK buffer, its frame descriptor).

        For ``labcam selftest``, which compares labcam's decoding with the SDK's ``formatImage``.
        SDK timeouts are retried until ``timeout``; other failures raise as in ``read_frame``.
        """
        deadline = time.monotonic() + timeout
        while True:
            read = self._read_once(deadline)
            if read.rc >= 0:
                copy = ctypes.create_string_buffer(len(read.buffer))
                ctypes.memmove(copy, read.buffer, len(read.buffer))
                return copy, read.desc
            if read.rc in self._codes.timeouts and time.monotonic() < deadline:
                continue
            if read.rc in self._codes.timeouts or (read.deadline_hit and read.rc in self._codes.stopped):
                raise self._timeout_error(timeout, read.rc)
            with self._lock:
                raise self._error_locked("getNextFrame", read.rc)

    def decode_raw_frame(self, buffer: Any, desc: Any) -> Frame:
        """The frame labcam makes of a raw SDK buffer (what ``read_frame`` would have returned)."""
        return self._to_frame(buffer, desc)

    def sdk_format_mono8(self, buffer: Any, desc: Any) -> np.ndarray:
        """The SDK's own 8-bit rendering of a raw frame (``formatImage`` to RAW_MONO8), as (h, w) uint8."""
        api = self._api
        with self._lock:
            ret = api.formatImage(buffer, desc, api.ImageFormat.RAW_MONO8)
            if ret[0] < 0:
                raise self._error_locked("formatImage(RAW_MONO8)", ret[0])
        width = int(desc.Roi.fWidth / (desc.PixelAddressingValue.fHorizontal or 1))
        height = int(desc.Roi.fHeight / (desc.PixelAddressingValue.fVertical or 1))
        return np.frombuffer(ret[1], np.uint8, count=width * height).reshape(height, width).copy()

    @property
    def last_read_code(self) -> int | None:
        """The return code of the last ``getNextFrame`` (None before the first)."""
        return self._last_read_rc

    def return_code_name(self, rc: int) -> str:
        """The SDK's name of a return code (``0x...`` when the wrapper does not know it)."""
        return self._codes.name(rc)

    def _timeout_error(self, timeout: float, sdk_rc: int | None) -> FrameTimeout:
        why = f" (the SDK said {self._codes.name(sdk_rc)})" if sdk_rc is not None else ""
        return FrameTimeout(f"no frame from PixeLINK camera {self._serial} within {timeout:g} s{why}")

    def _read_once(self, deadline: float) -> _Read:
        """One ``getNextFrame``, run without the lock so ``stop`` can interrupt it."""
        with self._lock:
            if not self._streaming:
                if self._lost:
                    raise CameraDisconnected(f"PixeLINK camera {self._serial} is disconnected")
                raise StreamStopped("the PixeLINK camera is not streaming")
            handle, buffer = self._handle, self._buffer
            self._reading = True
            self._deadline_hit = False
            self._read_token = self._deadline.arm(deadline)
        try:
            ret = self._api.getNextFrame(handle, buffer)
            self._last_read_rc = ret[0]
        finally:
            with self._lock:
                self._reading = False
                self._deadline.disarm()
                deadline_hit = self._deadline_hit
                self._read_done.notify_all()
                if deadline_hit and self._streaming:
                    self._restart_after_deadline_locked()
        return _Read(ret[0], ret[1] if len(ret) > 1 else None, buffer, deadline_hit)

    def _on_read_deadline(self, token: int) -> None:
        """Deadline thread: the read armed with ``token`` is overdue; stop the stream to end it."""
        with self._lock:
            if self._reading and self._read_token == token and self._streaming and self._handle is not None:
                self._deadline_hit = True
                self._api.setStreamState(self._handle, self._api.StreamState.STOP)

    def _restart_after_deadline_locked(self) -> None:
        rc = self._api.setStreamState(self._handle, self._api.StreamState.START)[0]
        if rc < 0:
            raise self._error_locked("setStreamState(START)", rc)

    def _count_error(self, rc: int) -> None:
        """Count a failed read that is neither a timeout nor a stop; probe the camera after several."""
        self._consecutive_errors += 1
        if self._consecutive_errors >= _PROBE_AFTER_TIMEOUTS:
            self._probe_liveness(rc)

    def _count_timeout(self, rc: int) -> None:
        """Count a timeout; after several in a row, a camera that no longer answers is lost."""
        self._consecutive_timeouts += 1
        if self._consecutive_timeouts >= _PROBE_AFTER_TIMEOUTS:
            self._probe_liveness(rc)

    def _probe_liveness(self, rc: int) -> None:
        """Raise ``CameraDisconnected`` if the camera no longer answers a feature read."""
        with self._lock:
            if self._handle is None:
                raise self._mark_lost_locked(rc)
            # The liveness probe of the SDK's getnextframe.cpp sample: any feature read will do.
            probe = self._api.getFeature(self._handle, self._api.FeatureId.SHUTTER)[0]
            if probe < 0:
                raise self._mark_lost_locked(probe)

    def _to_frame(self, buffer: Any, desc: Any) -> Frame:
        """Copy one frame out of the SDK buffer (the buffer is reused by the next read)."""
        api = self._api
        width = int(desc.Roi.fWidth / (desc.PixelAddressingValue.fHorizontal or 1))
        height = int(desc.Roi.fHeight / (desc.PixelAddressingValue.fVertical or 1))
        camera_format = int(desc.PixelFormat.fValue)
        settings = self.settings
        name = self._format_name(camera_format, settings.pixel_format)
        count = width * height
        array: np.ndarray
        if name == "mono8":
            array = np.frombuffer(buffer, np.uint8, count=count).reshape(height, width).copy()
        elif name in _SHIFT_FROM_MSB:
            # Big-endian, MSB-aligned: astype makes the one copy, in native byte order.
            array = np.frombuffer(buffer, ">u2", count=count).reshape(height, width).astype(np.uint16)
            if _SHIFT_FROM_MSB[name]:
                array >>= _SHIFT_FROM_MSB[name]
        else:  # rgb8: the SDK demosaics into a new buffer, which becomes the array
            with self._lock:
                ret = api.formatImage(buffer, desc, api.ImageFormat.RAW_RGB24_NON_DIB)
                if ret[0] < 0:
                    raise self._error_locked("formatImage", ret[0])
            array = np.frombuffer(ret[1], np.uint8, count=count * 3).reshape(height, width, 3)
        frame_time = float(desc.dFrameTime) or float(desc.fFrameTime)
        if self._clock_offset is None:  # the camera has no readable clock: align on the first frame
            self._clock_offset = time.time() - frame_time
        meta = FrameMeta(
            frame_number=int(desc.u64FrameNumber) or int(desc.uFrameNumber),
            timestamp=self._clock_offset + frame_time,
            exposure_ms=_from_camera(desc.Shutter.fValue, 1000.0) or settings.exposure_ms,
            gain_db=_from_camera(desc.Gain.fValue),
            roi=(int(desc.Roi.fLeft), int(desc.Roi.fTop), int(desc.Roi.fWidth), int(desc.Roi.fHeight)),
            pixel_format=name,
            camera_serial=str(self._serial),
        )
        return Frame(array, meta)

    def _format_name(self, camera_format: int, preferred: str) -> str:
        """The labcam pixel format of a frame the camera sent in ``camera_format``."""
        if self._formats.get(preferred) == camera_format:
            return preferred
        for name in ("mono8", "mono16", "rgb8"):
            if self._formats.get(name) == camera_format:
                return name
        pf = self._api.PixelFormat
        if "rgb8" in self._formats and camera_format in (pf.BAYER8_GRBG, pf.BAYER8_RGGB, pf.BAYER8_GBRG, pf.BAYER8_BGGR):
            # The camera changed its Bayer order (ApiSuccessParametersChanged): formatImage follows
            # the descriptor, so rgb8 still comes out right; remember the order it uses.
            self._formats["rgb8"] = camera_format
            return "rgb8"
        raise CameraError(f"PixeLINK camera {self._serial} sent pixel format {camera_format}, "
                          "which labcam does not decode")

    def _camera_clock_offset_locked(self) -> float | None:
        """Wall clock minus the camera's frame clock, so frame times become epoch seconds."""
        get_timestamp = getattr(self._api, "getCurrentTimestamp", None)
        if get_timestamp is None:
            return None
        ret = get_timestamp(self._handle)
        return time.time() - float(ret[1]) if ret[0] >= 0 else None

    # -- losing and finding the camera again ----------------------------------------------------
    def reconnect(self) -> bool:
        """Look once for the lost camera; if it is back, set it up again exactly as before.

        After a replug the old handle is invalid and the camera is at its power-on settings, so
        this initializes a new handle, re-applies *all* settings and restarts streaming if the
        camera was streaming when it was lost.
        """
        with self._lock:
            if self._closed or self._api is None or self._serial is None:
                return False
            if not self._lost:
                return self._handle is not None
            ret = self._api.getNumberCameras()
            if ret[0] < 0 or self._serial not in [int(i.CameraSerialNum) for i in ret[1]]:
                return False
            ret = self._api.initialize(self._serial, self._api.InitializeExFlags.ISSUE_STREAM_STOP)
            if ret[0] < 0:
                log.info("PixeLINK camera %s is back but cannot be opened yet (%s)",
                         self._serial, self._codes.name(ret[0]))
                return False
            self._handle = int(ret[1])
            try:
                self._settings = self._configure_locked(self.settings)
                if self._resume_streaming:
                    self._start_locked()
            except (CameraError, SettingError) as exc:
                log.warning("PixeLINK camera %s came back but could not be set up again: %s", self._serial, exc)
                self._release_handle_locked()
                return False
            self._lost = self._resume_streaming = False
            log.info("PixeLINK camera %s reconnected", self._serial)
            return True

    def _mark_lost_locked(self, rc: int) -> CameraDisconnected:
        """Record that the camera is gone, let go of its handle, and return the error to raise."""
        if not self._lost:
            self._lost = True
            self._resume_streaming = self._streaming
            # INFO: whoever handles CameraDisconnected (the engine) tells the user.
            log.info("PixeLINK camera %s disconnected (%s)", self._serial, self._codes.name(rc))
        self._streaming = False
        self._release_handle_locked()
        return CameraDisconnected(f"PixeLINK camera {self._serial} disconnected ({self._codes.name(rc)})")

    def _release_handle_locked(self) -> None:
        """Stop the stream and uninitialize the handle; errors are ignored (the camera may be gone).

        Never uninitializes while a read is inside getNextFrame: STOP wakes it, and we wait.
        """
        handle = self._handle
        if handle is None:
            return
        self._api.setStreamState(handle, self._api.StreamState.STOP)
        if not self._read_done.wait_for(lambda: not self._reading, timeout=_RELEASE_WAIT_S):
            log.error("PixeLINK camera %s: a read is still inside getNextFrame after STOP; "
                      "leaving the handle initialized rather than pulling it from under the read", self._serial)
        else:
            self._api.uninitialize(handle)
        self._handle = None
        self._buffer = None

    def _require_connected_locked(self) -> None:
        if self._lost:
            raise CameraDisconnected(f"PixeLINK camera {self._serial} is disconnected")
        if self._handle is None or self._closed:  # closed: close() may be waiting out a read
            raise CameraError("the PixeLINK camera is not open")

    def _error_locked(self, function: str, rc: int, *, logged: bool = True) -> CameraError:
        """The exception for a failed SDK call: lost camera, or a fault logged with the SDK's report."""
        if rc in self._codes.lost:
            return self._mark_lost_locked(rc)
        report = self._error_report_locked()
        message = f"PixeLINK camera {self._serial}: {function} failed with {self._codes.name(rc)}"
        if report:
            message += f" ({report})"
        if not self._opening:
            log.log(logging.ERROR if logged else logging.DEBUG, "%s", message)
        return CameraError(message)

    def _error_report_locked(self) -> str:
        if self._handle is None:
            return ""
        ret = self._api.getErrorReport(self._handle)  # takes the handle, not the return code
        if ret[0] < 0:
            return ""
        report = ret[1]
        return " ".join(part for part in (_text(report.strFunctionName), _text(report.strReport)) if part)

    # -- settings -------------------------------------------------------------------------------
    def _apply_settings(self, new: Settings, changed: frozenset[str]) -> Settings:
        with self._lock:
            self._require_connected_locked()
            old = self.settings
            try:
                self._write_settings_locked(new, changed)
            except SettingError:
                # Put back what was already written, so a refused change changes nothing.
                self._write_settings_locked(old, changed, strict=False)
                self._settings = self._read_settings_locked(old.pixel_format)
                raise
            self._settings = self._read_settings_locked(new.pixel_format)
            return self._settings

    def _configure_locked(self, settings: Settings) -> Settings:
        """Write every setting the camera has (stream stopped) and return them as read back."""
        self._reset_pixel_addressing_locked()
        self._write_settings_locked(settings, frozenset(_SETTING_ORDER) - self._absent)
        return self._read_settings_locked(settings.pixel_format)

    def _write_settings_locked(self, new: Settings, names: frozenset[str], *, strict: bool = True) -> None:
        """Write the settings ``names`` of ``new`` in the documented order.

        Exposure and frame rate limit each other (exposure <= 1 / fps), and the camera clamps
        whichever would break that *now*. So a shorter exposure goes first when it fits the
        current frame period, otherwise the frame rate goes first; either way every step is valid.
        """
        order = list(_SETTING_ORDER)
        names = names - self._absent  # a feature the camera lacks is never written
        if {"fps", "exposure_ms"} <= names:
            current_fps = self._get_locked(self._api.FeatureId.FRAME_RATE)[1][0]
            if new.exposure_ms <= 1000.0 / current_fps:
                order.remove("exposure_ms")
                order.insert(order.index("fps"), "exposure_ms")
        for name in order:
            if name not in names:
                continue
            rc = self._write_one_locked(name, new)
            if strict and rc < 0:
                raise self._setting_error_locked(name, getattr(new, name), rc)

    def _write_one_locked(self, name: str, s: Settings) -> int:
        api, fid, manual = self._api, self._api.FeatureId, self._api.FeatureFlags.MANUAL
        if name == "exposure_ms":
            return api.setFeature(self._handle, fid.SHUTTER, manual, [s.exposure_ms / 1000.0])[0]  # SDK: seconds
        if name == "gain_db":
            return api.setFeature(self._handle, fid.GAIN, manual, [s.gain_db])[0]
        if name == "fps":
            return api.setFeature(self._handle, fid.FRAME_RATE, manual, [s.fps])[0]
        if name == "roi":
            return api.setFeature(self._handle, fid.ROI, manual, [float(v) for v in s.roi])[0]
        if name == "pixel_format":
            return api.setFeature(self._handle, fid.PIXEL_FORMAT, manual, [self._formats[s.pixel_format]])[0]
        # trigger_mode: keep polarity/delay of the camera's trigger, change mode and type.
        ret = api.getFeature(self._handle, fid.TRIGGER)
        if ret[0] < 0:
            return ret[0]
        params = list(ret[2])
        if s.trigger_mode == "free_running":
            return api.setFeature(self._handle, fid.TRIGGER, api.FeatureFlags.OFF, params)[0]
        params[api.TriggerParams.MODE] = api.TriggerModes.MODE_0
        if s.trigger_mode == "software":
            params[api.TriggerParams.TYPE] = api.TriggerTypes.SOFTWARE
        elif int(params[api.TriggerParams.TYPE]) not in _external_trigger_names(api):
            # "hardware" keeps the input the camera is wired to (LINE2, ACTION, ...); else LINE1.
            params[api.TriggerParams.TYPE] = api.TriggerTypes.HARDWARE
        return api.setFeature(self._handle, fid.TRIGGER, manual, params)[0]

    def _setting_error_locked(self, name: str, value: Any, rc: int) -> Exception:
        if rc == self._codes.not_while_streaming:
            return SettingError(name, value, "cannot be changed while streaming")
        if rc in self._codes.refused:
            return SettingError(name, value, f"{self.specs[name].describe()} (the camera refused it: "
                                             f"{self._codes.name(rc)})")
        return self._error_locked(f"setting {name}", rc)

    def _reset_pixel_addressing_locked(self) -> None:
        """No decimation or binning: labcam frames are the ROI at full resolution."""
        api = self._api
        if api.FeatureId.PIXEL_ADDRESSING not in self._present:
            return
        ret = api.getFeature(self._handle, api.FeatureId.PIXEL_ADDRESSING)
        if ret[0] == self._codes.not_supported:
            return
        if ret[0] < 0:
            raise self._error_locked("getFeature(PIXEL_ADDRESSING)", ret[0])
        params = list(ret[2])
        wanted = [1.0, float(api.PixelAddressingModes.DECIMATE), 1.0, 1.0][: len(params)]
        if params != wanted:
            rc = api.setFeature(self._handle, api.FeatureId.PIXEL_ADDRESSING, api.FeatureFlags.MANUAL, wanted)[0]
            if rc < 0:
                raise self._error_locked("setFeature(PIXEL_ADDRESSING)", rc)

    def _read_settings_locked(self, pixel_format: str) -> Settings:
        """The settings as the camera holds them now (after its rounding and clamping)."""
        api, fid = self._api, self._api.FeatureId
        exposure = self._get_locked(fid.SHUTTER)[1][0]
        gain = self._get_locked(fid.GAIN)[1][0] if fid.GAIN in self._present else 0.0
        if fid.FRAME_RATE in self._present:
            fps = self._get_locked(fid.FRAME_RATE)[1][0]
        else:  # the camera paces itself: its actual rate when streaming, else what the exposure allows
            actual = self._get_locked(fid.ACTUAL_FRAME_RATE)[1][0] if fid.ACTUAL_FRAME_RATE in self._present else 0.0
            fps = actual if actual > 0 else 1.0 / max(exposure, 1e-6)
        roi = self._get_locked(fid.ROI)[1] if fid.ROI in self._present else [0, 0, *self._sensor]
        camera_format = int(self._get_locked(fid.PIXEL_FORMAT)[1][0])
        trigger_flags, trigger = self._get_locked(fid.TRIGGER) if self._has_trigger else (0, [])
        self._trigger_source = None
        if trigger and trigger_flags & api.FeatureFlags.MOD_BITS != api.FeatureFlags.OFF:
            kind = int(trigger[api.TriggerParams.TYPE])
            if kind == api.TriggerTypes.SOFTWARE:
                self._trigger_source = "software"
            elif kind != api.TriggerTypes.FREE_RUNNING:
                # LINE1-LINE4 and ACTION (1.5.0), or a type newer than this driver: the camera
                # waits for a signal from outside, which is what "hardware" means to labcam.
                self._trigger_source = _external_trigger_names(api).get(kind, f"type {kind}")
        trigger_mode = {None: "free_running", "software": "software"}.get(self._trigger_source, "hardware")
        return Settings(
            exposure_ms=_from_camera(exposure, 1000.0),
            gain_db=_from_camera(gain),
            fps=_from_camera(fps),
            roi=tuple(round(v) for v in roi[:4]),  # type: ignore[arg-type]
            pixel_format=self._format_name(camera_format, pixel_format),
            trigger_mode=trigger_mode,
            absent=self._absent,
        )

    def _get_locked(self, feature_id: int) -> tuple[int, list[float]]:
        """``getFeature`` as (flags, params), raising on failure."""
        ret = self._api.getFeature(self._handle, feature_id)
        if ret[0] < 0:
            raise self._error_locked(f"getFeature({feature_id})", ret[0])
        return int(ret[1]), list(ret[2])

    def _new_buffer_locked(self) -> Any:
        """A frame buffer sized as the SDK samples do: ROI / pixel addressing x bytes per pixel."""
        api, fid = self._api, self._api.FeatureId
        roi = self._get_locked(fid.ROI)[1] if fid.ROI in self._present else [0, 0, *self._sensor]
        ret = api.getFeature(self._handle, fid.PIXEL_ADDRESSING) if fid.PIXEL_ADDRESSING in self._present else (-1,)
        if ret[0] >= 0 and len(ret[2]) >= 4:
            dx, dy = ret[2][api.PixelAddressingParams.X_VALUE], ret[2][api.PixelAddressingParams.Y_VALUE]
        elif ret[0] >= 0:
            dx = dy = ret[2][api.PixelAddressingParams.VALUE]
        else:
            dx = dy = 1.0
        camera_format = int(self._get_locked(fid.PIXEL_FORMAT)[1][0])
        bytes_per_pixel = api.getBytesPerPixel(camera_format)
        if not bytes_per_pixel:
            raise CameraError(f"PixeLINK camera {self._serial} is in unknown pixel format {camera_format}")
        width = int(roi[api.RoiParams.WIDTH] / (dx or 1))
        height = int(roi[api.RoiParams.HEIGHT] / (dy or 1))
        return ctypes.create_string_buffer(math.ceil(width * height * bytes_per_pixel))  # 1.5 bpp packs round up

    # -- what the camera is and allows ----------------------------------------------------------
    def _describe_locked(self) -> None:
        """Read the camera's identity and feature ranges into description, specs and formats."""
        api, fid = self._api, self._api.FeatureId
        ret = api.getCameraInfo(self._handle)
        if ret[0] < 0:
            raise self._error_locked("getCameraInfo", ret[0])
        info = ret[1]
        features = self._read_features_locked()
        missing = [n for n, f in (("SHUTTER", fid.SHUTTER), ("PIXEL_FORMAT", fid.PIXEL_FORMAT)) if f not in features]
        if missing:
            raise CameraUnavailable(f"PixeLINK camera {self._serial} lacks features labcam needs: {', '.join(missing)}")
        self._present = frozenset(features)
        self._has_trigger = fid.TRIGGER in features
        self._absent = frozenset(name for name, feature in _FEATURE_OF_SETTING.items()
                                 if getattr(fid, feature) not in features)
        if self._absent:
            log.info("PixeLINK camera %s has no %s: those settings are not offered", self._serial,
                     ", ".join(_FEATURE_OF_SETTING[n] for n in sorted(self._absent)))
        self._formats = self._probe_formats_locked()
        bits = 12
        if fid.MAX_PIXEL_SIZE in features:
            bits = int(self._get_locked(fid.MAX_PIXEL_SIZE)[1][0])
        if fid.ROI in features:
            roi = features[fid.ROI].ranges
            self._sensor = (int(roi[api.RoiParams.WIDTH][1]), int(roi[api.RoiParams.HEIGHT][1]))
        else:
            self._sensor = self._measure_image_locked()
        self._specs = _build_specs(api, features, tuple(self._formats))
        sensor = self._sensor
        self._description = CameraDescription(
            driver="pixelink",
            model=_text(info.ModelName),
            serial=str(self._serial),
            sensor_width=sensor[0],
            sensor_height=sensor[1],
            pixel_formats=tuple(self._formats),
            max_bit_depth=bits,
            firmware=_text(info.FirmwareVersion),
            extra={"vendor": _text(info.VendorName), "fpga": _text(info.FPGAVersion)},
        )

    def _measure_image_locked(self) -> tuple[int, int]:
        """(width, height) of the camera's image, from one frame: a model without ROI says it nowhere else.

        The buffer starts at 4 MiB and grows while the SDK answers ApiBufferTooSmall.
        """
        api = self._api
        if self._has_trigger:  # a frame must come without waiting for a trigger
            ret = api.getFeature(self._handle, api.FeatureId.TRIGGER)
            if ret[0] >= 0:
                api.setFeature(self._handle, api.FeatureId.TRIGGER, api.FeatureFlags.OFF, list(ret[2]))
        rc = api.setStreamState(self._handle, api.StreamState.START)[0]
        if rc < 0:
            raise self._error_locked("setStreamState(START)", rc)
        try:
            size = 4 << 20
            while True:
                ret = api.getNextFrame(self._handle, ctypes.create_string_buffer(size))
                if ret[0] == self._codes.buffer_too_small and size < (1 << 30):
                    size *= 4
                    continue
                if ret[0] < 0:
                    raise self._error_locked("getNextFrame (measuring the image)", ret[0])
                desc = ret[1]
                return (int(desc.Roi.fWidth / (desc.PixelAddressingValue.fHorizontal or 1)),
                        int(desc.Roi.fHeight / (desc.PixelAddressingValue.fVertical or 1)))
        finally:
            api.setStreamState(self._handle, api.StreamState.STOP)

    def _read_features_locked(self) -> dict[int, _Feature]:
        ret = self._api.getCameraFeatures(self._handle, self._api.FeatureId.ALL)
        if ret[0] < 0:
            raise self._error_locked("getCameraFeatures", ret[0])
        table = ret[1]
        features = {}
        for i in range(table.uNumberOfFeatures):
            f = table.Features[i]
            ranges = tuple((float(f.Params[j].fMinValue), float(f.Params[j].fMaxValue))
                           for j in range(f.uNumberOfParameters))
            if f.uFlags & self._api.FeatureFlags.PRESENCE:
                features[int(f.uFeatureId)] = _Feature(int(f.uFlags), ranges)
        return features

    def _probe_formats_locked(self) -> dict[str, int]:
        """The labcam pixel formats this camera can deliver, with the camera format behind each.

        The feature's min/max cannot say which formats exist, so each candidate is tried once
        (stream stopped, at open) and the camera's format put back afterwards. A colour sensor
        takes one of the Bayer8 orders; rgb8 is made from it by the SDK's formatImage.
        """
        api, pf = self._api, self._api.PixelFormat
        fid, manual = api.FeatureId.PIXEL_FORMAT, api.FeatureFlags.MANUAL
        original = self._get_locked(fid)[1][0]
        candidates = [("mono8", pf.MONO8), ("mono16", pf.MONO16)] + [
            ("rgb8", f) for f in (pf.BAYER8_GRBG, pf.BAYER8_RGGB, pf.BAYER8_GBRG, pf.BAYER8_BGGR)
        ]
        bayer8 = {pf.BAYER8_GRBG, pf.BAYER8_RGGB, pf.BAYER8_GBRG, pf.BAYER8_BGGR}
        accepted: dict[str, int] = {}
        for name, camera_format in candidates:
            if name in accepted:
                continue
            rc = api.setFeature(self._handle, fid, manual, [camera_format])[0]
            if rc == self._codes.parameters_changed:
                # The camera took another format (its own Bayer order, say): use what it holds.
                asked, camera_format = camera_format, int(self._get_locked(fid)[1][0])
                log.info("PixeLINK camera %s: asked for pixel format %s, it chose %s (used for %s)",
                         self._serial, asked, camera_format, name)
                if name == "rgb8" and camera_format not in bayer8:
                    continue  # not a Bayer8 order after all: rgb8 cannot be made from it
                if name != "rgb8" and camera_format != asked:
                    continue
            if rc >= 0:
                accepted[name] = camera_format
        api.setFeature(self._handle, fid, manual, [original])
        if "mono16" in accepted:
            accepted["mono12"] = accepted["mono16"]  # same camera data, shifted down to 12 bits
        return {name: accepted[name] for name in ("mono8", "mono12", "mono16", "rgb8") if name in accepted}


def _build_specs(api: Any, features: dict[int, _Feature], formats: tuple[str, ...]) -> SettingSpecs:
    """labcam setting specs from the camera's feature table (labcam units: ms, dB, frames/s, pixels)."""
    fid, streaming_ok = api.FeatureId, api.FeatureFlags.SETTABLE_WHILE_STREAMING

    def number(name: str, feature_id: int, unit: str, scale: float = 1.0) -> SettingSpec:
        f = features[feature_id]
        low, high = f.ranges[0]
        return SettingSpec(name, "float", unit, minimum=_from_camera(low, scale), maximum=_from_camera(high, scale),
                           settable_while_streaming=bool(f.flags & streaming_ok))

    specs = [number("exposure_ms", fid.SHUTTER, "ms", 1000.0)]  # the SDK speaks seconds
    if fid.GAIN in features:
        specs.append(number("gain_db", fid.GAIN, "dB"))
    if fid.FRAME_RATE in features:
        specs.append(number("fps", fid.FRAME_RATE, "frames/s"))
    if fid.ROI in features:
        roi = features[fid.ROI].ranges
        width, height = roi[api.RoiParams.WIDTH], roi[api.RoiParams.HEIGHT]
        # ROI and pixel format change the frame buffer's size: never while streaming.
        specs.append(SettingSpec("roi", "roi", "px", minimum=max(width[0], height[0]),
                                 sensor=(int(width[1]), int(height[1])), step=1, settable_while_streaming=False))
    specs.append(SettingSpec("pixel_format", "choice", choices=formats, settable_while_streaming=False))
    trigger = features.get(fid.TRIGGER)
    if trigger is not None:
        specs.append(SettingSpec("trigger_mode", "choice", choices=TRIGGER_MODES,
                                 settable_while_streaming=bool(trigger.flags & streaming_ok)))
    return SettingSpecs({s.name: s for s in specs})


def _external_trigger_names(api: Any) -> dict[int, str]:
    """TriggerTypes values that wait for a signal from outside, by name (1.5.0: LINE1-LINE4, ACTION)."""
    types = api.TriggerTypes
    names = {types.HARDWARE: "line1"}
    for name in ("LINE1", "LINE2", "LINE3", "LINE4", "ACTION"):
        if hasattr(types, name):
            names[getattr(types, name)] = name.lower()
    return names


class _ReadDeadline:
    """Calls ``on_expiry(token)`` when a read armed with ``token`` outlives its deadline.

    ``getNextFrame`` has no timeout and, waiting for a hardware trigger, may block indefinitely;
    stopping the stream is the SDK's documented way to end it. One idle thread per driver, started
    on the first read; it wakes about once per timeout period, not once per frame.
    """

    def __init__(self, on_expiry: Callable[[int], None]) -> None:
        self._on_expiry = weakref.WeakMethod(on_expiry)  # do not keep a forgotten driver alive
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._waiting_until: float | None = None
        self._token = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> int:
        with self._cond:
            self._token += 1
            self._deadline = deadline
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="labcam-pixelink-deadline", daemon=True)
                self._thread.start()
            if self._waiting_until is None or deadline < self._waiting_until:
                self._cond.notify()
            return self._token

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None  # the thread notices when it next wakes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._deadline is None or self._deadline > time.monotonic()):
                    self._waiting_until = self._deadline
                    self._cond.wait(None if self._deadline is None else self._deadline - time.monotonic())
                self._waiting_until = None
                if self._closed:
                    return
                token, self._deadline = self._token, None
            on_expiry = self._on_expiry()
            if on_expiry is None:
                return
            on_expiry(token)
            del on_expiry
