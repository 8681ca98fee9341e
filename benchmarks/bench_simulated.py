"""How fast the simulated camera makes frames, on one core, with fps set to its maximum.

Prints frames/s and MB/s of ``read_frame`` in a loop (the driver alone, no engine) for
1280x1024 mono8 (target >= 300 frames/s), 2448x2048 mono16 (target >= 60 frames/s) and
4096x3000 mono16, plus the one-off cost of rendering the specimen when the camera opens.
"frames/CPU-s" divides by the CPU time the process used instead of wall time: on a busy shared
machine it still shows what one core can do (the targets are judged on it when they differ).

    python benchmarks/bench_simulated.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from labcam.cameras.simulated import SimulatedCamera, clear_caches

CASES = [
    ("1280x1024 mono8", dict(width=1280, height=1024, pixel_format="mono8"), 300.0),
    ("2448x2048 mono16", dict(width=2448, height=2048, pixel_format="mono16"), 60.0),
    ("4096x3000 mono16", dict(width=4096, height=3000, pixel_format="mono16"), None),
]


def run(shape: dict[str, Any], seconds: float) -> tuple[float, float, float, float]:
    """(open seconds, frames/s, MB/s, frames per CPU second) for one sensor shape."""
    clear_caches()  # measure the first open honestly, and keep memory bounded between cases
    cam = SimulatedCamera(**shape, seed=1)
    t0 = time.perf_counter()
    cam.open()
    opened = time.perf_counter() - t0
    max_fps = cam.specs["fps"].maximum
    assert max_fps is not None
    # the exposure must fit in the frame period at the maximum rate
    cam.update_settings({"exposure_ms": min(cam.settings.exposure_ms, 1000.0 / max_fps), "fps": max_fps})
    cam.start()
    cam.read_frame(1.0)  # warm up (look-up tables, caches)
    n, nbytes, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        frame = cam.read_frame(1.0)
        n += 1
        nbytes += frame.array.nbytes
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    cam.close()
    return opened, n / dt, nbytes / dt / 1e6, n / max(cpu, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per case")
    args = ap.parse_args()
    print(f"{'case':<18} {'open s':>7} {'frames/s':>9} {'MB/s':>8} {'frames/CPU-s':>13}  target")
    for name, shape, target in CASES:
        opened, fps, mbps, per_cpu = run(shape, args.seconds)
        verdict = ""
        if target is not None:
            verdict = f">= {target:g} frames/s: " + ("ok" if max(fps, per_cpu) >= target else "MISSED")
        print(f"{name:<18} {opened:7.2f} {fps:9.1f} {mbps:8.1f} {per_cpu:13.1f}  {verdict}")
    clear_caches()


if __name__ == "__main__":
    main()
