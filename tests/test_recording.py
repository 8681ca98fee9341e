"""Recording: every frame the engine produced ends up in the file, with its metadata, whatever happens.

Files are read back with tifffile and zarr (not with labcam's own code) and compared with the
frames the engine delivered to a witness subscription and with the simulated camera's
``expected_frame``. Synchronisation is by events and frame counts, never by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from labcam.camera import Camera
from labcam.cameras.simulated import SimulatedCamera
from labcam.engine import Engine, Subscription
from labcam.frame import Frame
from labcam.recording import (
    FRAME_TAG,
    Recording,
    RecordingError,
    read_recording_metadata,
    resolve_recording_path,
    start_recording,
)
from labcam.recording import ome_tiff
from labcam.recording import writers as writers_mod
from labcam.recording.files import RecordingInfo
from labcam.recording.ome_tiff import OmeTiffWriter

FORMATS = [".ome.tif", ".ome.zarr"]
WAIT = 20.0  # generous upper bound for anything that should take milliseconds


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def progress_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress events after every frame, so tests can wait for "n frames written" exactly."""
    from labcam.recording import recorder

    monkeypatch.setattr(recorder, "PROGRESS_INTERVAL_S", 0.0)


@pytest.fixture
def make_camera() -> Iterator[Any]:
    cams: list[Camera] = []

    def make(
        pixel_format: str = "mono8", width: int = 64, height: int = 48, fps: float = 200.0, trigger_mode: str = "free_running"
    ) -> Camera:
        sim = SimulatedCamera(
            width=width, height=height, fps=fps, exposure_ms=1.0, gain_db=2.0, seed=7, pixel_format=pixel_format, trigger_mode=trigger_mode
        )
        sim.open()
        cam = Camera(Engine(sim, idle_grace=0))
        cams.append(cam)
        return cam

    yield make
    for cam in cams:
        cam.close()


@pytest.fixture
def cam(make_camera: Any) -> Camera:
    return make_camera()


def sim_of(cam: Camera) -> SimulatedCamera:
    driver = cam.engine.driver
    assert isinstance(driver, SimulatedCamera)
    return driver


def read_pixels(path: Path) -> np.ndarray:
    """The recording's pixels as (t, y, x[, s]), read with tifffile or zarr directly."""
    if path.suffix == ".zarr":
        group = zarr.open_group(path, mode="r")
        data = group["0"][:]
        return np.moveaxis(data, 1, 3) if data.ndim == 4 else data
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        return tif.series[0].asarray().reshape((-1, *tif.series[0].shape[-3 if tif.series[0].ndim == 4 else -2 :]))


def tiff_page_metadata(path: Path) -> list[dict[str, Any]]:
    """Per-frame metadata straight from each TIFF page's private tag."""
    with tifffile.TiffFile(path) as tif:
        n = tif.series[0].shape[0]
    with tifffile.TiffFile(path) as tif:
        tif.pages.useframes = False
        return [json.loads(tif.pages[i].tags[FRAME_TAG].value) for i in range(n)]


def zarr_frame_metadata(path: Path) -> list[dict[str, Any]]:
    cols = zarr.open_group(path, mode="r").attrs["labcam"]["frames"]
    return [dict(zip(cols, values)) for values in zip(*cols.values())]


def progress_reached(rec: Recording, frames: int) -> threading.Event:
    """An event set once ``rec`` has written ``frames`` frames (or finished)."""
    ev = threading.Event()

    def check(p: Any) -> None:
        if p.frames_written >= frames:
            ev.set()

    rec.events.progress.connect(check)
    rec.events.finished.connect(lambda p: ev.set())
    if rec.progress.frames_written >= frames or rec.done:
        ev.set()
    return ev


def collect(witness: Subscription, numbers: list[int]) -> dict[int, Frame]:
    """The witness's frames with these numbers (the witness subscribed before the recording)."""
    want = set(numbers)
    got: dict[int, Frame] = {}
    while want - got.keys():
        f = witness.next(WAIT)
        if f.meta.frame_number in want:
            got[f.meta.frame_number] = f
        assert f.meta.frame_number <= max(want), f"frames {sorted(want - got.keys())} never reached the witness"
    return got


def assert_frames_match(
    path: Path, cam: Camera, witness: Subscription | None, n: int | None = None, roi: tuple[int, int, int, int] | None = None
) -> list[dict[str, Any]]:
    """The file's pixels and per-frame metadata equal the engine's frames; returns the metadata."""
    pixels = read_pixels(path)
    metas = tiff_page_metadata(path) if path.suffix != ".zarr" else read_recording_metadata(path)["frames"]
    assert len(metas) == pixels.shape[0]
    if n is not None:
        assert pixels.shape[0] == n
    numbers = [m["frame_number"] for m in metas]
    assert [m["index"] for m in metas] == list(range(len(metas)))
    frames = collect(witness, numbers) if witness is not None else {}
    for i, m in enumerate(metas):
        if witness is not None:
            f = frames[m["frame_number"]]
            assert np.array_equal(pixels[i], f.array), f"pixels of frame {i} differ from the engine's"
            assert m["timestamp"] == f.meta.timestamp
            assert m["exposure_ms"] == f.meta.exposure_ms and m["gain_db"] == f.meta.gain_db
        settings = {"exposure_ms": m["exposure_ms"], "gain_db": m["gain_db"], **({"roi": roi} if roi else {})}
        expected = sim_of(cam).expected_frame(m["frame_number"], settings=settings)
        assert np.array_equal(pixels[i], expected), f"frame {i} is not frame {m['frame_number']} of the camera"
    return metas


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, readonly: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``path`` (root: works on a fresh CI machine), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


# -- round trip ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("pixel_format", ["mono8", "mono12", "mono16", "rgb8"])
def test_round_trip_pixels_and_metadata(make_camera: Any, tmp_path: Path, suffix: str, pixel_format: str) -> None:
    cam = make_camera(pixel_format)
    path = tmp_path / f"run{suffix}"
    with cam.engine.subscribe("witness", buffer=1000) as witness:
        rec = cam.record(path, frames=25, progress=False)
        assert rec.wait(WAIT)
        st = rec.status()
        assert st["state"] == "done" and st["stop_reason"] == "frames" and st["frames_written"] == 25
        assert st["dropped"] == 0 and st["error"] is None
        metas = assert_frames_match(path, cam, witness, n=25)
    numbers = [m["frame_number"] for m in metas]
    assert numbers == list(range(numbers[0], numbers[0] + 25))
    assert all(m["exposure_ms"] == 1.0 and m["gain_db"] == 2.0 for m in metas)
    assert all(b["timestamp"] > a["timestamp"] for a, b in zip(metas, metas[1:]))

    bits = {"mono8": 8, "mono12": 12, "mono16": 16, "rgb8": 8}[pixel_format]
    dtype = np.uint8 if bits == 8 else np.uint16
    summary = read_recording_metadata(path)["summary"]
    assert summary["frames_written"] == 25 and summary["dropped"] == 0 and summary["stop_reason"] == "frames"
    if suffix == ".ome.tif":
        with tifffile.TiffFile(path) as tif:
            assert tif.is_ome
            series = tif.series[0]
            assert series.dtype == dtype
            assert series.axes == ("TYXS" if pixel_format == "rgb8" else "TYX")
            xml = tif.ome_metadata
        assert f'SignificantBits="{bits}"' in xml and 'SizeT="25"' in xml and 'PlaneCount="25"' in xml
        assert 'PhysicalSizeX="0.65"' in xml  # the simulated camera's pixel size
        assert xml.count("<Plane ") == 25 and 'ExposureTime="1"' in xml
    else:
        group = zarr.open_group(path, mode="r")
        arr = group["0"]
        assert arr.dtype == dtype
        assert arr.chunks == (1, *arr.shape[1:])  # one chunk per frame
        ome = group.attrs["ome"]
        assert ome["version"] == "0.5"
        ms = ome["multiscales"][0]
        assert [a["name"] for a in ms["axes"]] == (["t", "c", "y", "x"] if pixel_format == "rgb8" else ["t", "y", "x"])
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] == pytest.approx(0.65)
        assert zarr_frame_metadata(path) == metas
        yaozarrs = pytest.importorskip("yaozarrs")  # comes with ome-writers: the OME-Zarr 0.5 validator
        yaozarrs.validate_ome_uri(str(path))


@pytest.mark.parametrize("suffix", FORMATS)
def test_exposure_and_gain_changes_are_stored_per_frame(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    with cam.engine.subscribe("witness", buffer=5000) as witness, cam.engine.subscribe("pacer", buffer=5000) as pacer:
        rec = cam.record(path, progress=False)
        assert progress_reached(rec, 5).wait(WAIT)
        cam.set(gain_db=6.0, exposure_ms=2.0)
        while pacer.next(WAIT).meta.gain_db != 6.0:  # until frames with the new settings come
            pass
        pacer.next(WAIT)
        rec.stop()
        metas = assert_frames_match(path, cam, witness)
    assert metas[0]["gain_db"] == 2.0 and metas[0]["exposure_ms"] == 1.0
    assert metas[-1]["gain_db"] == 6.0 and metas[-1]["exposure_ms"] == 2.0


# -- independence from viewers -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_slow_live_consumer_changes_nothing_in_the_file(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    stop = threading.Event()
    processed = threading.Event()
    count = [0]

    def viewer() -> None:  # a live view: newest frame, decimated, then "busy" drawing
        with cam.engine.subscribe("viewer") as sub:
            while not stop.is_set():
                f = sub.next(WAIT)
                f.array[::4, ::4].copy()
                count[0] += 1
                if count[0] >= 3:
                    processed.set()
                stop.wait(0.02)  # simulated drawing time (the workload), not synchronisation
            viewer_sub.append(sub)

    viewer_sub: list[Subscription] = []
    t = threading.Thread(target=viewer)
    t.start()
    try:
        with cam.engine.subscribe("witness", buffer=1000) as witness:
            rec = cam.record(path, frames=60, progress=False)
            assert processed.wait(WAIT)
            rec.wait(WAIT)
            metas = assert_frames_match(path, cam, witness, n=60)
    finally:
        stop.set()
        t.join(WAIT)
    numbers = [m["frame_number"] for m in metas]
    assert numbers == list(range(numbers[0], numbers[0] + 60)), "the file has gaps"
    assert rec.status()["dropped"] == 0
    assert viewer_sub and viewer_sub[0].missed > 0, "the viewer was meant to be slower than the camera"


# -- how a recording ends ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_duration_stop(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    rec = cam.record(path, duration=0.3, progress=False)
    assert rec.wait(WAIT)
    st = rec.status()
    assert st["stop_reason"] == "duration" and st["state"] == "done"
    metas = assert_frames_match(path, cam, None)
    assert len(metas) == st["frames_written"] >= 5  # 200 fps for 0.3 s: about 60
    assert metas[-1]["timestamp"] - metas[0]["timestamp"] < 0.3
    numbers = [m["frame_number"] for m in metas]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


@pytest.mark.parametrize("suffix", FORMATS)
def test_stop_in_the_middle_keeps_a_readable_file_with_the_count_it_reported(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    with cam.engine.subscribe("witness", buffer=5000) as witness:
        rec = cam.record(path, progress=False)  # no limit: until stop()
        assert progress_reached(rec, 20).wait(WAIT)
        # readable while it is being written
        assert read_pixels(path).shape[0] >= 20
        final = rec.stop()
        assert rec.done and final.state == "done" and final.stop_reason == "stopped"
        assert final.frames_written >= 20
        assert_frames_match(path, cam, witness, n=final.frames_written)
    assert read_recording_metadata(path)["summary"]["frames_written"] == final.frames_written
    assert rec.wait(0) is True


def test_context_manager_stops_and_events_fire(cam: Camera, tmp_path: Path) -> None:
    finished: list[Any] = []
    with cam.record(tmp_path / "a.ome.tif", progress=False) as rec:
        rec.events.finished.connect(finished.append)
        assert progress_reached(rec, 3).wait(WAIT)
    assert rec.done and len(finished) == 1 and finished[0].frames_written == rec.progress.frames_written
    assert "frames" in repr(rec)


def test_progress_bar_option(cam: Camera, tmp_path: Path) -> None:
    rec = cam.record(tmp_path / "a.ome.zarr", frames=10, progress=True)
    assert rec.wait(WAIT)
    assert rec.progress.frames_written == 10


def test_buffer_is_sized_from_memory_and_capped() -> None:
    from labcam.recording.recorder import MAX_BUFFER_BYTES, available_memory, buffer_budget

    frame = 2448 * 2048 * 2
    n = buffer_budget(frame)
    assert 4 <= n <= MAX_BUFFER_BYTES // frame
    assert n * frame <= 0.25 * available_memory() + frame
    assert buffer_budget(10**12) == 4  # at least a few frames, even for huge ones


# -- drops ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_camera_drops_are_counted_and_stored(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    with cam.engine.subscribe("pacer", buffer=5000) as pacer:
        rec = cam.record(path, progress=False)
        assert progress_reached(rec, 3).wait(WAIT)
        sim_of(cam).faults.drop_frames(3)
        while not pacer.next(WAIT).meta.dropped_before:  # until the gap has passed
            pass
        pacer.next(WAIT)
        rec.stop()
    metas = assert_frames_match(path, cam, None)
    gaps = [m for m in metas if m["dropped_before"]]
    assert len(gaps) == 1 and gaps[0]["dropped_before"] == 3 and gaps[0]["index"] >= 3
    numbers = [m["frame_number"] for m in metas]
    assert numbers[-1] - numbers[0] == len(numbers) - 1 + 3
    summary = read_recording_metadata(path)["summary"]
    assert summary["dropped_camera"] == 3 and summary["dropped"] == 3
    assert rec.status()["dropped_camera"] == 3


class _GatedWriter:
    """Wraps a real writer; ``write`` of frame ``at`` blocks until ``gate`` is set (a slow disk)."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner = inner
        self.at = at
        self.gate = threading.Event()
        self.blocked = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def begin(self, info: RecordingInfo) -> None:
        self.inner.begin(info)

    def write(self, array: np.ndarray, meta: dict[str, Any]) -> None:
        if self.inner.frames_written == self.at:
            self.blocked.set()
            assert self.gate.wait(WAIT)
        self.inner.write(array, meta)

    def close(self, summary: dict[str, Any]) -> None:
        self.inner.close(summary)


def _gated_factory(holder: list[_GatedWriter], at: int) -> Any:
    def factory(path: Path, fmt: str, overwrite: bool, expected: int | None) -> Any:
        w = _GatedWriter(writers_mod.open_writer(path, fmt, overwrite=overwrite, expected_frames=expected), at)
        holder.append(w)
        return w

    return factory


class _Triggered:
    """A camera in hardware-trigger mode: the test decides when each frame is taken, so the
    recorder's buffer overflows exactly when and by how much the test says."""

    def __init__(self, cam: Camera) -> None:
        self.cam = cam
        self.sim = sim_of(cam)
        started = threading.Event()
        cam.events.streaming_started.connect(started.set)
        self.witness = cam.engine.subscribe("witness", buffer=10_000)  # starts the camera
        self.pacer = cam.engine.subscribe("pacer", buffer=10_000)
        assert started.wait(WAIT)
        self.last: int | None = None

    def frames(self, k: int) -> None:
        """Take ``k`` frames and return once the engine has handed them to every consumer."""
        for _ in range(k):
            assert self.sim.trigger()
        for _ in range(k):
            self.last = self.pacer.next(WAIT).meta.frame_number

    def close(self) -> None:
        self.pacer.close()
        self.witness.close()


@pytest.mark.parametrize("suffix", FORMATS)
def test_disk_too_slow_stops_cleanly_with_no_gaps(make_camera: Any, tmp_path: Path, suffix: str) -> None:
    cam = make_camera(trigger_mode="hardware")
    path = tmp_path / f"run{suffix}"
    holder: list[_GatedWriter] = []
    t = _Triggered(cam)
    try:
        rec = start_recording(cam.engine, path, frames=100, buffer_frames=4, writer_factory=_gated_factory(holder, 3))
        t.frames(4)  # 0, 1, 2 written; 3 blocks in the "slow disk"
        assert holder[0].blocked.wait(WAIT)
        t.frames(6)  # 4..7 fill the buffer of 4; 8 and 9 are turned away
        assert rec._sub is not None and rec._sub.missed == 2
        holder[0].gate.set()
        assert rec.wait(WAIT, raise_error=False)
        assert isinstance(rec.error, RecordingError) and rec.error.reason == "overflow"
        assert "could not keep up" in str(rec.error) and "buffer (4 frames)" in str(rec.error)
        st = rec.status()
        assert st["state"] == "failed" and st["stop_reason"] == "overflow" and st["dropped_overflow"] == 2
        # everything up to the first lost frame, no holes
        metas = assert_frames_match(path, cam, t.witness, n=8)
    finally:
        t.close()
    numbers = [m["frame_number"] for m in metas]
    assert numbers == list(range(numbers[0], numbers[0] + 8)), "the file must not have holes"
    summary = read_recording_metadata(path)["summary"]
    assert summary["stop_reason"] == "overflow" and summary["dropped_overflow"] == 2 and "keep up" in summary["error"]
    with pytest.raises(RecordingError, match="could not keep up"):
        rec.wait(0)


@pytest.mark.parametrize("suffix", FORMATS)
def test_overflow_continue_counts_lost_frames_per_frame(make_camera: Any, tmp_path: Path, suffix: str) -> None:
    cam = make_camera(trigger_mode="hardware")
    path = tmp_path / f"run{suffix}"
    holder: list[_GatedWriter] = []
    t = _Triggered(cam)
    try:
        rec = start_recording(
            cam.engine, path, frames=12, buffer_frames=4, on_overflow="continue", writer_factory=_gated_factory(holder, 3)
        )
        t.frames(4)
        assert holder[0].blocked.wait(WAIT)
        t.frames(6)  # 8 and 9 are lost
        holder[0].gate.set()
        assert progress_reached(rec, 8).wait(WAIT)  # 3..7 written: the buffer is empty again
        t.frames(4)  # 10..13: the recording takes 10..13 and ends at 12 frames
        assert rec.wait(WAIT)
        metas = assert_frames_match(path, cam, t.witness, n=12)
    finally:
        t.close()
    assert [(m["index"], m["missed_before"]) for m in metas if m["missed_before"]] == [(8, 2)]
    numbers = [m["frame_number"] for m in metas]
    assert numbers[-1] - numbers[0] == 11 + 2
    summary = read_recording_metadata(path)["summary"]
    assert summary["dropped_overflow_in_file"] == 2 and summary["dropped_overflow"] == 2 and summary["dropped"] == 2
    assert rec.status()["dropped"] == 2


# -- disk and folder problems --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_disk_full_stops_with_a_clear_error_and_a_readable_file(make_camera: Any, tmp_path: Path, suffix: str) -> None:
    cam = make_camera("mono16", width=320, height=240)  # 150 kB frames: a 2 MB disk holds a dozen
    with tmpfs(tmp_path / "small", "2m") as disk:
        path = disk / f"run{suffix}"
        with cam.engine.subscribe("witness", buffer=1000) as witness:
            rec = cam.record(path, frames=200, progress=False)
            assert rec.wait(WAIT, raise_error=False)
            assert isinstance(rec.error, RecordingError) and rec.error.reason == "disk"
            assert "disk is full" in str(rec.error)
            st = rec.status()
            assert st["state"] == "failed" and st["stop_reason"] == "disk" and 1 <= st["frames_written"] < 200
            metas = assert_frames_match(path, cam, witness, n=st["frames_written"])
            # the live view carries on
            with cam.engine.subscribe("viewer") as viewer:
                viewer.next(WAIT)
            assert cam.status.state == "streaming"
        summary = read_recording_metadata(path)["summary"]
        assert summary["frames_written"] == len(metas) and "disk is full" in summary["error"]


def test_unwritable_folders_fail_at_once(cam: Camera, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for suffix in FORMATS:
        with pytest.raises(RecordingError, match="is a file, not a folder"):
            cam.record(a_file / f"run{suffix}", frames=5)
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        for suffix in FORMATS:
            with pytest.raises(RecordingError, match="read-only"):
                cam.record(ro / f"run{suffix}", frames=5)
    # nothing was subscribed or left running by the failed attempts
    assert cam.status.consumers == 0


# -- camera faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_camera_unplugged_and_back_the_recording_waits_and_goes_on(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    lost, recovered = threading.Event(), threading.Event()
    cam.events.camera_lost.connect(lambda why: lost.set())
    cam.events.camera_recovered.connect(recovered.set)
    rec = cam.record(path, frames=30, progress=False)
    assert progress_reached(rec, 5).wait(WAIT)
    sim_of(cam).faults.disconnect()
    assert lost.wait(WAIT)
    sim_of(cam).faults.replug()
    assert recovered.wait(WAIT)
    assert rec.wait(WAIT)
    metas = assert_frames_match(path, cam, None, n=30)
    summary = read_recording_metadata(path)["summary"]
    assert len(summary["interruptions"]) == 1 and summary["interruptions"][0]["recovered_at"] is not None
    assert rec.status()["interruptions"] == 1
    assert len(metas) == 30


@pytest.mark.parametrize("suffix", FORMATS)
def test_camera_gone_for_good_stops_after_fault_timeout(cam: Camera, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    rec = start_recording(cam.engine, path, frames=1000, fault_timeout=0.3)
    assert progress_reached(rec, 5).wait(WAIT)
    sim_of(cam).faults.disconnect()
    assert rec.wait(WAIT, raise_error=False)
    assert isinstance(rec.error, RecordingError) and rec.error.reason == "camera"
    assert "did not come back within 0.3 s" in str(rec.error)
    metas = assert_frames_match(path, cam, None, n=rec.progress.frames_written)
    assert len(metas) >= 5
    assert read_recording_metadata(path)["summary"]["stop_reason"] == "camera"


def test_closing_the_camera_stops_the_recording_cleanly(cam: Camera, tmp_path: Path) -> None:
    path = tmp_path / "run.ome.zarr"
    rec = cam.record(path, progress=False)
    assert progress_reached(rec, 3).wait(WAIT)
    cam.close()
    assert rec.wait(WAIT, raise_error=False)
    assert rec.error is None, rec.error
    n = rec.progress.frames_written
    assert n >= 3 and read_pixels(path).shape[0] == n
    assert read_recording_metadata(path)["summary"]["frames_written"] == n


def test_closing_the_engine_under_a_recording_ends_it_with_what_it_had(cam: Camera, tmp_path: Path) -> None:
    path = tmp_path / "run.ome.zarr"
    rec = cam.record(path, progress=False)
    assert progress_reached(rec, 3).wait(WAIT)
    cam.engine.close()  # not through Camera.close(): the recorder learns it from the engine
    assert rec.wait(WAIT, raise_error=False)
    assert rec.error is not None and rec.error.reason == "camera" and "closed" in str(rec.error)
    n = rec.progress.frames_written
    assert n >= 3 and read_pixels(path).shape[0] == n
    assert read_recording_metadata(path)["summary"]["frames_written"] == n


EXITING_CHILD = textwrap.dedent(
    """
    import sys, threading
    from labcam.camera import Camera
    from labcam.cameras.simulated import SimulatedCamera
    from labcam.engine import Engine

    sim = SimulatedCamera(width=64, height=48, fps=200.0, exposure_ms=1.0, seed=7)
    sim.open()
    cam = Camera(Engine(sim, idle_grace=0))
    rec = cam.record(sys.argv[1], progress=False)
    ten = threading.Event()
    rec.events.progress.connect(lambda p: p.frames_written >= 10 and ten.set())
    ten.wait(20)
    sys.exit(0)  # without stopping the recording: the atexit hook closes it properly
    """
)


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_recording_left_running_at_exit_is_closed_properly(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    res = subprocess.run([sys.executable, "-c", EXITING_CHILD, str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = read_recording_metadata(path)["summary"]
    assert summary["stop_reason"] == "stopped" and summary["frames_written"] >= 10
    assert read_pixels(path).shape[0] == summary["frames_written"]


FIRST_RECORDING_CHILD = textwrap.dedent(
    """
    import json, sys
    from labcam.camera import Camera
    from labcam.cameras.simulated import SimulatedCamera
    from labcam.engine import Engine

    sim = SimulatedCamera(width=64, height=48, fps=100.0, exposure_ms=1.0, seed=7)
    sim.open()
    cam = Camera(Engine(sim, idle_grace=0))
    rec = cam.record(sys.argv[1], frames=30, progress=False)
    rec.wait()
    print(json.dumps(rec.status()))
    cam.close()
    """
)


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_first_recording_in_a_process_reports_the_rate_of_its_frames_timestamps(tmp_path: Path, suffix: str) -> None:
    """Rate and elapsed time come from the frames' own timestamps, whatever delays the first write
    (the first OME-Zarr recording in a process imports zarr-python and sets up its store while the
    first frames wait in the buffer). A fresh interpreter, so nothing is imported beforehand."""
    path = tmp_path / f"run{suffix}"
    res = subprocess.run([sys.executable, "-c", FIRST_RECORDING_CHILD, str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    status = json.loads(res.stdout.strip().splitlines()[-1])
    stored = read_recording_metadata(path)
    stamps = [m["timestamp"] for m in stored["frames"]]
    assert status["frames_written"] == len(stamps) == 30
    span = stamps[-1] - stamps[0]
    assert status["elapsed_s"] == pytest.approx(span, abs=1e-3)  # status() rounds to 3 decimals
    assert status["fps"] == pytest.approx((len(stamps) - 1) / span, abs=1e-3)
    assert stored["summary"]["elapsed_s"] == pytest.approx(span, abs=1e-6)  # the summary keeps 6


def test_frame_size_change_ends_the_recording(cam: Camera, tmp_path: Path) -> None:
    path = tmp_path / "run.ome.tif"
    rec = cam.record(path, progress=False)
    assert progress_reached(rec, 3).wait(WAIT)
    cam.roi = (0, 0, 32, 32)
    assert rec.wait(WAIT, raise_error=False)
    assert rec.error is not None and rec.error.reason == "format" and "frame size" in str(rec.error)
    assert_frames_match(path, cam, None, n=rec.progress.frames_written, roi=(0, 0, 64, 48))


# -- crash safety --------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from labcam.camera import Camera
    from labcam.cameras.simulated import SimulatedCamera
    from labcam.engine import Engine

    sim = SimulatedCamera(width=64, height=48, fps=400.0, exposure_ms=1.0, seed=7, pixel_format="mono16")
    sim.open()
    cam = Camera(Engine(sim, idle_grace=0))
    rec = cam.record(sys.argv[1], progress=False)
    rec.events.progress.connect(lambda p: print(p.frames_written, flush=True))
    rec.wait()
    """
)


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_killed_process_leaves_a_readable_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if line.strip().isdigit() and int(line) >= 30:
                reported = int(line)
                break
        else:
            pytest.fail(f"the recording process ended early (rc={proc.wait()}): {proc.stderr.read()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)  # mid-write, most likely
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    pixels = read_pixels(path)
    metas = read_recording_metadata(path)["frames"]
    assert pixels.shape[0] >= reported and len(metas) == pixels.shape[0]
    sim = SimulatedCamera(width=64, height=48, fps=400.0, exposure_ms=1.0, seed=7, pixel_format="mono16")
    for i, m in enumerate(metas):
        assert np.array_equal(pixels[i], sim.expected_frame(m["frame_number"]))


def test_tiff_stays_valid_at_every_write_of_a_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot the file after every single write while a page is added: each snapshot opens with
    either the old or the new number of frames, never a broken chain (the page is linked last)."""
    path = tmp_path / "run.ome.tif"
    snapshots: list[bytes] = []
    recording = [False]
    original_write = ome_tiff._LinkLastFile.write
    original_pwrite = ome_tiff.pwrite_all

    def write(self: Any, b: Any) -> int:
        n = original_write(self, b)
        if recording[0]:
            snapshots.append(path.read_bytes())
        return n

    def pwrite(fd: int, data: bytes, pos: int) -> None:
        original_pwrite(fd, data, pos)
        if recording[0]:
            snapshots.append(path.read_bytes())

    def no_fileno(self: Any) -> int:
        import io

        raise io.UnsupportedOperation("pixels through write(), so every write is seen")

    monkeypatch.setattr(ome_tiff._LinkLastFile, "write", write)
    monkeypatch.setattr(ome_tiff._LinkLastFile, "fileno", no_fileno)
    monkeypatch.setattr(ome_tiff, "pwrite_all", pwrite)

    frames = [np.full((16, 24), i * 10 + 1, np.uint16) for i in range(4)]
    w = OmeTiffWriter(path, fsync=False)
    w.open()
    w.begin(RecordingInfo.from_frame(frames[0], "mono16"))
    for i, f in enumerate(frames):
        recording[0] = i >= 1
        before = len(snapshots)
        w.write(f, {"index": i, "frame_number": i, "timestamp": float(i), "exposure_ms": 1.0, "gain_db": 0.0, "dropped_before": 0, "missed_before": 0})
        if i >= 1:
            assert len(snapshots) - before >= 3, "expected several writes per page"
            for snap in snapshots[before:]:
                snap_path = tmp_path / "snap.ome.tif"
                snap_path.write_bytes(snap)
                data = read_pixels(snap_path)
                assert data.shape[0] in (i, i + 1)
                for k in range(data.shape[0]):
                    assert np.array_equal(data[k], frames[k])
    recording[0] = False
    w.close({"frames_written": 4})
    assert read_pixels(path).shape[0] == 4


# -- paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, message",
    [
        ("../x.ome.tif", r"'\.\.'"),
        ("a/../../x.ome.tif", r"'\.\.'"),
        ("/abs.ome.tif", "absolute path"),
        ("C:/x.ome.tif", "absolute path"),
        ("C:\\x.ome.tif", "backslash"),
        ("\\\\server\\share\\x.ome.tif", "backslash"),
        ("~/x.ome.tif", "'~'"),
        ("", "empty"),
        ("   ", "empty"),
        ("run1", "must end with"),
        ("run1.tif", "must end with"),
        ("run1.ome.tif.exe", "must end with"),
        (".ome.tif", "hidden"),
        (".hidden/x.ome.tif", "hidden"),
        ("a//x.ome.tif", "empty or '.'"),
        ("./x.ome.tif", "empty or '.'"),
        ("x\x00.ome.tif", "not allowed"),
        ("x\n.ome.tif", "not allowed"),
        ('x<y>.ome.tif', "not allowed"),
        ("con.ome.tif", "reserved"),
        ("x .ome.tif/ ", "space"),
        ("a" * 300 + ".ome.tif", "longer than"),
        ("/".join(["d"] * 20) + "/x.ome.tif", "too many"),
    ],
)
def test_bad_network_names_are_refused_with_a_clear_message(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_recording_path(tmp_path, name)


def test_non_text_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        resolve_recording_path(tmp_path, None)  # type: ignore[arg-type]


def test_good_network_names_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    assert resolve_recording_path(root, "run1.ome.tif") == root.resolve() / "run1.ome.tif"
    assert resolve_recording_path(root, "day1/run1.OME.TIFF") == root.resolve() / "day1" / "run1.OME.TIFF"
    inside = root / "inside"
    inside.mkdir()
    (root / "alias").symlink_to(inside)  # a link that stays inside is fine
    assert resolve_recording_path(root, "alias/x.ome.zarr") == inside.resolve() / "x.ome.zarr"


def test_links_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(ValueError, match="leads out of the recordings folder"):
        resolve_recording_path(root, "escape/x.ome.tif")
    (root / "deeper").mkdir()
    (root / "deeper" / "up").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="leads out"):
        resolve_recording_path(root, "deeper/up/outside/x.ome.tif")
    (outside / "target.ome.tif").write_bytes(b"precious")
    (root / "link.ome.tif").symlink_to(outside / "target.ome.tif")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="symbolic link"):
            resolve_recording_path(root, "link.ome.tif", overwrite=overwrite)
    assert (outside / "target.ome.tif").read_bytes() == b"precious"
    with pytest.raises(ValueError, match="does not exist"):
        resolve_recording_path(tmp_path / "nope", "x.ome.tif")


def test_existing_recordings_need_overwrite(tmp_path: Path, cam: Camera) -> None:
    (tmp_path / "old.ome.tif").write_bytes(b"old")
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        resolve_recording_path(tmp_path, "old.ome.tif")
    assert resolve_recording_path(tmp_path, "old.ome.tif", overwrite=True) == tmp_path.resolve() / "old.ome.tif"
    (tmp_path / "data.ome.zarr").mkdir()  # a folder that is not a Zarr store is never replaced
    (tmp_path / "data.ome.zarr" / "results.csv").write_text("1,2")
    with pytest.raises(ValueError, match="not a Zarr store"):
        resolve_recording_path(tmp_path, "data.ome.zarr", overwrite=True)
    with pytest.raises(ValueError, match="not a Zarr store"):
        cam.record(tmp_path / "data.ome.zarr", frames=2, overwrite=True)
    # in-process: same rule for existing files, and overwrite=True replaces a recording
    with pytest.raises(ValueError, match="already exists"):
        cam.record(tmp_path / "old.ome.tif", frames=2)
    for suffix in FORMATS:
        first = cam.record(tmp_path / f"again{suffix}", frames=3, progress=False)
        first.wait(WAIT)
        second = cam.record(tmp_path / f"again{suffix}", frames=5, overwrite=True, progress=False)
        second.wait(WAIT)
        assert read_pixels(tmp_path / f"again{suffix}").shape[0] == 5


def test_in_process_paths_formats_and_arguments(cam: Camera, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the format"):
        cam.record(tmp_path / "run.tif", frames=2)
    with pytest.raises(ValueError, match="contradicts the suffix"):
        cam.record(tmp_path / "run.ome.tif", frames=2, format="ome-zarr")
    with pytest.raises(ValueError, match="format="):
        cam.record(tmp_path / "run.ome.tif", frames=2, format="avi")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="frames="):
            cam.record(tmp_path / "run.ome.tif", frames=bad)
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="duration="):
            cam.record(tmp_path / "run.ome.tif", duration=bad)
    # a format without a suffix gets the suffix; anywhere on disk is fine in-process
    rec = cam.record(tmp_path / "deep" / "er" / "run", frames=3, format="zarr", progress=False)
    assert rec.wait(WAIT)
    assert rec.path == tmp_path / "deep" / "er" / "run.ome.zarr" and rec.path.is_dir()
    assert not list(tmp_path.glob("run.ome.*")), "failed calls must leave no files"
