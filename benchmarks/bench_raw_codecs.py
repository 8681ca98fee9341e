"""Raw-mode payload codecs side by side: ratio, server encode time and browser decode time.

For 12- and 16-bit frames of the simulated specimen (1280x1024, and a 1280x1024 view cropped out of
a 4096x3000 sensor, which is what raw mode at 1:1 sends) and for each candidate payload (none; zstd
1 and 3, lz4, deflate 0-3 via python-isal and deflate 1 via zlib; each with and without the byte
shuffle) it prints:

- ratio: raw bytes / payload bytes, over all frames;
- encode ms: ``labcam.preview.raw.encode_raw`` (shuffle + compress, the server's cost), median
  and p95 over the frames; the zlib rows time ``byte_shuffle`` + ``zlib.compress`` instead;
- Python decode ms: ``decode_raw`` (what ``labcam.connect()`` clients pay), median;
- browser decode ms: ``decodeRaw`` of ``labcam/web/labcam-raw.js`` in headless Debian
  Chromium, payload bytes in memory -> Uint16Array of counts, timed with ``performance.now()``
  (median and p95; every candidate's payloads decoded round robin, after one warm-up round).
  Deflate goes through the browser's own ``DecompressionStream("deflate")``; zstd through ``fzstd``
  and lz4 through ``lz4js``, both from npm, installed by this script into ``benchmarks/node_modules``
  (gitignored, never committed) and bundled with esbuild. Every decoded frame's checksum is compared
  with the Python frame's.

Then, alone: the server's byte shuffle of a cropped view (the two numpy operations ``byte_shuffle``
uses, against gathering the bytes through ``view(np.uint8)``), the in-page unshuffle (the byte loop
labcam-raw.js ships, against one on 32-bit words) and the in-page inflate (labcam-raw.js's reader
loop into a preallocated buffer, against ``Response.arrayBuffer()``).

    python benchmarks/bench_raw_codecs.py [--frames 30] [--browser-frames 6] [--rounds 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import sync_playwright

from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.raw import byte_shuffle, decode_raw, encode_raw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium_args import CHROMIUM_ARGS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
STATIC = ROOT / "labcam" / "server" / "static"
JS_DIR = ROOT / "benchmarks"  # npm puts the packages in benchmarks/node_modules (gitignored)
NPM_PACKAGES = ["fzstd@0.1.1", "lz4js@0.2.0", "esbuild@0.28.2"]
BUNDLE = JS_DIR / "node_modules" / ".cache" / "labcam-rawbench" / "decoders.js"
BUNDLE_ENTRY = """
import { decompress as zstdDecompress } from "fzstd";
import * as lz4 from "lz4js";
window.rawDecoders = {
  zstd: (bytes, out) => zstdDecompress(bytes, out).length,
  lz4: (bytes, out) => lz4.decompressFrame(bytes, out),
};
"""


@dataclass(frozen=True)
class Candidate:
    label: str
    compression: str
    level: int
    shuffle: bool
    zlib: bool = False  # deflate through the standard library's zlib instead of python-isal


CANDIDATES = [
    Candidate("none", "none", 0, False),
    Candidate("zstd-1", "zstd", 1, False),
    Candidate("shuffle + zstd-1", "zstd", 1, True),
    Candidate("zstd-3", "zstd", 3, False),
    Candidate("shuffle + zstd-3", "zstd", 3, True),
    Candidate("lz4", "lz4", 0, False),
    Candidate("shuffle + lz4", "lz4", 0, True),
    Candidate("deflate-1 (zlib)", "deflate", 1, False, zlib=True),
    Candidate("shuffle + deflate-1 (zlib)", "deflate", 1, True, zlib=True),
    Candidate("deflate-1 (isal)", "deflate", 1, False),
    Candidate("shuffle + deflate-0 (isal)", "deflate", 0, True),
    Candidate("shuffle + deflate-1 (isal)", "deflate", 1, True),
    Candidate("shuffle + deflate-2 (isal)", "deflate", 2, True),
    Candidate("shuffle + deflate-3 (isal)", "deflate", 3, True),
]

VIEW = (1400, 1000, 1280, 1024)  # x, y, w, h of the 1:1 view on the 4096x3000 sensor


def frames(case: str, n: int) -> tuple[int, Iterator[np.ndarray]]:
    """(bit depth, the first n frames of ``case``, rendered one at a time); the view case yields
    non-contiguous crops of the sensor frame (no copy), as the server would encode them."""
    fmt, sensor = {
        "mono12 1280x1024": ("mono12", (1280, 1024)),
        "mono16 1280x1024": ("mono16", (1280, 1024)),
        "mono12 1280x1024 view of 4096x3000": ("mono12", (4096, 3000)),
    }[case]
    cam = SimulatedCamera(width=sensor[0], height=sensor[1], pixel_format=fmt, seed=1)
    x, y, w, h = VIEW if sensor != (1280, 1024) else (0, 0, 1280, 1024)
    return (12 if fmt == "mono12" else 16), (cam.expected_frame(k)[y : y + h, x : x + w] for k in range(n))


def encode(c: Candidate, pixels: np.ndarray, bit_depth: int) -> tuple[bytes, dict[str, Any]]:
    if not c.zlib:
        payload, header = encode_raw(pixels, bit_depth, compression=c.compression, level=c.level, shuffle=c.shuffle)  # type: ignore[arg-type]
        return bytes(payload) if c.compression == "none" else payload, dict(header)  # type: ignore[return-value]
    data = byte_shuffle(pixels) if c.shuffle else np.ascontiguousarray(pixels, "<u2")
    header = {
        "encoding": "raw", "dtype": "uint16", "shuffle": c.shuffle, "compression": "deflate", "level": c.level,
        "width": pixels.shape[1], "height": pixels.shape[0], "channels": 1, "bit_depth": bit_depth,
    }
    return zlib.compress(memoryview(data).cast("B"), c.level), header


def shuffle_variants(view: np.ndarray, repeats: int) -> dict[str, list[float]]:
    """ms per byte shuffle of ``view`` (a non-contiguous uint16 crop), three ways, interleaved."""
    h, w = view.shape

    def gather_bytes() -> np.ndarray:
        return np.ascontiguousarray(view.view(np.uint8).reshape(h, w, 2).transpose(2, 0, 1))

    def copy_then_transpose() -> np.ndarray:
        return np.ascontiguousarray(np.ascontiguousarray(view).view(np.uint8).reshape(-1, 2).T)

    variants = {
        "cast + shift (byte_shuffle, shipped)": lambda: byte_shuffle(view),
        "view(uint8) gather": gather_bytes,
        "contiguous copy, reshape(-1, 2).T": copy_then_transpose,
    }
    want = byte_shuffle(view).reshape(-1)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
            assert np.array_equal(out.reshape(-1), want), name
    return times


def checksum(pixels: np.ndarray) -> int:
    """sum(v[i] * (i % 65521 + 1)) mod 2**32 over the row-major values (the page computes the same)."""
    v = pixels.reshape(-1).astype(np.uint64)
    weights = (np.arange(v.size, dtype=np.uint64) % 65521) + 1
    return int((v * weights).sum() % (1 << 32))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- the browser side ------------------------------------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>raw codecs</title>
<script src="/decoders.js"></script>
<script type="module">
import { decodeRaw, inflate, unshuffle16 } from "/labcam-raw.js";

function checksum(px) {
  let s = 0;
  for (let i = 0; i < px.length; i++) s = (s + Math.imul(px[i], (i % 65521) + 1)) >>> 0;
  return s;
}

// 32-bit-word unshuffle: 4 pixels per iteration (needs n % 4 == 0 and 4-byte aligned planes).
function unshuffle16Words(planes, out) {
  const n = out.length, q = n >> 2;
  const lo = new Uint32Array(planes.buffer, planes.byteOffset, q);
  const hi = new Uint32Array(planes.buffer, planes.byteOffset + n, q);
  const o = new Uint32Array(out.buffer, out.byteOffset, 2 * q);
  for (let i = 0; i < q; i++) {
    const l = lo[i], h = hi[i];
    o[2 * i] = (l & 0xff) | ((h & 0xff) << 8) | ((l & 0xff00) << 8) | ((h & 0xff00) << 16);
    o[2 * i + 1] = ((l >>> 16) & 0xff) | ((h >>> 8) & 0xff00) | ((l >>> 8) & 0xff0000) | (h & 0xff000000);
  }
  return out;
}

// Every candidate's payloads are loaded first, then decoded round robin (round r of every candidate
// before round r + 1 of any), so a change of load on the shared machine hits all candidates alike.
window.decodeRoundRobin = async (combos, rounds) => {
  const loaded = [];
  for (const { id, header, urls } of combos) {
    const payloads = [];
    for (const url of urls) payloads.push(new Uint8Array(await (await fetch(url)).arrayBuffer()));
    loaded.push({ id, header, payloads });
  }
  const times = {}, sums = {};
  for (let r = -1; r < rounds; r++) {  // round -1 warms up the JIT
    for (const { id, header, payloads } of loaded) {
      times[id] ??= [];
      sums[id] ??= [];
      for (const p of payloads) {
        const t0 = performance.now();
        const px = await decodeRaw(header, p, { decompress: window.rawDecoders });
        const dt = performance.now() - t0;
        if (r >= 0) times[id].push(dt);
        if (r === 0) sums[id].push(checksum(px));
      }
    }
  }
  return { times, sums };
};

// Inflate alone: the reader loop into a preallocated buffer (labcam-raw.js) against Response.arrayBuffer().
window.inflateVariants = async (urls, size, rounds) => {
  const payloads = [];
  for (const url of urls) payloads.push(new Uint8Array(await (await fetch(url)).arrayBuffer()));
  const viaResponse = (p) => new Response(new Blob([p]).stream().pipeThrough(new DecompressionStream("deflate"))).arrayBuffer();
  const res = { "reader loop (shipped)": [], "Response.arrayBuffer": [] };
  for (let r = 0; r <= rounds; r++) {
    for (const p of payloads) {
      let t0 = performance.now(); await inflate(p, size); const a = performance.now() - t0;
      t0 = performance.now(); const buf = await viaResponse(p); const b = performance.now() - t0;
      if (buf.byteLength !== size) throw new Error("inflate variants differ");
      if (r > 0) { res["reader loop (shipped)"].push(a); res["Response.arrayBuffer"].push(b); }  // round 0 warms up
    }
  }
  return res;
};

window.unshuffleVariants = (n, rounds) => {
  const planes = new Uint8Array(2 * n);
  for (let i = 0; i < planes.length; i++) planes[i] = (i * 2654435761) >>> 24;
  const a = new Uint16Array(n), b = new Uint16Array(n), res = { loop: [], words: [] };
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now(); unshuffle16(planes, a); res.loop.push(performance.now() - t0);
    t0 = performance.now(); unshuffle16Words(planes, b); res.words.push(performance.now() - t0);
  }
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) throw new Error(`unshuffle variants differ at ${i}`);
  return res;
};
window.pageReady = true;
</script>
"""


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, tuple[str, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        entry = self.files.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        ctype, body = entry
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def build_decoders() -> bytes:
    """The fzstd + lz4js bundle: npm-installed into benchmarks/node_modules, bundled by esbuild."""
    esbuild = JS_DIR / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists() or not (JS_DIR / "node_modules" / "lz4js").exists():
        print("installing", " ".join(NPM_PACKAGES), "into benchmarks/node_modules (gitignored)", file=sys.stderr)
        subprocess.run(
            ["npm", "install", "--prefix", str(JS_DIR), "--no-save", "--no-package-lock", "--no-audit", "--no-fund", *NPM_PACKAGES],
            check=True,
            timeout=600,
        )
    BUNDLE.parent.mkdir(parents=True, exist_ok=True)
    entry = BUNDLE.with_name("entry.js")
    entry.write_text(BUNDLE_ENTRY)
    subprocess.run(
        [str(esbuild), str(entry), "--bundle", "--format=iife", "--minify", f"--outfile={BUNDLE}", "--log-level=warning"],
        check=True,
        cwd=JS_DIR,
        timeout=120,
    )
    return BUNDLE.read_bytes()


# -- the run ----------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=30, help="frames encoded per case and candidate")
    p.add_argument("--browser-frames", type=int, default=6, help="of those, payloads the browser decodes")
    p.add_argument("--rounds", type=int, default=4, help="times the browser decodes each payload")
    args = p.parse_args()
    cases = ["mono12 1280x1024", "mono16 1280x1024", "mono12 1280x1024 view of 4096x3000"]

    _Handler.files = {
        "/": ("text/html", PAGE.encode()),
        "/labcam-raw.js": ("text/javascript", (STATIC / "labcam-raw.js").read_bytes()),
        "/decoders.js": ("text/javascript", build_decoders()),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    rows: list[tuple[str, str, float, float, float, float, float, float]] = []
    inflate_times: dict[str, list[float]] = {}
    shuffle_times: dict[str, list[float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_function("window.pageReady === true && !!window.rawDecoders", timeout=30_000)
            for ci, case in enumerate(cases):
                bit_depth, rendered = frames(case, args.frames)
                raw_bytes = 0
                sent: list[np.ndarray] = []  # copies of the frames the browser decodes, to check them
                enc: dict[str, list[float]] = {c.label: [] for c in CANDIDATES}
                sizes: dict[str, int] = {c.label: 0 for c in CANDIDATES}
                kept: dict[str, list[tuple[bytes, dict[str, Any]]]] = {c.label: [] for c in CANDIDATES}
                # Side by side: every candidate encodes frame k before any encodes frame k + 1.
                for k, px in enumerate(rendered):
                    raw_bytes += px.nbytes
                    if k < args.browser_frames:
                        sent.append(px.copy())
                    for c in CANDIDATES:
                        t0 = time.perf_counter()
                        payload, header = encode(c, px, bit_depth)
                        enc[c.label].append((time.perf_counter() - t0) * 1e3)
                        sizes[c.label] += len(payload)
                        if k < args.browser_frames:
                            kept[c.label].append((payload, header))
                py_dec: dict[str, list[float]] = {c.label: [] for c in CANDIDATES}
                for k, want in enumerate(sent):
                    for c in CANDIDATES:
                        payload, header = kept[c.label][k]
                        t0 = time.perf_counter()
                        out = decode_raw(header, payload)
                        py_dec[c.label].append((time.perf_counter() - t0) * 1e3)
                        assert np.array_equal(out, want), c.label
                combos = []
                for c in CANDIDATES:
                    urls = []
                    for k, (payload, _) in enumerate(kept[c.label]):
                        urls.append(f"/payload/{ci}/{CANDIDATES.index(c)}/{k}")
                        _Handler.files[urls[-1]] = ("application/octet-stream", payload)
                    combos.append({"id": c.label, "header": kept[c.label][0][1], "urls": urls})
                res = page.evaluate("([c, r]) => window.decodeRoundRobin(c, r)", [combos, args.rounds])
                want_sums = [checksum(px) for px in sent]
                for c in CANDIDATES:
                    if res["sums"][c.label] != want_sums:
                        raise SystemExit(f"{case} / {c.label}: the browser decoded other values than were sent")
                    b_times = res["times"][c.label]
                    rows.append(
                        (case, c.label, raw_bytes / sizes[c.label], pct(enc[c.label], 50), pct(enc[c.label], 95),
                         pct(py_dec[c.label], 50), pct(b_times, 50), pct(b_times, 95))
                    )
                if case == cases[-1]:  # px: the last frame's crop, a view into the 4096x3000 frame
                    shuffle_times = shuffle_variants(px, 30)
                if ci == 0:
                    urls = next(x["urls"] for x in combos if x["id"] == "shuffle + deflate-1 (isal)")
                    inflate_times = page.evaluate(
                        "([u, n, r]) => window.inflateVariants(u, n, r)", [urls, sent[0].nbytes, args.rounds]
                    )
                for url in [u for x in combos for u in x["urls"]]:
                    del _Handler.files[url]
                print(f"  {case}: done", file=sys.stderr)
            n = 1280 * 1024
            uns = page.evaluate("([n, r]) => window.unshuffleVariants(n, r)", [n, 30])
        finally:
            browser.close()
            server.shutdown()

    print(f"\nRaw payload codecs: {args.frames} frames encoded per cell, {args.browser_frames} x {args.rounds} decoded in the browser")
    print("Chromium", CHROMIUM, "| encode = encode_raw (shuffle + compress) on one core\n")
    print("| frame | payload | ratio | encode ms p50 | encode ms p95 | Python decode ms p50 | browser decode ms p50 | browser decode ms p95 |")
    print("|---|---|---|---|---|---|---|---|")
    for case, label, ratio, e50, e95, pyd, b50, b95 in rows:
        print(f"| {case} | {label} | {ratio:.2f} | {e50:.1f} | {e95:.1f} | {pyd:.1f} | {b50:.1f} | {b95:.1f} |")
    print(f"\nServer byte shuffle of the {cases[-1]} (ms, median / p95 of 30):")
    for name, times in shuffle_times.items():
        print(f"  {name:36s}: {pct(times, 50):.2f} / {pct(times, 95):.2f}")
    print("\nIn-page unshuffle of 1280x1024 uint16 (ms, median / p95 of 30):")
    for name, times in uns.items():
        print(f"  {name:36s}: {pct(times, 50):.2f} / {pct(times, 95):.2f}")
    print(f"\nIn-page inflate alone, {cases[0]}, shuffle + deflate-1 (ms, median / p95):")
    for name, times in inflate_times.items():
        print(f"  {name:36s}: {pct(times, 50):.2f} / {pct(times, 95):.2f}")


if __name__ == "__main__":
    main()
