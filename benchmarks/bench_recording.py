"""Sustained recording rate, with a live viewer attached, against the raw disk write speed.

For 1280x1024 mono8 and 2448x2048 mono16 from the simulated camera at its maximum rate, prints:

- the camera alone (``read_frame`` in a loop: the most frames there are to record),
- the raw disk: plain file writes of the same frame bytes (the ceiling), into the page cache and
  with ``fsync`` (what the device itself sustains),
- a recording per writer: labcam's OME-TIFF and OME-Zarr writers, and ome-writers' OME-Zarr
  (zarr-python backend) and OME-TIFF (only if ``ome-types`` is importable: ome-writers' TIFF
  backend needs it) through the same recorder. A viewer (latest-frame subscription, decimates
  4x and maps to 8 bit, at most 30 frames/s) is attached throughout.

For each recording: the camera rate it ran at, frames/s and MB/s recorded, drops (camera gaps +
buffer overflow; the recorder runs with ``on_overflow="continue"`` here so it counts rather than
stops), the peak number of frames waiting in the buffer, how fast the writer took frames while
busy, and how long closing the file took (ome-writers' TIFF backend queues frames on its own
thread, so its real cost shows up there). When a writer drops frames at the camera's full rate,
it is run again at lower frame rates to find the highest rate it sustains with zero drops.

    python benchmarks/bench_recording.py [--seconds 5] [--rounds 3] [--dir /path/on/the/disk/to/test]

Files go to a temporary folder in ``--dir`` (default: the system temp dir) and are deleted.
Page-cache caveat: short recordings land in the OS page cache; a recording longer than the
dirty-page limit (about 20 % of RAM on Linux) runs at the device rate (the "fsync" row).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import camera_alone, make_camera

from labcam.engine import Engine
from labcam.recording.recorder import Recorder
from labcam.recording.files import FrameWriter, RecordingInfo
from labcam.recording.writers import open_writer

CASES = [
    ("1280x1024 mono8", dict(width=1280, height=1024, pixel_format="mono8")),
    ("2448x2048 mono16", dict(width=2448, height=2048, pixel_format="mono16")),
]
VIEWER_MAX_FPS = 30.0


# -- ome-writers, behind the recorder's writer interface (for the comparison only) --------------------


class OmeWritersWriter(FrameWriter):
    """ome-writers' ``create_stream``/``append`` as a labcam ``FrameWriter``."""

    def __init__(self, path: Path, fmt: str, backend: str) -> None:
        super().__init__(path)
        self.format = fmt  # type: ignore[misc]
        self.backend = backend
        self._stream: Any = None
        self._t0: float | None = None

    def open(self, *, overwrite: bool = False) -> None:
        pass  # ome-writers creates the file in create_stream

    def begin(self, info: RecordingInfo) -> None:
        from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

        self.info = info
        settings = AcquisitionSettings(
            root_path=str(self.path),
            dimensions=dims_from_standard_axes({"t": None, "y": info.height, "x": info.width}),
            dtype=info.dtype,
            format={"name": self.format, "backend": self.backend},
            overwrite=True,
        )
        self._stream = create_stream(settings)

    def write(self, array: np.ndarray, meta: dict[str, Any]) -> None:
        if self._t0 is None:
            self._t0 = meta["timestamp"]
        extra = {"delta_t": meta["timestamp"] - self._t0, "exposure_time": meta["exposure_ms"] / 1000.0}
        self._stream.append(array, frame_metadata={**meta, **extra})
        self.frames_written += 1
        self.bytes_written += array.nbytes

    def close(self, summary: dict[str, Any]) -> None:
        if self._stream is not None:
            self._stream.close()


def ome_writers_available(fmt: str) -> str | None:
    """None if ome-writers can write ``fmt`` here, else why not."""
    if importlib.util.find_spec("ome_writers") is None:
        return "ome-writers not installed"
    if fmt == "ome-tiff" and importlib.util.find_spec("ome_types") is None:
        return "ome-writers' TIFF backend needs ome-types (not installed)"
    return None


# -- measurements -------------------------------------------------------------------------------------


def raw_disk(folder: Path, frame: np.ndarray, total_bytes: int, *, fsync: bool) -> float:
    """MB/s of plain unbuffered writes of ``frame``'s bytes (+ fsync when asked)."""
    path = folder / "raw.bin"
    n = max(8, total_bytes // frame.nbytes)
    view = memoryview(np.ascontiguousarray(frame)).cast("B")
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(n):
            f.write(view)
        if fsync:
            os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return n * frame.nbytes / dt / 1e6


class Viewer:
    """A live view: newest frame, 4x decimated and mapped to 8 bit, at most VIEWER_MAX_FPS."""

    def __init__(self, engine: Engine) -> None:
        self.sub = engine.subscribe("viewer")
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / VIEWER_MAX_FPS
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                f = self.sub.next(1.0)
            except Exception:  # noqa: BLE001 - engine closed
                return
            small = f.array[::4, ::4]
            if small.dtype != np.uint8:
                small = (small >> 8).astype(np.uint8)
            small.mean()
            self.frames += 1
            self._stop.wait(max(0.0, period - (time.perf_counter() - t0)))  # display pacing (workload)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sub.close()


def record(
    shape: dict[str, Any], folder: Path, writer: str, seconds: float, fps: float | None = None
) -> dict[str, Any]:
    cam = make_camera(shape, fps)
    engine = Engine(cam, idle_grace=0)
    viewer = Viewer(engine)
    fmt = "ome-tiff" if writer.endswith("tiff") else "ome-zarr"
    suffix = ".ome.tif" if fmt == "ome-tiff" else ".ome.zarr"
    path = folder / f"rec{suffix}"
    backend = "tifffile" if fmt == "ome-tiff" else "zarr-python"

    def factory(p: Path, f: str, overwrite: bool, expected: int | None) -> FrameWriter:
        if writer.startswith("ome-writers"):
            return OmeWritersWriter(p, f, backend)
        # fsync at close is measured apart (the raw "fsync" row): this is the recording rate
        return open_writer(p, f, overwrite=overwrite, expected_frames=expected, fsync=False)

    peak = [0]
    # The recorder's default buffer: min(1 GiB, 25 % of available memory).
    rec = Recorder(engine, path, duration=seconds, on_overflow="continue", writer_factory=factory)
    rec.events.progress.connect(lambda p: peak.__setitem__(0, max(peak[0], p.buffered)))
    viewer_before = viewer.frames
    rec.start()
    rec.wait(raise_error=False)  # the recording ends itself after ``seconds``
    p = rec.progress
    viewer_frames = viewer.frames - viewer_before
    viewer.close()
    engine.close()
    close_s = rec.close_seconds or 0.0
    first, last = rec._first_meta or {}, rec._last_meta or {}
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    os.sync()  # do not let this run's write-back slow down the next one
    # Rates in camera time (frame timestamps): what was taken vs what was written over the same span.
    span = (last.get("timestamp", 0.0) - first.get("timestamp", 0.0)) or 1e-9
    taken = last.get("frame_number", 0) - first.get("frame_number", 0)
    frame_mb = p.bytes_written / max(p.frames_written, 1) / 1e6
    return {
        "camera_fps": taken / span,
        "fps": (p.frames_written - 1) / span,
        "mb_s": (p.frames_written - 1) / span * frame_mb,
        "mb_s_closed": p.bytes_written / 1e6 / (span + close_s),
        "dropped": p.dropped,
        "peak": peak[0],
        "capacity": p.buffer_capacity,
        "write_mb_s": p.write_mb_per_s,
        "viewer_fps": viewer_frames / span,
        "close_s": close_s,
        "frames": p.frames_written,
        "error": p.error,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each recording")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all variants (medians are printed)")
    ap.add_argument("--dir", default=None, help="folder on the disk to test (default: system temp)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="labcam-bench-", dir=args.dir))
    writers = ["labcam ome-tiff", "labcam ome-zarr", "ome-writers ome-zarr", "ome-writers ome-tiff"]
    try:
        print(
            f"recording to {folder}; {args.seconds:g} s per recording, {args.rounds} rounds (medians; drops per round); "
            "viewer attached; the recorder's default buffer"
        )
        header = (
            f"{'case':<17} {'what':<32} {'cam fps':>8} {'rec fps':>8} {'MB/s':>7} {'drops':>9} "
            f"{'peak buf':>9} {'busy MB/s':>10} {'viewer fps':>10} {'close s':>8} {'MB/s w/ close':>13}"
        )
        print(header)
        print("-" * len(header))
        for name, shape in CASES:
            frame = make_camera(shape).expected_frame(0)
            frame_mb = frame.nbytes / 1e6
            rows: dict[str, list[dict[str, Any]]] = {}
            for round_ in range(args.rounds):
                # Interleaved rounds: on a shared machine the disk and CPU drift; every variant sees the same drift.
                cam_fps, cam_mb = camera_alone(shape, 1.5)
                rows.setdefault("camera alone (frames to record)", []).append({"camera_fps": cam_fps, "mb_s": cam_mb})
                total = int(max(1.0, args.seconds) * max(cam_mb, 200.0) * 1e6)
                for fsync in (False, True) if round_ % 2 == 0 else (True, False):  # alternate: order matters here
                    mb = raw_disk(folder, frame, total, fsync=fsync)
                    label = "raw write + fsync (device)" if fsync else "raw write (page cache)"
                    rows.setdefault(label, []).append({"fps": mb / frame_mb, "mb_s": mb})
                    os.sync()
                for writer in writers:
                    why_not = ome_writers_available(writer.split()[1]) if writer.startswith("ome-writers") else None
                    if why_not:
                        rows.setdefault(writer, []).append({"skipped": why_not})
                        continue
                    rows.setdefault(writer + " @ max", []).append(record(shape, folder, writer, args.seconds))
            for what, runs in rows.items():
                if "skipped" in runs[0]:
                    print(f"{name:<17} {what:<32} skipped: {runs[0]['skipped']}")
                    continue
                print(_row(name, what, runs))
            # Writers that dropped at the camera's full rate: the highest rate they sustain with no drops.
            for writer in writers:
                runs = rows.get(writer + " @ max", [])
                if not runs or not any(r["dropped"] for r in runs):
                    continue
                fps = float(np.median([r["fps"] for r in runs]))
                for _ in range(4):
                    fps *= 0.8
                    r = record(shape, folder, writer, args.seconds, fps=fps)
                    print(_row(name, f"{writer} @ {fps:.0f} fps", [r]))
                    if not r["dropped"]:
                        break
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _row(name: str, what: str, runs: list[dict[str, Any]]) -> str:
    def med(key: str) -> float:
        values = [r[key] for r in runs if key in r]
        return float(np.median(values)) if values else float("nan")

    def num(key: str, width: int, fmt: str) -> str:
        v = med(key)
        return f"{'':>{width}}" if v != v else f"{v:{width}{fmt}}"

    line = f"{name:<17} {what:<32} {num('camera_fps', 8, '.1f')} {num('fps', 8, '.1f')} {num('mb_s', 7, '.0f')}"
    if "dropped" not in runs[0]:
        return line
    drops = "/".join(str(r["dropped"]) for r in runs)
    peak = f"{int(med('peak'))}/{runs[0]['capacity']}"
    errors = {r["error"][:60] for r in runs if r["error"]}
    err = f"  ERROR: {'; '.join(errors)}" if errors else ""
    return (
        f"{line} {drops:>9} {peak:>9} {num('write_mb_s', 10, '.0f')} {num('viewer_fps', 10, '.1f')} "
        f"{num('close_s', 8, '.2f')} {num('mb_s_closed', 13, '.0f')}{err}"
    )


if __name__ == "__main__":
    main()
