"""Throughput of ``labcam.connect().acquire(100)``: frames/s and MB/s of lossless frames.

Three ways to get 100 consecutive frames of the simulated camera at its maximum rate, measured
side by side in one run (rounds interleave the variants, because absolute rates drift on a shared
machine):

- in-process: ``labcam.open(...).acquire(100)`` (no network: the ceiling);
- standalone: ``labcam.connect(url).acquire(100)`` against ``labcam serve`` in another process;
- jupyter: the same against a Jupyter server (``python -m jupyter_server``) with the labcam
  extension, in another process, as a kernel would.

Every acquisition is checked (n frames, and every gap in the frame numbers counted in
``Stack.dropped``); the drops are printed (frames the acquisition could not keep up with). Also
printed: the median latency of ``snap()`` (a new connection per snap).

    python benchmarks/bench_remote.py [--frames 100] [--rounds 5] [--width 1280 --height 1024 --bit-depth 16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import labcam

MAX_FPS = 1000.0  # the simulated camera's ceiling: frames come as fast as it renders them
EXPOSURE_MS = 0.5  # must fit in one frame period at MAX_FPS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200 (polling a server that is starting up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up within {timeout:g} s")
        time.sleep(0.2)  # polling a starting process: there is nothing to wait on


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def standalone(args: argparse.Namespace) -> Iterator[tuple[str, str | None]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "labcam", "serve", "--camera", "simulated", "--port", str(port),
        "--width", str(args.width), "--height", str(args.height), "--bit-depth", str(args.bit_depth),
        "--fps", str(MAX_FPS), "--exposure-ms", str(EXPOSURE_MS), "--idle-grace", "1",
    ]
    with process(cmd):
        url = f"http://127.0.0.1:{port}/"
        wait_http(url + "api/camera", {})
        yield url, None


@contextlib.contextmanager
def jupyter(args: argparse.Namespace) -> Iterator[tuple[str, str | None]]:
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JUPYTER_CONFIG_DIR": os.path.join(tmp, "config"),
               "JUPYTER_RUNTIME_DIR": os.path.join(tmp, "runtime")}
        cmd = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}",
            "--ServerApp.base_url=/jp/", "--LabcamApp.camera=simulated",
            f"--LabcamApp.width={args.width}", f"--LabcamApp.height={args.height}",
            f"--LabcamApp.bit_depth={args.bit_depth}", f"--LabcamApp.fps={MAX_FPS}",
            f"--LabcamApp.exposure_ms={EXPOSURE_MS}", "--LabcamApp.idle_grace=1",
        ]
        with process(cmd, env=env, cwd=tmp):
            url = f"http://127.0.0.1:{port}/jp/"
            wait_http(url + "labcam/api/camera", {"Authorization": f"token {token}"})
            yield url, token


def check(stack: labcam.Stack, n: int) -> int:
    """Frames missing from the stack: the gaps in its frame numbers (the truth, whatever
    ``Stack.dropped`` says)."""
    numbers = stack.frame_numbers
    assert len(stack) == n and stack.array.shape[0] == n
    gaps = int(numbers[-1] - numbers[0]) + 1 - n
    if gaps != stack.dropped:
        print(f"    note: Stack.dropped={stack.dropped} but the frame numbers show {gaps} missing")
    return gaps


def measure(acquire: Callable[[int], labcam.Stack], n: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    stack = acquire(n)
    dt = time.perf_counter() - t0
    return n / dt, stack.array.nbytes / dt / 1e6, check(stack, n)


def snap_latency_ms(snap: Callable[[], Any], k: int = 20) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        snap()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--bit-depth", type=int, default=16, choices=(8, 12, 16))
    args = parser.parse_args()
    n = args.frames
    fmt = f"mono{args.bit_depth}"
    print(f"acquire({n}) of {args.width}x{args.height} {fmt}, simulated camera at its maximum rate, "
          f"{os.cpu_count()} CPUs, {args.rounds} rounds (median, best)")

    with contextlib.ExitStack() as stack:
        local = stack.enter_context(
            labcam.open("simulated", width=args.width, height=args.height, pixel_format=fmt, fps=MAX_FPS,
                        exposure_ms=EXPOSURE_MS, idle_grace=1.0)
        )
        remotes = {}
        for name, server in (("standalone (labcam serve)", standalone), ("jupyter extension", jupyter)):
            url, token = stack.enter_context(server(args))
            remotes[name] = labcam.connect(url, token=token)
        variants: dict[str, Any] = {"in-process (labcam.open)": local, **remotes}

        # The camera alone: how fast the simulated camera renders frames in this process.
        with local.frames(limit=n + 1) as frames:
            next(frames)
            t0 = time.perf_counter()
            for _ in frames:
                pass
            camera_fps = n / (time.perf_counter() - t0)
        print(f"  camera alone (frames() in-process): {camera_fps:6.1f} frames/s")

        for name, cam in variants.items():  # warm up: camera start, textures, connections
            check(cam.acquire(min(n, 20), progress=False), min(n, 20))
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, cam in variants.items():
                results[name].append(measure(lambda k, c=cam: c.acquire(k, progress=False), n))

        frame_mb = args.width * args.height * (1 if args.bit_depth == 8 else 2) / 1e6
        print(f"  frame size {frame_mb:.2f} MB")
        for name, runs in results.items():
            fps = [r[0] for r in runs]
            mbs = [r[1] for r in runs]
            dropped = sum(r[2] for r in runs)
            snap_ms = snap_latency_ms(lambda c=variants[name]: c.snap())
            print(f"  {name:28s} {statistics.median(fps):7.1f} frames/s ({max(fps):6.1f} best)  "
                  f"{statistics.median(mbs):7.0f} MB/s ({max(mbs):5.0f} best)  dropped {dropped:4d}  "
                  f"snap {snap_ms:5.1f} ms")


if __name__ == "__main__":
    main()
