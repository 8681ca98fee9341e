"""Relayed against direct: the Jupyter extension relaying a ``labcam serve``, side by side in one run.

A ``labcam serve`` (simulated camera, 1280x1024 mono8 at 30 fps) and a Jupyter server whose labcam
extension relays it (``--LabcamApp.camera_url``), both real subprocesses on loopback. Cases:

- direct: 8 viewers on the host;
- relayed: 8 viewers on Jupyter (one upstream: the same options), and 1 viewer.

Per case: fps per viewer (mean, min), capture -> receipt latency p50/p95 (same machine, same clock),
and CPU per delivered frame of each process (host, Jupyter), plus the host's CPU per second: with
the relay it must not grow with the relay's viewers (1 vs 8). Server CPU includes rendering the
simulated camera, the same in every case.

    python benchmarks/bench_relay.py [--seconds 6] [--viewers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench_stream import MiniWs, Server, parse_frame

CAMERA = ["--width", "1280", "--height", "1024", "--fps", "30", "--exposure-ms", "5", "--bit-depth", "8"]
TOKEN = "bench-relay"


class Jupyter(Server):
    """A Jupyter server whose labcam extension relays ``host_url`` (CPU and stop as ``Server``'s)."""

    def __init__(self, host_url: str) -> None:
        self.lines: list[str] = []  # Server keeps the log; this one is not read
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.root = tempfile.mkdtemp(prefix="bench-relay-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", f"--IdentityProvider.token={TOKEN}", "--allow-root", f"--ServerApp.root_dir={self.root}",
             f"--LabcamApp.camera_url={host_url}", "--LabcamApp.max_clients=64", "--ServerApp.log_level=WARN"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_RUNTIME_DIR": self.root},
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxies
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/labcam/api/camera?token={TOKEN}", timeout=2) as r:
                    if json.loads(r.read()).get("relayed_from") == host_url:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the Jupyter server did not start relaying")
            time.sleep(0.2)


@dataclass
class Viewer:
    frames: int = 0
    latencies: list[float] = field(default_factory=list)


async def watch(port: int, path: str, warmup: float, seconds: float, result: Viewer) -> None:
    ws = await MiniWs.connect(port, path)
    loop = asyncio.get_running_loop()
    t_start = loop.time() + warmup
    t_end = t_start + seconds
    try:
        while loop.time() < t_end:
            try:
                msg = await asyncio.wait_for(ws.recv(), max(t_end - loop.time(), 0.01) + 2)
            except asyncio.TimeoutError:
                break
            if msg is None:
                break
            now = time.time()
            header = parse_frame(*msg)
            if header is None or header.get("type") != "frame" or loop.time() < t_start:
                continue
            result.frames += 1
            result.latencies.append(now - header["timestamp"])
    finally:
        ws.close()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def run_case(name: str, port: int, path: str, viewers: int, host: Server, jupyter: Jupyter,
             warmup: float, seconds: float) -> dict[str, Any]:
    results = [Viewer() for _ in range(viewers)]

    async def main() -> tuple[float, float, float]:
        tasks = [asyncio.ensure_future(watch(port, path, warmup, seconds, r)) for r in results]
        await asyncio.sleep(warmup)
        h0, j0, t0 = host.cpu_seconds(), jupyter.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        h1, j1, t1 = host.cpu_seconds(), jupyter.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*tasks)
        return h1 - h0, j1 - j0, t1 - t0

    host_cpu, jupyter_cpu, wall = asyncio.run(main())
    delivered = sum(r.frames for r in results)
    fps = [r.frames / seconds for r in results]
    latencies = [x * 1000 for r in results for x in r.latencies]
    return {
        "case": name, "viewers": viewers, "fps_mean": statistics.mean(fps), "fps_min": min(fps),
        "p50": pct(latencies, 50), "p95": pct(latencies, 95),
        "host_ms_per_frame": host_cpu * 1000 / delivered if delivered else float("nan"),
        "jupyter_ms_per_frame": jupyter_cpu * 1000 / delivered if delivered else float("nan"),
        "host_cpu_pct": 100 * host_cpu / wall, "jupyter_cpu_pct": 100 * jupyter_cpu / wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--viewers", type=int, default=8)
    p.add_argument("--repeat", type=int, default=1,
                   help="run the cases this many times, interleaved, and print each figure's median "
                        "(a shared, loaded machine makes single runs noisy)")
    a = p.parse_args()
    host = Server(CAMERA)
    host_url = f"http://127.0.0.1:{host.port}/"
    jupyter = Jupyter(host_url)
    relayed_path = f"/labcam/ws/camera/stream?format=binary&token={TOKEN}"
    cases = [("direct", host.port, "/ws/camera/stream?format=binary", a.viewers),
             ("relayed", jupyter.port, relayed_path, a.viewers),
             ("relayed", jupyter.port, relayed_path, 1),
             ("direct", host.port, "/ws/camera/stream?format=binary", 1)]
    runs: list[list[dict[str, Any]]] = [[] for _ in cases]
    try:
        for _ in range(a.repeat):
            for i, (name, port, path, n) in enumerate(cases):
                runs[i].append(run_case(name, port, path, n, host, jupyter, a.warmup, a.seconds))
    finally:
        jupyter.stop()
        host.stop()
    rows = [{k: (statistics.median(r[k] for r in rs) if isinstance(rs[0][k], float) else rs[0][k]) for k in rs[0]}
            for rs in runs]
    print(f"1280x1024 mono8 at 30 fps, binary JPEG stream, {a.seconds:g} s per case, "
          f"median of {a.repeat} interleaved run(s) (python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f})")
    print(f"{'case':8} {'viewers':>7} {'fps/viewer':>10} {'min':>5} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'host ms/frame':>13} {'jupyter ms/frame':>16} {'host CPU %':>10} {'jupyter CPU %':>13}")
    for r in rows:
        print(f"{r['case']:8} {r['viewers']:>7} {r['fps_mean']:>10.1f} {r['fps_min']:>5.1f} {r['p50']:>7.1f} "
              f"{r['p95']:>7.1f} {r['host_ms_per_frame']:>13.2f} {r['jupyter_ms_per_frame']:>16.2f} "
              f"{r['host_cpu_pct']:>10.1f} {r['jupyter_cpu_pct']:>13.1f}")
    direct = next(r for r in rows if r["case"] == "direct" and r["viewers"] == a.viewers)
    relayed = next(r for r in rows if r["case"] == "relayed" and r["viewers"] == a.viewers)
    one = next(r for r in rows if r["case"] == "relayed" and r["viewers"] == 1)
    print(f"relay adds {relayed['p95'] - direct['p95']:+.1f} ms at p95 with {a.viewers} viewers (target <= 5 ms)")
    print(f"host CPU with the relay: {one['host_cpu_pct']:.1f} % (1 relayed viewer) vs "
          f"{relayed['host_cpu_pct']:.1f} % ({a.viewers} relayed viewers)")


if __name__ == "__main__":
    main()
