"""The simulated camera: what it shows, how it is paced, numbered and broken on purpose.

Timing checks use only lower bounds that a correct camera cannot miss (or very generous upper
bounds), and threads are synchronised on the camera's state (``reads_waiting``), never by sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pytest

from labcam.cameras.base import CameraDriver
from labcam.cameras.simulated import SimulatedCamera, clear_caches
from labcam.errors import (
    CameraDisconnected,
    CameraError,
    CameraUnavailable,
    FrameTimeout,
    SettingError,
    StreamStopped,
)
from labcam.frame import Frame

W, H = 128, 96  # small sensors keep the suite fast; sizes have their own tests


def make(**kw) -> SimulatedCamera:
    kw.setdefault("width", W)
    kw.setdefault("height", H)
    return SimulatedCamera(**kw)


@pytest.fixture
def cam() -> Iterator[SimulatedCamera]:
    c = make(fps=200.0, exposure_ms=1.0, seed=11)
    c.open()
    yield c
    c.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a state of the camera) until true: synchronisation on state, not on time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.001)


def read_in_thread(cam: SimulatedCamera, timeout: float = 30.0) -> tuple[threading.Thread, list[object]]:
    """Start a thread blocked in ``read_frame``; return it and the list that gets its result."""
    result: list[object] = []

    def reader() -> None:
        try:
            result.append(cam.read_frame(timeout))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            result.append(exc)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    wait_until(lambda: cam.reads_waiting > 0 or bool(result), "the read to block")
    return t, result


# -- identity -----------------------------------------------------------------------------------
def test_description_and_specs() -> None:
    c = SimulatedCamera(serial="SIM-0042", max_fps=500.0)
    assert isinstance(c, CameraDriver)
    d = c.description
    assert (d.driver, d.model, d.serial) == ("simulated", "labcam simulated microscope", "SIM-0042")
    assert (d.sensor_width, d.sensor_height) == (1280, 1024)
    assert d.pixel_formats == ("mono8", "mono12", "mono16", "rgb8") and d.max_bit_depth == 16
    assert d.pixel_size_um == pytest.approx(0.65)
    s = c.settings
    assert (s.exposure_ms, s.gain_db, s.fps, s.roi, s.pixel_format, s.trigger_mode) == (
        10.0, 0.0, 30.0, (0, 0, 1280, 1024), "mono8", "free_running"
    )
    sp = c.specs
    assert (sp["exposure_ms"].minimum, sp["exposure_ms"].maximum) == (0.01, 2000.0)
    assert (sp["gain_db"].minimum, sp["gain_db"].maximum) == (0.0, 24.0)
    assert (sp["fps"].minimum, sp["fps"].maximum) == (0.1, 500.0)
    assert (sp["roi"].step, sp["roi"].minimum, sp["roi"].sensor) == (2, 16, (1280, 1024))
    assert not sp["roi"].settable_while_streaming and not sp["pixel_format"].settable_while_streaming
    assert sp["exposure_ms"].settable_while_streaming and sp["gain_db"].settable_while_streaming
    assert sp["trigger_mode"].choices == ("free_running", "software", "hardware")


def test_constructor_rejects_bad_shapes_and_settings() -> None:
    with pytest.raises(ValueError, match="width"):
        SimulatedCamera(width=101)
    with pytest.raises(ValueError, match="height"):
        SimulatedCamera(height=8)
    with pytest.raises(SettingError, match="pixel_format"):
        SimulatedCamera(pixel_format="mono10")
    with pytest.raises(SettingError, match="exposure_ms"):
        SimulatedCamera(fps=100.0, exposure_ms=20.0)  # 20 ms does not fit in a 10 ms frame


# -- what it shows -------------------------------------------------------------------------------
def test_same_seed_same_pixels_and_frames_match_expected_frame() -> None:
    a, b = make(seed=3, fps=200.0, exposure_ms=2.0), make(seed=3, fps=200.0, exposure_ms=2.0)
    for n in (0, 1, 57, 10_000):
        assert np.array_equal(a.expected_frame(n), b.expected_frame(n))
    # frames read from the stream are exactly what expected_frame recomputes, even on another instance
    a.open()
    a.start()
    frames = [a.read_frame(5.0) for _ in range(4)]
    a.close()
    for f in frames:
        assert np.array_equal(f.array, b.expected_frame(f.meta.frame_number))
    # noise differs from frame to frame
    assert not np.array_equal(frames[0].array, frames[1].array)


def test_different_seeds_differ() -> None:
    a, b = make(seed=1).expected_frame(0, noise=False), make(seed=2).expected_frame(0, noise=False)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def detail(img: np.ndarray, block: int) -> float:
    """Spread of neighbour differences after averaging ``block``-pixel blocks: structure at that scale."""
    h, w = (img.shape[0] // block) * block, (img.shape[1] // block) * block
    small = img[:h, :w].astype(float).reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    return float(np.diff(small, axis=1).std())


def test_image_is_a_structured_specimen_not_a_gradient() -> None:
    c = make(width=512, height=384, seed=4, pixel_format="mono16")
    img = c.expected_frame(0, noise=False)
    assert img.std() > 0.05 * img.mean()
    for block in (2, 8, 32):  # fine texture, cells, tissue haze
        assert detail(img, block) > 0.02 * img.mean(), f"no structure at {block}-pixel scale"
    # a smooth ramp has no such structure (the measure itself is meaningful)
    ramp = np.add.outer(np.arange(384.0), np.arange(512.0)) * 30
    assert detail(ramp, 8) < 1e-6
    # bright objects on a dark background: the brightest 5% are far above the median
    assert np.percentile(img, 95) > 2 * np.median(img)


def test_stage_drift_moves_the_content() -> None:
    c = make(width=256, height=192, seed=6, pixel_format="mono16")
    def moved(n: int) -> tuple[int, int]:
        return tuple(np.subtract(c.stage_drift(n), c.stage_drift(0)))

    n = next(k for k in range(100, 5000, 50) if max(map(abs, moved(k))) >= 6)
    dx, dy = moved(n)
    a = c.expected_frame(0, noise=False).astype(float)
    b = c.expected_frame(n, noise=False).astype(float)
    raw = np.abs(b - a)[40:-40, 40:-40].mean()
    # undo the drift: content at (x, y) in frame 0 is at (x - dx, y - dy) in frame n
    aligned = np.abs(np.roll(b, (dy, dx), axis=(0, 1)) - a)[40:-40, 40:-40].mean()
    assert raw > 0.05 * a.mean()
    assert aligned < 0.7 * raw  # the cells also crawl, so alignment is good but not perfect


def test_noise_shrinks_relative_to_signal_with_exposure_and_grows_with_gain() -> None:
    c = make(width=256, height=192, seed=5, pixel_format="mono16", fps=10.0)
    offset = 0.02 * 65535

    def signal_and_noise(**changes: float) -> tuple[float, float]:
        clean = c.expected_frame(3, settings=changes, noise=False).astype(float)
        noisy = c.expected_frame(3, settings=changes).astype(float)
        return (clean - offset).mean(), (noisy - clean).std()

    s1, n1 = signal_and_noise(exposure_ms=1.0)
    s8, n8 = signal_and_noise(exposure_ms=8.0)
    assert s8 > 6 * s1  # brighter, about in proportion (shot noise model: photons ~ exposure)
    assert n8 > n1  # more photons, more absolute noise ...
    assert s8 / n8 > 2 * (s1 / n1)  # ... but SNR grows (~sqrt(8) = 2.8)
    g0, gn0 = signal_and_noise(exposure_ms=1.0, gain_db=0.0)
    g12, gn12 = signal_and_noise(exposure_ms=1.0, gain_db=12.0)
    assert g12 > 3 * g0 and gn12 > 3 * gn0  # gain: brighter and noisier (x4 at 12 dB)


@pytest.mark.parametrize(
    ("fmt", "dtype", "top"),
    [("mono8", np.uint8, 255), ("mono12", np.uint16, 4095), ("mono16", np.uint16, 65535)],
)
def test_mono_formats_bit_depths_saturation_and_dark_level(fmt: str, dtype: type, top: int) -> None:
    c = make(pixel_format=fmt, seed=2)
    img = c.expected_frame(0)
    assert img.shape == (H, W) and img.dtype == dtype
    assert img.max() <= top and img.std() > 0
    saturated = c.expected_frame(0, settings={"fps": 0.5, "exposure_ms": 2000.0})
    assert saturated.max() == top and (saturated == top).mean() > 0.99  # clips, never wraps
    dark = c.expected_frame(0, settings={"exposure_ms": 0.01}).astype(float)
    assert 0 < dark.mean() < 0.05 * top  # dark offset plus read noise, no signal


def test_rgb8_is_a_stained_colour_image() -> None:
    c = make(pixel_format="rgb8", seed=2)
    img = c.expected_frame(0)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    r, g, b = (img[..., i].astype(float).mean() for i in range(3))
    assert r > g + 10 and b > g + 10  # eosin/haematoxylin: pink-purple, green absorbed
    assert img.max() > 150  # brightfield: a bright background
    # the same specimen as the mono view (same cells), just shown differently
    mono = c.expected_frame(0, settings={"pixel_format": "mono16"}, noise=False).astype(float)
    green = c.expected_frame(0, noise=False)[..., 1].astype(float)
    assert np.corrcoef(mono.ravel(), green.ravel())[0, 1] < -0.3  # fluorescent where it absorbs


def test_smallest_sensor_and_4096x3000() -> None:
    tiny = SimulatedCamera(width=16, height=16, seed=1)
    assert tiny.expected_frame(0).shape == (16, 16)
    big = SimulatedCamera(width=4096, height=3000, pixel_format="mono16", seed=1)
    try:
        frame = big.expected_frame(0)
        assert frame.shape == (3000, 4096) and frame.dtype == np.uint16
        assert frame.std() > 100
    finally:
        clear_caches()  # do not keep ~200 MB of textures for the rest of the test session


def test_roi_is_an_exact_crop_of_the_same_specimen() -> None:
    c = make(seed=8, pixel_format="mono12")
    full = c.expected_frame(42)
    roi = (30, 20, 64, 48)
    crop = c.expected_frame(42, settings={"roi": roi})
    assert crop.shape == (48, 64)
    assert np.array_equal(crop, full[20:68, 30:94])
    # and the streamed frames follow the ROI
    c.update_settings({"roi": roi})
    c.open()
    c.start()
    f = c.read_frame(5.0)
    c.close()
    assert f.meta.roi == roi and f.array.shape == (48, 64)
    full = c.expected_frame(f.meta.frame_number, settings={"roi": (0, 0, W, H)})
    assert np.array_equal(f.array, full[20:68, 30:94])


# -- frames, numbers, timing -----------------------------------------------------------------------
def test_paced_at_fps_with_consecutive_numbers_and_epoch_timestamps() -> None:
    c = make(fps=100.0, exposure_ms=1.0)
    c.open()
    c.start()
    t0 = time.monotonic()
    frames = [c.read_frame(5.0) for _ in range(20)]
    elapsed = time.monotonic() - t0
    c.close()
    assert elapsed >= 0.19  # 20 frames at 100 fps: never faster
    assert elapsed < 5.0  # and not stuck (generous: shared machines)
    numbers = [f.meta.frame_number for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + 20))
    stamps = np.array([f.meta.timestamp for f in frames])
    assert np.all(np.diff(stamps) > 0)
    assert abs(stamps[-1] - time.time()) < 5.0  # epoch seconds
    assert stamps[-1] - stamps[0] >= 0.18


def test_a_late_reader_gets_no_burst_of_catch_up_frames(cam: SimulatedCamera) -> None:
    cam.update_settings({"fps": 20.0})
    cam.start()
    first = cam.read_frame(5.0)
    threading.Event().wait(0.3)  # the behaviour under test: a reader 6 frame periods late
    t0 = time.monotonic()
    late = [cam.read_frame(5.0) for _ in range(3)]
    assert time.monotonic() - t0 >= 0.09  # after the late frame, the next two still take a period each
    numbers = [first.meta.frame_number] + [f.meta.frame_number for f in late]
    assert numbers == list(range(numbers[0], numbers[0] + 4))  # nothing skipped: never taken


def test_every_frame_is_a_new_read_only_array(cam: SimulatedCamera) -> None:
    cam.start()
    frames = [cam.read_frame(5.0) for _ in range(5)]
    for i, f in enumerate(frames):
        assert isinstance(f, Frame) and not f.array.flags.writeable
        for g in frames[i + 1 :]:
            assert not np.shares_memory(f.array, g.array)
    assert frames[0].meta.camera_serial == "SIM-0001" and frames[0].meta.exposure_ms == 1.0


def test_frame_numbers_continue_across_stop_and_start(cam: SimulatedCamera) -> None:
    cam.start()
    a = cam.read_frame(5.0).meta.frame_number
    cam.stop()
    with pytest.raises(StreamStopped):
        cam.read_frame(1.0)
    cam.start()
    assert cam.read_frame(5.0).meta.frame_number == a + 1


def test_read_frame_honours_its_timeout(cam: SimulatedCamera) -> None:
    cam.update_settings({"fps": 0.5})  # next frame in 2 s
    cam.start()
    t0 = time.monotonic()
    with pytest.raises(FrameTimeout):
        cam.read_frame(0.05)
    assert time.monotonic() - t0 < 1.5


def test_stop_wakes_a_read_blocked_in_another_thread(cam: SimulatedCamera) -> None:
    cam.update_settings({"trigger_mode": "hardware"})  # no trigger will come
    cam.start()
    t, result = read_in_thread(cam)
    assert cam.reads_waiting == 1
    cam.stop()
    t.join(5.0)
    assert not t.is_alive()
    assert isinstance(result[0], StreamStopped)


def test_hardware_trigger_mode(cam: SimulatedCamera) -> None:
    assert not cam.trigger()  # not streaming: ignored
    cam.update_settings({"trigger_mode": "hardware"})
    cam.start()
    with pytest.raises(FrameTimeout):
        cam.read_frame(0.02)
    t, result = read_in_thread(cam)
    assert cam.trigger()
    t.join(5.0)
    frame = result[0]
    assert isinstance(frame, Frame)
    assert cam.trigger() and cam.trigger()
    numbers = [frame.meta.frame_number] + [cam.read_frame(5.0).meta.frame_number for _ in range(2)]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    cam.update_settings({"trigger_mode": "free_running"})
    assert not cam.trigger()  # free running ignores triggers
    assert cam.read_frame(5.0).meta.frame_number == numbers[-1] + 1


def test_software_trigger_mode_exposes_on_each_read(cam: SimulatedCamera) -> None:
    cam.update_settings({"trigger_mode": "software", "fps": 0.1, "exposure_ms": 40.0})
    cam.start()
    t0 = time.monotonic()
    a, b = cam.read_frame(5.0), cam.read_frame(5.0)
    assert time.monotonic() - t0 >= 0.075  # two exposures of 40 ms, not the 10 s frame period
    assert b.meta.frame_number == a.meta.frame_number + 1


# -- settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"exposure_ms": 5000}, "exposure_ms"),
        ({"exposure_ms": 0.001}, "exposure_ms"),
        ({"gain_db": 30}, "gain_db"),
        ({"gain_db": -1}, "gain_db"),
        ({"fps": 2000}, "fps"),
        ({"fps": 0}, "fps"),
        ({"roi": (0, 0, 15, 16)}, "roi"),
        ({"roi": (0, 0, 33, 32)}, "roi"),
        ({"roi": (100, 0, 64, 32)}, "roi"),
        ({"pixel_format": "mono10"}, "pixel_format"),
        ({"trigger_mode": "burst"}, "trigger_mode"),
        ({"brightness": 3}, "brightness"),
        ({"gain_db": 3.0, "exposure_ms": 100.0}, "exposure_ms"),  # 100 ms does not fit a 5 ms frame
        ({"exposure_ms": "10"}, "exposure_ms"),
    ],
)
def test_bad_settings_name_the_setting_and_change_nothing(
    cam: SimulatedCamera, changes: dict, name: str
) -> None:
    before = cam.settings
    with pytest.raises(SettingError) as info:
        cam.update_settings(changes)
    err = info.value
    assert err.name == name and name in str(err)
    assert repr(changes[name]) in str(err) or str(changes[name]) in str(err)
    if name != "brightness":
        assert "allowed" in str(err) and err.allowed
    assert cam.settings == before


def test_roi_and_format_cannot_change_while_streaming(cam: SimulatedCamera) -> None:
    cam.start()
    before = cam.settings
    for changes in ({"roi": (0, 0, 64, 48)}, {"pixel_format": "mono16"}):
        with pytest.raises(SettingError, match="while streaming"):
            cam.update_settings(changes)
    assert cam.settings == before
    assert cam.update_settings({"exposure_ms": 2.0, "gain_db": 6.0}).gain_db == 6.0


def test_settings_changes_reach_the_frames(cam: SimulatedCamera) -> None:
    cam.start()
    cam.read_frame(5.0)
    new = cam.update_settings({"gain_db": 12.0, "exposure_ms": 2.0})
    f = cam.read_frame(5.0)
    assert (f.meta.gain_db, f.meta.exposure_ms) == (12.0, 2.0)
    assert np.array_equal(f.array, cam.expected_frame(f.meta.frame_number, settings=new))


def test_settings_changed_from_another_thread_while_streaming() -> None:
    c = make(fps=1000.0, exposure_ms=0.5, seed=9, width=64, height=48)
    c.open()
    c.start()
    stop = threading.Event()

    def twiddle() -> None:
        gains = [0.0, 6.0, 12.0]
        i = 0
        while not stop.is_set():
            c.update_settings({"gain_db": gains[i % 3], "exposure_ms": 0.25 + 0.25 * (i % 3)})
            i += 1

    t = threading.Thread(target=twiddle, daemon=True)
    t.start()
    frames = [c.read_frame(5.0) for _ in range(60)]
    stop.set()
    t.join(5.0)
    c.close()
    # every frame is consistent with the settings its metadata reports
    for f in frames:
        s = replace(c.settings, gain_db=f.meta.gain_db, exposure_ms=f.meta.exposure_ms)
        assert np.array_equal(f.array, c.expected_frame(f.meta.frame_number, settings=s))


# -- faults ------------------------------------------------------------------------------------
def test_timeouts_fault(cam: SimulatedCamera) -> None:
    cam.start()
    a = cam.read_frame(5.0)
    cam.faults.timeouts(2)
    for _ in range(2):
        with pytest.raises(FrameTimeout):
            cam.read_frame(5.0)  # raised at once, not after 5 s
    assert cam.read_frame(5.0).meta.frame_number == a.meta.frame_number + 1


def test_drop_frames_leaves_a_gap_in_the_numbers(cam: SimulatedCamera) -> None:
    cam.start()
    a = cam.read_frame(5.0)
    cam.faults.drop_frames(3)
    b, c = cam.read_frame(5.0), cam.read_frame(5.0)
    assert b.meta.frame_number == a.meta.frame_number + 4
    assert c.meta.frame_number == b.meta.frame_number + 1
    assert b.meta.dropped_before == 0  # the engine counts gaps, not the driver


def test_stall_delays_frames_and_honours_timeouts(cam: SimulatedCamera) -> None:
    cam.start()
    cam.read_frame(5.0)
    t0 = time.monotonic()
    cam.faults.stall(0.6)
    with pytest.raises(FrameTimeout):
        cam.read_frame(0.05)
    assert cam.faults.pending["stall_s"] > 0
    cam.read_frame(5.0)
    assert time.monotonic() - t0 >= 0.59


def test_disconnect_and_reconnect_with_the_same_settings(cam: SimulatedCamera) -> None:
    # hardware triggering, so the read below stays blocked until the unplug, however slow the machine
    cam.update_settings({"gain_db": 6.0, "roi": (8, 8, 64, 48), "trigger_mode": "hardware"})
    cam.start()
    assert cam.trigger()
    last = cam.read_frame(5.0).meta.frame_number
    settings = cam.settings
    t, result = read_in_thread(cam)
    cam.faults.disconnect()
    t.join(5.0)
    assert isinstance(result[0], CameraDisconnected)  # the blocked read woke up
    assert not cam.faults.connected and not cam.streaming
    with pytest.raises(CameraDisconnected):
        cam.read_frame(1.0)
    with pytest.raises(CameraDisconnected):
        cam.start()
    with pytest.raises(CameraDisconnected):
        cam.update_settings({"gain_db": 0.0})
    assert cam.reconnect() is False and cam.reconnect() is False
    cam.faults.replug()
    assert cam.reconnect() is True
    assert cam.streaming and cam.settings == settings
    assert cam.trigger()
    f = cam.read_frame(5.0)
    assert f.meta.frame_number == last + 1 and f.array.shape == (48, 64) and f.meta.gain_db == 6.0


def test_reconnect_after_a_number_of_attempts(cam: SimulatedCamera) -> None:
    cam.faults.disconnect(reconnect_after=2)
    assert [cam.reconnect() for _ in range(3)] == [False, False, True]
    assert not cam.streaming  # it was not streaming when it went away
    cam.start()
    cam.read_frame(5.0)


def test_unplugged_camera_cannot_be_opened_until_replugged() -> None:
    c = make()
    c.faults.disconnect()
    with pytest.raises(CameraUnavailable, match="unplugged"):
        c.open()
    c.faults.replug()
    c.open()
    c.close()
    c.close()  # twice is fine


def test_start_needs_open() -> None:
    with pytest.raises(CameraError, match="open"):
        make().start()
