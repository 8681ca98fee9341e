"""The stream across emulated links: fixed JPEG q80, ``quality=auto`` and ``encoding=h264`` (x264
CRF 23); and server CPU per
camera frame at 10 viewers of one variant against the bare work (render + one encode).

    sudo python benchmarks/bench_links.py                  # 100, 20, 5 Mbit/s × 2, 20, 80 ms
    sudo python benchmarks/bench_links.py --quick          # 20 and 5 Mbit/s at 20 ms only

One ``labcam`` server (``BackgroundServer``, in this process) with the simulated camera at
1280x1024 mono8, 30 fps. Each case runs a Python WebSocket client (this script with ``--client``)
inside the link emulator's namespace (benchmarks/link.py: tbf rate, relayed round trip; needs
root); it acknowledges frames by answering pings, as a browser does. Per case: frames per second
received, capture -> receipt latency p50/p95 (one clock: the same machine), bytes per frame, and
PSNR of sampled frames against the source (``SimulatedCamera.expected_frame``; H.264 decoded with
PyAV in order, every access unit the client got; a frame sent at
1/2 or 1/4 width is scaled back up by repetition, so its PSNR counts the lost resolution).

CPU: the server's process CPU (this process minus nothing: the clients are another process) per
camera frame with 10 binary viewers of q80 on loopback, against, in the same run, the simulated
camera's render plus one simplejpeg encode per frame measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FPS = 1280, 1024, 30.0
SAMPLES = 8  # frames per case kept for PSNR


# -- the client (run inside the namespace; tests/test_links.py uses it too) ----------------------------
async def _client(url: str, warmup: float, seconds: float, connections: int) -> dict[str, Any]:
    from tornado.websocket import websocket_connect

    from labcam.wire import unpack_binary

    h264 = "encoding=h264" in url  # every access unit is kept: decoding needs the whole chain

    async def one(keep: bool) -> dict[str, Any]:
        conn = await websocket_connect(url, max_message_size=64 * 2**20)
        frames: list[list[float]] = []
        samples: list[dict[str, Any]] = []
        stats: list[dict[str, Any]] = []
        start = time.time()
        while time.time() - start < warmup + seconds:
            msg = await asyncio.wait_for(conn.read_message(), timeout=15)
            if msg is None:
                raise RuntimeError(f"closed: {conn.close_code} {conn.close_reason}")
            now = time.time()
            if now - start < warmup:
                continue
            if isinstance(msg, bytes):
                header, payload = unpack_binary(msg)
                frames.append([now, header["timestamp"], header["frame_number"], len(msg)])
                chain = h264 and (samples or header.get("keyframe"))  # decodable from a keyframe on
                if keep and (chain or (not h264 and len(frames) % 10 == 1 and len(samples) < SAMPLES)):
                    samples.append({"frame_number": header["frame_number"], "width": header["width"],
                                    "data": base64.b64encode(bytes(payload)).decode()})
            else:
                m = json.loads(msg)
                if m.get("type") == "stats":
                    stats.append(m)
        conn.close()
        return {"frames": frames, "samples": samples, "stats": stats}

    results = await asyncio.gather(*(one(i == 0) for i in range(connections)))
    return {"clients": results}


# -- the measuring side --------------------------------------------------------------------------------
def _load_link() -> Any:
    spec = importlib.util.spec_from_file_location("labcam_link_emulator", HERE / "link.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _pictures(samples: list[dict[str, Any]], h264: bool) -> list[tuple[int, Any]]:
    """(frame number, 8-bit image) of the sampled frames: JPEGs decoded, or every H.264 access unit
    decoded in order with one decoder and every 10th picture kept."""
    import simplejpeg

    if not h264:
        return [(s["frame_number"], simplejpeg.decode_jpeg(base64.b64decode(s["data"]), colorspace="GRAY")[..., 0])
                for s in samples]
    from labcam.preview.h264 import H264Decoder, luma

    decoder, out = H264Decoder(), []
    for i, s in enumerate(samples):
        for picture in decoder.decode(base64.b64decode(s["data"])):
            if i % 10 == 0 and len(out) < SAMPLES:
                out.append((s["frame_number"], luma(picture)))
    return out


def _psnr(camera: Any, samples: list[dict[str, Any]], h264: bool = False) -> float:
    import numpy as np

    out = []
    for number, img in _pictures(samples, h264):
        ref = camera.expected_frame(number).astype(np.float64)
        step = max(1, round(ref.shape[1] / img.shape[1]))
        up = np.repeat(np.repeat(img, step, axis=0), step, axis=1)[: ref.shape[0], : ref.shape[1]]
        mse = float(np.mean((up.astype(np.float64) - ref[: up.shape[0], : up.shape[1]]) ** 2))
        out.append(10 * np.log10(255.0**2 / mse) if mse else 99.0)
    return statistics.median(out) if out else float("nan")


def _run_client(prefix: list[str], url: str, warmup: float, seconds: float, connections: int = 1) -> dict[str, Any]:
    out = subprocess.run(
        [*prefix, sys.executable, __file__, "--client", url, str(warmup), str(seconds), str(connections)],
        capture_output=True, text=True, timeout=warmup + seconds + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def link_case(lk: Any, srv: Any, query: str, warmup: float, seconds: float) -> dict[str, Any]:
    url = lk.url_for(srv.port, "ws", f"/ws/camera/stream?format=binary&{query}")
    got = _run_client(lk.prefix, url, warmup, seconds)["clients"][0]
    frames = got["frames"]
    span = frames[-1][0] - frames[0][0] if len(frames) > 1 else float("nan")
    ages = [(r - c) * 1000 for r, c, _, _ in frames]
    last = got["stats"][-1] if got["stats"] else {}
    auto = last.get("auto")
    return {
        "fps": (len(frames) - 1) / span if len(frames) > 1 else 0.0,
        "p50": _pct(ages, 0.5), "p95": _pct(ages, 0.95),
        "kB": statistics.median(f[3] for f in frames) / 1000 if frames else float("nan"),
        "psnr": _psnr(srv.camera, got["samples"], "encoding=h264" in query),
        "chosen": "" if not auto else f"q{auto['quality']} w{auto['max_width'] or WIDTH}" + (f" {auto['fps']:g}fps" if auto["fps"] else ""),
        "window": last.get("window"),
    }


def cpu_case(srv: Any, warmup: float, seconds: float, viewers: int, query: str = "quality=80") -> float:
    """Server CPU ms per camera frame with ``viewers`` binary viewers of one variant on loopback."""
    url = f"ws://127.0.0.1:{srv.port}/ws/camera/stream?format=binary&{query}"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--client", url, str(warmup), str(seconds), str(viewers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(warmup + 0.5)  # measuring an interval of the run, not synchronising with it
    frames0, c0, t0 = srv.engine.status.frames, time.process_time(), time.perf_counter()
    time.sleep(seconds - 1.0)
    frames1, c1 = srv.engine.status.frames, time.process_time()
    out, err = proc.communicate(timeout=warmup + seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])
    got = json.loads(out)["clients"]
    delivered = sum(len(c["frames"]) for c in got)
    print(f"    ({viewers} viewers: {delivered / seconds / viewers:.1f} fps each, "
          f"{(frames1 - frames0) / (time.perf_counter() - t0):.1f} camera fps)")
    return (c1 - c0) * 1000 / max(1, frames1 - frames0)


def bare_cost(frames: int = 60) -> tuple[float, float, float]:
    """(render, JPEG, H.264 ms) per frame: the simulated camera flat out, one simplejpeg q80, one
    x264 encode (the stream's settings)."""
    import numpy as np
    import simplejpeg

    sys.path.insert(0, str(HERE))
    from _common import make_camera

    cam = make_camera({"width": WIDTH, "height": HEIGHT, "pixel_format": "mono8"})
    cam.start()
    cam.read_frame(1.0)
    c0 = time.process_time()
    arrays = [cam.read_frame(1.0).array for _ in range(frames)]
    render = (time.process_time() - c0) * 1000 / frames
    cam.stop()
    cam.close()
    c0 = time.process_time()
    for a in arrays:
        simplejpeg.encode_jpeg(np.ascontiguousarray(a)[..., None], quality=80, colorspace="GRAY")
    encode = (time.process_time() - c0) * 1000 / frames
    from labcam.preview.h264_variant import DEFAULT_GOP
    from labcam.preview.h264 import H264Encoder

    enc = H264Encoder(WIDTH, HEIGHT, gop=DEFAULT_GOP)
    c0 = time.process_time()
    for a in arrays:
        enc.encode(a)
    return render, encode, (time.process_time() - c0) * 1000 / frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 and 5 Mbit/s at 20 ms only")
    p.add_argument("--no-cpu", action="store_true", help="skip the server CPU comparison")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case (after the warm-up)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds per case before measuring")
    p.add_argument("--client", nargs=4, metavar=("URL", "WARMUP", "SECONDS", "CONNECTIONS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        url, warmup, seconds, n = args.client
        print(json.dumps(asyncio.run(_client(url, float(warmup), float(seconds), int(n)))))
        return 0

    from labcam.cameras.simulated import SimulatedCamera
    from labcam.engine import Engine
    from labcam.server.app import BackgroundServer

    link = _load_link()
    camera = SimulatedCamera(width=WIDTH, height=HEIGHT, pixel_format="mono8", fps=FPS, exposure_ms=10.0, seed=1)

    def factory() -> Engine:
        camera.open()
        return Engine(camera, idle_grace=30.0)

    srv = BackgroundServer(factory).start()
    srv.camera = camera  # type: ignore[attr-defined]
    rates = ["20mbit", "5mbit"] if args.quick else ["100mbit", "20mbit", "5mbit"]
    rtts = [20] if args.quick else [2, 20, 80]
    modes = [("JPEG q80", "quality=80"), ("JPEG auto", "quality=auto"), ("H.264", "encoding=h264"),
             ("H.264 3M", "encoding=h264&bitrate=3000000")]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; camera {WIDTH}x{HEIGHT} mono8 "
          f"{FPS:g} fps; {args.warmup:g} s warm-up + {args.seconds:g} s per case\n")
    print(f"{'link':>8} {'rtt':>5} {'mode':<10} {'fps':>5} {'p50 ms':>7} {'p95 ms':>7} {'kB/fr':>6} {'PSNR':>5} "
          f"{'win':>4}  chosen")
    try:
        for rate in rates:
            for rtt in rtts:
                with link.Link(rate=rate, rtt_ms=rtt) as lk:
                    for name, query in modes:
                        r = link_case(lk, srv, query, args.warmup, args.seconds)
                        print(f"{rate:>8} {rtt:>3}ms {name:<10} {r['fps']:5.1f} {r['p50']:7.0f} {r['p95']:7.0f} "
                              f"{r['kB']:6.1f} {r['psnr']:5.1f} {r['window'] or '-':>4}  {r['chosen']}", flush=True)
        if args.no_cpu:
            return 0
        print("\nserver CPU per camera frame, 1 and 10 viewers of one variant (binary, loopback):")
        cpu = {(q, n): cpu_case(srv, 3.0, 6.0, n, q) for q in ("quality=80", "encoding=h264") for n in (10, 1)}
    finally:
        srv.stop()
    render, jpeg, h264 = bare_cost()
    print(f"  bare work (same run): render {render:.2f} ms, one JPEG encode {jpeg:.2f} ms, one x264 encode {h264:.2f} ms")
    for q, name, encode in (("quality=80", "JPEG q80", jpeg), ("encoding=h264", "H.264", h264)):
        bare = render + encode
        for n in (1, 10):
            ms = cpu[(q, n)]
            print(f"  {name:<8} {n:2d} viewer(s): {ms:.2f} ms per camera frame ({ms / bare:.2f}x render + one encode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
