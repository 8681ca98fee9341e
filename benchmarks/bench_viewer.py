"""The shared viewer (labcam-viewer.js) painting frames in headless Chromium: raw 12-bit and JPEG.

Issue 11, Performance 2-4: frames painted per second, decode + upload + draw per frame (p50/p95),
capture -> painted latency (the animation frame that paints a frame minus its capture time, through
the client's clock offset; p50/p95), and contrast change -> painted (raw: a uniform, no server
message). Each variant is run on the test page against a real ``labcam serve`` (BackgroundServer)
with a simulated mono12 camera, interleaved round by round so that the machine's load is shared.

    python benchmarks/bench_viewer.py --seconds 8 --rounds 2

Both renderers are measured side by side: WebGL2 (here software-rendered: --disable-gpu, so
SwiftShader) and the 2D canvas, which is what the viewer's "auto" picks without a GPU.

A server that does not know ``encoding=raw`` sends JPEG: the table's "got" column says which
encoding the frames really had, so such a row is not mistaken for raw.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from bench_widget import CHROMIUM, CHROMIUM_ARGS  # the browser the other benchmarks launch
from labcam.cameras.simulated import SimulatedCamera
from labcam.engine import Engine
from labcam.server.app import BackgroundServer

# Collects one record per newly painted frame, from the viewer's own "paint" events.
RECORDER = """() => {
  const v = window.labcamTestPage.viewer;
  window.__bench = { paints: [] };
  v.addEventListener("paint", (ev) => {
    const d = ev.detail;
    if (!d.newFrame || !d.frame) return;
    window.__bench.paints.push({ t: performance.now(), latency: d.latencyMs, paint: d.paintMs,
      decode: d.frame.decodeMs, encoding: d.frame.geometry.encoding, width: d.frame.geometry.width,
      height: d.frame.geometry.height });
  });
}"""

# Contrast change -> painted: the time from setDisplay to the end of the paint that shows it.
CONTRAST = """async () => {
  const v = window.labcamTestPage.viewer;
  const out = [];
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => requestAnimationFrame(r));
    const t0 = performance.now();
    const painted = new Promise((r) => v.addEventListener("paint", () => r(performance.now()), { once: true }));
    v.setDisplay({ min: 100 + (i % 2) * 50, max: 3000 + i });
    out.push((await painted) - t0);
  }
  return out;
}"""


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def measure(page: Page, url: str, seconds: float, warmup: float) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_function("() => window.labcamTestPage && window.labcamTestPage.framesDrawn > 5", timeout=30_000)
    # a ping must have come back for the clock offset the latency needs
    page.wait_for_function("() => window.labcamTestPage.client.stats.clockOffsetMs !== null", timeout=30_000)
    time.sleep(warmup)
    page.evaluate(RECORDER)
    time.sleep(seconds)
    paints = page.evaluate("() => window.__bench.paints")
    contrast = page.evaluate(CONTRAST)
    span = (paints[-1]["t"] - paints[0]["t"]) / 1000 if len(paints) > 1 else 0.0
    pipeline = [p["decode"] + p["paint"] for p in paints if p["decode"] is not None]
    latency = [p["latency"] for p in paints if p["latency"] is not None]
    return {
        "got": ",".join(sorted({p["encoding"] for p in paints})) or "-",
        "size": f"{paints[-1]['width']}x{paints[-1]['height']}" if paints else "-",
        "fps": (len(paints) - 1) / span if span > 0 else 0.0,
        "pipeline": pipeline,
        "latency": latency,
        "contrast": contrast,
        "renderer": page.evaluate("() => window.labcamTestPage.viewer.renderer.kind"),
    }


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per variant and round")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    camera = SimulatedCamera(width=args.width, height=args.height, pixel_format="mono12", fps=args.fps, exposure_ms=5.0, seed=1)

    def factory() -> Engine:
        camera.open()
        return Engine(camera, idle_grace=5.0)

    variants = {f"{enc} {r}": f"encoding={enc}&renderer={r}" for r in ("webgl2", "2d") for enc in ("raw", "jpeg")}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    server = BackgroundServer(factory).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            # A canvas of at least the frame's size, so that fit shows it 1:1 (no reduction).
            context = browser.new_context(viewport={"width": args.width + 420, "height": args.height + 330})
            page = context.new_page()
            for _ in range(args.rounds):
                for name, query in variants.items():
                    results[name].append(measure(page, f"{server.url}?{query}", args.seconds, args.warmup))
            browser.close()
    finally:
        server.stop()

    print(f"\nviewer: {args.width}x{args.height} mono12 at {args.fps:g} fps, {args.rounds} rounds x {args.seconds:g} s, headless Chromium ({Path(CHROMIUM).name})\n")
    print("| asked | got | renderer | image | painted fps | decode+upload+draw p50 | p95 | capture->painted p50 | p95 | contrast->painted p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        pipeline = [v for r in runs for v in r["pipeline"]]
        latency = [v for r in runs for v in r["latency"]]
        contrast = [v for r in runs for v in r["contrast"]]
        fps = statistics.mean(r["fps"] for r in runs)
        got = ",".join(sorted({r["got"] for r in runs}))
        print(
            f"| {name} | {got} | {runs[0]['renderer']} | {runs[-1]['size']} | {fps:.1f} | {fmt(quantile(pipeline, 0.5))} | "
            f"{fmt(quantile(pipeline, 0.95))} | {fmt(quantile(latency, 0.5))} | {fmt(quantile(latency, 0.95))} | "
            f"{fmt(quantile(contrast, 0.5))} | {fmt(quantile(contrast, 0.95))} |"
        )
    print("\nTimes in ms. decode: the client's createImageBitmap or decodeRaw; upload+draw: the viewer's paint.")


if __name__ == "__main__":
    main()
