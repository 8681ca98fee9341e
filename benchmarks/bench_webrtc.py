"""WebRTC viewers through Janus vs labcam's own WebSocket stream, side by side in one run.

For 1, 5, 10 and 20 viewers (several in one headless Debian Chromium page), each transport:

- **labcam CPU** (%, the server process: camera simulation + encode + send) and **Janus CPU**;
- each viewer's **fps** (WebRTC: ``RTCPeerConnection.getStats()`` ``framesDecoded``; WebSocket:
  frames decoded by labcam-client.js), min/median over the viewers;
- **capture → decoded** p50/p95 (same machine, same clock: WebRTC from the frame-info SEI matched to
  the displayed frame, WebSocket from the frame header's timestamp when its bitmap is decoded);
- WebRTC: packets lost and PLIs the viewers sent, and the PLIs Janus forwarded to labcam;
- WebRTC with pacing off (``webrtc-unpaced``): every packet of a frame in one burst, the comparison.

The server runs in a process of its own (this script with ``--serve``), so its CPU is its own;
Janus is that process's child. The browser's decoding shares the machine's cores with both.

    python benchmarks/bench_webrtc.py [--counts 1,5,10,20] [--seconds 8] [--width 1280 --height 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # chromium_args: the browser tests' flags

WS_PAGE_SCRIPT = """async (n) => {
  const { LabcamClient } = await import("/static/labcam-client.js");
  window.wsViewers = [];
  for (let i = 0; i < n; i++) {
    const c = new LabcamClient({ url: location.origin + "/", pauseWhenHidden: false });
    const v = { decoded: 0, ages: [] };
    c.on("frame", (f) => {
      v.decoded += 1;
      const ts = f.meta && f.meta.timestamp;
      if (ts) { v.ages.push(Date.now() - ts * 1000); if (v.ages.length > 2000) v.ages.shift(); }
      if (f.bitmap && f.bitmap.close) f.bitmap.close();
    });
    c.connect().catch(() => {});
    window.wsViewers.push(v);
  }
}"""


# -- the server process ------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    """``--serve``: a labcam server (and with ``--webrtc`` a Janus of its own); prints its URL and
    Janus's pid, then on a line on stdin prints the publisher's counters and stops."""
    from _common import make_camera

    from labcam.engine import Engine
    from labcam.server.app import BackgroundServer
    from labcam.webrtc.janus import WebRTCChoice
    from labcam.webrtc.publisher import PublishOptions
    from labcam.webrtc.standalone import start_webrtc, stop_webrtc

    shape = {"width": args.width, "height": args.height}
    srv = BackgroundServer(lambda: Engine(make_camera(shape, fps=args.fps)), service_kwargs={"max_clients": 64}).start()
    publisher = None
    if args.webrtc:
        app = srv._running.http.request_callback  # type: ignore[union-attr]
        publisher = srv.call(lambda: start_webrtc(
            app, srv.engine, WebRTCChoice(), host="127.0.0.1", options=PublishOptions(pace_fraction=args.pace)), timeout=60)
        assert publisher is not None, "Janus could not be started"
    pid = publisher._own.process.pid if publisher and publisher._own and publisher._own.process else None
    print(json.dumps({"url": srv.url, "janus_pid": pid}), flush=True)
    sys.stdin.readline()
    print(json.dumps(publisher.stats() if publisher else {}), flush=True)
    if publisher is not None:
        srv.call(lambda: stop_webrtc(publisher), timeout=30)
    srv.stop()


class Server:
    def __init__(self, args: argparse.Namespace, transport: str) -> None:
        cmd = [sys.executable, __file__, "--serve", "--width", str(args.width), "--height", str(args.height),
               "--fps", str(args.fps), "--pace", "0" if transport == "webrtc-unpaced" else str(args.pace)]
        cmd += ["--webrtc"] if transport.startswith("webrtc") else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.url: str = hello["url"]
        self.ps = psutil.Process(self.proc.pid)
        self.janus = psutil.Process(hello["janus_pid"]) if hello["janus_pid"] else None

    def cpu(self) -> tuple[float, float]:
        def total(p: psutil.Process | None) -> float:
            if p is None:
                return 0.0
            t = p.cpu_times()
            return t.user + t.system

        return total(self.ps), total(self.janus)

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        stats: dict[str, Any] = json.loads(self.proc.stdout.readline() or "{}")
        self.proc.wait(60)
        return stats


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def _wait_started(page: Any, condition: str, timeout_s: float = 60) -> bool:
    """Until every viewer shows frames; False (and the case is measured anyway, the viewers that
    never started at 0 fps) when some did not within ``timeout_s``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=timeout_s * 1000, polling=250)
        return True
    except PlaywrightTimeout:
        return False


# -- one case -------------------------------------------------------------------------------------
def run_case(browser: Any, server: Server, transport: str, n: int, warmup: float, seconds: float) -> dict[str, Any]:
    page = browser.new_page()
    try:
        if transport.startswith("webrtc"):
            page.goto(server.url + f"static/webrtc-viewer.html?n={n}")
            started = _wait_started(page, "(window.viewerStats || []).length > 0 && "
                                    "window.viewerStats.every(s => s.status === 'live' && s.framesDecoded > 0)")
            read = """() => window.viewers.map((v, i) => ({ decoded: (window.viewerStats[i] || {}).framesDecoded || 0,
                lost: (window.viewerStats[i] || {}).packetsLost || 0, plis: (window.viewerStats[i] || {}).pliCount || 0,
                ages: v.ages.slice() }))"""
        else:
            page.goto(server.url + "api/camera")  # any same-origin page: the client is imported into it
            page.evaluate(WS_PAGE_SCRIPT, n)
            started = _wait_started(page, "window.wsViewers.every(v => v.decoded > 0)")
            read = "() => window.wsViewers.map(v => ({ decoded: v.decoded, lost: 0, plis: 0, ages: v.ages.slice() }))"
        page.wait_for_timeout(warmup * 1000)  # settle: the benchmark's measuring window, not synchronisation
        before, cpu0, t0 = page.evaluate(read), server.cpu(), time.perf_counter()
        page.wait_for_timeout(seconds * 1000)
        after, cpu1, t1 = page.evaluate(read), server.cpu(), time.perf_counter()
    finally:
        page.close()
    dt = t1 - t0
    fps = [(a["decoded"] - b["decoded"]) / dt for a, b in zip(after, before)]
    ages = [age for a, b in zip(after, before) for age in a["ages"][len(b["ages"]) :] if age > 0]
    if not ages:  # the window wrapped the bounded list: take what is there
        ages = [age for a in after for age in a["ages"]]
    return {
        "transport": transport, "viewers": n,
        "labcam_cpu": 100 * (cpu1[0] - cpu0[0]) / dt, "janus_cpu": 100 * (cpu1[1] - cpu0[1]) / dt,
        "fps_min": min(fps), "fps_median": statistics.median(fps),
        "p50": pct(ages, 50), "p95": pct(ages, 95),
        "lost": sum(a["lost"] for a in after), "plis": sum(a["plis"] for a in after), "all_started": started,
    }


def fmt(r: dict[str, Any]) -> str:
    return (
        f"{r['transport']:14} {r['viewers']:>3}  labcam {r['labcam_cpu']:5.1f} %  janus {r['janus_cpu']:5.1f} %  "
        f"fps min {r['fps_min']:5.1f} median {r['fps_median']:5.1f}  capture→decoded p50 {r['p50']:6.1f} ms "
        f"p95 {r['p95']:6.1f} ms  lost {r['lost']:>4}  viewer PLIs {r['plis']:>3}"
        + ("" if r["all_started"] else "  (not every viewer started within 60 s)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,5,10,20", help="viewer counts (default 1,5,10,20)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per case (default 8)")
    parser.add_argument("--warmup", type=float, default=3.0, help="settling time per case (default 3)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--transports", default="webrtc,websocket,webrtc-unpaced",
                        help="webrtc (paced), websocket, webrtc-unpaced (pacing off: the comparison); default all three")
    parser.add_argument("--pace", type=float, default=0.5, help="webrtc: the share of the frame interval a frame's packets are spread over (0.5)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--webrtc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    from playwright.sync_api import sync_playwright

    from browser_page import CHROMIUM
    from chromium_args import CHROMIUM_ARGS

    counts = [int(c) for c in args.counts.split(",")]
    print(f"{args.width}x{args.height} mono8 at {args.fps:g} fps, simulated camera; {args.seconds:g} s per case "
          f"after {args.warmup:g} s; {psutil.cpu_count()} cores")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for transport in args.transports.split(","):
                server = Server(args, transport)
                try:
                    for n in counts:
                        row = run_case(browser, server, transport, n, args.warmup, args.seconds)
                        rows.append(row)
                        print(fmt(row), flush=True)
                finally:
                    stats = server.stop()
                if stats:
                    print(f"  publisher: {stats['frames_sent']} frames, {stats['keyframes_sent']} keyframes, "
                          f"{stats['plis_received']} PLIs forwarded by Janus, {stats['packets_sent']} packets")
        finally:
            browser.close()
    for transport in args.transports.split(","):
        mine = [r for r in rows if r["transport"] == transport]
        if len(mine) >= 2:
            first, last = mine[0], mine[-1]
            change = 100 * (last["labcam_cpu"] - first["labcam_cpu"]) / max(first["labcam_cpu"], 1e-9)
            print(f"{transport}: labcam CPU at {last['viewers']} viewers vs {first['viewers']}: {change:+.1f} % "
                  f"(target for webrtc: within 10 %); slowest viewer {min(r['fps_min'] for r in mine):.1f} fps")


if __name__ == "__main__":
    main()
