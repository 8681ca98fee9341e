"""The PixeLINK driver, against the fake pixelinkWrapper (tests/fake_pixelink, see fixtures_pixelink).

Every test looks at observable state: what the fake camera holds and received, the frames and
errors the driver gives. Cross-thread tests synchronise on the fake's "a reader is waiting" signal
and on thread joins with timeouts, never on sleeps.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labcam.cameras.pixelink import PixelinkCamera
from labcam.errors import (
    CameraDisconnected,
    CameraError,
    CameraUnavailable,
    FrameTimeout,
    SettingError,
    StreamStopped,
)
from labcam.frame import Frame

pytest_plugins = ["fixtures_pixelink"]

SERIAL = 4242  # serial of the cameras tests plug in themselves

SHUTTER, GAIN, FRAME_RATE, ROI, PIXEL_ADDRESSING, PIXEL_FORMAT, TRIGGER = 7, 8, 18, 19, 21, 22, 12
MONO8, MONO16, BAYER8_GRBG = 0, 1, 3
MANUAL, OFF = 2, 16
START, STOP = 0, 2
ApiCameraTimeoutError = -1879048180
ApiUnknownError = -2147483647


class Reader:
    """Runs ``driver.read_frame`` in a thread and keeps what came out (a Frame or an exception)."""

    def __init__(self, driver: PixelinkCamera, timeout: float = 10.0) -> None:
        self.result: Frame | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(driver, timeout), daemon=True)
        self._thread.start()

    def _run(self, driver: PixelinkCamera, timeout: float) -> None:
        try:
            self.result = driver.read_frame(timeout)
        except BaseException as exc:  # handed to the test
            self.result = exc

    def join(self, timeout: float = 5.0) -> Frame | BaseException | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "read_frame did not return"
        return self.result


# --- the SDK may be missing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("no_library", "OSError: libPxLApi.so: cannot open shared object file"),
        ("no_sdk_env", "ValueError: invalid literal for int()"),
        ("bad_sdk_dir", "CalledProcessError: Command"),
        ("short_version", "IndexError: list index out of range"),
    ],
)
def test_every_import_failure_is_camera_unavailable_with_the_reason(fake_sdk: Any, kind: str, shown: str) -> None:
    fake_sdk.add_camera(SERIAL)
    fake_sdk.fail_import(kind)
    with pytest.raises(CameraUnavailable) as err:
        PixelinkCamera().open()
    assert str(err.value).startswith("PixeLINK SDK not usable: ")
    assert shown in str(err.value)


def test_missing_package_says_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pixelinkWrapper", None)  # import raises ModuleNotFoundError
    with pytest.raises(CameraUnavailable, match="pixelinkWrapper package is not installed"):
        PixelinkCamera().open()


def test_the_wrappers_version_warning_on_stdout_is_harmless(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sdk.print_version_warning("4.2.10.3")
    driver = make_driver()
    assert "WARNING: Pixelink API Version 4.2.10.3 detected" in capsys.readouterr().out
    assert driver.description.serial == str(camera.serial)


def test_an_injected_api_class_is_used_instead_of_importing(
    fake_sdk: Any, camera: Any, pxl: Any, fast_settings: dict[str, Any]
) -> None:
    fake_sdk.fail_import("no_library")  # importing would fail now; the injected class must be used
    driver = PixelinkCamera(**fast_settings, api=pxl)
    driver.open()
    try:
        assert camera.open_handles == 1
    finally:
        driver.close()


def test_production_code_cannot_import_the_fake() -> None:
    spec = importlib.util.find_spec("pixelinkWrapper")
    fake_root = Path(__file__).parent / "fake_pixelink"
    assert spec is None or fake_root not in Path(spec.origin or "").parents


# --- finding and opening the camera --------------------------------------------------------------


def test_no_camera(fake_sdk: Any) -> None:
    with pytest.raises(CameraUnavailable, match=r"^no PixeLINK camera found$"):
        PixelinkCamera().open()


def test_camera_in_use_by_another_program_is_busy(camera: Any) -> None:
    camera.in_use_elsewhere = True
    with pytest.raises(CameraUnavailable) as err:
        PixelinkCamera().open()
    assert str(err.value) == f"PixeLINK camera {camera.serial} is busy (in use by another program)"


def test_second_driver_on_the_same_camera_is_busy(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    make_driver(camera.serial)
    with pytest.raises(CameraUnavailable, match="busy"):
        make_driver(camera.serial)
    assert camera.open_handles == 1


def test_the_camera_is_chosen_by_serial_number(fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    first, second = fake_sdk.add_camera(1111), fake_sdk.add_camera(2222)
    driver = make_driver(2222)
    assert driver.description.serial == "2222"
    assert (first.open_handles, second.open_handles) == (0, 1)


def test_an_index_is_not_a_serial_number(fake_sdk: Any) -> None:
    fake_sdk.add_camera(1111)
    fake_sdk.add_camera(2222)
    with pytest.raises(CameraUnavailable) as err:
        PixelinkCamera(1).open()  # "camera #1" is not a thing: serial 1 is not connected
    assert str(err.value) == "no PixeLINK camera with serial 1 found (connected: 1111, 2222)"


def test_without_a_serial_the_first_camera_is_used(fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    first = fake_sdk.add_camera(1111)
    fake_sdk.add_camera(2222)
    assert make_driver().description.serial == "1111"
    assert first.open_handles == 1


def test_description(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    d = make_driver().description
    assert (d.driver, d.model, d.serial, d.firmware) == ("pixelink", "PL-D752MU", str(camera.serial), "3.1.0")
    assert (d.sensor_width, d.sensor_height, d.max_bit_depth) == (640, 480, 12)
    assert d.pixel_formats == ("mono8", "mono12", "mono16")


def test_a_colour_camera_offers_rgb8(fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    fake_sdk.add_camera(SERIAL, colour=True)
    assert make_driver().description.pixel_formats == ("mono8", "mono12", "mono16", "rgb8")


def test_specs_come_from_the_camera_features_in_labcam_units(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    specs = make_driver().specs
    assert (specs["exposure_ms"].minimum, specs["exposure_ms"].maximum) == (0.01, 2000.0)
    assert (specs["gain_db"].minimum, specs["gain_db"].maximum) == (0.0, 24.0)
    assert (specs["fps"].minimum, specs["fps"].maximum) == (1.0, 300.0)
    assert (specs["roi"].sensor, specs["roi"].minimum) == ((640, 480), 32)
    assert specs["trigger_mode"].choices == ("free_running", "software", "hardware")
    assert specs["exposure_ms"].settable_while_streaming and specs["gain_db"].settable_while_streaming
    assert not specs["roi"].settable_while_streaming
    assert not specs["pixel_format"].settable_while_streaming


def test_properties_before_open_raise(fake_sdk: Any) -> None:
    driver = PixelinkCamera()
    for name in ("description", "settings", "specs"):
        with pytest.raises(CameraError, match="not been opened"):
            getattr(driver, name)


def test_a_setting_the_camera_does_not_allow_fails_open_and_releases_it(
    camera: Any, fast_settings: dict[str, Any]
) -> None:
    with pytest.raises(SettingError, match="exposure_ms=9000"):
        PixelinkCamera(**{**fast_settings, "exposure_ms": 9000}).open()
    assert camera.open_handles == 0


# --- settings ----------------------------------------------------------------------------------


def test_open_applies_every_setting_over_the_power_on_values(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera], fast_settings: dict[str, Any]
) -> None:
    # This camera powers up binned 2x2 and hardware-triggered: labcam must undo both.
    cam = fake_sdk.add_camera(SERIAL, power_on={PIXEL_ADDRESSING: [2, 0, 2, 2]})
    cam.force_feature(TRIGGER, [0, 2, 1, 0, 0])
    driver = make_driver(pixel_format="mono12")
    assert cam.feature(SHUTTER) == [pytest.approx(0.002)]
    assert cam.feature(GAIN) == [0.0]
    assert cam.feature(FRAME_RATE) == [200.0]
    assert cam.feature(ROI) == [16.0, 8.0, 64.0, 48.0]
    assert cam.feature(PIXEL_FORMAT) == [MONO16]
    assert cam.feature(PIXEL_ADDRESSING) == [1.0, 0.0, 1.0, 1.0]
    assert cam.feature_mode(TRIGGER) == OFF
    assert driver.settings.to_dict() == {**fast_settings, "roi": [16, 8, 64, 48], "pixel_format": "mono12",
                                         "trigger_mode": "free_running"}


def test_exposure_is_sent_in_seconds(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver(exposure_ms=2.5)
    assert camera.feature(SHUTTER) == [pytest.approx(0.0025)]
    driver.update_settings({"exposure_ms": 4.0})
    last = [call for call in camera.received if call.feature_id == SHUTTER][-1]
    assert last.params == (pytest.approx(0.004),)
    assert driver.settings.exposure_ms == 4.0


def test_settings_are_read_back_after_the_camera_rounds_them(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    new = driver.update_settings({"roi": (3, 5, 101, 51), "gain_db": 3.33, "exposure_ms": 2.503})
    # The fake puts the ROI origin on even pixels and sizes on multiples of 8, gain on 0.1 dB,
    # exposure on 10 us.
    assert new.roi == (2, 4, 96, 48)
    assert new.gain_db == 3.3
    assert new.exposure_ms == 2.5
    assert driver.settings == new
    driver.start()
    frame = driver.read_frame(2.0)
    assert frame.array.shape == (48, 96)
    assert frame.meta.roi == (2, 4, 96, 48)


@pytest.mark.parametrize(
    ("changes", "name", "allowed"),
    [
        ({"exposure_ms": 5000}, "exposure_ms", "from 0.01 to 2000 ms"),
        ({"gain_db": "high"}, "gain_db", "from 0 to 24 dB"),
        ({"gain_db": True}, "gain_db", "from 0 to 24 dB"),
        ({"brightness": 3}, "brightness", "unknown setting"),
        ({"roi": (600, 0, 64, 64)}, "roi", "inside the 640x480 sensor"),
        ({"pixel_format": "rgb8"}, "pixel_format", "one of 'mono8', 'mono12', 'mono16'"),
        ({"exposure_ms": 10.0}, "exposure_ms", "does not fit in one frame period at 200 fps"),
        ({"gain_db": 1.0, "fps": 0}, "fps", "from 1 to 300"),
    ],
)
def test_a_bad_setting_is_refused_and_nothing_changes(
    camera: Any, make_driver: Callable[..., PixelinkCamera], changes: dict[str, Any], name: str, allowed: str
) -> None:
    driver = make_driver()
    before = driver.settings
    received = len(camera.received)
    features = {fid: camera.feature(fid) for fid in (SHUTTER, GAIN, FRAME_RATE, ROI, PIXEL_FORMAT)}
    with pytest.raises(SettingError) as err:
        driver.update_settings(changes)
    assert err.value.name == name
    assert repr(changes[name]) in str(err.value)
    assert allowed in str(err.value)
    assert driver.settings == before
    assert len(camera.received) == received
    assert {fid: camera.feature(fid) for fid in features} == features


@pytest.mark.parametrize(("name", "value"), [("roi", (0, 0, 128, 96)), ("pixel_format", "mono16")])
def test_roi_and_pixel_format_cannot_change_while_streaming(
    camera: Any, make_driver: Callable[..., PixelinkCamera], name: str, value: Any
) -> None:
    driver = make_driver()
    driver.start()
    received = len(camera.received)
    with pytest.raises(SettingError, match="cannot be changed while streaming"):
        driver.update_settings({name: value})
    assert len(camera.received) == received
    assert camera.feature(ROI) == [16.0, 8.0, 64.0, 48.0]
    assert camera.feature(PIXEL_FORMAT) == [MONO8]


def test_exposure_and_gain_change_while_streaming(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver()
    driver.start()
    driver.update_settings({"exposure_ms": 3.0, "gain_db": 6.0})
    assert camera.feature(SHUTTER) == [pytest.approx(0.003)]
    assert camera.feature(GAIN) == [6.0]
    frame = driver.read_frame(2.0)
    assert (frame.meta.exposure_ms, frame.meta.gain_db) == (3.0, 6.0)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"fps": 20.0, "exposure_ms": 40.0}, {"fps": 200.0, "exposure_ms": 2.0}),
        ({"fps": 100.0, "exposure_ms": 9.0}, {"fps": 50.0, "exposure_ms": 19.0}),
    ],
)
def test_frame_rate_and_exposure_are_written_in_an_order_the_camera_accepts(
    camera: Any, make_driver: Callable[..., PixelinkCamera], first: dict[str, float], then: dict[str, float]
) -> None:
    # The camera clamps an exposure longer than the current frame period (and a frame rate too
    # fast for the current exposure): written in the wrong order, the values would not stick.
    driver = make_driver()
    for changes in (first, then):
        settings = driver.update_settings(changes)
        assert (settings.fps, settings.exposure_ms) == (changes["fps"], changes["exposure_ms"])
        assert camera.feature(FRAME_RATE) == [changes["fps"]]
        assert camera.feature(SHUTTER) == [pytest.approx(changes["exposure_ms"] / 1000)]


def test_a_value_the_camera_refuses_rolls_back_the_others(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    camera.refuse_feature(GAIN)
    with pytest.raises(SettingError) as err:
        driver.update_settings({"fps": 100.0, "gain_db": 6.0})
    assert err.value.name == "gain_db"
    assert "camera refused it: ApiOutOfRangeError" in str(err.value)
    assert camera.feature(FRAME_RATE) == [200.0]
    assert driver.settings.fps == 200.0


def test_trigger_modes_are_set_and_read_back(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver()
    assert driver.update_settings({"trigger_mode": "software"}).trigger_mode == "software"
    assert (camera.feature_mode(TRIGGER), camera.feature(TRIGGER)[1]) == (MANUAL, 1)
    assert driver.update_settings({"trigger_mode": "hardware"}).trigger_mode == "hardware"
    assert (camera.feature_mode(TRIGGER), camera.feature(TRIGGER)[1]) == (MANUAL, 2)
    assert driver.update_settings({"trigger_mode": "free_running"}).trigger_mode == "free_running"
    assert camera.feature_mode(TRIGGER) == OFF


# --- frames ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pixel_format", "dtype", "expected"),
    [
        ("mono8", np.uint8, lambda adc: (adc >> 4).astype(np.uint8)),  # top 8 of 12 bits
        ("mono12", np.uint16, lambda adc: adc),  # MSB-aligned 16 bits shifted back to 12
        ("mono16", np.uint16, lambda adc: adc << 4),  # MSB-aligned, as the camera sends it
    ],
)
def test_pixels_are_decoded_exactly(
    camera: Any, make_driver: Callable[..., PixelinkCamera], pixel_format: str, dtype: type,
    expected: Callable[[np.ndarray], np.ndarray],
) -> None:
    driver = make_driver(pixel_format=pixel_format)
    driver.start()
    for _ in range(2):  # two frames: the pattern moves with the frame number
        frame = driver.read_frame(2.0)
        assert frame.array.dtype == dtype
        assert frame.array.shape == (48, 64)
        np.testing.assert_array_equal(frame.array, expected(camera.expected_values(frame.meta.frame_number)))
    if pixel_format == "mono12":
        assert int(frame.array.max()) < 4096


def test_rgb8_comes_from_the_sdks_formatter(fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    cam = fake_sdk.add_camera(SERIAL, colour=True)
    driver = make_driver(pixel_format="rgb8")
    assert cam.feature(PIXEL_FORMAT) == [BAYER8_GRBG]
    driver.start()
    frame = driver.read_frame(2.0)
    assert frame.array.shape == (48, 64, 3) and frame.array.dtype == np.uint8
    np.testing.assert_array_equal(frame.array, cam.expected_rgb(frame.meta.frame_number))


def test_each_frame_is_its_own_read_only_copy(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver(pixel_format="mono16")
    driver.start()
    first = driver.read_frame(2.0)
    second = driver.read_frame(2.0)
    assert not np.shares_memory(first.array, second.array)
    assert not first.array.flags.writeable
    # The driver's buffer was overwritten by the second frame; the first frame kept its pixels.
    np.testing.assert_array_equal(first.array, camera.expected_values(first.meta.frame_number) << 4)


def test_frame_metadata(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver(exposure_ms=2.5, gain_db=1.5)
    driver.start()
    before = time.time()
    frame = driver.read_frame(2.0)
    after = time.time()
    m = frame.meta
    assert (m.exposure_ms, m.gain_db, m.roi, m.pixel_format, m.camera_serial) == (
        2.5, 1.5, (16, 8, 64, 48), "mono8", str(camera.serial))
    assert m.frame_number == camera.frame_number
    assert m.dropped_before == 0
    # Camera frame time mapped to the wall clock: the frame was taken during the read.
    assert before - 0.05 <= m.timestamp <= after + 0.05


def test_frame_numbers_count_on_and_show_gaps(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver()
    driver.start()
    numbers = [driver.read_frame(2.0).meta.frame_number for _ in range(3)]
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]
    camera.inject_frame_loss(3)
    after_loss = driver.read_frame(2.0)
    assert after_loss.meta.frame_number == numbers[-1] + 4
    assert after_loss.meta.dropped_before == 0  # the engine works out drops from the numbers
    # Frame numbers are the camera's: they continue across stop/start (USB semantics).
    driver.stop()
    driver.start()
    assert driver.read_frame(2.0).meta.frame_number == after_loss.meta.frame_number + 1


def test_a_frame_bigger_than_the_buffer_gets_a_new_buffer(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    driver.start()
    driver.read_frame(2.0)
    camera.force_feature(ROI, [0, 0, 128, 96])  # changed behind the driver's back
    frame = driver.read_frame(2.0)
    assert frame.array.shape == (96, 128)
    np.testing.assert_array_equal(frame.array, camera.expected_values(frame.meta.frame_number) >> 4)
    assert driver.settings.roi == (0, 0, 128, 96)


def test_start_with_low_memory_warning_still_streams(
    camera: Any, make_driver: Callable[..., PixelinkCamera], caplog: pytest.LogCaptureFixture
) -> None:
    camera.low_memory_on_start = True
    driver = make_driver()
    with caplog.at_level(logging.WARNING, logger="labcam"):
        driver.start()
    assert driver.streaming
    assert "ApiSuccessLowMemory" in caplog.text
    assert driver.read_frame(2.0).array.shape == (48, 64)


def test_software_trigger_gives_a_frame_per_read(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver(trigger_mode="software")
    driver.start()
    numbers = [driver.read_frame(2.0).meta.frame_number for _ in range(3)]
    assert numbers == list(range(numbers[0], numbers[0] + 3))


def test_hardware_trigger_read_waits_for_the_trigger_and_times_out_without_one(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver(trigger_mode="hardware")
    driver.start()
    assert not camera.fire_trigger()  # nobody is waiting: the pulse is lost, not buffered
    started = time.monotonic()
    with pytest.raises(FrameTimeout):
        driver.read_frame(0.1)
    assert time.monotonic() - started < 2.0
    # The read was ended by stopping the stream; the driver started it again.
    assert driver.streaming and camera.stream_state == START
    reader = Reader(driver)
    assert camera.wait_for_reader(5.0)
    assert camera.fire_trigger()
    frame = reader.join()
    assert isinstance(frame, Frame)
    np.testing.assert_array_equal(frame.array, camera.expected_values(frame.meta.frame_number) >> 4)


# --- errors from the SDK -----------------------------------------------------------------------


def test_a_few_timeouts_are_retried(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver()
    driver.start()
    camera.inject_timeouts(4)  # more than the probe threshold: the probe finds the camera alive
    frame = driver.read_frame(5.0)
    assert frame.array.shape == (48, 64)
    assert driver.streaming


def test_timeouts_until_the_deadline_raise_frame_timeout(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    driver.start()
    camera.inject_timeouts(10_000)
    with pytest.raises(FrameTimeout):
        driver.read_frame(0.05)
    assert driver.streaming  # a timeout is not a loss: the camera answered the probe
    camera.clear_injections()
    assert driver.read_frame(2.0).array.shape == (48, 64)


def test_a_timeout_burst_from_an_unplugged_camera_is_a_disconnect(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    driver.start()
    driver.read_frame(2.0)
    fake_sdk.unplug(camera.serial, frame_rc=ApiCameraTimeoutError)  # this USB stack only says "timeout"
    with pytest.raises(CameraDisconnected):
        driver.read_frame(5.0)  # the liveness probe after a few timeouts finds the camera gone
    assert not driver.streaming


def test_other_errors_are_camera_errors_with_the_sdks_report(
    camera: Any, make_driver: Callable[..., PixelinkCamera], caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver()
    driver.start()
    camera.inject_frame_errors(ApiUnknownError)
    with caplog.at_level(logging.ERROR, logger="labcam"), pytest.raises(CameraError) as err:
        driver.read_frame(2.0)
    assert not isinstance(err.value, CameraDisconnected)
    assert "getNextFrame failed with ApiUnknownError (PxLGetNextFrame" in str(err.value)
    assert "PxLGetNextFrame" in caplog.text
    assert driver.read_frame(2.0).array.shape == (48, 64)  # still streaming


# --- unplug, replug, reconnect ---------------------------------------------------------------


def test_unplug_then_replug_reconnects_with_every_setting_reapplied(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver(pixel_format="mono12", gain_db=1.5)
    driver.update_settings({"roi": (3, 5, 101, 51)})  # rounded to (2, 4, 96, 48)
    driver.start()
    driver.read_frame(2.0)
    settings = driver.settings
    fake_sdk.unplug(camera.serial)
    with pytest.raises(CameraDisconnected):
        driver.read_frame(2.0)
    assert not driver.streaming
    assert driver.reconnect() is False  # still unplugged

    fake_sdk.replug(camera.serial)
    assert camera.feature(SHUTTER) == [pytest.approx(0.02)]  # power-on values, not ours
    assert driver.reconnect() is True
    assert driver.settings == settings
    assert camera.feature(SHUTTER) == [pytest.approx(0.002)]
    assert camera.feature(GAIN) == [1.5]
    assert camera.feature(FRAME_RATE) == [200.0]
    assert camera.feature(ROI) == [2.0, 4.0, 96.0, 48.0]
    assert camera.feature(PIXEL_FORMAT) == [MONO16]
    assert camera.feature_mode(TRIGGER) == OFF
    assert driver.streaming and camera.stream_state == START  # it was streaming when lost
    frame = driver.read_frame(2.0)
    np.testing.assert_array_equal(frame.array, camera.expected_values(frame.meta.frame_number))
    assert camera.open_handles == 1


def test_unplug_wakes_a_blocked_read(fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver(trigger_mode="hardware")
    driver.start()
    reader = Reader(driver)
    assert camera.wait_for_reader(5.0)
    fake_sdk.unplug(camera.serial)
    assert isinstance(reader.join(), CameraDisconnected)


def test_a_camera_lost_while_stopped_comes_back_stopped(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    fake_sdk.unplug(camera.serial)
    with pytest.raises(CameraDisconnected):
        driver.update_settings({"gain_db": 4.0})
    with pytest.raises(CameraDisconnected):
        driver.start()
    fake_sdk.replug(camera.serial)
    assert driver.reconnect() is True
    assert not driver.streaming and camera.stream_state == STOP
    assert camera.feature(GAIN) == [0.0]
    driver.start()
    assert driver.read_frame(2.0).array.shape == (48, 64)


def test_reconnect_of_a_healthy_camera_is_true(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    assert make_driver().reconnect() is True
    assert camera.open_handles == 1


# --- threads: stop and close ------------------------------------------------------------------


def test_stop_from_another_thread_wakes_a_blocked_read(
    camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver(trigger_mode="hardware")  # a read blocks until a trigger: none will come
    driver.start()
    reader = Reader(driver, timeout=30.0)
    assert camera.wait_for_reader(5.0)
    driver.stop()
    assert isinstance(reader.join(), StreamStopped)
    assert camera.stream_state == STOP and not driver.streaming
    with pytest.raises(StreamStopped):
        driver.read_frame(1.0)


def test_close_without_stop_while_a_read_is_blocked_is_safe(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver(trigger_mode="hardware")
    driver.start()
    reader = Reader(driver, timeout=30.0)
    assert camera.wait_for_reader(5.0)
    driver.close()
    assert isinstance(reader.join(), StreamStopped)
    assert fake_sdk.violations == []  # never uninitialized under a blocked getNextFrame
    assert camera.stream_state == STOP  # stopped before letting go: the camera does not stream on
    assert camera.open_handles == 0
    driver.close()  # twice is fine


def test_close_after_a_disconnect_is_safe(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    driver = make_driver()
    driver.start()
    fake_sdk.unplug(camera.serial)
    with pytest.raises(CameraDisconnected):
        driver.read_frame(2.0)
    driver.close()
    assert driver.reconnect() is False  # closed for good
    assert fake_sdk.violations == []


def test_a_closed_camera_can_be_opened_again(camera: Any, make_driver: Callable[..., PixelinkCamera]) -> None:
    driver = make_driver()
    driver.close()
    assert camera.open_handles == 0
    driver.open()
    driver.start()
    assert driver.read_frame(2.0).array.shape == (48, 64)
    driver.stop()
    driver.update_settings({"trigger_mode": "hardware"})
    driver.start()
    with pytest.raises(FrameTimeout):  # the read deadline works after reopening too
        driver.read_frame(0.05)


# --- with the capture engine -------------------------------------------------------------------


def test_the_engine_streams_through_an_unplug_and_a_replug(
    fake_sdk: Any, camera: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    from labcam.engine import Engine

    lost, recovered = threading.Event(), threading.Event()
    with Engine(make_driver(pixel_format="mono12"), idle_grace=0.1) as engine:
        engine.events.camera_lost.connect(lambda why: lost.set())
        engine.events.camera_recovered.connect(recovered.set)
        with engine.subscribe() as sub:
            before = sub.next(timeout=5.0)
            fake_sdk.unplug(camera.serial)
            assert lost.wait(5.0)
            replugged_at = time.time()
            fake_sdk.replug(camera.serial)  # back at power-on settings, old handle dead
            assert recovered.wait(5.0)
            sub.poll()  # skip a frame from before the loss, if one was still unseen
            after = sub.next(timeout=5.0)
    # Taken after the replug (the camera counts frames from 1 again after its power cycle).
    assert after.meta.timestamp >= replugged_at - 0.05 > before.meta.timestamp - 0.05
    np.testing.assert_array_equal(after.array, camera.expected_values(after.meta.frame_number))
    assert camera.feature(SHUTTER) == [pytest.approx(0.002)]
    assert camera.open_handles == 0  # the engine closed the driver
    assert fake_sdk.violations == []
