"""The stream across emulated links (benchmarks/link.py: tbf rate, relayed round trip; needs root):
a real labcam server on this machine's loopback, a real Tornado WebSocket client inside the link's
network namespace (this file run as a script there), acknowledging frames by answering pings as any
client does.

What is asserted is a property of the flow-control window, not a speed: with the fixed window of
2 frames per round trip, a 100 ms link gets at most 2 / 0.1 s = 20 fps whatever its bandwidth.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("labcam_link_emulator", ROOT / "benchmarks" / "link.py")
assert _spec and _spec.loader
link = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = link
_spec.loader.exec_module(link)


# -- the client, run inside the namespace ----------------------------------------------------------
async def _read_stream(url: str, warmup_s: float, seconds: float) -> dict:
    from tornado.websocket import websocket_connect

    from labcam.wire import unpack_binary

    conn = await websocket_connect(url, max_message_size=64 * 2**20)
    frames: list[tuple[float, float, int, int]] = []  # (received, captured, frame number, bytes)
    stats: list[dict] = []
    start = time.time()
    while time.time() - start < warmup_s + seconds:
        msg = await asyncio.wait_for(conn.read_message(), timeout=10)
        if msg is None:
            raise RuntimeError(f"stream closed: {conn.close_code} {conn.close_reason}")
        now = time.time()
        if isinstance(msg, bytes):
            header, payload = unpack_binary(msg)
            if now - start >= warmup_s:
                frames.append((now, header["timestamp"], header["frame_number"], len(msg)))
        else:
            message = json.loads(msg)
            if message["type"] == "stats" and now - start >= warmup_s:
                stats.append(message)
    conn.close()
    return {"frames": frames, "stats": stats}


def read_across(lk, port: int, query: str, warmup_s: float, seconds: float) -> dict:
    """Run this file as a client inside the link's namespace; its findings as a dict."""
    url = lk.url_for(port, "ws", f"/ws/camera/stream?{query}")
    out = lk.run(
        [sys.executable, __file__, url, str(warmup_s), str(seconds)],
        capture_output=True, text=True, timeout=warmup_s + seconds + 60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


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


if __name__ == "__main__":
    url_arg, warmup_arg, seconds_arg = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(_read_stream(url_arg, warmup_arg, seconds_arg))))


def test_auto_quality_on_a_5_mbit_link_converges_without_stalling(make_server) -> None:
    # q80 of the 1280x1024 specimen is ~140 kB: 34 Mbit/s at 30 fps, seven times this link.
    srv = make_server(width=1280, height=1024, fps=30.0)
    with link.Link(rate="5mbit", rtt_ms=20) as lk:
        got = read_across(lk, srv.port, "format=binary&quality=auto", warmup_s=6.0, seconds=6.0)
    frames, stats = got["frames"], got["stats"]
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:])]
    assert max(gaps) < 1.0, f"the stream stalled for {max(gaps):.2f} s"
    fps = fps_of(frames)
    assert fps >= 15, f"{fps:.1f} fps after converging"
    sizes = [f[3] for f in frames]
    assert statistics.median(sizes) * fps * 8 <= 5e6, "what it sends fits the link"
    assert stats, "a viewer that keeps up gets stats"
    chosen = stats[-1]["auto"]
    assert chosen["quality"] < 80 or chosen["max_width"] is not None, chosen
    assert chosen["reason"], chosen
    ages = [r - c for r, c, _, _ in frames]
    assert statistics.median(ages) < 0.25, statistics.median(ages)
