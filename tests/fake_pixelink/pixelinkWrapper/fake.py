"""The fake PixeLINK SDK's cameras, and the control panel tests use to plug, break and trigger them.

``FAKE`` is the one ``FakeSdk`` of the process: the ``PxLApi`` functions in ``pixelink.py`` call
into it, and tests drive it (through the ``fake_sdk`` fixture):

    cam = fake_sdk.add_camera(1234)          # plug in a mono camera, serial 1234
    cam.inject_timeouts(3)                   # the next three getNextFrame calls time out
    fake_sdk.unplug(1234); fake_sdk.replug(1234)   # old handle dead, settings back to power-on
    fake_sdk.fail_import("no_library")       # `import pixelinkWrapper` raises OSError like without the SDK

What it models (see section 7 of /work/shared/reference/pixelink-api.md):

* cameras found by serial number, one controlling handle each (a second one is "in use"; across
  processes too when ``LABCAM_FAKE_PIXELINK_LOCKS`` names a folder: an flock'd file per serial),
  handles that go stale on replug, ``ApiNoCameraError`` while unplugged;
* features with the real parameter counts, mode taken from ``flags & MOD_BITS``, range checks,
  rounding reported as ``ApiSuccessParametersChanged``, exposure and frame rate limiting each other,
  ROI / pixel format / pixel addressing / trigger refused while streaming;
* a stream state machine and a *blocking* ``getNextFrame`` paced by the frame rate (or the
  exposure, or a trigger), that releases the GIL while it waits, and that a STOP, an uninitialize,
  an unplug or a replug from another thread wakes with the matching error; free running, the
  sensor keeps its own clock and the driver queues ``FRAME_BUFFERS`` frames, so a slow host gets the
  oldest queued frame and, once behind by more, loses frames (``ApiSuccessWithFrameLoss``);
* deterministic pixels (``_pixels.sensor_values``), frame numbers that survive STOP/START,
  injected timeouts, errors and frame loss, FRAME callbacks from their own thread.

Everything the fake does is guarded by one condition variable, ``FakeSdk._cond``; blocking waits
use ``Condition.wait`` so other threads (and the GIL) run meanwhile.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import _pixels
from ._abi import (
    BYTES_PER_PIXEL,
    Callback,
    FeatureFlags,
    FeatureId,
    InitializeExFlags,
    PixelAddressingParams,
    PixelFormat,
    ReturnCode,
    RoiParams,
    Settings,
    StreamState,
    TriggerParams,
    TriggerTypes,
    _CameraFeature,
    _CameraFeatures,
    _CameraIdInfo,
    _CameraInfo,
    _dataProcessFunction,
    _ErrorReport,
    _FeatureParam,
    _FrameDesc,
    return_code_name,
)

RC = ReturnCode
FF = FeatureFlags
FID = FeatureId

MIN_API_VERSION = "4.2.2.11"  # what the real wrapper's (buggy) version check compares against

TIMEOUT_CODES = frozenset({RC.ApiCameraTimeoutError, RC.ApiTimeoutError})

EXTERNAL_TRIGGERS = frozenset({TriggerTypes.LINE1, TriggerTypes.ACTION, TriggerTypes.LINE2, TriggerTypes.LINE3,
                               TriggerTypes.LINE4})
"""Trigger types that wait for a signal from outside (fire_trigger stands in for all of them)."""

FIXED_FRAME_RATE = 50.0
# Frames the driver queues for a free-running stream (getStreamState's numberFrameBuffers): getNextFrame
# returns the oldest; a host slower than the camera loses frames past these (pixelink-api.md, timing).
FRAME_BUFFERS = 4
"""Frames per second of a model without the FRAME_RATE feature."""

OPTIONAL_FEATURES = frozenset({FID.TRIGGER, FID.GAIN, FID.FRAME_RATE, FID.PIXEL_ADDRESSING, FID.ROI})
"""Features a model may lack (``add_camera(without=...)``)."""


def _f32(x: float) -> float:
    """``x`` as the camera stores it: the SDK passes every parameter as a C float."""
    return float(np.float32(x))


def import_failure(kind: str) -> BaseException:
    """A fresh exception like the one ``import pixelinkWrapper`` raises on a machine without the SDK.

    Kinds (see section 1.1 of the reference): ``no_library`` (libPxLApi.so not on the loader path),
    ``no_sdk_env`` ($PIXELINK_SDK_LIB unset), ``bad_sdk_dir`` ($PIXELINK_SDK_LIB points nowhere),
    ``short_version`` (the library file has a short version suffix).
    """
    if kind == "no_library":
        return OSError("libPxLApi.so: cannot open shared object file: No such file or directory")
    if kind == "no_sdk_env":
        return ValueError("invalid literal for int() with base 10: ''")
    if kind == "bad_sdk_dir":
        return subprocess.CalledProcessError(1, "find /opt/PixeLINK/lib -name 'libPxLApi*.so.*'")
    if kind == "short_version":
        return IndexError("list index out of range")
    raise ValueError(f"unknown import failure kind {kind!r}")


# --- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """What a camera says about one feature in ``getCameraFeatures``, plus its power-on value."""

    feature_id: int
    caps: int  # FeatureFlags as reported by getCameraFeatures (PRESENCE, supported modes, ...)
    ranges: tuple[tuple[float, float], ...]  # (min, max) per parameter
    default: tuple[float, ...]
    default_mode: int = FF.MANUAL


@dataclass
class _FeatureState:
    mode: int  # one of MANUAL, AUTO, ONEPUSH, OFF
    params: list[float]
    onepush_polls: int = 0  # getFeature polls left until a one-push adjustment reports done


class SetFeatureCall(NamedTuple):
    """One ``setFeature`` the camera received (after the wrapper's float conversion), and its answer."""

    feature_id: int
    flags: int
    params: tuple[float, ...]
    rc: int


@dataclass(frozen=True)
class CameraModel:
    """The fixed properties of a fake camera."""

    serial: int
    model_name: str
    colour: bool
    sensor: tuple[int, int]  # width, height
    adc_bits: int
    min_roi: int
    pixel_formats: frozenset[int]
    firmware: str = "3.1.0"
    absent: frozenset[int] = frozenset()  # optional features this model lacks (TRIGGER, GAIN, ...)
    mono16_byte_order: str = "big"  # how MONO16 samples are laid out ("big" or "little" endian)
    pixel_addressing_params: int = 4  # older cameras have fewer PIXEL_ADDRESSING parameters


def _feature_specs(model: CameraModel) -> dict[int, FeatureSpec]:
    width, height = model.sensor
    m = model.min_roi
    sws = FF.SETTABLE_WHILE_STREAMING
    native = (next(f for f in model.pixel_formats if f in _pixels.BAYER8_FORMATS) if model.colour
              else PixelFormat.MONO8)
    specs = [
        # Power-on values deliberately differ from labcam's defaults, so a driver that forgets to
        # apply a setting (e.g. after a reconnect) is caught.
        FeatureSpec(FID.SHUTTER, FF.PRESENCE | FF.MANUAL | FF.AUTO | FF.ONEPUSH | sws | FF.PERSISTABLE,
                    ((1e-5, 2.0),), (0.02,)),
        FeatureSpec(FID.GAIN, FF.PRESENCE | FF.MANUAL | sws | FF.PERSISTABLE, ((0.0, 24.0),), (2.0,)),
        FeatureSpec(FID.FRAME_RATE, FF.PRESENCE | FF.MANUAL | sws | FF.PERSISTABLE, ((1.0, 300.0),), (25.0,)),
        FeatureSpec(FID.ROI, FF.PRESENCE | FF.MANUAL | FF.PERSISTABLE,
                    ((0, width - m), (0, height - m), (m, width), (m, height)), (0, 0, width, height)),
        FeatureSpec(FID.PIXEL_ADDRESSING, FF.PRESENCE | FF.MANUAL | FF.PERSISTABLE,
                    ((1, 4), (0, 3), (1, 4), (1, 4))[: model.pixel_addressing_params],
                    (1, 0, 1, 1)[: model.pixel_addressing_params]),
        FeatureSpec(FID.PIXEL_FORMAT, FF.PRESENCE | FF.MANUAL | FF.PERSISTABLE,
                    ((0, max(model.pixel_formats)),), (native,)),
        FeatureSpec(FID.TRIGGER, FF.PRESENCE | FF.MANUAL | FF.OFF | FF.PERSISTABLE,
                    ((0, 14), (0, TriggerTypes.LINE4), (0, 1), (0, 10), (0, 65535)),
                    (0, TriggerTypes.HARDWARE, 1, 0, 0), default_mode=FF.OFF),
        FeatureSpec(FID.ACTUAL_FRAME_RATE, FF.PRESENCE | FF.READ_ONLY | sws, ((0.0, 300.0),), (0.0,)),
        FeatureSpec(FID.SENSOR_TEMPERATURE, FF.PRESENCE | FF.READ_ONLY | sws, ((-40.0, 100.0),), (38.5,)),
        FeatureSpec(FID.MAX_PIXEL_SIZE, FF.PRESENCE | FF.READ_ONLY, ((8, 16),), (model.adc_bits,)),
    ]
    return {s.feature_id: s for s in specs if s.feature_id not in model.absent}


# Rounding steps of the fake sensor: exposure in 10 us lines, gain in 0.1 dB, ROI origin on even
# pixels and ROI size in multiples of 8 (rounded down). Real cameras round in similar ways.
EXPOSURE_STEP_S = 1e-5
GAIN_STEP_DB = 0.1
ROI_ORIGIN_STEP = 2
ROI_SIZE_STEP = 8


# --- one power session of one camera -------------------------------------------------------------


class _CameraState:
    """Everything a camera forgets when it loses power: features, stream, frame counter, clock."""

    def __init__(self, model: CameraModel, power_on: Mapping[int, Sequence[float]]) -> None:
        self.model = model
        self.specs = _feature_specs(model)
        self.features = {
            fid: _FeatureState(spec.default_mode, [_f32(v) for v in spec.default])
            for fid, spec in self.specs.items()
        }
        for fid, params in power_on.items():
            self.features[fid].params = [_f32(v) for v in params]
        self.stream = StreamState.STOP
        self.stream_run = 0  # bumped whenever the stream leaves START: wakes blocked readers
        self.frame_number = 0  # USB semantics: counts from power-on, not reset by STOP/START
        self.clock_zero = time.monotonic()
        self.last_frame_at = self.clock_zero
        self.readers_waiting = 0
        self.trigger_waiters = 0
        self.pending_triggers = 0
        self.pending_software_triggers = 0
        self.injected_errors: list[int] = []
        self.pending_loss = 0
        self.user_channel: dict[int, _FeatureState] | None = None

    # -- derived values ---------------------------------------------------------------------------
    def value(self, fid: int, index: int = 0) -> float:
        return self.features[fid].params[index]

    def trigger_type(self) -> int | None:
        """None when free running, else the TriggerTypes value in force (every LINE waits for a pulse)."""
        trig = self.features.get(FID.TRIGGER)
        if trig is None or trig.mode == FF.OFF:
            return None
        kind = int(trig.params[TriggerParams.TYPE])
        return TriggerTypes.HARDWARE if kind in EXTERNAL_TRIGGERS else kind

    def exposure_s(self) -> float:
        return self.value(FID.SHUTTER)

    def frame_rate(self) -> float:
        """The frame rate in force; a camera without FRAME_RATE runs at its own fixed rate."""
        return self.value(FID.FRAME_RATE) if FID.FRAME_RATE in self.features else FIXED_FRAME_RATE

    def frame_period(self) -> float:
        return max(1.0 / self.frame_rate(), self.exposure_s())

    def pixel_format(self) -> int:
        return int(self.value(FID.PIXEL_FORMAT))

    def roi(self) -> tuple[int, int, int, int]:
        if FID.ROI not in self.features:  # no ROI feature: always the whole sensor
            return (0, 0, *self.model.sensor)
        return tuple(int(v) for v in self.features[FID.ROI].params)  # type: ignore[return-value]

    def decimation(self) -> tuple[int, int]:
        state = self.features.get(FID.PIXEL_ADDRESSING)
        if state is None:
            return 1, 1
        p = state.params
        if len(p) < 4:  # old cameras: one value for both directions
            return int(p[PixelAddressingParams.VALUE]), int(p[PixelAddressingParams.VALUE])
        return int(p[PixelAddressingParams.X_VALUE]), int(p[PixelAddressingParams.Y_VALUE])

    def image_shape(self) -> tuple[int, int]:
        """(width, height) of the image the camera sends."""
        _, _, w, h = self.roi()
        dx, dy = self.decimation()
        return w // dx, h // dy

    def image_bytes(self) -> int:
        w, h = self.image_shape()
        return math.ceil(w * h * BYTES_PER_PIXEL[self.pixel_format()])

    def clock(self) -> float:
        """The camera's own time stamp clock: seconds since power-on."""
        return time.monotonic() - self.clock_zero

    # -- features ---------------------------------------------------------------------------------
    def get_feature(self, fid: int) -> tuple[int, int, list[float]]:
        spec = self.specs.get(fid)
        if spec is None:
            return RC.ApiNotSupportedError, 0, []
        state = self.features[fid]
        if fid == FID.ACTUAL_FRAME_RATE:
            state.params = [_f32(1.0 / self.frame_period()) if self.stream == StreamState.START else 0.0]
        flags = FF.PRESENCE | state.mode | (spec.caps & FF.READ_ONLY)
        if state.mode == FF.ONEPUSH:
            # A one-push adjustment reports ONEPUSH for a few polls, then settles to MANUAL.
            state.onepush_polls -= 1
            if state.onepush_polls <= 0:
                state.mode = FF.MANUAL
        return RC.ApiSuccess, flags, list(state.params)

    def set_feature(self, fid: int, flags: int, params: Sequence[float]) -> tuple[int, str]:
        """Apply a setFeature; returns (rc, report). Nothing changes unless rc >= 0."""
        spec = self.specs.get(fid)
        if spec is None:
            return RC.ApiNotSupportedError, f"feature {fid} is not supported by this camera"
        if spec.caps & FF.READ_ONLY:
            return RC.ApiNotSupportedError, f"feature {fid} is read-only"
        # The mode comes from the mode bits only: samples send ~MOD_BITS | MANUAL (junk high bits).
        mode = (flags & 0xFFFFFFFF) & FF.MOD_BITS
        if mode not in (FF.MANUAL, FF.AUTO, FF.ONEPUSH, FF.OFF) or not spec.caps & mode:
            return RC.ApiInvalidParameterError, f"mode bits {mode:#x} not supported by feature {fid}"
        if len(params) != len(spec.ranges):
            return RC.ApiInvalidParameterError, (
                f"feature {fid} takes {len(spec.ranges)} parameters, got {len(params)}"
            )
        if self.stream == StreamState.START and not spec.caps & FF.SETTABLE_WHILE_STREAMING:
            return RC.ApiNotPermittedWhileStreaming, f"feature {fid} cannot change while streaming"
        values = [_f32(v) for v in params]
        for i, (v, (lo, hi)) in enumerate(zip(values, spec.ranges, strict=True)):
            if not (lo <= v <= hi) or math.isnan(v):
                return RC.ApiOutOfRangeError, f"parameter {i} = {v:g} outside [{lo:g}, {hi:g}]"
        if mode != FF.OFF:
            checked = self._check_and_round(fid, values)
            if isinstance(checked, tuple):
                return checked
            values = checked
        state = self.features[fid]
        changed = [_f32(v) for v in values] != [_f32(v) for v in params]
        state.params = [_f32(v) for v in values]
        state.mode = mode
        state.onepush_polls = 3 if mode == FF.ONEPUSH else 0
        if changed:
            return RC.ApiSuccessParametersChanged, f"feature {fid} adjusted to {state.params}"
        return RC.ApiSuccess, ""

    def _check_and_round(self, fid: int, v: list[float]) -> list[float] | tuple[int, str]:
        """Feature-specific validity and rounding. Returns the values to store or (rc, report)."""
        free_running = self.trigger_type() is None
        if fid == FID.SHUTTER:
            v[0] = max(EXPOSURE_STEP_S, round(v[0] / EXPOSURE_STEP_S) * EXPOSURE_STEP_S)
            limit = 1.0 / self.frame_rate()
            # Without FRAME_RATE the camera just slows down to fit the exposure.
            if free_running and FID.FRAME_RATE in self.features and v[0] > limit * (1 + 1e-6):
                # The exposure cannot outlast a frame at the current frame rate: clamp it.
                v[0] = math.floor(limit / EXPOSURE_STEP_S + 1e-6) * EXPOSURE_STEP_S  # 1e-6: 0.04/1e-5 is 3999.99...
        elif fid == FID.GAIN:
            v[0] = round(v[0] / GAIN_STEP_DB) * GAIN_STEP_DB
        elif fid == FID.FRAME_RATE:
            limit = 1.0 / self.exposure_s()
            if free_running and v[0] > limit * (1 + 1e-6):
                v[0] = limit  # the frame rate cannot exceed what the exposure allows
        elif fid == FID.ROI:
            width, height = self.model.sensor
            left = v[RoiParams.LEFT] // ROI_ORIGIN_STEP * ROI_ORIGIN_STEP
            top = v[RoiParams.TOP] // ROI_ORIGIN_STEP * ROI_ORIGIN_STEP
            w = v[RoiParams.WIDTH] // ROI_SIZE_STEP * ROI_SIZE_STEP
            h = v[RoiParams.HEIGHT] // ROI_SIZE_STEP * ROI_SIZE_STEP
            if w < self.model.min_roi or h < self.model.min_roi or left + w > width or top + h > height:
                return RC.ApiOutOfRangeError, f"ROI {v} does not fit the {width}x{height} sensor"
            v = [left, top, w, h]
        elif fid == FID.PIXEL_FORMAT:
            if int(v[0]) == v[0] and int(v[0]) in _pixels.BAYER8_FORMATS and self.model.colour:
                # A colour sensor has one colour filter order: asked for another Bayer8 order, it
                # answers with its own (and ApiSuccessParametersChanged).
                native = next(f for f in self.model.pixel_formats if f in _pixels.BAYER8_FORMATS)
                v = [float(native)]
            if int(v[0]) != v[0] or int(v[0]) not in self.model.pixel_formats:
                return RC.ApiUnsupportedPixelFormatError, f"pixel format {v[0]:g} not supported"
        elif fid == FID.PIXEL_ADDRESSING:
            value, x, y = (v[0], v[0], v[0]) if len(v) < 4 else (v[0], v[2], v[3])
            if any(int(a) != a or int(a) not in (1, 2, 4) for a in (value, x, y)):
                return RC.ApiInvalidParameterError, f"pixel addressing {v} not supported"
        elif fid == FID.TRIGGER and int(v[TriggerParams.TYPE]) != v[TriggerParams.TYPE]:
            return RC.ApiInvalidParameterError, f"trigger type {v[TriggerParams.TYPE]} invalid"
        return v

    # -- frames -----------------------------------------------------------------------------------
    def capture(self, destination: Any) -> tuple[int, _FrameDesc]:
        """Take the next frame into ``destination`` (ctypes object or address); returns (rc, desc)."""
        loss, self.pending_loss = self.pending_loss, 0
        now = time.monotonic()
        if self.trigger_type() is None:
            # Free running, the sensor keeps its own clock: this frame was exposed one period after
            # the last one, however late the host asks for it. The driver queues FRAME_BUFFERS
            # frames and hands out the oldest; a host later than that loses the frames in between.
            period = self.frame_period()
            due = self.last_frame_at + period
            behind = int((now - due) / period)
            if behind >= FRAME_BUFFERS:
                skipped = behind - FRAME_BUFFERS + 1
                loss += skipped
                due += skipped * period
            self.last_frame_at = due
        else:
            self.last_frame_at = now
        self.frame_number += 1 + loss
        fmt = self.pixel_format()
        values = _pixels.sensor_values(self.frame_number, self.roi(), self.decimation(), self.model.adc_bits)
        data = _pixels.encode(values, fmt, self.model.adc_bits, self.model.mono16_byte_order)
        ctypes.memmove(destination, data, len(data))
        return (RC.ApiSuccessWithFrameLoss if loss else RC.ApiSuccess), self.descriptor()

    def descriptor(self) -> _FrameDesc:
        desc = _FrameDesc()
        desc.uSize = ctypes.sizeof(desc)
        stamp = self.last_frame_at - self.clock_zero
        desc.fFrameTime = stamp
        desc.dFrameTime = stamp
        desc.uFrameNumber = self.frame_number & 0xFFFFFFFF
        desc.u64FrameNumber = self.frame_number
        desc.Shutter.fValue = self.value(FID.SHUTTER)
        desc.Gain.fValue = self.value(FID.GAIN) if FID.GAIN in self.features else 0.0
        desc.FrameRate.fValue = self.frame_rate()
        desc.ActualFrameRate.fValue = 1.0 / self.frame_period()
        left, top, w, h = self.roi()
        desc.Roi.fLeft, desc.Roi.fTop, desc.Roi.fWidth, desc.Roi.fHeight = left, top, w, h
        dx, dy = self.decimation()
        desc.PixelAddressingValue.fHorizontal, desc.PixelAddressingValue.fVertical = dx, dy
        desc.Decimation.fValue = dx
        desc.PixelFormat.fValue = self.pixel_format()
        desc.MaxPixelSize.fValue = self.model.adc_bits
        trig = self.features[FID.TRIGGER].params if FID.TRIGGER in self.features else [0.0] * 5
        desc.Trigger.fMode, desc.Trigger.fType, desc.Trigger.fPolarity = trig[0], trig[1], trig[2]
        desc.Trigger.fDelay, desc.Trigger.fParameter = trig[3], trig[4]
        return desc


# --- cameras, handles, the SDK -------------------------------------------------------------------


class FakeCamera:
    """One physical fake camera: what tests look at and poke.

    ``state`` is replaced on every replug (power cycle), so everything the camera "remembers" lives
    there. Reading attributes is safe from any thread; use the methods to change things.
    """

    def __init__(self, sdk: FakeSdk, model: CameraModel, power_on: Mapping[int, Sequence[float]]) -> None:
        self._sdk = sdk
        self.model = model
        self.power_on = dict(power_on)
        self.state = _CameraState(model, self.power_on)
        self.present = True
        self.in_use_elsewhere = False  # another program holds the camera
        self.low_memory_on_start = False  # START answers ApiSuccessLowMemory (small Linux USB buffers)
        self.unplugged_frame_rc = RC.ApiNoCameraError
        self.unplugged_call_rc = RC.ApiNoCameraError  # what other calls answer while unplugged
        self.received: list[SetFeatureCall] = []
        self.refused: dict[int, int] = {}  # feature id -> rc every setFeature of it gets

    @property
    def serial(self) -> int:
        return self.model.serial

    # -- observing ----------------------------------------------------------------------------
    def feature(self, fid: int) -> list[float]:
        """The parameters of feature ``fid`` as the camera holds them now."""
        with self._sdk._cond:
            return list(self.state.features[fid].params)

    def feature_mode(self, fid: int) -> int:
        with self._sdk._cond:
            return self.state.features[fid].mode

    @property
    def stream_state(self) -> int:
        return self.state.stream

    @property
    def frame_number(self) -> int:
        """Number of the last frame the camera sent."""
        return self.state.frame_number

    @property
    def open_handles(self) -> int:
        """Handles currently initialized on this camera (stale ones not counted)."""
        with self._sdk._cond:
            return sum(1 for c in self._sdk._connections.values() if c.camera is self and c.live())

    def expected_values(self, frame_number: int) -> np.ndarray:
        """The ADC values of frame ``frame_number`` with the current ROI and pixel addressing."""
        st = self.state
        return _pixels.sensor_values(frame_number, st.roi(), st.decimation(), self.model.adc_bits)

    def expected_rgb(self, frame_number: int) -> np.ndarray:
        """The RGB image ``formatImage`` makes of frame ``frame_number`` (colour cameras)."""
        mono8 = (self.expected_values(frame_number) >> (self.model.adc_bits - 8)).astype(np.uint8)
        return _pixels.demosaic_rgb(mono8, self.state.pixel_format())

    # -- poking -------------------------------------------------------------------------------
    def inject_timeouts(self, count: int, rc: int = RC.ApiCameraTimeoutError) -> None:
        """The next ``count`` getNextFrame calls wait one frame period, then fail with ``rc``."""
        self.inject_frame_errors(rc, count)

    def inject_frame_errors(self, rc: int, count: int = 1) -> None:
        """The next ``count`` getNextFrame calls fail with ``rc`` (timeouts wait a period first)."""
        with self._sdk._cond:
            self.state.injected_errors.extend([rc] * count)

    def inject_frame_loss(self, lost: int) -> None:
        """The camera drops ``lost`` frames before the next one (returned with ApiSuccessWithFrameLoss)."""
        with self._sdk._cond:
            self.state.pending_loss += lost

    def fire_trigger(self) -> bool:
        """A hardware trigger pulse. Returns False when nobody was waiting: the pulse is lost."""
        with self._sdk._cond:
            st = self.state
            if not self.present or st.trigger_waiters <= st.pending_triggers:
                return False
            st.pending_triggers += 1
            self._sdk._cond.notify_all()
            return True

    def wait_for_reader(self, timeout: float) -> bool:
        """Block until some thread is waiting inside getNextFrame (or a FRAME callback loop waits for a trigger)."""
        with self._sdk._cond:
            return self._sdk._cond.wait_for(lambda: self.state.readers_waiting > 0, timeout)

    def clear_injections(self) -> None:
        """Forget injected errors and frame loss not consumed yet."""
        with self._sdk._cond:
            self.state.injected_errors.clear()
            self.state.pending_loss = 0

    def refuse_feature(self, fid: int, rc: int = RC.ApiOutOfRangeError) -> None:
        """Every later setFeature of ``fid`` fails with ``rc`` (a firmware that rejects a value)."""
        with self._sdk._cond:
            self.refused[fid] = rc

    def force_feature(self, fid: int, params: Sequence[float]) -> None:
        """Change a feature behind the driver's back (as another program with access would)."""
        with self._sdk._cond:
            self.state.features[fid].params = [_f32(v) for v in params]
            self._sdk._cond.notify_all()


class _SdkCallError(Exception):
    """An SDK call fails with ``rc``: ``_sdk_call`` turns it into the ``(rc,)`` tuple."""

    def __init__(self, rc: int, report: str = "", conn: _Connection | None = None) -> None:
        super().__init__(rc)
        self.rc, self.report, self.conn = rc, report, conn


def _sdk_call(function: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run an SDK entry point under the fake's lock; a ``_SdkCallError`` becomes ``(rc,)`` and is
    remembered on its handle for getErrorReport, under the SDK function name ``function``."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: FakeSdk, *args: Any) -> Any:
            with self._cond:
                try:
                    return method(self, *args)
                except _SdkCallError as failed:
                    if failed.conn is not None:
                        failed.conn.last_error = (function, failed.rc, failed.report or return_code_name(failed.rc))
                    return (failed.rc,)

        return call

    return decorate


@dataclass(eq=False)
class _Connection:
    """One handle from initialize()."""

    handle: int
    camera: FakeCamera
    state: _CameraState  # the power session it was opened in: a replug makes the handle stale
    monitor_only: bool
    closed: bool = False
    readers: int = 0
    callback: tuple[Any, Any] | None = None  # (fn, context)
    callback_thread: threading.Thread | None = None
    last_error: tuple[str, int, str] = ("", RC.ApiSuccess, "")
    process_lock: int | None = None  # fd of the flock'd file that holds the camera for this process

    def stale(self) -> bool:
        return self.closed or self.state is not self.camera.state

    def release_process_lock(self) -> None:
        if self.process_lock is not None:
            os.close(self.process_lock)  # closing the file releases the flock
            self.process_lock = None

    def live(self) -> bool:
        return not self.stale() and self.camera.present


LOCK_DIR_ENV = "LABCAM_FAKE_PIXELINK_LOCKS"
"""A folder shared by processes: with it set, a camera is held across processes, as a real USB camera
is, by an flock'd file per serial in it. A second process's initialize answers ApiCameraInUseError
(the real SDK's code for a camera another program controls), and the lock goes when the holder
uninitializes or dies (the OS releases the flock, as it releases the USB device)."""


def _take_process_lock(serial: int) -> int | None:
    """The fd holding camera ``serial`` for this process (None without the env var), or
    ``_SdkCallError(ApiCameraInUseError)`` when another process holds it."""
    folder = os.environ.get(LOCK_DIR_ENV)
    if not folder:
        return None
    import fcntl

    fd = os.open(os.path.join(folder, f"pixelink-{serial}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _SdkCallError(RC.ApiCameraInUseError) from None
    return fd


@dataclass
class FakeSdk:
    """The fake SDK's whole world: cameras by serial, open handles, import behaviour."""

    _cond: threading.Condition = field(default_factory=threading.Condition)
    _cameras: dict[int, FakeCamera] = field(default_factory=dict)
    _connections: dict[int, _Connection] = field(default_factory=dict)
    _next_handle: int = 0x5A000001
    import_failure: str | BaseException | None = None
    version_warning: str | None = None
    import_delay: float = 0.0  # seconds the import blocks (a version probe scanning a big tree)
    imports_seen: list[str | None] = field(default_factory=list)  # $PIXELINK_SDK_LIB at each import
    _import_release: threading.Event = field(default_factory=threading.Event)
    import_started: threading.Event = field(default_factory=threading.Event)  # set when an import begins
    _slow_importers: list[threading.Thread] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # API misuse the real SDK leaves undefined

    # -- test control ------------------------------------------------------------------------------
    def add_camera(
        self,
        serial: int,
        *,
        colour: bool = False,
        model_name: str | None = None,
        sensor: tuple[int, int] = (640, 480),
        adc_bits: int = 12,
        min_roi: int = 32,
        power_on: Mapping[int, Sequence[float]] | None = None,
        without: Iterable[int] = (),
        bayer8: int = PixelFormat.BAYER8_GRBG,
        mono16_byte_order: str = "big",
        pixel_addressing_params: int = 4,
    ) -> FakeCamera:
        """Plug in a camera. ``power_on`` overrides power-on feature values ({FeatureId: params}).

        ``without``: optional features (``OPTIONAL_FEATURES``) the model lacks. ``bayer8``: the
        colour filter order of a colour sensor (asked for another order, it substitutes its own).
        ``mono16_byte_order``: "big" (what labcam assumes) or "little".
        """
        absent = frozenset(without)
        if not absent <= OPTIONAL_FEATURES:
            raise ValueError(f"features {sorted(absent - OPTIONAL_FEATURES)} are not optional")
        if mono16_byte_order not in ("big", "little"):
            raise ValueError(f"mono16_byte_order={mono16_byte_order!r}: 'big' or 'little'")
        formats = {PixelFormat.MONO8, PixelFormat.MONO16}
        bayer16 = {PixelFormat.BAYER8_GRBG: PixelFormat.BAYER16_GRBG, PixelFormat.BAYER8_RGGB: PixelFormat.BAYER16_RGGB,
                   PixelFormat.BAYER8_GBRG: PixelFormat.BAYER16_GBRG, PixelFormat.BAYER8_BGGR: PixelFormat.BAYER16_BGGR}
        formats |= {bayer8, bayer16[bayer8]} if colour else {PixelFormat.MONO12_PACKED}
        model = CameraModel(
            serial=serial,
            model_name=model_name or ("PL-D755CU" if colour else "PL-D752MU"),
            colour=colour,
            sensor=sensor,
            adc_bits=adc_bits,
            min_roi=min_roi,
            pixel_formats=frozenset(formats),
            absent=absent,
            mono16_byte_order=mono16_byte_order,
            pixel_addressing_params=pixel_addressing_params,
        )
        with self._cond:
            if serial in self._cameras:
                raise ValueError(f"a fake camera with serial {serial} exists already")
            cam = FakeCamera(self, model, power_on or {})
            self._cameras[serial] = cam
            return cam

    def camera(self, serial: int) -> FakeCamera:
        return self._cameras[serial]

    def unplug(self, serial: int, *, frame_rc: int = RC.ApiNoCameraError, call_rc: int | None = None) -> None:
        """Pull the cable. Blocked getNextFrame calls wake with ``frame_rc`` (later calls too);
        every other call on its handles answers ``call_rc`` (default: the same as ``frame_rc``,
        or ApiNoCameraError when ``frame_rc`` is a timeout).

        ``frame_rc`` may be a timeout code: some USB stacks only report the loss as timeouts,
        which is why drivers probe ``getFeature`` after several. Any other code is possible too:
        the SDK defines about a hundred (ApiNoDeviceError, ApiLinkDriverError, ...) and which
        one a USB unplug gives is not documented.
        """
        with self._cond:
            cam = self._cameras[serial]
            cam.present = False
            cam.unplugged_frame_rc = frame_rc
            if call_rc is None:
                call_rc = RC.ApiNoCameraError if frame_rc in TIMEOUT_CODES else frame_rc
            cam.unplugged_call_rc = call_rc
            self._cond.notify_all()

    def replug(self, serial: int) -> None:
        """Plug the camera back: a new power session, so old handles are invalid and settings are back to power-on."""
        with self._cond:
            cam = self._cameras[serial]
            cam.state = _CameraState(cam.model, cam.power_on)
            cam.present = True
            self._cond.notify_all()

    def fail_import(self, failure: str | BaseException) -> None:
        """Make the next ``import pixelinkWrapper`` fail like it does without the native SDK.

        ``failure`` is a kind understood by ``import_failure`` or an exception to raise.
        """
        self.import_failure = failure
        self._forget_loaded_wrapper()

    def allow_import(self) -> None:
        self.import_failure = None
        self._forget_loaded_wrapper()

    def slow_import(self, seconds: float) -> None:
        """Make the next imports block ``seconds`` (until ``reset``), as the wrapper's
        ``find $PIXELINK_SDK_LIB`` does when the variable is unset and the current folder is huge."""
        self.import_delay = seconds
        self._import_release.clear()
        self._forget_loaded_wrapper()

    def print_version_warning(self, installed: str = "4.2.10.3") -> None:
        """Make the import print the wrapper's spurious version WARNING to stdout, as 1.5.0 does."""
        self.version_warning = installed
        self._forget_loaded_wrapper()

    def reset(self) -> None:
        """Unplug everything, wake every waiter, stop callback threads, forget import switches."""
        with self._cond:
            threads = [c.callback_thread for c in self._connections.values() if c.callback_thread]
            for conn in self._connections.values():
                conn.closed = True
                conn.callback = None
                conn.release_process_lock()
            self._connections.clear()
            self._cameras.clear()
            self.import_failure = None
            self.version_warning = None
            self.import_delay = 0.0
            self._import_release.set()  # ends a slow import still running in some thread
            importers, self._slow_importers = self._slow_importers, []
            self.imports_seen.clear()
            self.import_started.clear()
            self.violations.clear()
            self._cond.notify_all()
        for thread in threads + [t for t in importers if t is not threading.current_thread()]:
            thread.join(timeout=5)

    def _forget_loaded_wrapper(self) -> None:
        # The next `import pixelinkWrapper` runs the package again (and so the import switches);
        # this control module stays loaded, so its state survives a failed import.
        for name in ("pixelinkWrapper", "pixelinkWrapper.pixelink"):
            sys.modules.pop(name, None)

    def on_import(self) -> None:
        """Called by the package ``__init__``: block, fail or warn like the real import does.

        On Linux the real class body runs ``find $PIXELINK_SDK_LIB -name 'libPxLApi*.so.*'`` with
        ``check=True`` and parses a version from the last name found: with the variable unset it
        searches the current folder (slow, then ValueError for an empty version); pointing nowhere
        it raises CalledProcessError. The fake checks the variable the same way, without the scan.
        """
        sdk_lib = os.environ.get("PIXELINK_SDK_LIB")
        self.imports_seen.append(sdk_lib)
        self.import_started.set()
        if self.import_delay:
            self._slow_importers.append(threading.current_thread())
        if self.import_delay and self._import_release.wait(self.import_delay):
            # reset() ended the wait: fail, so no half-set-up module outlives the test that slowed it.
            raise OSError("the fake SDK was reset during a slow import")
        failure = self.import_failure
        if failure is not None:
            raise import_failure(failure) if isinstance(failure, str) else failure
        if sys.platform.startswith("linux"):
            if not sdk_lib:
                raise import_failure("no_sdk_env")
            if not os.path.exists(sdk_lib):
                raise import_failure("bad_sdk_dir")
            found = [sdk_lib] if os.path.isfile(sdk_lib) else glob.glob(os.path.join(sdk_lib, "**", "libPxLApi*.so.*"),
                                                                         recursive=True)
            version = os.path.basename(found[-1]).replace("libPxLApi.so.", "") if found else ""
            if not version:
                raise import_failure("no_sdk_env")
            if len(version.split(".")) < 4:
                raise import_failure("short_version")
        if self.version_warning:
            # Same text and channel (stdout, via print) as the wrapper's _isApiSupported warning.
            print(
                f"WARNING: Pixelink API Version {self.version_warning} detected. This Python wrapper "
                f"was designed to API Version {MIN_API_VERSION} - upgrade your Pixelink SDK."
            )

    # -- helpers for the SDK entry points ----------------------------------------------------------
    def _connection(self, handle: Any, *, present: bool = True) -> _Connection:
        """The connection of ``handle``; raises ``_SdkCallError`` for an unknown or stale handle and,
        with ``present``, for a camera that is unplugged."""
        conn = self._connections.get(handle) if isinstance(handle, int) else None
        if conn is None or conn.stale():
            raise _SdkCallError(RC.ApiInvalidHandleError, conn=conn)
        if present and not conn.camera.present:
            raise _SdkCallError(conn.camera.unplugged_call_rc, conn=conn)
        return conn

    def _wait(
        self,
        deadline: float | None,
        interrupted: Callable[[], int | None],
        ready: Callable[[], bool] = lambda: False,
    ) -> int | None:
        """Wait (lock held; released while waiting) until ``ready()`` or ``deadline``.

        Returns None when ready or at the deadline, or the rc ``interrupted()`` reports.
        """
        while True:
            rc = interrupted()
            if rc is not None:
                return rc
            if ready():
                return None
            if deadline is None:
                self._cond.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._cond.wait(remaining)

    # -- SDK entry points (called by PxLApi; each runs under the lock, see _sdk_call) ---------------
    @_sdk_call("PxLGetNumberCamerasEx")
    def get_number_cameras(self) -> tuple:
        infos = []
        for cam in self._cameras.values():
            if cam.present:
                info = _CameraIdInfo()
                info.StructSize = ctypes.sizeof(info)
                info.CameraSerialNum = cam.serial
                infos.append(info)
        return (RC.ApiSuccess, infos)

    @_sdk_call("PxLInitializeEx")
    def initialize(self, serial: int, flags: int) -> tuple:
        present = [c for c in self._cameras.values() if c.present]
        if serial == 0:  # "any camera"
            cam = present[0] if present else None
        else:
            cam = self._cameras.get(serial)
            cam = cam if cam is not None and cam.present else None
        if cam is None:
            raise _SdkCallError(RC.ApiNoCameraError)
        monitor = bool(flags & InitializeExFlags.MONITOR_ACCESS_ONLY)
        held = cam.in_use_elsewhere or any(
            c.camera is cam and c.live() and not c.monitor_only for c in self._connections.values()
        )
        if held and not monitor:
            raise _SdkCallError(RC.ApiCameraInUseError)
        process_lock = None if monitor else _take_process_lock(cam.serial)
        if flags & InitializeExFlags.ISSUE_STREAM_STOP and not monitor:
            self._set_stream(cam.state, StreamState.STOP)
        handle = self._next_handle
        self._next_handle += 0x10
        self._connections[handle] = _Connection(handle, cam, cam.state, monitor, process_lock=process_lock)
        return (RC.ApiSuccess, handle)

    @_sdk_call("PxLUninitialize")
    def uninitialize(self, handle: Any) -> tuple:
        conn = self._connections.pop(handle, None) if isinstance(handle, int) else None
        if conn is None or conn.closed:
            raise _SdkCallError(RC.ApiInvalidHandleError)
        was_stale = conn.stale()
        if conn.readers:
            self.violations.append(
                f"uninitialize({handle:#x}) while {conn.readers} getNextFrame call(s) blocked on it"
            )
        conn.closed = True
        conn.callback = None
        conn.release_process_lock()
        self._cond.notify_all()
        # The stream is left as it is: a camera keeps streaming until stopped (or until the next
        # initialize with ISSUE_STREAM_STOP), which is why drivers stop before they let go.
        return (RC.ApiInvalidHandleError,) if was_stale else (RC.ApiSuccess,)

    @_sdk_call("PxLGetCameraInfo")
    def get_camera_info(self, handle: Any) -> tuple:
        model = self._connection(handle).camera.model
        info = _CameraInfo()
        info.VendorName = b"PixeLINK"
        info.ModelName = model.model_name.encode()
        info.Description = f"PixeLINK {model.model_name} (fake)".encode()
        info.SerialNumber = str(model.serial).encode()
        info.FirmwareVersion = model.firmware.encode()
        info.FPGAVersion = b"2.5.0"
        info.XMLVersion = b"1.0.0"
        info.BootloadVersion = b"1.0.0"
        return (RC.ApiSuccess, info)

    @_sdk_call("PxLGetCameraFeatures")
    def get_camera_features(self, handle: Any, feature_id: int) -> tuple:
        conn = self._connection(handle)
        specs = conn.state.specs
        if feature_id == FID.ALL:
            chosen = list(specs.values())
        elif feature_id in specs:
            chosen = [specs[feature_id]]
        else:
            raise _SdkCallError(RC.ApiNotSupportedError, conn=conn)
        features = (_CameraFeature * len(chosen))()
        for slot, spec in zip(features, chosen, strict=True):
            params = (_FeatureParam * len(spec.ranges))(*(_FeatureParam(lo, hi) for lo, hi in spec.ranges))
            slot.uFeatureId = spec.feature_id
            slot.uFlags = spec.caps
            slot.uNumberOfParameters = len(spec.ranges)
            slot.Params = ctypes.cast(params, ctypes.POINTER(_FeatureParam))  # ctypes keeps params alive
        out = _CameraFeatures()
        out.uSize = ctypes.sizeof(out)
        out.uNumberOfFeatures = len(chosen)
        out.Features = ctypes.cast(features, ctypes.POINTER(_CameraFeature))
        return (RC.ApiSuccess, out)

    @_sdk_call("PxLGetFeature")
    def get_feature(self, handle: Any, feature_id: int) -> tuple:
        conn = self._connection(handle)
        rc, flags, params = conn.state.get_feature(feature_id)
        if rc < 0:
            raise _SdkCallError(rc, conn=conn)
        return (rc, flags, params)

    @_sdk_call("PxLSetFeature")
    def set_feature(self, handle: Any, feature_id: int, flags: int, params: Sequence[float]) -> tuple:
        conn = self._connection(handle)
        if conn.monitor_only:
            raise _SdkCallError(RC.ApiRequiresControlAccess, conn=conn)
        if feature_id in conn.camera.refused:
            rc, report = conn.camera.refused[feature_id], "refused (test setting)"
        else:
            rc, report = conn.state.set_feature(feature_id, flags, params)
        conn.camera.received.append(SetFeatureCall(feature_id, flags, tuple(params), rc))
        self._cond.notify_all()
        if rc < 0:
            raise _SdkCallError(rc, report, conn)
        return (rc,)

    def _set_stream(self, st: _CameraState, state: int) -> None:
        if st.stream == StreamState.START and state != StreamState.START:
            st.stream_run += 1  # wakes every reader blocked on this stream
        if state == StreamState.START and st.stream != StreamState.START:
            st.last_frame_at = time.monotonic()
        st.stream = state
        self._cond.notify_all()

    @_sdk_call("PxLSetStreamState")
    def set_stream_state(self, handle: Any, state: int) -> tuple:
        conn = self._connection(handle)
        if conn.monitor_only:
            raise _SdkCallError(RC.ApiRequiresControlAccess, conn=conn)
        if state not in (StreamState.START, StreamState.PAUSE, StreamState.STOP):
            raise _SdkCallError(RC.ApiInvalidParameterError, conn=conn)
        st = conn.state
        if state == StreamState.START and st.stream == StreamState.START:
            return (RC.ApiSuccessAlreadyRunning,)
        self._set_stream(st, state)
        if state == StreamState.START and conn.camera.low_memory_on_start:
            return (RC.ApiSuccessLowMemory,)
        return (RC.ApiSuccess,)

    @_sdk_call("PxLGetStreamState")
    def get_stream_state(self, handle: Any) -> tuple:
        return (RC.ApiSuccess, self._connection(handle).state.stream, FRAME_BUFFERS)

    @_sdk_call("PxLGetCurrentTimestamp")
    def get_current_timestamp(self, handle: Any) -> tuple:
        return (RC.ApiSuccess, self._connection(handle).state.clock())

    @_sdk_call("PxLGetErrorReport")
    def get_error_report(self, handle: Any) -> tuple:
        conn = self._connections.get(handle) if isinstance(handle, int) else None
        if conn is None:
            return (RC.ApiInvalidHandleError,)
        function, rc, report = conn.last_error
        out = _ErrorReport()
        out.uReturnCode = rc
        out.strFunctionName = function.encode()[:31]
        out.strReturnCode = return_code_name(rc).encode()[:31]
        out.strReport = report.encode()[:255]
        return (RC.ApiSuccess, out)

    @_sdk_call("PxLLoadSettings")
    def load_settings(self, handle: Any, channel: int) -> tuple:
        conn = self._connection(handle)
        st = conn.state
        if st.stream == StreamState.START:
            raise _SdkCallError(RC.ApiNotPermittedWhileStreaming, conn=conn)
        if channel == Settings.SETTINGS_FACTORY:
            st.features = _CameraState(st.model, {}).features
        elif channel == Settings.SETTINGS_USER and st.user_channel is not None:
            st.features = {k: _FeatureState(v.mode, list(v.params)) for k, v in st.user_channel.items()}
        else:
            raise _SdkCallError(RC.ApiInvalidParameterError, conn=conn)
        return (RC.ApiSuccess,)

    @_sdk_call("PxLSaveSettings")
    def save_settings(self, handle: Any, channel: int) -> tuple:
        conn = self._connection(handle)
        if channel != Settings.SETTINGS_USER:
            raise _SdkCallError(RC.ApiInvalidParameterError, conn=conn)
        st = conn.state
        st.user_channel = {k: _FeatureState(v.mode, list(v.params)) for k, v in st.features.items()}
        return (RC.ApiSuccess,)

    @_sdk_call("PxLSetFrameBufferPolicy")
    def ping(self, handle: Any) -> tuple:
        """Calls the fake accepts without modelling them (frame buffer policy, event callbacks)."""
        self._connection(handle)
        return (RC.ApiSuccess,)

    @_sdk_call("PxLGetNextFrame")
    def get_next_frame(self, handle: Any, destination: Any, size: int) -> tuple:
        """The blocking heart of the fake: wait for the next frame and copy it into ``destination``."""
        conn = self._connection(handle, present=False)
        if not conn.camera.present:
            return self._unplugged_frame(conn)
        if conn.callback is not None:
            raise _SdkCallError(RC.ApiGetNextFrameBusy, "a FRAME callback is registered", conn)
        st = conn.state
        if st.stream != StreamState.START:
            raise _SdkCallError(RC.ApiNoStreamError, "the stream is not started", conn)
        if size < st.image_bytes():
            raise _SdkCallError(RC.ApiBufferTooSmall, f"buffer of {size} bytes, frame needs {st.image_bytes()}", conn)
        run = st.stream_run

        def interrupted() -> int | None:
            if conn.stale():
                return RC.ApiInvalidHandleError  # uninitialized or replugged while we waited
            if not conn.camera.present:
                return conn.camera.unplugged_frame_rc
            if st.stream_run != run:
                return RC.ApiStreamStopped
            return None

        conn.readers += 1
        st.readers_waiting += 1
        self._cond.notify_all()
        try:
            failed = self._wait_for_frame(st, interrupted)
        finally:
            conn.readers -= 1
            st.readers_waiting -= 1
        if failed is not None:
            raise _SdkCallError(failed, conn=conn)
        return st.capture(destination)

    def _wait_for_frame(self, st: _CameraState, interrupted: Callable[[], int | None]) -> int | None:
        """Wait until the camera has a frame for a getNextFrame; None, or the rc to fail with."""
        if st.injected_errors:
            rc = st.injected_errors.pop(0)
            if rc in TIMEOUT_CODES:  # a timeout takes its time
                return self._wait(time.monotonic() + st.frame_period(), interrupted) or rc
            return rc
        trigger = st.trigger_type()
        if trigger == TriggerTypes.HARDWARE:
            st.trigger_waiters += 1
            try:
                failed = self._wait(None, interrupted, ready=lambda: st.pending_triggers > 0)
            finally:
                st.trigger_waiters -= 1
            if failed is not None:
                return failed
            st.pending_triggers -= 1
            return self._wait(time.monotonic() + st.exposure_s(), interrupted)
        if trigger == TriggerTypes.SOFTWARE:  # each getNextFrame triggers one exposure
            return self._wait(time.monotonic() + st.exposure_s(), interrupted)
        return self._wait(st.last_frame_at + st.frame_period(), interrupted)

    def _unplugged_frame(self, conn: _Connection) -> tuple:
        rc = conn.camera.unplugged_frame_rc
        if rc in TIMEOUT_CODES:
            # The driver below the SDK keeps waiting for frames that never come.
            conn.readers += 1
            try:
                early = self._wait(time.monotonic() + conn.state.frame_period(),
                                   lambda: RC.ApiInvalidHandleError if conn.stale() else None)
            finally:
                conn.readers -= 1
            rc = early or rc
        raise _SdkCallError(rc, conn=conn)

    @_sdk_call("PxLGetNextFrame")
    def software_trigger(self, handle: Any) -> tuple:
        """getNextFrame(h, None): a software trigger only; the image goes to the FRAME callback."""
        conn = self._connection(handle)
        st = conn.state
        if st.stream != StreamState.START:
            raise _SdkCallError(RC.ApiNoStreamError, conn=conn)
        st.pending_software_triggers += 1
        self._cond.notify_all()
        return (RC.ApiSuccess, st.descriptor())

    def set_callback(self, handle: Any, callback_type: int, context: Any, fn: Any) -> tuple:
        """Register (or with ``fn`` None/0, remove) the FRAME callback; removal joins its thread."""
        with self._cond:
            conn = self._connections.get(handle) if isinstance(handle, int) else None
            ending = conn.callback_thread if conn is not None and (fn is None or fn == 0) else None
        ret = self._set_callback(handle, callback_type, context, fn)
        if ending is not None and ret[0] >= 0 and ending is not threading.current_thread():
            ending.join(timeout=5)
        return ret

    @_sdk_call("PxLSetCallback")
    def _set_callback(self, handle: Any, callback_type: int, context: Any, fn: Any) -> tuple:
        conn = self._connection(handle)
        if callback_type not in (Callback.PREVIEW, Callback.FORMAT_CLIP, Callback.FRAME,
                                 Callback.PREVIEW_RAW, Callback.COMPRESSED_FRAME):
            raise _SdkCallError(RC.ApiInvalidParameterError, conn=conn)
        if callback_type != Callback.FRAME:
            raise _SdkCallError(RC.ApiNotSupportedError, "the fake does FRAME callbacks only", conn)
        if fn is None or fn == 0:
            conn.callback = conn.callback_thread = None
            self._cond.notify_all()
            return (RC.ApiSuccess,)
        if not isinstance(fn, _dataProcessFunction):
            # The wrapper sets argtypes to the CFUNCTYPE: ctypes refuses anything else.
            raise ctypes.ArgumentError("argument 4: TypeError: expected CFunctionType instance")
        conn.callback = (fn, context)
        if conn.callback_thread is None:
            conn.callback_thread = threading.Thread(
                target=self._callback_loop, args=(conn,), name=f"fake-pxl-callback-{handle:#x}", daemon=True
            )
            conn.callback_thread.start()
        return (RC.ApiSuccess,)

    def _callback_loop(self, conn: _Connection) -> None:
        """Deliver frames to the FRAME callback from the SDK's own thread, reusing one buffer."""
        st = conn.state
        buffer = (ctypes.c_ubyte * (st.model.sensor[0] * st.model.sensor[1] * 6))()

        def gone() -> bool:
            return conn.callback is None or not conn.live()

        def due() -> bool:
            if st.stream != StreamState.START:
                return False
            trigger = st.trigger_type()
            if trigger == TriggerTypes.SOFTWARE:
                return st.pending_software_triggers > 0
            if trigger == TriggerTypes.HARDWARE:
                return st.pending_triggers > 0
            return time.monotonic() >= st.last_frame_at + st.frame_period()

        while True:
            with self._cond:
                # Waiting for a hardware trigger counts as a waiting reader (see fire_trigger).
                waits_for_trigger = st.trigger_type() == TriggerTypes.HARDWARE
                if waits_for_trigger:
                    st.trigger_waiters += 1
                    st.readers_waiting += 1
                    self._cond.notify_all()
                try:
                    while not gone() and not due():
                        # Triggers and state changes notify; a free-running frame is due at a time.
                        timeout = None
                        if st.trigger_type() is None and st.stream == StreamState.START:
                            timeout = max(0.0, st.last_frame_at + st.frame_period() - time.monotonic())
                        self._cond.wait(timeout)
                finally:
                    if waits_for_trigger:
                        st.trigger_waiters -= 1
                        st.readers_waiting -= 1
                if gone() or conn.callback is None:
                    return
                if st.trigger_type() == TriggerTypes.SOFTWARE:
                    st.pending_software_triggers -= 1
                elif st.trigger_type() == TriggerTypes.HARDWARE:
                    st.pending_triggers -= 1
                _, desc = st.capture(buffer)
                fn, context = conn.callback
            fn(conn.handle, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ubyte)), int(desc.PixelFormat.fValue),
               ctypes.pointer(desc), context)
            # The SDK reuses the buffer for the next frame: a callback that kept a view sees junk.
            ctypes.memset(buffer, 0xAA, len(buffer))

    def format_image(self, source: Any, desc: _FrameDesc, output_format: int) -> tuple:
        """formatImage / formatNumPyImage: convert a raw frame (ctypes buffer or address)."""
        width = int(desc.Roi.fWidth / desc.PixelAddressingValue.fHorizontal)
        height = int(desc.Roi.fHeight / desc.PixelAddressingValue.fVertical)
        fmt = int(desc.PixelFormat.fValue)
        nbytes = math.ceil(width * height * BYTES_PER_PIXEL.get(fmt, 0))
        raw = ctypes.string_at(source if isinstance(source, int) else ctypes.addressof(source), nbytes)
        # The SDK knows how its camera lays out MONO16; the fake takes the order of its cameras.
        orders = {cam.model.mono16_byte_order for cam in self._cameras.values()}
        out = _pixels.convert(raw, width, height, fmt, output_format, orders.pop() if len(orders) == 1 else "big")
        if out is None:
            return (RC.ApiInvalidParameterError,)
        buffer = ctypes.create_string_buffer(len(out))
        ctypes.memmove(buffer, out, len(out))
        return (RC.ApiSuccess, buffer)


FAKE = FakeSdk()
"""The process-wide fake SDK (tests get it from the ``fake_sdk`` fixture, which resets it)."""
