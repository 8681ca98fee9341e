"""H.264 (labcam.preview.h264) against JPEG q80 on the same frames, and how viewers get keyframes.

    python benchmarks/bench_h264.py [--frames 60] [--keyframe-frames 180] [--width 1280 --height 1024]

The simulated specimen, mono8, rendered before timing starts (only encoding is timed, on this
thread). Prints two tables:

1. Per encoder: kB per frame, PSNR against the source frames (after decoding: PyAV's h264 decoder,
   simplejpeg), and encode ms per frame (median and p95). x264 at CRF 18/23/28 and at two bitrates,
   JPEG q80 as the server encodes it today (``labcam.preview.jpeg.encode_jpeg``).
2. Keyframes for joining viewers, x264 CRF 23: a short GOP (30, 60) against IDRs on request
   (``request_keyframe``, at most one per ``keyframe_spacing`` = 15 frames). Bytes per frame, the
   IDR size, and join latency in frames (from a viewer's arrival to the first IDR it can start at):
   for a GOP, averaged over arrivals at every frame (that a GOP of 60 serves within the run); for
   requests, for viewers arriving at the rate given. 180 frames, so that a GOP of 60 repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import simplejpeg

from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.h264 import H264Decoder, H264Encoder, luma
from labcam.preview.jpeg import encode_jpeg


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decode_h264(units: list[bytes]) -> list[np.ndarray]:
    decoder = H264Decoder()
    return [luma(p).copy() for data in units for p in decoder.decode(data)]


def timed(encode: Callable[[np.ndarray], Any], frames: list[np.ndarray]) -> tuple[list[Any], list[float]]:
    results, ms = [], []
    for f in frames:
        t0 = time.perf_counter()
        results.append(encode(f))
        ms.append((time.perf_counter() - t0) * 1000.0)
    return results, ms


def row(name: str, sizes: list[int], scores: list[float], ms: list[float]) -> str:
    p95 = sorted(ms)[int(0.95 * (len(ms) - 1))]
    return (f"{name:<26} {statistics.mean(sizes) / 1000:>9.1f} {statistics.mean(scores):>8.1f} "
            f"{statistics.median(ms):>8.2f} {p95:>8.2f}")


def encoders(frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape
    print(f"\n1. encoders, {len(frames)} frames {w}x{h} mono8 of the simulated specimen (one thread)")
    print(f"{'encoder':<26} {'kB/frame':>9} {'PSNR dB':>8} {'ms p50':>8} {'ms p95':>8}")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("x264 CRF 18", {"crf": 18}),
        ("x264 CRF 23", {"crf": 23}),
        ("x264 CRF 28", {"crf": 28}),
        ("x264 3 Mbit/s", {"bitrate": 3_000_000}),
        ("x264 10 Mbit/s", {"bitrate": 10_000_000}),
    ]
    for name, kwargs in cases:
        enc = H264Encoder(w, h, fps=fps, **kwargs)
        units, ms = timed(lambda f: enc.encode(f).data, frames)
        decoded = decode_h264(units)
        print(row(name, [len(u) for u in units], [psnr(d, f) for d, f in zip(decoded, frames)], ms))
    jpegs, ms = timed(lambda f: encode_jpeg(f, 80), frames)
    decoded = [simplejpeg.decode_jpeg(j, "GRAY")[:, :, 0] for j in jpegs]
    print(row("JPEG q80 (simplejpeg)", [len(j) for j in jpegs], [psnr(d, f) for d, f in zip(decoded, frames)], ms))


def keyframes(frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape
    n = len(frames)
    print(f"\n2. keyframes for joining viewers, x264 CRF 23, {n} frames at {fps:g} fps")
    print(f"{'mode':<34} {'kB/frame':>9} {'IDR kB':>7} {'IDRs':>5} {'join frames mean':>17} {'max':>4}")

    def run(gop: int | None, joins: list[int]) -> tuple[list[int], list[bool]]:
        enc = H264Encoder(w, h, fps=fps, gop=gop, keyframe_spacing=15)
        sizes, keys = [], []
        for i, f in enumerate(frames):
            if gop is None and i in joins:
                enc.request_keyframe()
            unit = enc.encode(f)
            sizes.append(len(unit.data))
            keys.append(unit.keyframe)
        return sizes, keys

    def latency(keys: list[bool], joins: list[int]) -> list[int]:
        return [next(i for i in range(j, n) if keys[i]) - j for j in joins]

    def line(name: str, sizes: list[int], keys: list[bool], waits: list[int]) -> None:
        idr = [s for s, k in zip(sizes, keys) if k][1:] or [sizes[0]]  # the first IDR every mode has
        print(f"{name:<34} {statistics.mean(sizes) / 1000:>9.1f} {statistics.mean(idr) / 1000:>7.1f} "
              f"{sum(keys):>5} {statistics.mean(waits):>17.1f} {max(waits):>4}")

    arrivals = list(range(1, n - 60))  # every arrival a GOP of 60 still serves within the run
    for gop in (30, 60):
        sizes, keys = run(gop, [])
        line(f"GOP {gop}", sizes, keys, latency(keys, arrivals))
    for per_second in (0.5, 1.0, 4.0):
        step = max(1, round(fps / per_second))
        joins = list(range(step // 2 or 1, n - 15, step))
        sizes, keys = run(None, joins)
        line(f"on request, {per_second:g} joins/s", sizes, keys, latency(keys, joins))
    sizes, keys = run(None, [])
    line("no joins (first IDR only)", sizes, keys, [0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--keyframe-frames", type=int, default=180, help="frames for table 2 (at least 90)")
    args = parser.parse_args()
    if args.keyframe_frames < 90:
        parser.error("--keyframe-frames must be at least 90 (table 2 needs more than a GOP of 60)")
    cam = SimulatedCamera(width=args.width, height=args.height, pixel_format="mono8", seed=1)
    frames = [cam.expected_frame(i) for i in range(max(args.frames, args.keyframe_frames))]
    print(f"PyAV {av.__version__}, x264 preset ultrafast, tune zerolatency, no B-frames")
    encoders(frames[: args.frames], args.fps)
    keyframes(frames[: args.keyframe_frames], args.fps)


if __name__ == "__main__":
    main()
