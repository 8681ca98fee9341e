"""Fixtures for tests that talk to PixeLINK cameras: the fake ``pixelinkWrapper`` and drivers on it.

Load them with ``pytest_plugins = ["fixtures_pixelink"]`` in a test module.

The fake package lives in tests/fake_pixelink/ and is importable only while ``fake_sdk`` is
active: the fixture puts that folder first on ``sys.path`` and, afterwards, removes it and every
``pixelinkWrapper`` module, so production code and other tests never see it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labcam.cameras.pixelink import PixelinkCamera

FAKE_ROOT = Path(__file__).parent / "fake_pixelink"

SERIAL = 771_000_123
"""Serial number of the camera the ``camera`` fixture plugs in."""

FAST: dict[str, Any] = {
    "exposure_ms": 2.0,
    "gain_db": 0.0,
    "fps": 200.0,
    "roi": (16, 8, 64, 48),
    "pixel_format": "mono8",
}
"""Settings that keep tests fast: 5 ms frames of 64x48 pixels (power-on values of the fake differ)."""


def _forget_wrapper_modules() -> None:
    for name in [n for n in sys.modules if n == "pixelinkWrapper" or n.startswith("pixelinkWrapper.")]:
        del sys.modules[name]


@pytest.fixture
def sdk_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed "native library" file, named like the Linux SDK's, with $PIXELINK_SDK_LIB on it.

    The real wrapper's import reads the library's version from that name (see the fake's
    ``on_import``); the fake checks the variable the same way.
    """
    library = tmp_path / "PixeLINK" / "lib" / "libPxLApi.so.4.2.2.11"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"")
    monkeypatch.setenv("PIXELINK_SDK_LIB", str(library))
    return library


@pytest.fixture
def fake_sdk(sdk_library: Path) -> Iterator[Any]:
    """The fake SDK's control object (``pixelinkWrapper.fake.FAKE``), with no camera plugged in."""
    _forget_wrapper_modules()
    sys.path.insert(0, str(FAKE_ROOT))
    try:
        sdk = importlib.import_module("pixelinkWrapper.fake").FAKE
        sdk.reset()
        yield sdk
        sdk.reset()  # wakes anything still blocked, ends callback threads
    finally:
        sys.path.remove(str(FAKE_ROOT))
        _forget_wrapper_modules()


@pytest.fixture
def pxl(fake_sdk: Any) -> Any:
    """The fake ``PxLApi`` class (for constants, and for direct calls in tests of the fake)."""
    return importlib.import_module("pixelinkWrapper").PxLApi


@pytest.fixture
def camera(fake_sdk: Any) -> Any:
    """One mono fake camera (12-bit, 640x480), serial ``SERIAL``."""
    return fake_sdk.add_camera(SERIAL)


@pytest.fixture
def fast_settings() -> dict[str, Any]:
    """A copy of ``FAST``."""
    return dict(FAST)


@pytest.fixture
def make_driver(fake_sdk: Any) -> Iterator[Callable[..., PixelinkCamera]]:
    """Factory of opened ``PixelinkCamera`` drivers with ``FAST`` settings; all closed afterwards."""
    drivers: list[PixelinkCamera] = []

    def make(serial: int | None = None, **settings: Any) -> PixelinkCamera:
        driver = PixelinkCamera(serial, **{**FAST, **settings})
        drivers.append(driver)
        driver.open()
        return driver

    yield make
    for driver in drivers:
        driver.close()
