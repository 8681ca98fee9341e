"""The stream across emulated links (benchmarks/link.py: tbf rate, relayed round trip; needs root):
a real labcam server on this machine's loopback, a real Tornado WebSocket client inside the link's
network namespace (benchmarks/bench_links.py's client, run there), acknowledging frames by answering pings as any
client does.

What is asserted is a property of the flow-control window, not a speed: with the fixed window of
2 frames per round trip, a 100 ms link gets at most 2 / 0.1 s = 20 fps whatever its bandwidth.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("labcam_link_emulator", ROOT / "benchmarks" / "link.py")
assert _spec and _spec.loader
link = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = link
_spec.loader.exec_module(link)


BENCH_LINKS = ROOT / "benchmarks" / "bench_links.py"


def read_across(lk, port: int, query: str, warmup_s: float, seconds: float) -> dict:
    """A client inside the link's namespace (bench_links.py's): {"frames": [[received, captured,
    frame number, bytes], ...], "stats": [every stats message]} after ``warmup_s``."""
    url = lk.url_for(port, "ws", f"/ws/camera/stream?{query}")
    out = lk.run(
        [sys.executable, str(BENCH_LINKS), "--client", url, str(warmup_s), str(seconds), "1"],
        capture_output=True, text=True, timeout=warmup_s + seconds + 60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)["clients"][0]


def fps_of(frames: list) -> float:
    return (len(frames) - 1) / (frames[-1][0] - frames[0][0])


# -- tests ---------------------------------------------------------------------------------------------
def test_a_100ms_link_with_bandwidth_to_spare_gets_the_camera_rate(make_server) -> None:
    srv = make_server(width=640, height=512, fps=30.0)
    with link.Link(rate="100mbit", rtt_ms=100) as lk:
        got = read_across(lk, srv.port, "format=binary", warmup_s=3.0, seconds=4.0)
    frames, stats = got["frames"], got["stats"]
    fps = fps_of(frames)
    assert fps >= 26, f"{fps:.1f} fps across a 100 ms link (2 frames per round trip would be 20)"
    last = stats[-1]
    assert last["window"] >= 4, last  # 30 fps × 100 ms = 3 frames in the round trip, + 1
    assert last["base_rtt_ms"] >= 100, last
    assert last["delivered_fps"] >= 26, last
    assert last["delivered_bytes_per_s"] > 20 * statistics.median(f[3] for f in frames), last


def test_a_slow_link_gets_its_rate_and_frames_do_not_queue(make_server) -> None:
    # 5 Mbit/s carries about 15 of these ~40 kB frames a second: the link is the limit.
    srv = make_server(width=640, height=512, fps=30.0)
    with link.Link(rate="5mbit", rtt_ms=20) as lk:
        got = read_across(lk, srv.port, "format=binary", warmup_s=3.0, seconds=6.0)
    frames, stats = got["frames"], got["stats"]
    frame_bytes = statistics.median(f[3] for f in frames)
    capacity = 5e6 / 8 / frame_bytes
    fps = fps_of(frames)
    assert fps >= 0.8 * capacity, f"{fps:.1f} fps of {capacity:.1f} the link carries"
    # capture -> receipt: the round trip's half, the frame's own serialisation and what queued
    # before it. "About two frame times" of queue, with a frame time of slack for the machine.
    ages = sorted(r - c for r, c, _, _ in frames)
    frame_time = 1 / capacity
    median = statistics.median(ages)
    assert median <= 0.010 + frame_time + 3 * frame_time, (median, frame_time)
    # (a viewer the link holds back gets no stats on top of its frames; when it did, the window is small)
    assert all(s["window"] <= 4 for s in stats), stats

