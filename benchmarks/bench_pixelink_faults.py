"""What a failing PixeLINK camera costs and how fast labcam notices and recovers (the fake SDK).

    python benchmarks/bench_pixelink_faults.py [--window 5]

Prints, side by side for several error codes:
- CPU share of one core and reads/s while every ``getNextFrame`` fails at once (the engine's back-off);
- seconds from an unplug to ``camera_lost``, and from the replug to the next frame for the same consumer;
- how long ``open()`` takes while the wrapper's import hangs (it is bounded by ``import_timeout``).
Uses the fake ``pixelinkWrapper`` of tests/fake_pixelink, never the real SDK.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERIAL = 9090
FAST = {"exposure_ms": 2.0, "fps": 200.0, "roi": (16, 8, 64, 48)}
CODES = {
    "ApiUnknownError": -2147483647,
    "ApiNoDeviceError": -1879048185,
    "ApiLinkDriverError": -1879048183,
    "ApiOSServiceError": -1879048178,
    "ApiStreamStopped": -2147483630,
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fake() -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "fake_pixelink"))
    library = Path(tempfile.mkdtemp()) / "libPxLApi.so.4.2.2.11"
    library.write_bytes(b"")
    os.environ["PIXELINK_SDK_LIB"] = str(library)
    return importlib.import_module("pixelinkWrapper.fake").FAKE


def always_failing(fake: Any, code: str, window: float) -> tuple[float, float]:
    """(CPU % of a core, reads/s) over ``window`` s after a 3 s warm-up, every read failing with ``code``."""
    from labcam.cameras.pixelink import PixelinkCamera
    from labcam.engine import Engine

    fake.reset()
    camera = fake.add_camera(SERIAL)
    driver = PixelinkCamera(SERIAL, **FAST)
    driver.open()
    camera.inject_frame_errors(CODES[code], 100_000)
    engine = Engine(driver)
    with engine.subscribe("bench"):
        threading.Event().wait(3.0)
        cpu0, t0, left0 = _cpu(), time.monotonic(), len(camera.state.injected_errors)
        threading.Event().wait(window)
        cpu, dt = _cpu() - cpu0, time.monotonic() - t0
        reads = left0 - len(camera.state.injected_errors)
    engine.close()
    return 100 * cpu / dt, reads / dt


def unplug_replug(fake: Any, code: str) -> tuple[float, float]:
    """(s from unplug to lost, s from replug to the next frame for the same subscription)."""
    from labcam.cameras.pixelink import PixelinkCamera
    from labcam.engine import Engine

    fake.reset()
    fake.add_camera(SERIAL)
    driver = PixelinkCamera(SERIAL, **FAST)
    driver.open()
    engine = Engine(driver)
    lost = threading.Event()
    engine.events.camera_lost.connect(lambda why: lost.set())
    with engine.subscribe("bench") as sub:
        sub.next(timeout=5)
        t0 = time.monotonic()
        fake.unplug(SERIAL, frame_rc=CODES[code])
        if not lost.wait(30):
            engine.close()
            return float("inf"), float("inf")
        to_lost = time.monotonic() - t0
        threading.Event().wait(2.0)  # unplugged for a while: the reconnect back-off has grown
        t1 = time.monotonic()
        fake.replug(SERIAL)
        while sub.poll() is not None:  # frames from before the unplug do not count
            pass
        sub.next(timeout=30)
        to_frames = time.monotonic() - t1
    engine.close()
    return to_lost, to_frames


def slow_import_open(fake: Any, timeout: float) -> float:
    """Seconds ``open()`` takes while ``import pixelinkWrapper`` hangs for a minute."""
    from labcam.cameras.pixelink import PixelinkCamera
    from labcam.errors import CameraUnavailable

    fake.reset()
    fake.add_camera(SERIAL)
    fake.slow_import(60)
    t0 = time.monotonic()
    try:
        PixelinkCamera(SERIAL, import_timeout=timeout).open()
    except CameraUnavailable as exc:
        print(f"  open() raised: {exc}")
    took = time.monotonic() - t0
    fake.reset()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=5.0, help="seconds each CPU measurement lasts (5)")
    args = parser.parse_args()
    fake = _fake()
    print(f"always-failing reads ({args.window:g} s window after 3 s):")
    for code in ("ApiUnknownError", "ApiStreamStopped"):
        share, rate = always_failing(fake, code, args.window)
        print(f"  {code:<22} {share:6.2f} % of a core  {rate:6.2f} reads/s")
    print("unplug -> lost, replug -> frames for the same consumer:")
    for code in ("ApiNoDeviceError", "ApiLinkDriverError", "ApiOSServiceError"):
        to_lost, to_frames = unplug_replug(fake, code)
        print(f"  {code:<22} lost after {to_lost:6.3f} s  frames {to_frames:6.3f} s after the replug")
    for timeout in (10.0,):
        print(f"open() with an import hanging 60 s, import_timeout={timeout:g}:")
        print(f"  open() returned after {slow_import_open(fake, timeout):.2f} s")


if __name__ == "__main__":
    main()
