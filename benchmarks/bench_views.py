"""View-aware streaming (issue 11, Performance 1): a 4096x3000 mono12 camera at 30 fps, 10 viewers.

Prints, side by side in one run:

1. **Reduce**: decimation (a strided view) against mean binning, bringing the whole 12 MP sensor into
   a 1280x1024 box (factor 4): CPU per frame, and the look, as the RMS error (camera counts) of each
   against the noise-free frame binned (the picture a perfect reducer would show), plus JPEG bytes.
2. **Histogram**: the cost of the header's histogram for sample sizes from 4 k pixels to every pixel
   of a 1280x1024 view, and of the exact saturated count.
3. **Streams**: a real ``labcam serve`` (4096x3000 mono12, 30 fps) and 10 real WebSocket viewers
   (``bench_stream``'s client, which answers pings as it reads), in three cases:
   (a) all fit to the sensor in a 1280x1024 box (one shared encode), (b) each at 1:1 on its own
   1280x1024 region (ten encodes), (c) the baseline: today's full-width stream. Per viewer fps,
   bytes per frame, and the server's CPU per camera frame against the **bare cost** measured in this
   process in the same run: rendering one simulated frame, plus the JPEG encodes the case needs
   (simplejpeg on ready 8-bit images of the sizes sent).

    python benchmarks/bench_views.py [--seconds 5] [--warmup 2] [--skip-streams]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.display import to_display
from labcam.preview.jpeg import encode_jpeg
from labcam.preview.views import count_histogram, crop_reduce, plan_view

from bench_stream import ClientResult, Server, run_client  # noqa: E402  (benchmarks/ is on the path)

W, H, FPS = 4096, 3000, 30.0
BOX = (1280, 1024)
VIEWERS = 10
# Ten different 1280x1024 regions of the sensor, for the 1:1 case.
REGIONS = [(x, y, 1280, 1024) for x in (0, 1408, 2816) for y in (0, 976, 1976)] + [(1408, 1488, 1280, 1024)]


def cpu_ms(fn: Callable[[], Any], repeat: int) -> float:
    """Median thread CPU time of ``fn`` in ms (thread time: less sensitive to a busy machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1000)
    return statistics.median(times)


def bin_mean(a: np.ndarray, s: int) -> np.ndarray:
    """Mean binning by ``s``, the cheapest numpy way we found: sum every s-th row into a copy (whole
    rows, contiguous), then every s-th column of that, in uint16 (16 counts of 12 bits fit: s <= 4
    only, for 12-bit frames), then divide. A reshape + sum in uint32 is the obvious way, and slower."""
    assert s * s * 4095 < 65536
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    rows = a[0:h:s, :w].copy()
    for d in range(1, s):
        np.add(rows, a[d:h:s, :w], out=rows)
    out = rows[:, 0::s].copy()
    for d in range(1, s):
        np.add(out, rows[:, d::s], out=out)
    return out // (s * s)


def bin_reshape(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    return (a[:h, :w].reshape(h // s, s, w // s, s).sum(axis=(1, 3), dtype=np.uint32) // (s * s)).astype(np.uint16)


def reduce_table(cam: SimulatedCamera) -> None:
    plan = plan_view(None, BOX, None, W, H)
    s = plan.step
    print(f"\n1. Reduce the whole {W}x{H} mono12 sensor into {BOX[0]}x{BOX[1]}: factor {s} -> {plan.out_size}")
    frames = [cam.expected_frame(n) for n in range(3)]
    truths = [bin_reshape(cam.expected_frame(n, noise=False), s).astype(float) for n in range(3)]
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "decimation (strided view)": lambda a: crop_reduce(a, plan),
        "decimation + copy": lambda a: np.ascontiguousarray(crop_reduce(a, plan)),
        "mean binning (rows, then columns)": lambda a: bin_mean(a, s),
        "mean binning (reshape + sum)": lambda a: bin_reshape(a, s),
    }
    print(f"{'method':<34} {'CPU ms':>7} {'RMS error vs truth':>19} {'JPEG kB q80':>12}")
    for name, fn in methods.items():
        ms = statistics.median(cpu_ms(lambda f=f: fn(f), 5) for f in frames)
        errs, sizes = [], []
        for f, truth in zip(frames, truths):
            r = fn(f)
            hh, ww = min(r.shape[0], truth.shape[0]), min(r.shape[1], truth.shape[1])
            errs.append(float(np.sqrt(np.mean((r[:hh, :ww].astype(float) - truth[:hh, :ww]) ** 2))))
            image, _ = to_display(np.ascontiguousarray(r), 12, display=(0, 4095))
            sizes.append(len(encode_jpeg(np.ascontiguousarray(image), 80)))
        print(f"{name:<34} {ms:7.2f} {statistics.mean(errs):19.1f} {statistics.mean(sizes) / 1000:12.1f}")
    image, _ = to_display(np.ascontiguousarray(crop_reduce(frames[0], plan)), 12)
    image = np.ascontiguousarray(image)
    print(f"   for scale: the JPEG q80 encode of the reduced image {cpu_ms(lambda: encode_jpeg(image, 80), 9):.2f} ms, "
          f"rendering the simulated frame {cpu_ms(lambda: cam.expected_frame(5), 3):.1f} ms")


def histogram_table(cam: SimulatedCamera) -> None:
    import labcam.preview.views as views

    frame = cam.expected_frame(0)
    region = frame[976:2000, 1408:2688]  # a 1280x1024 view, strided inside the frame
    fit = crop_reduce(frame, plan_view(None, BOX, None, W, H))
    print("\n2. Header histogram (64 bins of the counts) and saturated count")
    print(f"{'sample pixels':>14} {'1280x1024 view ms':>18} {'fit view (1024x750) ms':>23}")
    keep = views.HISTOGRAM_SAMPLE_PIXELS
    try:
        for n in (4096, 16384, 65536, 262144, 1280 * 1024):
            views.HISTOGRAM_SAMPLE_PIXELS = n
            a = cpu_ms(lambda: count_histogram(region, 12), 15)
            b = cpu_ms(lambda: count_histogram(fit, 12), 15)
            print(f"{n:>14} {a:18.2f} {b:23.2f}")
        views.HISTOGRAM_SAMPLE_PIXELS = 1
        sat_region = cpu_ms(lambda: count_histogram(region, 12), 15)
    finally:
        views.HISTOGRAM_SAMPLE_PIXELS = keep
    full_sat = cpu_ms(lambda: np.count_nonzero(frame == 4095), 5)
    print(f"   of which the exact saturated count (1-pixel sample): {sat_region:.2f} ms on the 1280x1024 view; "
          f"on all {W}x{H} pixels it would be {full_sat:.2f} ms")


def bare_cost(cam: SimulatedCamera) -> dict[str, float]:
    """ms of CPU per camera frame for the work itself: render + the JPEG encodes each case needs."""
    render = cpu_ms(lambda: cam.expected_frame(7), 5)
    frame = cam.expected_frame(7)

    def jpeg_ms(pixels: np.ndarray) -> float:
        image, _ = to_display(np.ascontiguousarray(pixels), 12)
        image = np.ascontiguousarray(image)
        return cpu_ms(lambda: encode_jpeg(image, 80), 7)

    fit = jpeg_ms(crop_reduce(frame, plan_view(None, BOX, None, W, H)))
    regions = sum(jpeg_ms(frame[y : y + h, x : x + w]) for x, y, w, h in REGIONS)
    full = jpeg_ms(frame)
    return {"render": render, "a": render + fit, "b": render + regions, "c": render + full,
            "jpeg_a": fit, "jpeg_b": regions, "jpeg_c": full}


def stream_case(server: Server, queries: list[str], warmup: float, seconds: float) -> dict[str, Any]:
    results = [ClientResult(slow=False) for _ in queries]

    async def main() -> tuple[float, float, dict[str, Any], dict[str, Any]]:
        tasks = [run_client(server.port, q, False, warmup, seconds, r) for q, r in zip(queries, results)]
        gathered = asyncio.gather(*tasks)
        await asyncio.sleep(warmup)
        before = server.stats()
        c0, t0 = server.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        c1, t1 = server.cpu_seconds(), time.perf_counter()
        after = server.stats()
        await gathered
        return c1 - c0, t1 - t0, before, after

    cpu, wall, before, after = asyncio.run(main())
    cam_frames = after["camera"]["frames"] - before["camera"]["frames"]
    fps = [r.frames / seconds for r in results]
    frames = sum(r.frames for r in results)
    return {
        "camera_fps": cam_frames / wall,
        "fps_min": min(fps), "fps_mean": statistics.mean(fps),
        "bytes_per_frame": sum(r.bytes for r in results) / frames if frames else float("nan"),
        "cpu_pct": 100 * cpu / wall,
        "cpu_ms_per_camera_frame": 1000 * cpu / cam_frames if cam_frames else float("nan"),
        "encodes_per_frame": (after["encoder"].get("encodes", 0) - before["encoder"].get("encodes", 0)) / max(cam_frames, 1),
        "lat_p50": float(np.percentile([x * 1000 for r in results for x in r.latencies], 50)) if frames else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--skip-streams", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    cam = SimulatedCamera(width=W, height=H, pixel_format="mono12", seed=1)
    reduce_table(cam)
    histogram_table(cam)
    if args.skip_streams:
        return
    cases = {
        "a": ("(a) all fit to the sensor", [f"format=binary&size={BOX[0]},{BOX[1]}"] * VIEWERS),
        "b": ("(b) each 1:1 on its own region", [f"format=binary&size={BOX[0]},{BOX[1]}&view={x},{y},{w},{h}" for x, y, w, h in REGIONS]),
        "c": ("(c) baseline: today's full width", ["format=binary"] * VIEWERS),
    }
    server = Server(["--width", str(W), "--height", str(H), "--bit-depth", "12", "--fps", str(FPS), "--exposure-ms", "5"])
    rows = {}
    try:
        for key, (label, queries) in cases.items():
            rows[key] = stream_case(server, queries, args.warmup, args.seconds)
        bare = bare_cost(cam)  # after the streams, on the same machine state, in the same run
        errors = server.errors()
    finally:
        server.stop()
    print(f"\n3. {W}x{H} mono12 at {FPS:g} fps, {VIEWERS} viewers ({args.seconds:g} s each; load average {os.getloadavg()[0]:.1f})")
    print(f"   bare cost per camera frame: render {bare['render']:.1f} ms + JPEG (a) {bare['jpeg_a']:.1f} / "
          f"(b) {bare['jpeg_b']:.1f} / (c) {bare['jpeg_c']:.1f} ms")
    print(f"{'case':<36} {'cam fps':>7} {'fps min':>7} {'fps mean':>8} {'kB/frame':>9} {'MB/s all':>9} "
          f"{'encodes/frame':>13} {'CPU %':>6} {'CPU ms/frame':>12} {'bare ms':>8} {'ratio':>6}")
    for key, (label, _) in cases.items():
        r = rows[key]
        mbs = r["bytes_per_frame"] * r["fps_mean"] * VIEWERS / 1e6
        print(f"{label:<36} {r['camera_fps']:7.1f} {r['fps_min']:7.1f} {r['fps_mean']:8.1f} {r['bytes_per_frame'] / 1000:9.1f} "
              f"{mbs:9.1f} {r['encodes_per_frame']:13.2f} {r['cpu_pct']:6.1f} {r['cpu_ms_per_camera_frame']:12.1f} "
              f"{bare[key]:8.1f} {r['cpu_ms_per_camera_frame'] / bare[key]:6.2f}")
    if errors:
        print("server errors:\n" + "".join(errors[:10]))


if __name__ == "__main__":
    main()
