"""The PixeLINK driver and the engine on the SDK's unkind corners (issue 12).

Each test reproduces something the real SDK does and the fake used to hide: models without
optional features, unplugs reported with codes outside the driver's "lost" list, a slow import,
``ApiSuccessParametersChanged`` on the pixel format, the 1.5.0 trigger inputs, and a driver whose
reads always fail (the engine must not spin on it). Waits are on conditions with timeouts.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labcam.cameras import pixelink
from labcam.cameras.pixelink import PixelinkCamera
from labcam.engine import Engine
from labcam.errors import CameraUnavailable

pytest_plugins = ["fixtures_pixelink"]

SERIAL = 5151
GAIN, TRIGGER, FRAME_RATE, ROI, PIXEL_ADDRESSING, PIXEL_FORMAT = 8, 12, 18, 19, 21, 22
BAYER8_GRBG, BAYER8_RGGB = 3, 7
LINE3, ACTION = 5, 3
MANUAL = 2

SETTING_OF = {TRIGGER: "trigger_mode", GAIN: "gain_db", FRAME_RATE: "fps", ROI: "roi", PIXEL_ADDRESSING: None}

RC = {
    "ApiNoDeviceError": -1879048185,
    "ApiLinkDriverError": -1879048183,
    "ApiDriverCommunicationError": -1879048172,
    "ApiOSServiceError": -1879048178,  # in no list of the driver: found by the liveness probe
}
ApiUnknownError = -2147483647
ApiStreamStopped = -2147483630
FOREVER = 100_000  # injected failures: more reads than any test makes


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.close()


# --- models without optional features ------------------------------------------------------------


@pytest.mark.parametrize("feature", sorted(SETTING_OF))
def test_a_camera_without_an_optional_feature_opens_and_streams(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera], feature: int
) -> None:
    camera = fake_sdk.add_camera(SERIAL, without={feature})
    driver = make_driver()
    setting = SETTING_OF[feature]
    if setting is not None:
        assert setting not in driver.specs.specs
        assert setting not in driver.settings.to_dict()
        assert driver.absent_features == {setting}
    assert [c for c in camera.received if c.feature_id == feature] == []  # never written
    driver.start()
    frame = driver.read_frame(5.0)
    x, y, w, h = frame.meta.roi
    assert frame.array.shape == (h, w)
    expected = (camera.expected_values(frame.meta.frame_number) >> 4).astype(np.uint8)
    np.testing.assert_array_equal(frame.array, expected)
    if feature == ROI:
        assert (w, h) == (640, 480) == (driver.description.sensor_width, driver.description.sensor_height)


def test_a_setting_the_camera_lacks_is_refused_as_unknown(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL, without={GAIN, FRAME_RATE})
    driver = make_driver()
    before = driver.settings
    with pytest.raises(ValueError, match="gain_db=3.0 is not allowed: unknown setting"):
        driver.update_settings({"gain_db": 3.0})
    assert driver.update_settings({"exposure_ms": 30.0}).exposure_ms == 30.0  # no frame period to fit
    assert driver.settings.gain_db == before.gain_db


def test_an_old_camera_with_two_pixel_addressing_parameters_opens(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL, pixel_addressing_params=2)
    driver = make_driver()
    driver.start()
    assert driver.read_frame(5.0).array.shape == (48, 64)


# --- the camera chooses another value -------------------------------------------------------------


def test_a_camera_that_substitutes_its_own_bayer_order_still_streams(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    camera = fake_sdk.add_camera(SERIAL, colour=True, bayer8=BAYER8_RGGB)
    driver = make_driver(pixel_format="rgb8")
    assert driver.settings.pixel_format == "rgb8"
    assert camera.feature(PIXEL_FORMAT) == [BAYER8_RGGB]
    driver.start()
    frame = driver.read_frame(5.0)
    np.testing.assert_array_equal(frame.array, camera.expected_rgb(frame.meta.frame_number))


# --- trigger inputs of 1.5.0 -----------------------------------------------------------------------


def test_trigger_inputs_line1_to_line4_and_action_are_hardware(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    camera = fake_sdk.add_camera(SERIAL, power_on={TRIGGER: (0, LINE3, 1, 0, 0)})
    driver = make_driver(trigger_mode="hardware")
    assert camera.feature(TRIGGER)[1] == LINE3  # the input the camera is wired to is kept
    assert (driver.settings.trigger_mode, driver.trigger_source) == ("hardware", "line3")
    camera.force_feature(TRIGGER, (0, ACTION, 1, 0, 0))  # another program picks the action command
    settings = driver.update_settings({"gain_db": 1.0})  # every change reads the camera back
    assert (settings.trigger_mode, driver.trigger_source) == ("hardware", "action")


# --- unplugs with codes outside the list -----------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RC))
def test_an_unplug_with_any_code_is_lost_then_recovered(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera], engines: list[Engine], code: str
) -> None:
    camera = fake_sdk.add_camera(SERIAL)
    engine = Engine(make_driver())
    engines.append(engine)
    lost, recovered = threading.Event(), threading.Event()
    engine.events.camera_lost.connect(lambda why: lost.set())
    engine.events.camera_recovered.connect(recovered.set)
    with engine.subscribe("viewer") as sub:
        before = sub.next(timeout=5)
        fake_sdk.unplug(SERIAL, frame_rc=RC[code])
        assert lost.wait(5.0), f"not lost within 5 s of the unplug: {engine.status}"
        assert engine.status.state == "lost"
        fake_sdk.replug(SERIAL)
        assert recovered.wait(20.0), f"not recovered within 20 s of the replug: {engine.status}"
        after = sub.next(timeout=20)  # the same consumer gets frames again
    assert after.meta.frame_number != before.meta.frame_number or after is not before
    assert camera.open_handles == 1 and not fake_sdk.violations


# --- a driver that always fails costs nothing -------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("rc", [ApiUnknownError, ApiStreamStopped], ids=["unknown-error", "stream-stopped"])
def test_a_driver_whose_reads_always_fail_costs_under_2_percent_of_a_core(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera], engines: list[Engine], rc: int
) -> None:
    camera = fake_sdk.add_camera(SERIAL)
    driver = make_driver()
    camera.inject_frame_errors(rc, FOREVER)  # every getNextFrame fails at once, for ever
    engine = Engine(driver)
    engines.append(engine)
    with engine.subscribe("viewer"):
        # Let the back-off reach its ceiling (about 2 s of failures), then measure over a window.
        deadline = time.monotonic() + 10
        while FOREVER - len(camera.state.injected_errors) < 9 and time.monotonic() < deadline:
            threading.Event().wait(0.1)  # a measurement's warm-up, not a synchronisation
        threading.Event().wait(1.5)
        cpu0, wall0, calls0 = _cpu_seconds(), time.monotonic(), len(camera.state.injected_errors)
        threading.Event().wait(4.0)  # the measurement window
        cpu, wall = _cpu_seconds() - cpu0, time.monotonic() - wall0
        calls = calls0 - len(camera.state.injected_errors)
    share = cpu / wall
    logging.getLogger(__name__).info("always-failing driver: %.2f %% of a core, %d reads in %.1f s",
                                     100 * share, calls, wall)
    assert share < 0.02, f"{100 * share:.2f} % of a core, {calls} reads in {wall:.1f} s"
    assert calls <= 8, f"{calls} reads in {wall:.1f} s: the engine does not back off"


# --- the import -------------------------------------------------------------------------------------


def test_a_slow_import_is_bounded_and_does_not_hold_the_lock(fake_sdk: Any) -> None:
    fake_sdk.add_camera(SERIAL)
    fake_sdk.slow_import(120)  # the wrapper's find scanning a huge folder tree
    driver = PixelinkCamera(import_timeout=1.0)
    outcome: list[BaseException] = []

    def opening() -> None:
        try:
            driver.open()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=opening, daemon=True)
    thread.start()
    assert fake_sdk.import_started.wait(5.0)
    closer = threading.Thread(target=driver.close, daemon=True)  # needs the driver's lock
    closer.start()
    closer.join(5.0)
    assert not closer.is_alive(), "close() waited for the import: it holds the driver's lock"
    thread.join(10.0)
    assert not thread.is_alive(), "open() did not return"
    assert isinstance(outcome[0], CameraUnavailable)
    assert "did not finish within 1 s" in str(outcome[0]) and "PIXELINK_SDK_LIB" in str(outcome[0])


def test_without_pixelink_sdk_lib_the_sdks_install_location_is_used(
    fake_sdk: Any, sdk_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, make_driver: Callable[..., PixelinkCamera],
) -> None:
    fake_sdk.add_camera(SERIAL)
    monkeypatch.delenv("PIXELINK_SDK_LIB")
    monkeypatch.setattr(pixelink, "SDK_LIBRARY_DIRS", (str(tmp_path / "nothing-here"), str(sdk_library.parent)))
    fake_sdk.allow_import()  # the fixture imported the package already: import it afresh
    with caplog.at_level(logging.INFO, logger="labcam.cameras.pixelink"):
        driver = make_driver()
    assert driver.description.serial == str(SERIAL)
    assert fake_sdk.imports_seen == [str(sdk_library)]  # the wrapper's probe was pointed at it
    assert f"PixeLINK SDK library: {sdk_library}" in caplog.text


def test_without_pixelink_sdk_lib_and_no_sdk_installed_open_says_why_without_scanning(
    fake_sdk: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sdk.add_camera(SERIAL)
    monkeypatch.delenv("PIXELINK_SDK_LIB")
    monkeypatch.setattr(pixelink, "SDK_LIBRARY_DIRS", (str(tmp_path),))
    fake_sdk.allow_import()
    with pytest.raises(CameraUnavailable, match=r"no libPxLApi\*\.so\.\* found \(\$PIXELINK_SDK_LIB is unset"):
        PixelinkCamera().open()
    assert fake_sdk.imports_seen == []  # never imported, so the wrapper never scanned the folder tree
