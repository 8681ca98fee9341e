// labcam-raw.js: decode a raw-mode payload (docs/raw-mode.md) in the browser into the camera's counts.
//
// One dependency-free ES module, no build step, like labcam-client.js (which is to import it for raw frames):
//
//   import { decodeRaw } from "./static/labcam-raw.js";
//   const pixels = await decodeRaw(header, payload);   // Uint16Array (or Uint8Array), row-major
//
// - deflate (the default payload) is inflated by the browser itself, `DecompressionStream("deflate")`:
//   no JavaScript library is needed.
// - zstd and lz4 payloads need a decoder from npm, bundled by the application's build step (never
//   copied here): pass it as `decompress: { zstd: (bytes, out) => ..., lz4: (bytes, out) => ... }`,
//   each filling the preallocated `out` and returning the number of bytes written, e.g.
//   `{ zstd: (b, out) => fzstd.decompress(b, out).length, lz4: (b, out) => lz4js.decompressFrame(b, out) }`.
// - Every size is checked against the header: a corrupt, truncated or over-long payload rejects with
//   an Error naming the problem, never a silently wrong image.

export const RAW_COMPRESSIONS = Object.freeze(["none", "deflate", "zstd", "lz4"]);
const MAX_SIDE = 65535;
// Uint16Array uses the platform's byte order; the payload is little-endian (as is every browser's platform).
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(message) {
  throw new Error(`raw payload: ${message}`);
}

/** The decoded byte count and sample type a raw frame header describes; throws on a bad header. */
export function rawLayout(header) {
  const { dtype, compression, shuffle, width, height, bit_depth: bitDepth } = header;
  const channels = header.channels ?? 1;
  const side = (v) => Number.isInteger(v) && v >= 1 && v <= MAX_SIDE;
  if (header.encoding !== "raw") fail(`encoding ${JSON.stringify(header.encoding)} is not "raw"`);
  if (dtype !== "uint8" && dtype !== "uint16") fail(`dtype ${JSON.stringify(dtype)} is not uint8 or uint16`);
  if (!RAW_COMPRESSIONS.includes(compression)) fail(`unknown compression ${JSON.stringify(compression)}`);
  if (typeof shuffle !== "boolean") fail("shuffle must be true or false");
  if (!side(width) || !side(height)) fail(`bad size ${width}x${height}`);
  if (channels !== 1 && channels !== 3) fail(`channels ${channels} is not 1 or 3`);
  if (!Number.isInteger(bitDepth) || bitDepth < 1 || bitDepth > 16 || (bitDepth <= 8) !== (dtype === "uint8")) {
    fail(`bit_depth ${bitDepth} does not fit dtype ${dtype}`);
  }
  if (shuffle && dtype === "uint8") fail("shuffle must be false for uint8 pixels");
  const samples = width * height * channels;
  return { samples, bytes: samples * (dtype === "uint8" ? 1 : 2), dtype, compression, shuffle };
}

/** Inflate one zlib-format deflate stream of exactly `size` bytes with the browser's own decoder. */
export async function inflate(payload, size) {
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  // Errors of the stream surface on the reader below; these promises only need a handler.
  writer.write(payload).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const out = new Uint8Array(size);
  let n = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      fail(`corrupt or truncated deflate data (${err.message})`);
    }
    if (chunk.done) break;
    if (n + chunk.value.length > size) {
      reader.cancel().catch(() => {});
      fail(`deflate data decompress to more than the ${size} bytes the header says`);
    }
    out.set(chunk.value, n);
    n += chunk.value.length;
  }
  if (n !== size) fail(`deflate data truncated: ${n} of ${size} bytes`);
  return out;
}

/** Byte-shuffled planes (all low bytes, then all high bytes) to uint16 values. */
export function unshuffle16(planes, out = new Uint16Array(planes.length >> 1)) {
  const n = out.length;
  if (planes.length !== 2 * n) fail(`${planes.length} shuffled bytes do not hold ${n} uint16 values`);
  const hi = planes.subarray(n);
  for (let i = 0; i < n; i++) out[i] = planes[i] | (hi[i] << 8);
  return out;
}

function decompressWith(decoder, compression, payload, size) {
  if (typeof decoder !== "function") {
    fail(`${compression} payloads need a decoder: pass decompress.${compression} (see labcam-raw.js)`);
  }
  const out = new Uint8Array(size);
  let n;
  try {
    n = decoder(payload, out);
  } catch (err) {
    fail(`corrupt ${compression} data (${err.message})`);
  }
  if (n !== size) fail(`${compression} data hold ${n} bytes, the header says ${size}`);
  return out;
}

/**
 * The pixels of a raw frame: a new Uint16Array (dtype uint16) or Uint8Array (uint8), row-major,
 * `channels` interleaved. `payload` is a Uint8Array (e.g. the bytes after the binary message's header).
 */
export async function decodeRaw(header, payload, { decompress = {} } = {}) {
  const { samples, bytes, dtype, compression, shuffle } = rawLayout(header);
  let data;
  if (compression === "none") {
    if (payload.length !== bytes) fail(`want ${bytes} bytes, got ${payload.length}`);
    data = payload;
  } else if (compression === "deflate") {
    data = await inflate(payload, bytes);
  } else {
    data = decompressWith(decompress[compression], compression, payload, bytes);
  }
  if (dtype === "uint8") return compression === "none" ? data.slice() : data;
  if (shuffle) return unshuffle16(data, new Uint16Array(samples));
  if (LITTLE_ENDIAN && data.byteOffset % 2 === 0 && data !== payload) {
    return new Uint16Array(data.buffer, data.byteOffset, samples);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(samples);
  for (let i = 0; i < samples; i++) out[i] = view.getUint16(2 * i, true);
  return out;
}
