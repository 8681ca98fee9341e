"""``labcam selftest`` against the fake PixeLINK SDK (both MONO16 byte orders) and the simulated camera."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labcam.cameras.pixelink import PixelinkCamera
from labcam.cameras.simulated import SimulatedCamera
from labcam.cli import main
from labcam.selftest import run_selftest, write_reports

pytest_plugins = ["fixtures_pixelink"]

SERIAL = 6161
GAIN, TRIGGER = 8, 12
ApiNoDeviceError = -1879048185
STEADY = {"fps": 50.0, "exposure_ms": 2.0}  # slow enough to measure on a busy machine


def _quiet(_: str) -> None:
    pass


def _no_prompt(_: str) -> None:
    raise AssertionError("the self-test asked the user without --unplug")


def test_a_camera_that_behaves_as_labcam_expects_passes_and_both_reports_are_written(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera], tmp_path: Path
) -> None:
    camera = fake_sdk.add_camera(SERIAL)
    driver = make_driver(**STEADY)
    before = driver.settings
    report = run_selftest(driver, ask=_no_prompt, say=_quiet)
    assert report.passed, report.to_text()
    assert [c.name for c in report.checks] == [
        "opening", "settings", "pixels", "bayer order", "frame rate", "timestamps", "timeout"]
    assert report.check("bayer order").status == "skip"  # a mono camera
    assert report.check("pixels").details["sdk_layouts_matching"] == ["big-endian, msb-aligned"]
    assert report.check("timeout").details["stop_wakes_getNextFrame_with"] == "ApiStreamStopped"
    trips = report.check("settings").details["round_trips"]
    assert {"setting": "gain_db", "asked": 24.0, "read_back": 24.0} in trips
    assert driver.settings == before  # put back as it was
    assert camera.stream_state == 2  # stopped

    json_path, text_path = write_reports(report, tmp_path / "reports")
    saved = json.loads(json_path.read_text())
    assert saved["passed"] is True and saved["camera"]["serial"] == str(SERIAL)
    assert {c["name"] for c in saved["checks"]} >= {"pixels", "timeout"}
    text = text_path.read_text()
    assert "[PASS] pixels: MONO16 is big-endian and MSB-aligned" in text
    assert "RESULT: everything that was checked passed" in text


def test_the_other_mono16_byte_order_is_detected(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL, mono16_byte_order="little")
    report = run_selftest(make_driver(**STEADY), ask=_no_prompt, say=_quiet)
    pixels = report.check("pixels")
    assert pixels.status == "fail"
    assert pixels.details["sdk_layouts_matching"] == ["little-endian, msb-aligned"]
    assert not report.passed
    assert any("MONO16 arrives little-endian MSB-aligned" in d for d in report.differences)
    assert "some checks FAILED" in report.to_text()


def test_a_colour_camera_reports_whether_its_bayer_order_follows_the_roi_offset(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL, colour=True)
    report = run_selftest(make_driver(**STEADY), ask=_no_prompt, say=_quiet)
    bayer = report.check("bayer order")
    assert bayer.status == "info"
    assert bayer.summary == "the camera rounds ROI offsets to even pixels: the Bayer order cannot shift"
    assert [f["roi"][:2] for f in bayer.details["frames"]] == [[0, 0]] * 4
    assert report.passed, report.to_text()


def test_missing_features_are_reported_and_their_checks_skipped(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL, without={TRIGGER, GAIN})
    report = run_selftest(make_driver(**STEADY), ask=_no_prompt, say=_quiet)
    assert report.passed, report.to_text()
    assert report.check("opening").details["absent"] == ["gain_db", "trigger_mode"]
    assert report.check("timeout").status == "skip"
    assert "the camera has no gain_db feature: gain_db is not offered and never written" in report.differences


def test_unplug_records_what_the_sdk_said_and_that_labcam_recovered(
    fake_sdk: Any, make_driver: Callable[..., PixelinkCamera]
) -> None:
    fake_sdk.add_camera(SERIAL)
    prompts: list[str] = []

    def user(prompt: str) -> None:  # the person at the bench, pulling and plugging the cable
        prompts.append(prompt)
        if "Unplug" in prompt:
            fake_sdk.unplug(SERIAL, frame_rc=ApiNoDeviceError)
        else:
            fake_sdk.replug(SERIAL)

    report = run_selftest(make_driver(**STEADY), unplug=True, ask=user, say=_quiet)
    unplug = report.check("unplug")
    assert unplug.status == "pass", report.to_text()
    assert "ApiNoDeviceError" in unplug.details["sdk_said"]
    assert len(prompts) == 2
    assert any(d.startswith("an unplug shows up as: PixeLINK camera 6161 disconnected (ApiNoDeviceError)")
               for d in report.differences)


def test_the_simulated_camera_runs_what_applies() -> None:
    camera = SimulatedCamera(width=64, height=48, fps=50.0, exposure_ms=2.0)
    try:
        report = run_selftest(camera, ask=_no_prompt, say=_quiet)
    finally:
        camera.close()
    assert report.check("pixels").status == "skip"
    assert report.check("timeout").status == "pass"
    assert report.passed, report.to_text()


def test_the_command_writes_the_reports_and_says_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["selftest", "--camera", "simulated", "--width", "64", "--height", "48", "--fps", "50",
                 "--exposure-ms", "2", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "RESULT: everything that was checked passed" in out
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".txt"]
