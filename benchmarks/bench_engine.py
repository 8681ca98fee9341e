"""Capture throughput of the engine, and what it costs per frame.

Prints, for the simulated camera at its maximum rate:
- the driver alone (read_frame in a loop: the ceiling),
- the engine with 1 consumer, and with 8 consumers of which 2 stall (never read),
as frames/s and MB/s, the engine's added time per frame, and whether the 6 fast consumers saw
every frame. Variants run side by side in one process, because absolute times drift on shared
machines.

    python benchmarks/bench_engine.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import threading
import time

from _common import camera_alone, make_camera

from labcam.engine import Engine

CASES = [
    ("1280x1024 mono8", dict(width=1280, height=1024, pixel_format="mono8")),
    ("2448x2048 mono16", dict(width=2448, height=2048, pixel_format="mono16")),
]


def engine_run(shape: dict, seconds: float, fast: int, stalled: int) -> dict:
    cam = make_camera(shape)
    engine = Engine(cam, idle_grace=0)
    # Fast consumers that want every frame subscribe with a small buffer (a thread may be
    # descheduled for a frame or two); stalled ones: one latest-only, one buffered (stays bounded).
    subs = [engine.subscribe(f"fast-{i}", buffer=8) for i in range(fast)]
    stalled_subs = [engine.subscribe(f"stalled-{i}", buffer=8 * (i % 2)) for i in range(stalled)]
    stop = threading.Event()
    seen = [0] * fast

    def consume(i: int) -> None:
        sub = subs[i]
        while not stop.is_set():
            try:
                sub.next(0.5)
            except Exception:
                break
            seen[i] += 1

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(fast)]
    for t in threads:
        t.start()
    # measure from a known frame count, not from thread start
    s0 = engine.status
    t0 = time.perf_counter()
    time.sleep(seconds)  # the measurement window, not synchronisation
    s1 = engine.status
    dt = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    frames = s1.frames - s0.frames
    frame_bytes = engine.latest.array.nbytes if engine.latest is not None else 0
    missed = [s.missed for s in subs]
    for s in subs + stalled_subs:
        s.close()
    engine.close()
    return {
        "fps": frames / dt,
        "mbps": frames * frame_bytes / dt / 1e6,
        "fast_missed": sum(missed),
        "fast_delivered": sum(seen),
        "camera_dropped": s1.dropped,
    }


def publish_cost(shape: dict, consumers: int, repeat: int = 20000) -> float:
    """Microseconds the capture thread spends handing one frame to ``consumers`` subscribers.

    This is all the engine adds to the capture: the frame is published by reference.
    """
    cam = make_camera(shape)
    engine = Engine(cam, idle_grace=0)
    cam.start()
    frame = cam.read_frame(1.0)
    cam.stop()
    subs = []
    if not subs:
        # Subscribers without starting the capture thread: publish is driven by hand below.
        from labcam.engine import Subscription

        subs = [Subscription(engine, f"c{i}", 2 if i % 4 == 3 else 0) for i in range(consumers)]
        engine._subs.extend(subs)
    t0 = time.perf_counter()
    for _ in range(repeat):
        engine._publish(frame)
        for sub in subs:  # keep buffered ones from overflowing, as a reading consumer would
            sub.poll()
    dt = time.perf_counter() - t0
    # subtract the consumers' own poll cost, measured alone
    t1 = time.perf_counter()
    for _ in range(repeat):
        for sub in subs:
            sub.poll()
    polls = time.perf_counter() - t1
    engine._subs.clear()
    engine.close()
    return max(0.0, dt - polls) / repeat * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"{'case':<18} {'variant':<28} {'frames/s':>9} {'MB/s':>8} {'added ms/frame':>15} {'fast consumers missed':>22}")
    for name, shape in CASES:
        base_fps, base_mb = camera_alone(shape, args.seconds)
        print(f"{name:<18} {'driver alone (ceiling)':<28} {base_fps:9.1f} {base_mb:8.1f} {'':>15} {'':>22}")
        for label, fast, stalled in (("engine, 1 consumer", 1, 0), ("engine, 6 fast + 2 stalled", 6, 2)):
            r = engine_run(shape, args.seconds, fast, stalled)
            added = max(0.0, 1000.0 / r["fps"] - 1000.0 / base_fps)
            missed = f"{r['fast_missed']} of {r['fast_delivered'] + r['fast_missed']}"
            print(f"{name:<18} {label:<28} {r['fps']:9.1f} {r['mbps']:8.1f} {added:15.3f} {missed:>22}")
        for consumers in (1, 8):
            us = publish_cost(shape, consumers)
            print(f"{name:<18} {'publish, %d consumers' % consumers:<28} {'':>9} {'':>8} {us / 1000:15.4f} {'':>22}")


if __name__ == "__main__":
    main()
