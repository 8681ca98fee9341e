"""Choosing the camera: ``open_camera("auto" | "pixelink" | "simulated", ...)``.

The PixeLINK side runs on the fake pixelinkWrapper (fixtures_pixelink); the simulated side is the
real simulated camera, kept small so it opens fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from labcam.cameras.base import CameraDriver
from labcam.cameras.pixelink import PixelinkCamera
from labcam.cameras.selection import open_camera
from labcam.cameras.simulated import SimulatedCamera
from labcam.errors import CameraUnavailable

pytest_plugins = ["fixtures_pixelink"]

SIM_OPTIONS: dict[str, Any] = {"width": 64, "height": 48, "seed": 3}
"""Options only the simulated camera takes: they must not break the PixeLINK path."""


@pytest.fixture
def opened() -> Iterator[Callable[..., CameraDriver]]:
    """``open_camera`` that closes every driver it returned at the end of the test."""
    drivers: list[CameraDriver] = []

    def open_(*args: Any, **kwargs: Any) -> CameraDriver:
        driver = open_camera(*args, **kwargs)
        drivers.append(driver)
        return driver

    yield open_
    for driver in drivers:
        driver.close()


def _make_unavailable(fake_sdk: Any, why: str) -> str:
    """Arrange for the PixeLINK camera to be unusable in the way ``why`` names; returns the reason text."""
    if why == "sdk missing":
        fake_sdk.add_camera(4242)
        fake_sdk.fail_import("no_library")
        return "PixeLINK SDK not usable: OSError: libPxLApi.so: cannot open shared object file"
    if why == "no camera":
        return "no PixeLINK camera found"
    camera = fake_sdk.add_camera(4242)
    camera.in_use_elsewhere = True
    return "PixeLINK camera 4242 is busy (in use by another program)"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- auto --------------------------------------------------------------------------------------


@pytest.mark.parametrize("why", ["sdk missing", "no camera", "busy"])
def test_auto_falls_back_to_the_simulated_camera_with_one_warning_saying_why(
    fake_sdk: Any, opened: Callable[..., CameraDriver], caplog: pytest.LogCaptureFixture, why: str
) -> None:
    reason = _make_unavailable(fake_sdk, why)
    with caplog.at_level(logging.DEBUG, logger="labcam"):
        driver = opened("auto", exposure_ms=4.0, **SIM_OPTIONS)
    assert isinstance(driver, SimulatedCamera)
    assert driver.description.driver == "simulated"
    assert (driver.description.sensor_width, driver.description.sensor_height) == (64, 48)
    assert driver.settings.exposure_ms == 4.0
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith("PixeLINK camera not used (")
    assert reason in warnings[0]
    assert warnings[0].endswith("): streaming from the simulated camera")


def test_auto_uses_the_pixelink_camera_when_there_is_one(
    fake_sdk: Any, opened: Callable[..., CameraDriver], caplog: pytest.LogCaptureFixture
) -> None:
    camera = fake_sdk.add_camera(4242)
    with caplog.at_level(logging.WARNING, logger="labcam"):
        driver = opened("auto", fps=50.0, **SIM_OPTIONS)
    assert isinstance(driver, PixelinkCamera)
    assert driver.description.serial == "4242"
    assert driver.settings.fps == 50.0
    assert camera.open_handles == 1
    assert _warnings(caplog) == []


def test_auto_picks_the_pixelink_camera_by_serial(fake_sdk: Any, opened: Callable[..., CameraDriver]) -> None:
    fake_sdk.add_camera(1111)
    fake_sdk.add_camera(2222)
    assert opened("auto", serial=2222).description.serial == "2222"


def test_auto_fallback_drops_options_only_pixelink_takes(
    fake_sdk: Any, pxl: Any, opened: Callable[..., CameraDriver]
) -> None:
    # No camera: the PixeLINK attempt fails, and the simulator must not choke on ``api``.
    driver = opened("auto", api=pxl, **SIM_OPTIONS)
    assert isinstance(driver, SimulatedCamera)


# --- pixelink ----------------------------------------------------------------------------------


def test_pixelink_ignores_options_meant_for_the_simulator(
    fake_sdk: Any, opened: Callable[..., CameraDriver]
) -> None:
    camera = fake_sdk.add_camera(4242)
    driver = opened("pixelink", serial=4242, roi=(0, 0, 128, 96), pixel_format="mono12", **SIM_OPTIONS)
    assert isinstance(driver, PixelinkCamera)
    assert driver.settings.roi == (0, 0, 128, 96)
    assert driver.settings.pixel_format == "mono12"
    assert camera.open_handles == 1


@pytest.mark.parametrize("why", ["sdk missing", "no camera", "busy"])
def test_pixelink_that_cannot_be_used_is_an_error_with_the_reason_never_a_simulation(
    fake_sdk: Any, opened: Callable[..., CameraDriver], caplog: pytest.LogCaptureFixture, why: str
) -> None:
    reason = _make_unavailable(fake_sdk, why)
    with caplog.at_level(logging.WARNING, logger="labcam"), pytest.raises(CameraUnavailable) as err:
        opened("pixelink", **SIM_OPTIONS)
    assert reason in str(err.value)
    assert _warnings(caplog) == []


# --- simulated, and names ----------------------------------------------------------------------


def test_simulated_gets_every_option(fake_sdk: Any, opened: Callable[..., CameraDriver]) -> None:
    fake_sdk.add_camera(4242)  # present, but not asked for
    driver = opened("simulated", pixel_format="mono12", **SIM_OPTIONS)
    assert isinstance(driver, SimulatedCamera)
    assert driver.settings.pixel_format == "mono12"
    assert fake_sdk.camera(4242).open_handles == 0


def test_simulated_by_name_rejects_an_option_it_does_not_take(opened: Callable[..., CameraDriver]) -> None:
    with pytest.raises(TypeError):
        opened("simulated", exposure=5, **SIM_OPTIONS)


def test_an_unknown_camera_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of auto, pixelink, simulated"):
        open_camera("webcam")
