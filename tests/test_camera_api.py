"""The scripted acquisition API, as an analysis notebook uses it."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

import labcam
from labcam import Camera, Frame, SettingError, Stack


@pytest.fixture
def cam():
    with labcam.open("simulated", width=96, height=64, fps=100.0, exposure_ms=2.0, seed=7, idle_grace=0) as c:
        yield c


def test_open_is_a_context_manager_that_releases_the_camera() -> None:
    with labcam.open("simulated", width=32, height=32, idle_grace=0) as c:
        assert isinstance(c, Camera)
        c.snap()
        driver = c.engine.driver
        assert driver.streaming or c.engine.running is False
    assert not driver.streaming
    with pytest.raises(labcam.CameraError):
        c.snap(timeout=1)


def test_unknown_camera_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="simulated"):
        labcam.open("webcam")


def test_snap_returns_a_full_frame_array_and_metadata_on_request(cam: Camera) -> None:
    img = cam.snap()
    assert isinstance(img, np.ndarray) and img.shape == (64, 96) and img.dtype == np.uint8
    assert not img.flags.writeable  # shared with other consumers
    frame = cam.snap(meta=True)
    assert isinstance(frame, Frame)
    assert frame.meta.exposure_ms == 2.0 and frame.meta.pixel_format == "mono8"
    assert img.std() > 1  # a specimen, not a flat field


def test_snap_while_streaming_does_not_stop_the_stream(cam: Camera) -> None:
    with cam.frames(timeout=5) as live:
        first = next(live)
        snapped = cam.snap(meta=True)
        later = next(live)
    assert snapped.meta.frame_number > first.meta.frame_number
    assert later.meta.frame_number > first.meta.frame_number


def test_acquire_returns_consecutive_frames_with_metadata(cam: Camera) -> None:
    stack = cam.acquire(20, progress=False)
    assert isinstance(stack, Stack)
    assert stack.shape == (20, 64, 96) and stack.dtype == np.uint8
    assert np.asarray(stack).shape == (20, 64, 96)
    numbers = stack.frame_numbers
    assert list(numbers) == list(range(numbers[0], numbers[0] + 20))
    assert np.all(np.diff(stack.timestamps) > 0)
    assert stack.dropped == 0
    assert stack[3].meta.frame_number == numbers[3]
    # frames differ (the specimen drifts and noise changes)
    assert not np.array_equal(stack.array[0], stack.array[-1])


def test_acquire_counts_camera_drops_honestly(cam: Camera) -> None:
    sim = cam.engine.driver
    result: list[Stack] = []
    worker = threading.Thread(target=lambda: result.append(cam.acquire(200, progress=False)))
    worker.start()
    # Inject the gap once the acquisition has its first frame, so the gap falls inside it.
    deadline = time.monotonic() + 10
    while not any(s.name == "acquire" and s.delivered for s in list(cam.engine._subs)):
        assert time.monotonic() < deadline, "the acquisition never started"
        threading.Event().wait(0.002)
    sim.faults.drop_frames(2)
    worker.join(20)
    (stack,) = result
    assert stack.dropped == 2
    assert np.diff(stack.frame_numbers).sum() == 199 + 2


def test_acquire_of_16_bit_frames(cam: Camera) -> None:
    cam.pixel_format = "mono12"
    stack = cam.acquire(5, progress=False)
    assert stack.dtype == np.uint16
    assert stack.array.max() < 4096 and stack.array.max() > 255


def test_frames_iterates_sync_and_async(cam: Camera) -> None:
    frames = list(cam.frames(limit=5))
    assert len(frames) == 5
    numbers = [f.meta.frame_number for f in frames]
    assert numbers == sorted(set(numbers))

    async def collect() -> list[Frame]:
        out = []
        async for f in cam.frames(limit=3, timeout=5):
            out.append(f)
        return out

    assert len(asyncio.run(collect())) == 3


def test_frames_times_out_when_the_camera_delivers_nothing(cam: Camera) -> None:
    cam.set(trigger_mode="hardware")
    with pytest.raises(labcam.FrameTimeout):
        with cam.frames(timeout=0.2) as live:
            next(live)


def test_timelapse_spaces_frames_by_the_interval(cam: Camera) -> None:
    t0 = time.monotonic()
    stack = cam.timelapse(4, 0.1, progress=False)
    elapsed = time.monotonic() - t0
    assert stack.shape == (4, 64, 96)
    assert elapsed >= 0.3
    gaps = np.diff(stack.timestamps)
    assert np.all(gaps >= 0.08), gaps


def test_settings_as_attributes_are_validated(cam: Camera) -> None:
    cam.exposure_ms = 5
    cam.gain_db = 3
    assert cam.settings.exposure_ms == 5 and cam.gain_db == 3
    with pytest.raises(SettingError) as info:
        cam.gain_db = 1000
    message = str(info.value)
    assert "gain_db" in message and "1000" in message and "24" in message
    with pytest.raises(SettingError, match="exposure_ms"):
        cam.exposure_ms = "fast"  # type: ignore[assignment]
    assert cam.gain_db == 3 and cam.exposure_ms == 5


def test_set_changes_several_settings_or_none(cam: Camera) -> None:
    before = cam.settings
    with pytest.raises(SettingError):
        cam.set(gain_db=6, exposure_ms=10_000)
    assert cam.settings == before
    after = cam.set(gain_db=6, exposure_ms=4)
    assert (after.gain_db, after.exposure_ms) == (6, 4)


def test_roi_change_applies_to_following_frames(cam: Camera) -> None:
    cam.roi = (0, 0, 32, 32)
    assert cam.snap().shape == (32, 32)


def test_bad_counts_are_refused(cam: Camera) -> None:
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n="):
            cam.acquire(n, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval_s"):
        cam.timelapse(3, 0)


def test_repr_is_informative(cam: Camera) -> None:
    text = repr(cam)
    assert "simulated" in text and "96x64" in text and "mono8" in text


def test_close_stops_recordings_cleanly(tmp_path) -> None:
    import tifffile

    cam = labcam.open("simulated", width=64, height=48, fps=100.0, exposure_ms=1.0, seed=2, idle_grace=0)
    rec = cam.record(tmp_path / "run.ome.tif", progress=False)
    with cam.frames(limit=5) as live:
        for _ in live:
            pass  # frames flow while recording
    cam.close()
    status = rec.status()
    assert status["state"] != "recording" and rec.error is None, status
    written = status["frames_written"]
    assert written >= 1
    with tifffile.TiffFile(tmp_path / "run.ome.tif") as tif:
        assert len(tif.pages) == written
