"""The fake pixelinkWrapper behaves like the real one where a driver can tell the difference.

One test per item of the checklist in section 7 of /work/shared/reference/pixelink-api.md, called
through ``PxLApi`` exactly as a driver would. If the fake drifts from the SDK, the driver tests
stop meaning anything; these catch that.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["fixtures_pixelink"]


@pytest.fixture
def h(pxl: Any, camera: Any) -> int:
    """A handle on the ``camera`` fixture's camera, stream stopped."""
    rc, handle = pxl.initialize(camera.serial)
    assert rc == 0
    return handle


def _frame_in_thread(pxl: Any, handle: int, buffer: Any) -> tuple[threading.Thread, list[tuple]]:
    out: list[tuple] = []
    thread = threading.Thread(target=lambda: out.append(pxl.getNextFrame(handle, buffer)), daemon=True)
    thread.start()
    return thread, out


def test_constants_have_the_sdks_values(pxl: Any) -> None:
    rc = pxl.ReturnCode
    assert rc.ApiCameraTimeoutError == -1879048180  # 0x9000000C as a signed C int
    assert rc.ApiNoCameraError == -2147483640 and rc.ApiStreamStopped == -2147483630
    assert rc.ApiSuccessParametersChanged == 1 and rc.ApiSuccessWithFrameLoss == 9
    assert (pxl.FeatureId.SHUTTER, pxl.FeatureId.ROI, pxl.FeatureId.ALL) == (7, 19, -1)
    assert pxl.FeatureFlags.MOD_BITS == 30 and pxl.FeatureFlags.SETTABLE_WHILE_STREAMING == 128
    assert (pxl.PixelFormat.MONO8, pxl.PixelFormat.MONO16, pxl.PixelFormat.MONO12_PACKED) == (0, 1, 13)
    assert (pxl.ImageFormat.RAW_MONO8, pxl.ImageFormat.RAW_BGR24_NON_DIB) == (4096, 4130)
    assert not hasattr(pxl.Callback, "FORMAT_IMAGE")
    assert pxl.apiSuccess(1) and pxl.apiSuccess(0) and not pxl.apiSuccess(-1)


def test_failures_return_only_the_code(pxl: Any, camera: Any) -> None:
    ret = pxl.initialize(1)  # an index is not a serial number
    assert ret == (pxl.ReturnCode.ApiNoCameraError,)
    with pytest.raises(IndexError):
        ret[1]  # the trap an unchecked driver falls into
    assert pxl.getFeature(12345, pxl.FeatureId.SHUTTER) == (pxl.ReturnCode.ApiInvalidHandleError,)


def test_enumeration_and_info(pxl: Any, fake_sdk: Any, camera: Any, h: int) -> None:
    _, cameras = pxl.getNumberCameras()
    assert [c.CameraSerialNum for c in cameras] == [camera.serial]
    assert pxl.initialize(camera.serial) == (pxl.ReturnCode.ApiCameraInUseError,)
    _, info = pxl.getCameraInfo(h)
    assert isinstance(info.ModelName, bytes) and info.SerialNumber == str(camera.serial).encode()
    fake_sdk.unplug(camera.serial)
    assert pxl.getNumberCameras() == (0, [])


def test_features_modes_rounding_and_coupling(pxl: Any, camera: Any, h: int) -> None:
    fid, ff, rc = pxl.FeatureId, pxl.FeatureFlags, pxl.ReturnCode
    counts = [len(pxl.getFeature(h, f)[2]) for f in (fid.ROI, fid.PIXEL_ADDRESSING, fid.TRIGGER, fid.GAIN)]
    assert counts == [4, 4, 5, 1]
    # The samples' ~MOD_BITS | MANUAL sets junk high bits: the mode comes from the mode bits.
    assert pxl.setFeature(h, fid.GAIN, ~ff.MOD_BITS | ff.MANUAL, [3.0]) == (rc.ApiSuccess,)
    assert pxl.setFeature(h, fid.ROI, ff.MANUAL, [3, 5, 101, 51]) == (rc.ApiSuccessParametersChanged,)
    assert pxl.getFeature(h, fid.ROI)[2] == [2, 4, 96, 48]
    assert pxl.setFeature(h, fid.GAIN, ff.MANUAL, [99]) == (rc.ApiOutOfRangeError,)
    with pytest.raises(TypeError):
        pxl.setFeature(h, fid.GAIN, ff.MANUAL, ["loud"])
    # Exposure (seconds) cannot outlast a frame: at 25 fps, 0.5 s is clamped to 40 ms.
    assert pxl.setFeature(h, fid.SHUTTER, ff.MANUAL, [0.5]) == (rc.ApiSuccessParametersChanged,)
    assert pxl.getFeature(h, fid.SHUTTER)[2] == [pytest.approx(0.04)]
    # One-push reports ONEPUSH for a few polls, then settles.
    pxl.setFeature(h, fid.SHUTTER, ff.ONEPUSH, [0.01])
    flags = [pxl.getFeature(h, fid.SHUTTER)[1] & ff.MOD_BITS for _ in range(4)]
    assert flags[0] == ff.ONEPUSH and flags[-1] == ff.MANUAL
    _, table = pxl.getCameraFeatures(h, fid.ALL)
    by_id = {table.Features[i].uFeatureId: table.Features[i] for i in range(table.uNumberOfFeatures)}
    assert by_id[fid.ROI].uNumberOfParameters == 4 and by_id[fid.ROI].Params[2].fMaxValue == 640
    assert not by_id[fid.ROI].uFlags & ff.SETTABLE_WHILE_STREAMING


def test_stream_state_machine(pxl: Any, camera: Any, h: int) -> None:
    ss, rc, fid = pxl.StreamState, pxl.ReturnCode, pxl.FeatureId
    buffer = ctypes.create_string_buffer(640 * 480 * 2)
    assert pxl.getNextFrame(h, buffer) == (rc.ApiNoStreamError,)
    camera.low_memory_on_start = True
    assert pxl.setStreamState(h, ss.START) == (rc.ApiSuccessLowMemory,)
    assert pxl.setStreamState(h, ss.START) == (rc.ApiSuccessAlreadyRunning,)
    assert pxl.setFeature(h, fid.ROI, 2, [0, 0, 64, 64]) == (rc.ApiNotPermittedWhileStreaming,)
    assert pxl.getStreamState(h)[:2] == (0, ss.START)


def test_get_next_frame_buffers(pxl: Any, camera: Any, h: int) -> None:
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [0, 0, 64, 32])
    pxl.setStreamState(h, pxl.StreamState.START)
    with pytest.raises(TypeError, match="ctypes instance"):
        pxl.getNextFrame(h, bytearray(64 * 32))
    with pytest.raises(ValueError, match="ambiguous"):
        pxl.getNextFrame(h, np.zeros(64 * 32, np.uint8))
    assert pxl.getNextFrame(h, ctypes.create_string_buffer(100)) == (pxl.ReturnCode.ApiBufferTooSmall,)
    # getNextNumPyFrame counts elements, not bytes: a uint16 array of the right shape is "too small".
    pxl.setStreamState(h, pxl.StreamState.STOP)
    pxl.setFeature(h, pxl.FeatureId.PIXEL_FORMAT, 2, [pxl.PixelFormat.MONO16])
    pxl.setStreamState(h, pxl.StreamState.START)
    assert pxl.getNextNumPyFrame(h, np.zeros((32, 64), np.uint16))[0] == pxl.ReturnCode.ApiBufferTooSmall
    frame = np.zeros((32, 128), np.uint8)
    rc, desc = pxl.getNextNumPyFrame(h, frame)
    assert rc == 0 and pxl.imageSize(desc) == frame.size


def test_mono16_is_big_endian_and_msb_aligned(pxl: Any, camera: Any, h: int) -> None:
    pxl.setFeature(h, pxl.FeatureId.PIXEL_FORMAT, 2, [pxl.PixelFormat.MONO16])
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [8, 4, 32, 32])
    pxl.setStreamState(h, pxl.StreamState.START)
    buffer = ctypes.create_string_buffer(32 * 32 * 2)
    rc, desc = pxl.getNextFrame(h, buffer)
    assert rc == 0
    assert isinstance(desc.PixelFormat.fValue, float) and int(desc.PixelFormat.fValue) == 1
    assert desc.u64FrameNumber == desc.uFrameNumber == camera.frame_number
    raw = np.frombuffer(buffer, ">u2", count=32 * 32).reshape(32, 32)
    np.testing.assert_array_equal(raw, camera.expected_values(desc.u64FrameNumber).astype(np.uint32) << 4)
    assert not (raw & 0xF).any()


def test_helpers(pxl: Any) -> None:
    assert pxl.getBytesPerPixel(pxl.PixelFormat.MONO12_PACKED) == 1.5
    assert pxl.getBytesPerPixel(pxl.PixelFormat.MONO10_PACKED_MSFIRST) == 1.25
    assert pxl.getBytesPerPixel(1.0) == 2  # float keys, as from frameDesc.PixelFormat.fValue
    assert pxl.getBytesPerPixel(99) == 0


def test_stop_and_uninitialize_wake_a_blocked_read(pxl: Any, fake_sdk: Any, camera: Any, h: int) -> None:
    rc, ss = pxl.ReturnCode, pxl.StreamState
    pxl.setFeature(h, pxl.FeatureId.TRIGGER, 2, [0, pxl.TriggerTypes.HARDWARE, 1, 0, 0])
    pxl.setStreamState(h, ss.START)
    buffer = ctypes.create_string_buffer(640 * 480)
    thread, out = _frame_in_thread(pxl, h, buffer)
    assert camera.wait_for_reader(5.0)
    pxl.setStreamState(h, ss.STOP)
    thread.join(5.0)
    assert out == [(rc.ApiStreamStopped,)]

    pxl.setStreamState(h, ss.START)
    thread, out = _frame_in_thread(pxl, h, buffer)
    assert camera.wait_for_reader(5.0)
    assert pxl.uninitialize(h) == (0,)
    thread.join(5.0)
    assert out == [(rc.ApiInvalidHandleError,)]
    assert len(fake_sdk.violations) == 1 and "uninitialize" in fake_sdk.violations[0]


def test_hardware_trigger(pxl: Any, camera: Any, h: int) -> None:
    pxl.setFeature(h, pxl.FeatureId.TRIGGER, 2, [0, pxl.TriggerTypes.HARDWARE, 1, 0, 0])
    pxl.setStreamState(h, pxl.StreamState.START)
    assert not camera.fire_trigger()  # nobody waits: dropped
    thread, out = _frame_in_thread(pxl, h, ctypes.create_string_buffer(640 * 480))
    assert camera.wait_for_reader(5.0)
    assert camera.fire_trigger()
    thread.join(5.0)
    assert out[0][0] == 0 and out[0][1].u64FrameNumber == 1


def test_unplug_and_replug(pxl: Any, fake_sdk: Any, camera: Any, h: int) -> None:
    rc, fid = pxl.ReturnCode, pxl.FeatureId
    pxl.setFeature(h, fid.GAIN, 2, [7.0])
    fake_sdk.unplug(camera.serial)
    assert pxl.getFeature(h, fid.SHUTTER) == (rc.ApiNoCameraError,)
    fake_sdk.replug(camera.serial)
    assert pxl.getFeature(h, fid.SHUTTER) == (rc.ApiInvalidHandleError,)  # the old handle stays dead
    new = pxl.initialize(camera.serial)[1]
    assert pxl.getFeature(new, fid.GAIN)[2] == [2.0]  # power-on value again


def test_injected_timeouts_and_frame_loss(pxl: Any, camera: Any, h: int) -> None:
    rc = pxl.ReturnCode
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [0, 0, 32, 32])
    pxl.setStreamState(h, pxl.StreamState.START)
    buffer = ctypes.create_string_buffer(32 * 32)
    camera.inject_timeouts(2)
    assert [pxl.getNextFrame(h, buffer)[0] for _ in range(3)] == [rc.ApiCameraTimeoutError] * 2 + [0]
    camera.inject_frame_loss(2)
    ret = pxl.getNextFrame(h, buffer)
    assert ret[0] == rc.ApiSuccessWithFrameLoss and ret[1].u64FrameNumber == 4


def test_error_report_describes_the_last_failure(pxl: Any, camera: Any, h: int) -> None:
    pxl.setFeature(h, pxl.FeatureId.GAIN, 2, [99])
    rc, report = pxl.getErrorReport(h)
    assert rc == 0
    assert (report.strFunctionName, report.strReturnCode) == (b"PxLSetFeature", b"ApiOutOfRangeError")
    assert b"outside" in report.strReport


def test_frame_callbacks_come_from_another_thread_with_a_reused_buffer(pxl: Any, camera: Any, h: int) -> None:
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [0, 0, 32, 32])
    pxl.setFeature(h, pxl.FeatureId.TRIGGER, 2, [0, pxl.TriggerTypes.SOFTWARE, 1, 0, 0])
    got: list[tuple[int, bytes, np.ndarray]] = []
    done = threading.Event()

    @pxl._dataProcessFunction
    def on_frame(handle: int, data: Any, data_format: int, desc: Any, context: Any) -> int:
        view = np.ctypeslib.as_array(data, shape=(32 * 32,))
        got.append((threading.get_ident(), view.tobytes(), view))  # a copy, and a view that goes stale
        done.set()
        return 0

    assert pxl.setCallback(h, pxl.Callback.FRAME, None, on_frame) == (0,)
    pxl.setStreamState(h, pxl.StreamState.START)
    assert pxl.getNextFrame(h, ctypes.create_string_buffer(32 * 32)) == (pxl.ReturnCode.ApiGetNextFrameBusy,)
    assert pxl.getNextFrame(h, None)[0] == 0  # a software trigger only: the image goes to the callback
    assert done.wait(5.0)
    assert pxl.setCallback(h, pxl.Callback.FRAME, None, None) == (0,)  # joins the callback thread
    thread_id, copied, view = got[0]
    assert thread_id != threading.get_ident()
    expected = (camera.expected_values(1) >> 4).astype(np.uint8).tobytes()
    assert copied == expected
    assert view.tobytes() != expected  # the SDK reused the memory after the callback returned


@pytest.mark.parametrize(
    ("kind", "error"),
    [("no_library", OSError), ("no_sdk_env", ValueError), ("short_version", IndexError)],
)
def test_import_can_fail_like_without_the_sdk(fake_sdk: Any, kind: str, error: type) -> None:
    import subprocess

    fake_sdk.fail_import(kind)
    with pytest.raises(error):
        import pixelinkWrapper
    fake_sdk.fail_import("bad_sdk_dir")
    with pytest.raises(subprocess.CalledProcessError):
        import pixelinkWrapper
    fake_sdk.allow_import()
    import pixelinkWrapper

    assert "pixelinkWrapper" in sys.modules and pixelinkWrapper.PxLApi.apiSuccess(0)


def test_format_image_returns_a_ctypes_buffer(pxl: Any, fake_sdk: Any) -> None:
    cam = fake_sdk.add_camera(99, colour=True)
    h = pxl.initialize(99)[1]
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [0, 0, 32, 32])
    pxl.setStreamState(h, pxl.StreamState.START)
    buffer = ctypes.create_string_buffer(32 * 32)
    rc, desc = pxl.getNextFrame(h, buffer)
    rc, out = pxl.formatImage(buffer, desc, pxl.ImageFormat.RAW_RGB24_NON_DIB)
    assert rc == 0 and isinstance(out, ctypes.Array)
    rgb = np.frombuffer(out, np.uint8, count=32 * 32 * 3).reshape(32, 32, 3)
    np.testing.assert_array_equal(rgb, cam.expected_rgb(desc.u64FrameNumber))


# --- checked against the real wheels (tests/fake_pixelink/real_constants.json) ------------------

REAL = json.loads((Path(__file__).parent / "fake_pixelink" / "real_constants.json").read_text())["wheels"]
"""Constants and layouts recorded from the vendor's wheels by scripts/pixelink_constants.py."""

# Classes the fake must carry complete (every name, every value), as in 1.5.0.
COMPLETE = ("FeatureId", "FeatureFlags", "PixelFormat", "TriggerTypes", "StreamState", "ImageFormat",
            "RoiParams", "PixelAddressingModes", "InitializeExFlags")


def _ctype_text(ctype: Any) -> str:
    """A ctypes field type written as the wrapper's source writes it: c_char * 64, c_uint, ..."""
    if issubclass(ctype, ctypes.Array):
        return f"{ctype._type_.__name__} * {ctype._length_}"
    return ctype.__name__


def test_the_recorded_data_covers_the_four_wheels() -> None:
    assert sorted(REAL) == ["1.2.0", "1.3.1", "1.4.1", "1.5.0"]
    assert all(len(w["sha256"]) == 64 for w in REAL.values())


def test_every_constant_of_the_fake_has_the_real_value(pxl: Any) -> None:
    real = REAL["1.5.0"]["classes"]
    for name, value in vars(pxl).items():
        if isinstance(value, type) and name in real:
            fake = {k: v for k, v in vars(value).items() if not k.startswith("_")}
            wrong = {k: (v, real[name].get(k)) for k, v in fake.items() if real[name].get(k) != v}
            assert not wrong, f"PxLApi.{name}: fake value, real value: {wrong}"


@pytest.mark.parametrize("name", COMPLETE)
def test_the_fake_has_every_name_of(pxl: Any, name: str) -> None:
    fake = {k: v for k, v in vars(getattr(pxl, name)).items() if not k.startswith("_")}
    assert fake == REAL["1.5.0"]["classes"][name]


def test_feature_total_and_the_return_codes_labcam_meets(pxl: Any) -> None:
    assert pxl.FeatureId.TOTAL == 46
    codes = REAL["1.5.0"]["classes"]["ReturnCode"]
    for name in ("ApiNoDeviceError", "ApiLinkDriverError", "ApiDriverCommunicationError", "ApiNoStreamError"):
        assert getattr(pxl.ReturnCode, name) == codes[name]


@pytest.mark.parametrize("structure", ["_ErrorReport", "_CameraInfo"])
def test_structure_layouts_are_the_real_ones(pxl: Any, structure: str) -> None:
    fields = [[name, _ctype_text(ctype)] for name, ctype in getattr(pxl, structure)._fields_]
    assert fields == REAL["1.5.0"]["structures"][structure]


def test_the_functions_labcam_calls_exist_in_every_wheel(pxl: Any) -> None:
    used = {"getNumberCameras", "initialize", "uninitialize", "getCameraInfo", "getCameraFeatures", "getFeature",
            "setFeature", "setStreamState", "getNextFrame", "formatImage", "getErrorReport", "getCurrentTimestamp",
            "getBytesPerPixel", "apiSuccess"}
    for version, wheel in REAL.items():
        assert used <= set(wheel["functions"]), version
    assert used <= set(vars(pxl))


# --- the unkind corners --------------------------------------------------------------------------


def test_set_event_callback_takes_only_a_decorated_callback(pxl: Any, camera: Any, h: int) -> None:
    with pytest.raises(ctypes.ArgumentError):
        pxl.setEventCallback(h, pxl.EventId.CAMERA_DISCONNECTED, None, lambda *args: 0)

    @pxl._eventProcessFunction
    def on_event(handle: int, event: int, stamp: float, size: int, data: Any, context: Any) -> int:
        return 0

    assert pxl.setEventCallback(h, pxl.EventId.CAMERA_DISCONNECTED, None, on_event) == (0,)
    assert pxl.setEventCallback(h, pxl.EventId.CAMERA_DISCONNECTED, None, None) == (0,)


@pytest.mark.parametrize("alignment", [16, 64, 4096])
def test_create_byte_aligned_buffer_honours_the_alignment(pxl: Any, alignment: int) -> None:
    buffer = pxl.createByteAlignedBuffer(1000, alignment)
    assert ctypes.addressof(buffer) % alignment == 0 and len(buffer) == 1000
    with pytest.raises(TypeError):
        pxl.createByteAlignedBuffer(1000)  # the alignment is required


def test_an_unplug_can_answer_with_any_code(pxl: Any, fake_sdk: Any, camera: Any, h: int) -> None:
    no_device = pxl.ReturnCode.ApiNoDeviceError
    pxl.setStreamState(h, pxl.StreamState.START)
    fake_sdk.unplug(camera.serial, frame_rc=no_device)
    assert pxl.getNextFrame(h, ctypes.create_string_buffer(640 * 480)) == (no_device,)
    assert pxl.getFeature(h, pxl.FeatureId.SHUTTER) == (no_device,)


def test_a_model_without_optional_features(pxl: Any, fake_sdk: Any) -> None:
    fid = pxl.FeatureId
    fake_sdk.add_camera(77, without={fid.TRIGGER, fid.GAIN, fid.ROI})
    h = pxl.initialize(77)[1]
    table = pxl.getCameraFeatures(h, fid.ALL)[1]
    listed = {table.Features[i].uFeatureId for i in range(table.uNumberOfFeatures)}
    assert not listed & {fid.TRIGGER, fid.GAIN, fid.ROI} and fid.SHUTTER in listed
    assert pxl.getFeature(h, fid.TRIGGER) == (pxl.ReturnCode.ApiNotSupportedError,)
    assert pxl.setFeature(h, fid.GAIN, 2, [1.0]) == (pxl.ReturnCode.ApiNotSupportedError,)


def test_a_colour_sensor_substitutes_its_own_bayer_order(pxl: Any, fake_sdk: Any) -> None:
    pf = pxl.PixelFormat
    fake_sdk.add_camera(78, colour=True, bayer8=pf.BAYER8_BGGR)
    h = pxl.initialize(78)[1]
    assert pxl.setFeature(h, pxl.FeatureId.PIXEL_FORMAT, 2, [pf.BAYER8_GRBG]) == (
        pxl.ReturnCode.ApiSuccessParametersChanged,)
    assert pxl.getFeature(h, pxl.FeatureId.PIXEL_FORMAT)[2] == [pf.BAYER8_BGGR]


def test_mono16_can_be_little_endian(pxl: Any, fake_sdk: Any) -> None:
    cam = fake_sdk.add_camera(79, mono16_byte_order="little")
    h = pxl.initialize(79)[1]
    pxl.setFeature(h, pxl.FeatureId.ROI, 2, [0, 0, 32, 32])
    pxl.setFeature(h, pxl.FeatureId.PIXEL_FORMAT, 2, [pxl.PixelFormat.MONO16])
    pxl.setStreamState(h, pxl.StreamState.START)
    buffer = ctypes.create_string_buffer(32 * 32 * 2)
    rc, desc = pxl.getNextFrame(h, buffer)
    values = np.frombuffer(buffer, "<u2").reshape(32, 32) >> 4
    np.testing.assert_array_equal(values, cam.expected_values(desc.u64FrameNumber))
    rc, mono8 = pxl.formatImage(buffer, desc, pxl.ImageFormat.RAW_MONO8)
    np.testing.assert_array_equal(np.frombuffer(mono8, np.uint8).reshape(32, 32), (values >> 4).astype(np.uint8))


def test_the_import_checks_pixelink_sdk_lib_like_the_wrapper(
    fake_sdk: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.delenv("PIXELINK_SDK_LIB")
    fake_sdk.allow_import()
    with pytest.raises(ValueError, match="invalid literal"):  # find in the current folder found nothing
        import pixelinkWrapper  # noqa: F401
    monkeypatch.setenv("PIXELINK_SDK_LIB", str(tmp_path / "missing"))
    with pytest.raises(subprocess.CalledProcessError):
        import pixelinkWrapper  # noqa: F401
    (tmp_path / "sdk").mkdir()
    (tmp_path / "sdk" / "libPxLApi.so.4").write_bytes(b"")  # a SONAME link: a short version
    monkeypatch.setenv("PIXELINK_SDK_LIB", str(tmp_path / "sdk"))
    with pytest.raises(IndexError):
        import pixelinkWrapper  # noqa: F401


def test_a_slow_import_blocks_until_reset(fake_sdk: Any) -> None:
    fake_sdk.slow_import(60)
    failed: list[BaseException] = []

    def importing() -> None:
        try:
            import pixelinkWrapper  # noqa: F401
        except BaseException as exc:  # handed to the test
            failed.append(exc)

    thread = threading.Thread(target=importing, daemon=True)
    thread.start()
    assert fake_sdk.import_started.wait(5.0)
    assert thread.is_alive()
    fake_sdk.reset()
    thread.join(5.0)
    assert not thread.is_alive() and isinstance(failed[0], OSError)
