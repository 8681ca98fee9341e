"""Helpers the benchmark scripts share (``python benchmarks/bench_*.py`` puts this folder on the path)."""

from __future__ import annotations

import time
from typing import Any

from labcam.cameras.simulated import SimulatedCamera


def make_camera(shape: dict[str, Any], fps: float | None = None) -> SimulatedCamera:
    """An open simulated camera of ``shape`` at ``fps`` (default: its maximum rate), the exposure
    shortened to fit in the frame period."""
    cam = SimulatedCamera(**shape, seed=1)
    cam.open()
    max_fps = float(cam.specs["fps"].maximum) if fps is None else fps
    cam.update_settings({"exposure_ms": min(cam.settings.exposure_ms, 1000.0 / max_fps), "fps": max_fps})
    return cam


def camera_alone(shape: dict[str, Any], seconds: float) -> tuple[float, float]:
    """(frames/s, MB/s) of the driver alone at its maximum rate: ``read_frame`` in a loop, the ceiling."""
    cam = make_camera(shape)
    cam.start()
    n, nbytes, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f = cam.read_frame(1.0)
        n += 1
        nbytes += f.array.nbytes
    dt = time.perf_counter() - t0
    cam.stop()
    cam.close()
    return n / dt, nbytes / dt / 1e6
