"""The fake ``PxLApi``: same calling style, tuples, argument traps and constants as pixelinkWrapper 1.5.0.

Like the real class, ``PxLApi`` is never instantiated: its attributes are plain functions called as
``PxLApi.getFeature(h, ...)`` and nested constant classes. Every call returns a tuple whose first
item is the return code; the payload follows on success, and on failure the tuple is ``(rc,)``
only. API errors never raise; wrong *argument types* raise the same Python exceptions as the real
wrapper (``getNextFrame`` with a bytearray or an ndarray, non-numeric feature parameters).

The camera behaviour behind the functions lives in ``fake.py``.
"""

# The vendor's names and calling style (camelCase functions without self in a class body) are the
# point of this module:
# ruff: noqa: N802, N803, N805, N815
# mypy: disable-error-code="misc"

from __future__ import annotations

import ctypes
from typing import Any

from . import _abi
from .fake import FAKE


class PxLApi:
    """Drop-in stand-in for ``pixelinkWrapper.PxLApi`` backed by the fake cameras of ``FAKE``."""

    ReturnCode = _abi.ReturnCode
    FeatureId = _abi.FeatureId
    FeatureFlags = _abi.FeatureFlags
    PixelFormat = _abi.PixelFormat
    StreamState = _abi.StreamState
    TriggerTypes = _abi.TriggerTypes
    TriggerModes = _abi.TriggerModes
    TriggerParams = _abi.TriggerParams
    Polarity = _abi.Polarity
    RoiParams = _abi.RoiParams
    PixelAddressingParams = _abi.PixelAddressingParams
    PixelAddressingModes = _abi.PixelAddressingModes
    ExposureParams = _abi.ExposureParams
    ImageFormat = _abi.ImageFormat
    Callback = _abi.Callback
    EventId = _abi.EventId
    Settings = _abi.Settings
    InitializeExFlags = _abi.InitializeExFlags
    FrameBufferPolicy = _abi.FrameBufferPolicy

    _CameraFeatures = _abi._CameraFeatures
    _CameraIdInfo = _abi._CameraIdInfo
    _CameraInfo = _abi._CameraInfo
    _ErrorReport = _abi._ErrorReport
    _FrameDesc = _abi._FrameDesc
    _dataProcessFunction = _abi._dataProcessFunction
    _eventProcessFunction = _abi._eventProcessFunction

    def apiSuccess(rc: int) -> bool:
        return rc >= 0

    # -- cameras ----------------------------------------------------------------------------------
    def getNumberCameras() -> tuple:
        return FAKE.get_number_cameras()

    def initialize(serialNumber: int, flags: int = 0) -> tuple:
        return FAKE.initialize(serialNumber, flags)

    def uninitialize(hCamera: int) -> tuple:
        return FAKE.uninitialize(hCamera)

    def getCameraInfo(hCamera: int) -> tuple:
        return FAKE.get_camera_info(hCamera)

    def getErrorReport(hCamera: int) -> tuple:
        return FAKE.get_error_report(hCamera)

    def loadSettings(hCamera: int, channel: int) -> tuple:
        return FAKE.load_settings(hCamera, channel)

    def saveSettings(hCamera: int, channel: int) -> tuple:
        return FAKE.save_settings(hCamera, channel)

    def getCurrentTimestamp(hCamera: int) -> tuple:
        return FAKE.get_current_timestamp(hCamera)

    def setFrameBufferPolicy(
        hCamera: int, nonTriggeredFrames: int, triggeredFrames: int, totalFrameBufferSizeInMs: int
    ) -> tuple:
        return FAKE.ping(hCamera)

    def setEventCallback(hCamera: int, eventId: int, context: Any, fn: Any) -> tuple:
        # Registered and never fired: the SDK only reports disconnects of GigE cameras this way.
        # Like the wrapper, which sets the C function's argtypes to the CFUNCTYPE (or c_uint for
        # "none"), ctypes refuses anything but an @_eventProcessFunction callback, 0 or None.
        if not (fn is None or (isinstance(fn, int) and fn == 0) or isinstance(fn, _abi._eventProcessFunction)):
            raise ctypes.ArgumentError(f"argument 4: TypeError: expected CFunctionType instance instead of {type(fn).__name__}")
        if not isinstance(hCamera, int) or not isinstance(eventId, int):
            raise ctypes.ArgumentError("argument 1: TypeError: wrong type")
        return FAKE.ping(hCamera)

    # -- features ---------------------------------------------------------------------------------
    def getCameraFeatures(hCamera: int, featureId: int) -> tuple:
        return FAKE.get_camera_features(hCamera, featureId)

    def getFeature(hCamera: int, featureId: int, params: list[float] | None = None) -> tuple:
        return FAKE.get_feature(hCamera, featureId)

    def setFeature(hCamera: int, featureId: int, flags: int, params: list[float]) -> tuple:
        # As in the wrapper: every parameter goes through a C float (TypeError for non-numbers).
        values = (ctypes.c_float * len(params))()
        for i, value in enumerate(params):
            values[i] = value
        return FAKE.set_feature(hCamera, featureId, flags, list(values))

    # -- streaming --------------------------------------------------------------------------------
    def setStreamState(hCamera: int, state: int) -> tuple:
        return FAKE.set_stream_state(hCamera, state)

    def getStreamState(hCamera: int) -> tuple:
        return FAKE.get_stream_state(hCamera)

    def getNextFrame(hCamera: int, frame: Any = None) -> tuple:
        # The wrapper tests `None == frame`: for an ndarray that is an ambiguous truth value and
        # raises ValueError, exactly as the real one does.
        if None == frame or 0 == frame:  # noqa: E711, SIM300 -- the wrapper's test, same exceptions
            return FAKE.software_trigger(hCamera)
        size = len(frame)
        ctypes.byref(frame)  # TypeError for anything that is not a ctypes instance (e.g. bytearray)
        return FAKE.get_next_frame(hCamera, frame, size)

    def getNextNumPyFrame(hCamera: int, frame: Any = None) -> tuple:
        if frame is None:
            return FAKE.software_trigger(hCamera)
        # The wrapper passes frame.size (elements, not bytes) as the buffer size.
        return FAKE.get_next_frame(hCamera, frame.ctypes.data, int(frame.size))

    def setCallback(hCamera: int, callbackType: int, context: Any, dataProcessFunction: Any) -> tuple:
        return FAKE.set_callback(hCamera, callbackType, context, dataProcessFunction)

    # -- helpers without a native equivalent ------------------------------------------------------
    def getBytesPerPixel(dataFormat: float) -> float:
        # A dict lookup, so float keys such as frameDesc.PixelFormat.fValue work; unknown -> 0.
        return _abi.BYTES_PER_PIXEL.get(dataFormat, 0)  # type: ignore[call-overload]

    def imageSize(frameDesc: Any) -> int:
        return int(
            (frameDesc.Roi.fWidth / frameDesc.PixelAddressingValue.fHorizontal)
            * (frameDesc.Roi.fHeight / frameDesc.PixelAddressingValue.fVertical)
            * PxLApi.getBytesPerPixel(frameDesc.PixelFormat.fValue)
        )

    def createByteAlignedBuffer(size: int, alingment: int) -> Any:
        # The alignment is required (the wrapper's spelling) and honoured: a c_char array of
        # ``size`` placed at an aligned offset inside an oversized buffer, as the wrapper does.
        oversized = ctypes.create_string_buffer(size + alingment)
        offset = (-ctypes.addressof(oversized)) % alingment
        return (ctypes.c_char * size).from_buffer(oversized, offset)

    def formatImage(srcImage: Any, srcFrameDesc: Any, outputFormat: int) -> tuple:
        ctypes.byref(srcImage)  # the wrapper passes byref(srcImage): ctypes buffers only
        return FAKE.format_image(srcImage, srcFrameDesc, outputFormat)

    def formatNumPyImage(npImage: Any, srcFrameDesc: Any, outputFormat: int) -> tuple:
        # Takes an ndarray, returns a ctypes buffer (not an ndarray), like the wrapper.
        return FAKE.format_image(npImage.ctypes.data, srcFrameDesc, outputFormat)
