"""The binary interface of the PixeLINK 4.0 API as ``pixelinkWrapper`` 1.5.0 exposes it.

Constants carry the SDK's real values (``PixeLINKCodes.h`` / ``PixeLINKTypes.h``, as listed in
/work/shared/reference/pixelink-api.md and the wrapper's ``ReturnCode`` class): a driver tested
against this fake must work unchanged against the real module. Error codes are *negative* signed
ints because ctypes returns the C ``int`` the SDK hands back (``0x9000000C`` is ``-1879048180``).

The structures are ctypes ``Structure``s with the real field names. ``_FrameDesc`` keeps only the
fields a driver reads (the real one is 632 bytes with ~45 members); everything is plain data.
"""

from __future__ import annotations

from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_double,
    c_float,
    c_int,
    c_ubyte,
    c_uint,
    c_ulonglong,
    c_void_p,
)

# --- constants -----------------------------------------------------------------------------------


class ReturnCode:
    ApiSuccess = 0
    ApiSuccessParametersChanged = 1
    ApiSuccessAlreadyRunning = 2
    ApiSuccessLowMemory = 3
    ApiSuccessParameterWarning = 4
    ApiSuccessReducedSpeedWarning = 5
    ApiSuccessExposureAdjustmentMade = 6
    ApiSuccessWhiteBalanceTooDark = 7
    ApiSuccessWhiteBalanceTooBright = 8
    ApiSuccessWithFrameLoss = 9
    ApiSuccessGainIneffectiveWarning = 10
    ApiUnknownError = -2147483647  # 0x80000001
    ApiInvalidHandleError = -2147483646  # 0x80000002
    ApiInvalidParameterError = -2147483645  # 0x80000003
    ApiBufferTooSmall = -2147483644  # 0x80000004
    ApiInvalidFunctionCallError = -2147483643  # 0x80000005
    ApiNotSupportedError = -2147483642  # 0x80000006
    ApiCameraInUseError = -2147483641  # 0x80000007
    ApiNoCameraError = -2147483640  # 0x80000008
    ApiHardwareError = -2147483639  # 0x80000009
    ApiCameraUnknownError = -2147483638  # 0x8000000A
    ApiOutOfBandwidthError = -2147483637  # 0x8000000B
    ApiOutOfMemoryError = -2147483636  # 0x8000000C
    ApiNoSerialNumberError = -2147483634  # 0x8000000E
    ApiInvalidSerialNumberError = -2147483633  # 0x8000000F
    ApiIOError = -2147483631  # 0x80000011
    ApiStreamStopped = -2147483630  # 0x80000012
    ApiNullPointerError = -2147483629  # 0x80000013
    ApiOutOfRangeError = -2147483626  # 0x80000016
    ApiNoCameraAvailableError = -2147483625  # 0x80000017
    ApiInvalidCameraName = -2147483624  # 0x80000018
    ApiGetNextFrameBusy = -2147483623  # 0x80000019
    ApiFrameInUseError = -2147483622  # 0x8000001A
    ApiStreamExistingError = -1879048191  # 0x90000001
    ApiEnumDoneError = -1879048190  # 0x90000002
    ApiNotEnoughResourcesError = -1879048189  # 0x90000003
    ApiBadFrameSizeError = -1879048188  # 0x90000004
    ApiNoStreamError = -1879048187  # 0x90000005
    ApiVersionError = -1879048186  # 0x90000006
    ApiNoDeviceError = -1879048185  # 0x90000007
    ApiCannotMapFrameError = -1879048184  # 0x90000008
    ApiLinkDriverError = -1879048183  # 0x90000009
    ApiInvalidIoctlParameter = -1879048182  # 0x9000000A
    ApiInvalidOhciDriverError = -1879048181  # 0x9000000B
    ApiCameraTimeoutError = -1879048180  # 0x9000000C
    ApiInvalidFrameReceivedError = -1879048179  # 0x9000000D
    ApiOSServiceError = -1879048178  # 0x9000000E
    ApiTimeoutError = -1879048177  # 0x9000000F
    ApiRequiresControlAccess = -1879048176  # 0x90000010
    ApiDriverCommunicationError = -1879048172  # 0x90000014
    ApiCameraNotReady = -1879048167  # 0x90000019
    ApiNotPermittedWhileStreaming = -1879048165  # 0x9000001B
    ApiUnsupportedPixelFormatError = -1879048160  # 0x90000020


class FeatureId:
    ALL = -1
    BRIGHTNESS = 0
    BLACK_LEVEL_OFFSET = 0
    PIXELINK_RESERVED_1 = 1
    SHARPNESS = 2
    COLOR_TEMP = 3
    WHITE_BALANCE = 3
    HUE = 4
    SATURATION = 5
    GAMMA = 6
    SHUTTER = 7
    EXPOSURE = 7
    GAIN = 8
    IRIS = 9
    FOCUS = 10
    SENSOR_BOARD_TEMPERATURE = 11
    SENSOR_TEMPERATURE = 11
    TEMPERATURE = 11
    TRIGGER = 12
    ZOOM = 13
    PAN = 14
    TILT = 15
    OPT_FILTER = 16
    GPIO = 17
    FRAME_RATE = 18
    ROI = 19
    FLIP = 20
    PIXEL_ADDRESSING = 21
    DECIMATION = 21
    PIXEL_FORMAT = 22
    EXTENDED_SHUTTER = 23
    AUTO_ROI = 24
    LOOKUP_TABLE = 25
    MEMORY_CHANNEL = 26
    WHITE_SHADING = 27
    ROTATE = 28
    IMAGER_CLK_DIVISOR = 29
    TRIGGER_WITH_CONTROLLED_LIGHT = 30
    MAX_PIXEL_SIZE = 31
    BODY_TEMPERATURE = 32
    MAX_PACKET_SIZE = 33
    BANDWIDTH_LIMIT = 34
    ACTUAL_FRAME_RATE = 35
    SHARPNESS_SCORE = 36
    SPECIAL_CAMERA_MODE = 37
    GAIN_HDR = 38
    POLAR_WEIGHTINGS = 39
    POLAR_HSV_INTERPRETATION = 40
    PTP = 41
    PRECISION_TIME_PROTOCOL = 41
    LIGHTING = 42
    COMPRESSION = 43
    SENSOR_CHIP_TEMPERATURE = 44
    SENSOR_CHIP_TARGET_TEMPERATURE = 45
    TOTAL = 46


class FeatureFlags:
    PRESENCE = 1
    MANUAL = 2
    AUTO = 4
    ONEPUSH = 8
    OFF = 16
    MOD_BITS = 30
    DESC_SUPPORTED = 32
    READ_ONLY = 64
    SETTABLE_WHILE_STREAMING = 128
    PERSISTABLE = 256
    EMULATION = 512
    VOLATILE = 1024
    CONTROLLER = 2048
    ASSERT_LOWER_LIMIT = 4096
    ASSERT_UPPER_LIMIT = 8192
    USES_AUTO_ROI = 16384


class PixelFormat:
    MONO8 = 0
    MONO16 = 1
    YUV422 = 2
    BAYER8_GRBG = 3
    BAYER8 = 3
    BAYER16_GRBG = 4
    BAYER16 = 4
    RGB24 = 5
    RGB24_DIB = 5
    RGB48 = 6
    RGB48_NON_DIB = 6
    BAYER8_RGGB = 7
    BAYER8_GBRG = 8
    BAYER8_BGGR = 9
    BAYER16_RGGB = 10
    BAYER16_GBRG = 11
    BAYER16_BGGR = 12
    MONO12_PACKED = 13
    BAYER12_GRBG_PACKED = 14
    BAYER12_PACKED = 14
    BAYER12_RGGB_PACKED = 15
    BAYER12_GBRG_PACKED = 16
    BAYER12_BGGR_PACKED = 17
    RGB24_NON_DIB = 18
    RGB48_DIB = 19
    MONO12_PACKED_MSFIRST = 20
    BAYER12_GRBG_PACKED_MSFIRST = 21
    BAYER12_PACKED_MSFIRST = 21
    BAYER12_RGGB_PACKED_MSFIRST = 22
    BAYER12_GBRG_PACKED_MSFIRST = 23
    BAYER12_BGGR_PACKED_MSFIRST = 24
    MONO10_PACKED_MSFIRST = 25
    BAYER10_GRBG_PACKED_MSFIRST = 26
    BAYER10_PACKED_MSFIRST = 26
    BAYER10_RGGB_PACKED_MSFIRST = 27
    BAYER10_GBRG_PACKED_MSFIRST = 28
    BAYER10_BGGR_PACKED_MSFIRST = 29
    STOKES4_12 = 30
    POLAR4_12 = 31
    POLAR_RAW4_12 = 32
    HSV4_12 = 33
    BGR24 = 34
    BGR24_NON_DIB = 34
    RGBA = 35
    BGRA = 36
    ARGB = 37
    ABGR = 38


# Bytes per pixel as the wrapper's getBytesPerPixel table has them (packed formats are fractional).
BYTES_PER_PIXEL: dict[int, float] = {
    **dict.fromkeys((0, 3, 7, 8, 9), 1),
    **dict.fromkeys((1, 2, 4, 10, 11, 12), 2),
    **dict.fromkeys((13, 14, 15, 16, 17, 20, 21, 22, 23, 24), 1.5),
    **dict.fromkeys((25, 26, 27, 28, 29), 1.25),
    **dict.fromkeys((5, 18, 34), 3),
    **dict.fromkeys((6, 19, 30, 31, 32, 33), 6),
}


class StreamState:
    START = 0
    PAUSE = 1
    STOP = 2


class TriggerTypes:
    # 1.5.0 names the hardware inputs: LINE1 is the old HARDWARE; ACTION is a GigE action command.
    FREE_RUNNING = 0
    SOFTWARE = 1
    HARDWARE = 2
    LINE1 = 2
    ACTION = 3
    LINE2 = 4
    LINE3 = 5
    LINE4 = 6


class TriggerModes:
    MODE_0 = 0
    MODE_1 = 1
    MODE_2 = 2
    MODE_3 = 3
    MODE_4 = 4
    MODE_5 = 5
    MODE_14 = 14


class TriggerParams:
    MODE = 0
    TYPE = 1
    POLARITY = 2
    DELAY = 3
    PARAMETER = 4
    NUMBER = 4
    NUM_PARAMS = 5


class Polarity:
    ACTIVE_LOW = 0
    ACTIVE_HIGH = 1
    NEGATIVE = 0
    POSITIVE = 1


class RoiParams:
    LEFT = 0
    TOP = 1
    WIDTH = 2
    HEIGHT = 3
    NUM_PARAMS = 4


class PixelAddressingParams:
    VALUE = 0
    MODE = 1
    X_VALUE = 2
    Y_VALUE = 3
    NUM_PARAMS = 4


class PixelAddressingModes:
    DECIMATE = 0
    AVERAGE = 1
    BIN = 2
    RESAMPLE = 3


class ExposureParams:
    VALUE = 0
    AUTO_MIN = 1
    AUTO_MAX = 2


class ImageFormat:
    BMP = 0
    TIFF = 1
    PSD = 2
    JPEG = 3
    PNG = 4
    RAW_MONO8 = 4096
    RAW_RGB24 = 4101
    RAW_RGB24_DIB = 4101
    RAW_RGB48 = 4102
    RAW_RGB24_NON_DIB = 4114
    RAW_BGR24 = 4130
    RAW_BGR24_NON_DIB = 4130


class Callback:
    # FORMAT_IMAGE = 2 is deliberately absent: the wrapper does not support it (Bugzilla 1776).
    PREVIEW = 1
    FORMAT_CLIP = 4
    FRAME = 8
    PREVIEW_RAW = 17
    COMPRESSED_FRAME = 32


class EventId:
    # Only the one the reference documents; it fires for GigE cameras only, never for USB.
    CAMERA_DISCONNECTED = 1


class Settings:
    SETTINGS_FACTORY = 0
    SETTINGS_USER = 1


class InitializeExFlags:
    MONITOR_ACCESS_ONLY = 1
    ISSUE_STREAM_STOP = 2


class FrameBufferPolicy:
    FBP_NEXT_AVAILABLE = 0
    FBP_OLDEST_AVAILABLE = 1


# --- structures ----------------------------------------------------------------------------------


class _FeatureParam(Structure):
    _fields_ = [("fMinValue", c_float), ("fMaxValue", c_float)]


class _CameraFeature(Structure):
    _fields_ = [
        ("uFeatureId", c_uint),
        ("uFlags", c_uint),
        ("uNumberOfParameters", c_uint),
        ("Params", POINTER(_FeatureParam)),
    ]


class _CameraFeatures(Structure):
    _fields_ = [
        ("uSize", c_uint),
        ("uNumberOfFeatures", c_uint),
        ("Features", POINTER(_CameraFeature)),
    ]


class _CameraIdInfo(Structure):
    # The GigE address fields of the real structure are reduced to the MAC; USB cameras leave them zero.
    _fields_ = [
        ("StructSize", c_uint),
        ("CameraSerialNum", c_uint),
        ("CameraMac", c_ubyte * 6),
    ]


class _CameraInfo(Structure):
    _fields_ = [
        ("VendorName", c_char * 33),
        ("ModelName", c_char * 33),
        ("Description", c_char * 256),
        ("SerialNumber", c_char * 33),
        ("FirmwareVersion", c_char * 12),
        ("FPGAVersion", c_char * 12),
        ("CameraName", c_char * 256),
        ("XMLVersion", c_char * 12),
        ("BootloadVersion", c_char * 12),
        ("LensDescription", c_char * 64),
    ]


class _ErrorReport(Structure):
    _fields_ = [
        ("uReturnCode", c_int),
        ("strFunctionName", c_char * 64),
        ("strReturnCode", c_char * 64),
        ("strReport", c_char * 256),
    ]


class _FloatValue(Structure):
    _fields_ = [("fValue", c_float)]


class _TriggerDesc(Structure):
    _fields_ = [
        ("fMode", c_float),
        ("fType", c_float),
        ("fPolarity", c_float),
        ("fDelay", c_float),
        ("fParameter", c_float),
    ]


class _RoiDesc(Structure):
    _fields_ = [("fLeft", c_float), ("fTop", c_float), ("fWidth", c_float), ("fHeight", c_float)]


class _PixelAddressingDesc(Structure):
    _fields_ = [("fHorizontal", c_float), ("fVertical", c_float)]


class _FrameDesc(Structure):
    """The frame descriptor, reduced to the members a driver reads (same names as the real one)."""

    _fields_ = [
        ("uSize", c_uint),
        ("fFrameTime", c_float),
        ("uFrameNumber", c_uint),
        ("Shutter", _FloatValue),
        ("Gain", _FloatValue),
        ("Trigger", _TriggerDesc),
        ("FrameRate", _FloatValue),
        ("Roi", _RoiDesc),
        ("Decimation", _FloatValue),
        ("PixelFormat", _FloatValue),
        ("MaxPixelSize", _FloatValue),
        ("PixelAddressingValue", _PixelAddressingDesc),
        ("dFrameTime", c_double),
        ("u64FrameNumber", c_ulonglong),
        ("ActualFrameRate", _FloatValue),
    ]


# Decorator for FRAME callbacks, exactly the Linux prototype of the wrapper (and its name).
_dataProcessFunction = CFUNCTYPE(  # noqa: N816
    c_uint, c_uint, POINTER(c_ubyte), c_uint, POINTER(_FrameDesc), c_void_p
)

# Decorator for event callbacks (setEventCallback): hCamera, eventId, eventTimestamp, numDataBytes,
# data, userData; the Linux prototype of the wrapper.
_eventProcessFunction = CFUNCTYPE(  # noqa: N816
    c_uint, c_uint, c_uint, c_double, c_uint, POINTER(c_ubyte), c_void_p
)


def return_code_name(rc: int) -> str:
    """The ``ReturnCode`` attribute name of ``rc`` (for error reports)."""
    for name, value in vars(ReturnCode).items():
        if value == rc and not name.startswith("_"):
            return name
    return f"0x{rc & 0xFFFFFFFF:08X}"
