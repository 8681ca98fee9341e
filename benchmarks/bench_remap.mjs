// The 2D canvas's CPU remap of one frame (labcam-viewer.js), side by side in one process:
// the per-byte loop it had before (reproduced here as the reference) against countWords + remapToRGBA.
//
//   node benchmarks/bench_remap.mjs [--width 1280] [--height 1024] [--bits 12] [--repeats 30]
//
// Prints, per variant, the median and p95 ms of building the table and of the per-pixel loop.

import { countWords, lutTable, mapCount, remapToRGBA } from "../labcam/web/labcam-viewer.js";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const W = arg("width", 1280), H = arg("height", 1024), BITS = arg("bits", 12), REPEATS = arg("repeats", 30);
const n = W * H, levels = 2 ** BITS, top = levels - 1;
const pixels = new Uint16Array(n);
let seed = 1;
for (let i = 0; i < n; i++) pixels[i] = (seed = (seed * 1103515245 + 12345) >>> 0) % levels; // a fixed pseudo-random frame
const rgba = new Uint8ClampedArray(n * 4);
const display = (k) => ({ min: 100 + (k % 2) * 50, max: 3000 + k, gamma: 1, lut: "grey", auto: false });

function before(k) {
  // as it was: a table of RGBA bytes, four byte stores per pixel, a new output per paint
  const d = display(k), table = lutTable("grey");
  const t0 = performance.now();
  const packed = new Uint8Array(levels * 4);
  for (let v = 0; v < levels; v++) packed.set(mapCount(v, d, top, table), v * 4);
  const t1 = performance.now();
  const dst = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    const v = Math.min(pixels[i], levels - 1) * 4;
    dst[i * 4] = packed[v];
    dst[i * 4 + 1] = packed[v + 1];
    dst[i * 4 + 2] = packed[v + 2];
    dst[i * 4 + 3] = 255;
  }
  return [t1 - t0, performance.now() - t1];
}

function now(k) {
  const t0 = performance.now();
  const words = countWords(levels, (v) => v, display(k), top);
  const t1 = performance.now();
  remapToRGBA(pixels, 1, 1, n, words, new Uint32Array(rgba.buffer));
  return [t1 - t0, performance.now() - t1];
}

const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round(p * (xs.length - 1)))];
const runs = { before: [], now: [] };
for (let k = 0; k < REPEATS + 3; k++) {
  // interleaved, so both see the same load; the first 3 rounds warm the JIT and are dropped
  const a = before(k), b = now(k);
  if (k >= 3) runs.before.push(a), runs.now.push(b);
}
console.log(`remap of a ${W}x${H} ${BITS}-bit frame, ${REPEATS} rounds, node ${process.version}`);
console.log("| variant | table p50 / p95 ms | pixels p50 / p95 ms |\n|---|---|---|");
for (const [name, r] of Object.entries(runs)) {
  const t = r.map((x) => x[0]), p = r.map((x) => x[1]);
  console.log(`| ${name} | ${q(t, 0.5).toFixed(2)} / ${q(t, 0.95).toFixed(2)} | ${q(p, 0.5).toFixed(2)} / ${q(p, 0.95).toFixed(2)} |`);
}
