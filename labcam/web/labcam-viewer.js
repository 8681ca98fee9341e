// labcam-viewer.js: the scientific live view of a labcam stream, shared by the test page, the notebook
// widget and the Vue component (issue 11). A dependency-free ES module, no build step, beside
// labcam-client.js (whose frames it draws). Types: labcam-client.d.ts (LabcamViewer).
//
//   import { LabcamClient } from "./static/labcam-client.js";
//   import { LabcamViewer, createDisplayControls } from "./static/labcam-viewer.js";
//   const client = new LabcamClient({ url: "http://localhost:8001/", encoding: "raw" });
//   const viewer = new LabcamViewer(canvas, { client });      // zoom, pan, readouts, histogram
//   panel.append(createDisplayControls(viewer));               // window/level, gamma, LUT, auto
//   await client.connect();
//
// What it does, top to bottom:
// - The camera model: `{cx, cy, zoom}`, the sensor pixel at the canvas's centre and device pixels
//   per sensor pixel. Wheel and pinch zoom about the cursor, drag pans, fit and 1:1 buttons. Every
//   change asks the client for the view that covers the canvas (`requestView`, coalesced there:
//   latest wins) and the canvas's device-pixel box as `size`, so the server sends no more pixels
//   than the canvas shows.
// - Painting: each frame is drawn where its header's `view` lies on the sensor under the CURRENT
//   camera, so until the new view arrives the last frame is simply drawn transformed: zoom and pan
//   feel instant. One paint per animation frame at most.
// - WebGL2 draws both kinds of frame: JPEG as an RGBA texture from the ImageBitmap, raw as an
//   integer texture (R16UI / R8UI, RGB for colour) read with texelFetch, mapped in the shader by
//   window/level, gamma and a LUT (grey, inverted, viridis, HiLo). A display change is a uniform: it
//   repaints on the next animation frame with no server message. Without WebGL2 a 2D canvas does the
//   same mapping on the CPU (status: "2D canvas").
// - Readouts: the pixel under the cursor (raw at full resolution: from the frame; otherwise the
//   client's `probe`), the header's histogram of the camera's counts with the display range on it, a
//   saturation badge, a scale bar from `pixel_size_um`, the zoom, and capture → painted latency.

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

// ---- the camera model (pure) ----------------------------------------------------------------

/** Zoom limits, in device pixels per sensor pixel: down to half the fit (or 1:1), up to MAX_ZOOM. */
export const MAX_ZOOM = 32;

/** The zoom that fits the whole sensor in the box (device px per sensor px). */
export function fitZoom(box, sensor) {
  return Math.min(box[0] / sensor[0], box[1] / sensor[1]);
}

/** The camera that shows the whole sensor, centred. */
export function fitCamera(box, sensor) {
  return { cx: sensor[0] / 2, cy: sensor[1] / 2, zoom: fitZoom(box, sensor) };
}

/**
 * The camera kept sensible: zoom from half the fit to MAX_ZOOM; the centre where the sensor still
 * fills the box (or centred on an axis where the sensor is smaller than the box).
 */
export function clampCamera(cam, box, sensor) {
  const fz = fitZoom(box, sensor);
  const zoom = Math.min(Math.max(cam.zoom, Math.min(fz / 2, 1)), Math.max(MAX_ZOOM, fz)); // 1:1 always reachable
  const axis = (c, boxSide, side) => {
    const half = boxSide / (2 * zoom);
    if (2 * half >= side) return side / 2;
    return Math.min(Math.max(c, half), side - half);
  };
  return { cx: axis(cam.cx, box[0], sensor[0]), cy: axis(cam.cy, box[1], sensor[1]), zoom };
}

/** The camera that shows the sensor region [x, y, w, h] whole, centred (then clamped). */
export function regionCamera(rect, box, sensor) {
  const [x, y, w, h] = rect;
  return clampCamera({ cx: x + w / 2, cy: y + h / 2, zoom: Math.min(box[0] / w, box[1] / h) }, box, sensor);
}

/** The sensor coordinates (float sensor px) under the device pixel (px, py) of the box. */
export function screenToSensor(cam, box, px, py) {
  return [cam.cx + (px - box[0] / 2) / cam.zoom, cam.cy + (py - box[1] / 2) / cam.zoom];
}

/** Where a sensor rectangle [x, y, w, h] lies in the box, in device px: [X, Y, W, H]. */
export function sensorRectToScreen(cam, box, rect) {
  const [x, y, w, h] = rect;
  return [(x - cam.cx) * cam.zoom + box[0] / 2, (y - cam.cy) * cam.zoom + box[1] / 2, w * cam.zoom, h * cam.zoom];
}

/** Zoom by `factor` about the device pixel (px, py): the sensor point under it stays put. */
export function zoomAbout(cam, factor, px, py, box, sensor) {
  const [sx, sy] = screenToSensor(cam, box, px, py);
  const zoom = clampCamera({ ...cam, zoom: cam.zoom * factor }, box, sensor).zoom;
  const next = { cx: sx - (px - box[0] / 2) / zoom, cy: sy - (py - box[1] / 2) / zoom, zoom };
  return clampCamera(next, box, sensor);
}

/** Pan by (dx, dy) device px: the picture follows the pointer. */
export function panCamera(cam, dx, dy, box, sensor) {
  return clampCamera({ cx: cam.cx - dx / cam.zoom, cy: cam.cy - dy / cam.zoom, zoom: cam.zoom }, box, sensor);
}

/**
 * The `view` option that covers the box under the camera: "full" when it takes in the whole sensor
 * (so viewers at fit share one encode), else [x, y, w, h] in whole sensor pixels inside the sensor.
 */
export function viewRequest(cam, box, sensor) {
  const [x0f, y0f] = screenToSensor(cam, box, 0, 0);
  const [x1f, y1f] = screenToSensor(cam, box, box[0], box[1]);
  const x0 = Math.max(0, Math.floor(x0f + 1e-6));
  const y0 = Math.max(0, Math.floor(y0f + 1e-6));
  const x1 = Math.min(sensor[0], Math.ceil(x1f - 1e-6));
  const y1 = Math.min(sensor[1], Math.ceil(y1f - 1e-6));
  if (x0 <= 0 && y0 <= 0 && x1 >= sensor[0] && y1 >= sensor[1]) return "full";
  // The server reduces by a whole factor, the smallest whose result fits the box (`size`). A view
  // that covers partial sensor pixels at both edges is one pixel wider than box / zoom, which would
  // make that factor one larger (half the resolution at 1:1): leave the partial pixel at the far
  // edge out instead (less than one sensor pixel of the picture).
  const factor = Math.max(1, Math.ceil(1 / cam.zoom - 1e-9));
  const w = Math.min(x1 - x0, box[0] * factor);
  const h = Math.min(y1 - y0, box[1] * factor);
  return [x0, y0, Math.max(1, w), Math.max(1, h)];
}

/** The device-pixel box of a canvas's CSS box (ResizeObserver entry when there is one), clamped to the `size` limits. */
export function deviceBox(cssWidth, cssHeight, dpr, entry = null) {
  let w = cssWidth * dpr;
  let h = cssHeight * dpr;
  const dev = entry && entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
  if (dev) {
    w = dev.inlineSize;
    h = dev.blockSize;
  }
  const side = (v) => Math.min(16384, Math.max(16, Math.round(v)));
  return [side(w), side(h)];
}

// ---- display mapping (pure) -----------------------------------------------------------------

/** The LUTs: grey, inverted grey, viridis (perceptually uniform) and HiLo (grey; saturated red, zero blue). */
export const LUTS = Object.freeze(["grey", "inverted", "viridis", "hilo"]);

/**
 * Viridis at t in [0, 1] as [r, g, b] in [0, 1]: the degree-6 polynomial fit of matplotlib's
 * viridis published by Matt Zucker (shadertoy WlfXRN, CC0), evaluated here, no table copied in.
 */
export function viridis(t) {
  const c = [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
  ];
  const x = Math.min(Math.max(t, 0), 1);
  return [0, 1, 2].map((k) => {
    let v = c[6][k];
    for (let i = 5; i >= 0; i--) v = c[i][k] + x * v;
    return Math.min(Math.max(v, 0), 1);
  });
}

/** A LUT as 256 RGBA entries (Uint8Array of 1024); HiLo's grey ramp (its red and blue are per count). */
export function lutTable(name) {
  if (!LUTS.includes(name)) throw new RangeError(`lut=${JSON.stringify(name)} is not allowed: one of ${LUTS.join(", ")}`);
  const out = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    const rgb = name === "viridis" ? viridis(t).map((v) => Math.round(v * 255)) : name === "inverted" ? [255 - i, 255 - i, 255 - i] : [i, i, i];
    out.set([rgb[0], rgb[1], rgb[2], 255], i * 4);
  }
  return out;
}

/** A count's place in the window [lo, hi] after gamma: 0..1 (t^gamma; gamma < 1 lifts the darks). */
export function windowLevel(v, lo, hi, gamma = 1) {
  const t = hi > lo ? Math.min(Math.max((v - lo) / (hi - lo), 0), 1) : v >= hi ? 1 : 0;
  return gamma === 1 ? t : t ** gamma;
}

/**
 * The RGBA a count is painted with: window, gamma, LUT; HiLo paints `top` (saturated) red and 0 blue.
 * `table` is lutTable(lut). Returns [r, g, b, a] 0..255.
 */
export function mapCount(v, display, top, table) {
  if (display.lut === "hilo") {
    if (v >= top) return [255, 0, 0, 255];
    if (v <= 0) return [0, 0, 255, 255];
  }
  const i = Math.round(windowLevel(v, display.min, display.max, display.gamma) * 255) * 4;
  return [table[i], table[i + 1], table[i + 2], 255];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** [r, g, b] (alpha 255) as one word of a Uint32Array over RGBA bytes, in this machine's byte order. */
function rgbaWord(r, g, b) {
  return LITTLE_ENDIAN ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
}

/**
 * The 2D renderer's table: for every sample value 0..levels-1 the RGBA word it is painted with
 * (`toCounts`: sample -> camera counts). Mono: window, gamma, LUT (mapCount); RGB (ch 3): the
 * windowed level of one channel, in the red byte (remapToRGBA takes one byte per channel).
 */
export function countWords(levels, toCounts, display, top, ch = 1) {
  const table = lutTable(display.lut === "hilo" ? "grey" : display.lut);
  const words = new Uint32Array(levels);
  for (let v = 0; v < levels; v++) {
    const counts = toCounts(v);
    if (ch === 1) {
      const c = mapCount(counts, display, top, table);
      words[v] = rgbaWord(c[0], c[1], c[2]);
    } else {
      words[v] = Math.round(windowLevel(counts, display.min, display.max, display.gamma) * 255);
    }
  }
  return words;
}

function saturatedTest(levels, toCounts, top) {
  const sat = new Uint8Array(levels);
  for (let v = 0; v < levels; v++) sat[v] = toCounts(v) >= top ? 1 : 0;
  return sat;
}

/**
 * Paint n pixels into `out32` (a Uint32Array over RGBA bytes) through `words` (countWords): mono,
 * one table read and one word written per pixel. `src` holds `stride` values per pixel (1 raw mono,
 * 3 raw RGB, 4 decoded RGBA), of which the first `ch` are the pixel's. `sat` (RGB HiLo): per value,
 * whether it is saturated (then the pixel is red).
 */
export function remapToRGBA(src, stride, ch, n, words, out32, sat = null) {
  const last = words.length - 1;
  if (ch === 1) {
    for (let i = 0, j = 0; i < n; i++, j += stride) {
      const v = src[j];
      out32[i] = words[v > last ? last : v];
    }
    return;
  }
  const red = rgbaWord(255, 0, 0);
  for (let i = 0, j = 0; i < n; i++, j += stride) {
    const r = Math.min(src[j], last), g = Math.min(src[j + 1], last), b = Math.min(src[j + 2], last);
    out32[i] = sat && (sat[r] || sat[g] || sat[b]) ? red : rgbaWord(words[r], words[g], words[b]);
  }
}

/**
 * The counts at the fractions `lo` and `hi` of a histogram ({bins, range}: equal-width bins over
 * [range[0], range[1]))), interpolated inside a bin. [min, max] with max > min; null when empty.
 */
export function histogramPercentiles(hist, lo = 0.001, hi = 0.999) {
  if (!hist || !Array.isArray(hist.bins) || !hist.bins.length) return null;
  const total = hist.bins.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return null;
  const [r0, r1] = hist.range;
  const width = (r1 - r0) / hist.bins.length;
  const at = (q) => {
    const target = q * total;
    let seen = 0;
    for (let i = 0; i < hist.bins.length; i++) {
      const n = hist.bins[i];
      if (seen + n >= target && n > 0) return r0 + (i + (target - seen) / n) * width;
      seen += n;
    }
    return r1;
  };
  const a = Math.floor(at(lo));
  const b = Math.max(a + 1, Math.ceil(at(hi)));
  return [a, b];
}

/** A histogram ({bins, range}) of a sample of the counts: every `step`-th sample of channel 0, `bins` bins over [0, 2^bitDepth). */
export function sampleHistogram(pixels, bitDepth, { bins = 64, maxSamples = 65536, channels = 1 } = {}) {
  const n = Math.floor(pixels.length / channels);
  const step = Math.max(1, Math.floor(n / maxSamples));
  const top = 2 ** bitDepth;
  const counts = new Array(bins).fill(0);
  const k = bins / top;
  for (let i = 0; i < n; i += step) counts[Math.min(bins - 1, Math.floor(pixels[i * channels] * k))]++;
  return { bins: counts, range: [0, top] };
}

/** The number of samples at the top count in a sample of channel 0 (when the header has no `saturated`). */
export function countSaturated(pixels, bitDepth, channels = 1) {
  const top = 2 ** bitDepth - 1;
  let n = 0;
  for (let i = 0; i < pixels.length; i += channels) if (pixels[i] >= top) n++;
  return n;
}

/**
 * A scale bar for `umPerPx` micrometres per device pixel, about `targetPx` device px long: a round
 * length (1, 2 or 5 × 10^k µm). Returns {um, px, label}.
 */
export function scaleBar(umPerPx, targetPx = 120) {
  const raw = umPerPx * targetPx;
  const p = 10 ** Math.floor(Math.log10(raw));
  const um = [1, 2, 5, 10].map((m) => m * p).reduce((best, v) => (Math.abs(v - raw) < Math.abs(best - raw) ? v : best));
  const label = um >= 1000 ? `${+(um / 1000).toPrecision(3)} mm` : um >= 1 ? `${+um.toPrecision(3)} µm` : `${+(um * 1000).toPrecision(3)} nm`;
  return { um, px: um / umPerPx, label };
}

/** p-th quantile (0..1) of a list of numbers; null for an empty list. */
export function quantile(values, p) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
}

/** Where a sensor pixel lies in a frame's image: [ix, iy] or null when outside the frame's view. */
export function imagePixelAt(geometry, sx, sy) {
  const [vx, vy, vw, vh] = geometry.view;
  if (sx < vx || sy < vy || sx >= vx + vw || sy >= vy + vh) return null;
  const ix = Math.min(geometry.width - 1, Math.floor(((sx - vx) * geometry.width) / vw));
  const iy = Math.min(geometry.height - 1, Math.floor(((sy - vy) * geometry.height) / vh));
  return [ix, iy];
}

// ---- renderers --------------------------------------------------------------------------------

const VERTEX = `#version 300 es
in vec2 a_pos;
uniform vec4 u_rect;
out vec2 v_uv;
void main() {
  v_uv = a_pos;
  gl_Position = vec4(u_rect.xy + a_pos * u_rect.zw, 0.0, 1.0);
}`;

// Both programs map counts the same way; they differ in where the counts come from.
const MAPPING = `
uniform sampler2D u_lut;
uniform vec2 u_window;
uniform float u_gamma;
uniform float u_top;
uniform int u_hilo;
uniform int u_channels;
in vec2 v_uv;
out vec4 o_color;
float level(float v) {
  float t = u_window.y > u_window.x ? clamp((v - u_window.x) / (u_window.y - u_window.x), 0.0, 1.0) : step(u_window.y, v);
  return pow(t, u_gamma);
}
vec4 paint(vec3 counts) {
  if (u_channels == 1) {
    float v = counts.r;
    if (u_hilo == 1 && v >= u_top) return vec4(1.0, 0.0, 0.0, 1.0);
    if (u_hilo == 1 && v <= 0.0) return vec4(0.0, 0.0, 1.0, 1.0);
    return vec4(texture(u_lut, vec2((level(v) * 255.0 + 0.5) / 256.0, 0.5)).rgb, 1.0);
  }
  if (u_hilo == 1 && max(counts.r, max(counts.g, counts.b)) >= u_top) return vec4(1.0, 0.0, 0.0, 1.0);
  return vec4(level(counts.r), level(counts.g), level(counts.b), 1.0);
}`;

const RAW_FRAGMENT = `#version 300 es
precision highp float;
precision highp usampler2D;
uniform usampler2D u_image;
${MAPPING}
void main() {
  ivec2 size = textureSize(u_image, 0);
  ivec2 p = clamp(ivec2(v_uv * vec2(size)), ivec2(0), size - 1);
  o_color = paint(vec3(texelFetch(u_image, p, 0).rgb));
}`;

// JPEG: the 8-bit value v stands for the counts display[0] + v/255 * (display[1] - display[0]).
const JPEG_FRAGMENT = `#version 300 es
precision highp float;
uniform sampler2D u_image;
uniform vec2 u_display;
${MAPPING}
void main() {
  vec3 v = texture(u_image, v_uv).rgb;
  o_color = paint(u_display.x + v * (u_display.y - u_display.x));
}`;

class GLRenderer {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { alpha: false, antialias: false, premultipliedAlpha: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("no WebGL2");
    this.kind = "webgl2";
    this.gl = gl;
    this.programs = { raw: this._program(RAW_FRAGMENT), jpeg: this._program(JPEG_FRAGMENT) };
    this.quad = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.quad);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    this.image = gl.createTexture();
    this.lut = gl.createTexture();
    this.lutName = null;
    this.uploaded = null; // the frame whose pixels are in the texture
  }

  _program(fragment) {
    const gl = this.gl;
    const shader = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(s)}`);
      return s;
    };
    const p = gl.createProgram();
    gl.attachShader(p, shader(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(p, shader(gl.FRAGMENT_SHADER, fragment));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`program: ${gl.getProgramInfoLog(p)}`);
    const u = {};
    for (const name of ["u_rect", "u_image", "u_lut", "u_window", "u_gamma", "u_top", "u_hilo", "u_channels", "u_display"]) u[name] = gl.getUniformLocation(p, name);
    return { p, u, pos: gl.getAttribLocation(p, "a_pos") };
  }

  _upload(frame) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.image);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    const g = frame.geometry;
    if (frame.pixels) {
      const rgb = g.channels === 3;
      const wide = frame.pixels.BYTES_PER_ELEMENT === 2;
      const internal = rgb ? (wide ? gl.RGB16UI : gl.RGB8UI) : wide ? gl.R16UI : gl.R8UI;
      gl.texImage2D(gl.TEXTURE_2D, 0, internal, g.width, g.height, 0, rgb ? gl.RGB_INTEGER : gl.RED_INTEGER, wide ? gl.UNSIGNED_SHORT : gl.UNSIGNED_BYTE, frame.pixels);
    } else {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, frame.bitmap);
    }
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.uploaded = frame;
  }

  draw(frame, rect, display, top) {
    const gl = this.gl;
    const cw = gl.canvas.width;
    const ch = gl.canvas.height;
    gl.viewport(0, 0, cw, ch);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!frame) return;
    if (this.uploaded !== frame) this._upload(frame);
    const raw = !!frame.pixels;
    const prog = raw ? this.programs.raw : this.programs.jpeg;
    gl.useProgram(prog.p);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.image);
    // Magnified: sharp sensor pixels; minified JPEG: smooth (integer textures are always nearest).
    const filter = raw || rect[2] >= frame.geometry.width ? gl.NEAREST : gl.LINEAR;
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
    gl.uniform1i(prog.u.u_image, 0);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.lut);
    if (this.lutName !== display.lut) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, lutTable(display.lut === "hilo" ? "grey" : display.lut));
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      this.lutName = display.lut;
    }
    gl.uniform1i(prog.u.u_lut, 1);
    gl.uniform2f(prog.u.u_window, display.min, display.max);
    gl.uniform1f(prog.u.u_gamma, display.gamma);
    gl.uniform1f(prog.u.u_top, top);
    gl.uniform1i(prog.u.u_hilo, display.lut === "hilo" ? 1 : 0);
    gl.uniform1i(prog.u.u_channels, frame.geometry.channels === 3 ? 3 : 1);
    if (!raw) gl.uniform2f(prog.u.u_display, frame.geometry.display[0], frame.geometry.display[1]);
    const [x, y, w, h] = rect;
    gl.uniform4f(prog.u.u_rect, (x / cw) * 2 - 1, 1 - (y / ch) * 2, (w / cw) * 2, -(h / ch) * 2);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.quad);
    gl.enableVertexAttribArray(prog.pos);
    gl.vertexAttribPointer(prog.pos, 2, gl.FLOAT, false, 0, 0);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  /** The painted RGBA at canvas pixel (x, y) from the top left (tests). */
  readPixel(x, y) {
    const gl = this.gl;
    const out = new Uint8Array(4);
    gl.readPixels(x, gl.canvas.height - 1 - y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, out);
    return [...out];
  }
}

/** The renderer's name when WebGL2 here is software-rendered, else "" (a GPU, or no WebGL2 at all). */
function softwareWebGL(doc) {
  try {
    const gl = doc.createElement("canvas").getContext("webgl2");
    if (!gl) return "";
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || "");
    const lose = gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();
    return /swiftshader|llvmpipe|softpipe|software/i.test(name) ? name : "";
  } catch {
    return "";
  }
}

class Canvas2DRenderer {
  constructor(canvas) {
    this.kind = "2d";
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.cache = { frame: null, key: "", image: null };
  }

  /** The frame mapped to RGBA at its own size, cached per frame and display. */
  _mapped(frame, display, top) {
    const g = frame.geometry;
    const identity = !frame.pixels && display.lut === "grey" && display.gamma === 1 && display.min === g.display[0] && display.max === g.display[1];
    if (identity) return frame.bitmap;
    const key = JSON.stringify([display, top]);
    if (this.cache.frame === frame && this.cache.key === key) return this.cache.image;
    const doc = globalThis.document;
    const reuse = this.cache.image && this.cache.image.width === g.width && this.cache.image.height === g.height;
    const out = reuse ? this.cache.image : Object.assign(doc.createElement("canvas"), { width: g.width, height: g.height });
    const octx = out.getContext("2d");
    const n = g.width * g.height;
    // The ImageData is kept across frames of one size (1.3 MP: 5 MB that need not be allocated and zeroed again).
    if (!this.imageData || this.imageData.width !== g.width || this.imageData.height !== g.height) this.imageData = octx.createImageData(g.width, g.height);
    const image = this.imageData;
    const ch = g.channels === 3 ? 3 : 1;
    let src;
    let stride = ch;
    let toCounts = (v) => v;
    if (frame.pixels) {
      src = frame.pixels;
    } else {
      // JPEG: the decoded 8-bit values, read in place from the RGBA (stride 4), put back in counts.
      octx.drawImage(frame.bitmap, 0, 0);
      src = octx.getImageData(0, 0, g.width, g.height).data;
      stride = 4;
      const [d0, d1] = g.display;
      toCounts = (v) => d0 + (v / 255) * (d1 - d0);
    }
    const levels = frame.pixels ? 2 ** g.bitDepth : 256;
    // One RGBA word per possible sample value, cached per display: a new frame with the same
    // display only runs the loop below, a contrast change also rebuilds 2**bit_depth words.
    const tableKey = JSON.stringify([display, top, levels, ch, g.display]);
    if (this.tableKey !== tableKey) {
      this.words = countWords(levels, toCounts, display, top, ch);
      this.tableKey = tableKey;
    }
    remapToRGBA(src, stride, ch, n, this.words, new Uint32Array(image.data.buffer), ch === 3 && display.lut === "hilo" ? saturatedTest(levels, toCounts, top) : null);
    octx.putImageData(image, 0, 0);
    this.cache = { frame, key, image: out };
    return out;
  }

  draw(frame, rect, display, top) {
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    if (!frame) return;
    const image = this._mapped(frame, display, top);
    ctx.imageSmoothingEnabled = rect[2] < frame.geometry.width;
    ctx.drawImage(image, rect[0], rect[1], rect[2], rect[3]);
  }

  readPixel(x, y) {
    return [...this.ctx.getImageData(x, y, 1, 1).data];
  }
}

// ---- the heads-up display -----------------------------------------------------------------

const STYLE_ID = "labcam-viewer-style";
const STYLE = `
.lcv-hud { position: absolute; inset: 0; pointer-events: none; font: 12px/1.3 system-ui, sans-serif; color: #eee; }
.lcv-hud > * { position: absolute; }
.lcv-hud button { pointer-events: auto; font: inherit; color: #eee; background: rgba(20,22,26,.8); border: 1px solid #555; border-radius: 3px; padding: 1px 7px; cursor: pointer; }
.lcv-hud button:hover { border-color: #aaa; }
.lcv-tools { top: 6px; left: 6px; display: flex; gap: 4px; align-items: center; }
.lcv-zoom, .lcv-note, .lcv-readout, .lcv-latency { background: rgba(20,22,26,.75); padding: 1px 6px; border-radius: 3px; white-space: nowrap; }
.lcv-note { color: #f0c060; }
.lcv-badge { top: 6px; left: 50%; transform: translateX(-50%); background: #c0262d; color: #fff; padding: 1px 8px; border-radius: 3px; font-weight: 600; }
.lcv-map { top: 6px; right: 6px; border: 1px solid #888; background: rgba(0,0,0,.5); }
.lcv-scale { left: 8px; bottom: 8px; text-align: center; text-shadow: 0 0 2px #000; }
.lcv-scale > div { height: 4px; background: #fff; box-shadow: 0 0 2px #000; margin-bottom: 2px; }
.lcv-readout { right: 6px; bottom: 6px; font-variant-numeric: tabular-nums; }
.lcv-hist { right: 6px; bottom: 28px; background: rgba(20,22,26,.75); border-radius: 3px; }
.lcv-latency { left: 6px; top: 32px; font-variant-numeric: tabular-nums; }
[hidden].lcv-hud, .lcv-hud [hidden] { display: none !important; }
.lcv-controls { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: center; font: 12px system-ui, sans-serif; }
.lcv-controls input[type=number] { width: 6.5em; }
.lcv-controls label { display: inline-flex; gap: 4px; align-items: center; }
`;

function installStyle(doc) {
  if (!doc || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = STYLE;
  (doc.head || doc.documentElement).append(style);
}

function el(doc, tag, className, attrs = {}) {
  const e = doc.createElement(tag);
  if (className) e.className = className;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// ---- the viewer -------------------------------------------------------------------------------

const HISTORY = 240; // figures kept for the latency and paint-time quantiles

/**
 * A live view on a canvas: zoom/pan, GPU display mapping, readouts. `options`: client (a
 * LabcamClient: frames, view requests, probes; or none, then feed frames with `setFrame` and listen
 * to "view"), renderer ("auto" | "webgl2" | "2d"), lut, gamma, contrast ("auto" | [min, max]),
 * hud (build the overlay, default true), interactive (wheel/drag/pinch, default true), pixelSizeUm
 * (else the client's camera description), aspect (keep the canvas at the sensor's aspect ratio via
 * CSS, default true). Events: "paint" {frame, newFrame, latencyMs}, "display", "view", "readout",
 * "renderer".
 */
export class LabcamViewer extends EventTarget {
  constructor(canvas, options = {}) {
    super();
    this.canvas = canvas;
    this.options = { client: null, renderer: "auto", lut: "grey", gamma: 1, contrast: "auto", hud: true, interactive: true, pixelSizeUm: null, aspect: true, ...options };
    this.client = this.options.client;
    this.doc = canvas.ownerDocument || globalThis.document;
    this.win = (this.doc && this.doc.defaultView) || globalThis;
    this.frame = null;
    this.sensor = null;
    this.box = deviceBox(canvas.clientWidth || canvas.width, canvas.clientHeight || canvas.height, this.win.devicePixelRatio || 1);
    this.cam = null;
    this.fitted = true; // the camera follows the fit until the user zooms or pans
    this.display = { min: 0, max: 255, gamma: this.options.gamma, lut: this.options.lut, auto: this.options.contrast === "auto" };
    if (Array.isArray(this.options.contrast)) [this.display.min, this.display.max] = this.options.contrast;
    this._displaySet = !this.display.auto;
    this._region = null; // a showRegion() waiting for the sensor's size
    this._painted = null; // the last frame painted
    this._raf = null;
    this._latencies = [];
    this._paintMs = [];
    this._pipelineMs = [];
    this._paints = [];
    this._pointer = null; // the last pointer position [px, py] in device px
    this._probe = { busy: false, next: null };
    this.readout = null;
    this._unsubs = [];
    this.renderer = this._makeRenderer(this.options.renderer);
    this.rendererNote = this.renderer.kind === "webgl2" ? "" : this.options.renderer === "2d" ? "2D canvas" : `2D canvas (${this._glError || "no WebGL2"})`;
    if (this.options.hud) this._buildHud();
    if (this.options.interactive) this._bindInput();
    this._observeSize();
    if (this.client) this._bindClient(this.client);
    this.invalidate();
  }

  _makeRenderer(which) {
    if (which === "auto") {
      // A software WebGL2 (SwiftShader, llvmpipe: no GPU, e.g. headless) paints several times slower
      // than the 2D canvas (benchmarks/bench_viewer.py): "auto" then takes the 2D canvas. Asked on
      // a scratch canvas, since a canvas that made a WebGL context can never make a 2D one.
      const gpu = softwareWebGL(this.doc);
      if (gpu) {
        this._glError = `WebGL2 is software-rendered here: ${gpu}`;
        return new Canvas2DRenderer(this.canvas);
      }
    }
    if (which !== "2d") {
      try {
        return new GLRenderer(this.canvas);
      } catch (e) {
        this._glError = `no WebGL2: ${e.message}`;
        if (which === "webgl2") throw e;
      }
    }
    return new Canvas2DRenderer(this.canvas);
  }

  // ---- public API ----

  /** Show a frame ({meta, geometry, bitmap | pixels}, as the client's "frame" event has it). */
  setFrame(frame) {
    if (!frame || !frame.geometry || (!frame.bitmap && !frame.pixels)) return;
    const previous = this.frame;
    this.frame = frame;
    const g = frame.geometry;
    const sensorChanged = !this.sensor || this.sensor[0] !== g.sensor[0] || this.sensor[1] !== g.sensor[1];
    if (sensorChanged) this._setSensor(g.sensor);
    if (this.display.auto) this._autoDisplay(frame);
    else if (!this._displaySet || (previous && previous.geometry.bitDepth !== g.bitDepth)) this._resetDisplay(frame);
    this.invalidate();
  }

  /** The sensor's size ([w, h]); known from frames, or set before the first one (the camera description). */
  setSensor(sensor) {
    if (Array.isArray(sensor) && sensor[0] > 0 && sensor[1] > 0) this._setSensor(sensor);
  }

  /** Change the display mapping ({min, max, gamma, lut, auto}): repaints on the next animation frame, no server message. */
  setDisplay(changes) {
    const next = { ...this.display, ...changes };
    if (changes.lut !== undefined && !LUTS.includes(changes.lut)) throw new RangeError(`lut=${JSON.stringify(changes.lut)} is not allowed: one of ${LUTS.join(", ")}`);
    if (!(isNum(next.min) && isNum(next.max) && next.max > next.min)) throw new RangeError("display: min and max must be numbers with min < max");
    if (!(isNum(next.gamma) && next.gamma > 0 && next.gamma <= 10)) throw new RangeError("gamma must be a number above 0, at most 10");
    if ("min" in changes || "max" in changes) {
      if (changes.auto === undefined) next.auto = false;
    }
    if (!next.auto) this._displaySet = true; // from now on the user's range, kept across frames
    this.display = next;
    if (next.auto && this.frame) this._autoDisplay(this.frame);
    this._emit("display", { ...this.display });
    this.invalidate();
  }

  /** One-shot auto contrast from percentiles (raw: the frame's counts; JPEG: the header's histogram). */
  autoContrast(lo = 0.001, hi = 0.999) {
    const range = this.frame ? this._percentiles(this.frame, lo, hi) : null;
    if (range) this.setDisplay({ min: range[0], max: range[1], auto: false });
    return range;
  }

  /** Fit the whole sensor in the canvas. */
  fit() {
    this.fitted = true;
    if (this.sensor) this._setCamera(fitCamera(this.box, this.sensor), true);
  }

  /**
   * Show the sensor region [x, y, w, h] (sensor px) whole and centred, or "full" (= fit). Before the
   * sensor is known, the region waits for it. Zoom and pan move on from there as usual.
   */
  showRegion(rect) {
    if (rect === "full" || rect === null || rect === undefined) {
      this._region = null;
      this.fit();
      return;
    }
    if (!(Array.isArray(rect) && rect.length === 4 && rect.every(isNum) && rect[2] > 0 && rect[3] > 0)) {
      throw new RangeError(`region ${JSON.stringify(rect)} is not allowed: "full" or [x, y, w, h] in sensor pixels, w and h above 0`);
    }
    this._region = null;
    if (!this.sensor) {
      this._region = [...rect];
      return;
    }
    this.fitted = false;
    this._setCamera(regionCamera(rect, this.box, this.sensor));
  }

  /** One sensor pixel per device pixel, about the canvas's centre (or the device pixel px, py). */
  oneToOne(px = this.box[0] / 2, py = this.box[1] / 2) {
    if (!this.cam) return;
    const [sx, sy] = screenToSensor(this.cam, this.box, px, py);
    this.fitted = false;
    this._setCamera(clampCamera({ cx: sx - (px - this.box[0] / 2), cy: sy - (py - this.box[1] / 2), zoom: 1 }, this.box, this.sensor));
  }

  /** Zoom by `factor` about the device pixel (px, py) of the canvas. */
  zoomBy(factor, px = this.box[0] / 2, py = this.box[1] / 2) {
    if (!this.cam || !(factor > 0)) return;
    this.fitted = false;
    this._setCamera(zoomAbout(this.cam, factor, px, py, this.box, this.sensor));
  }

  /** Pan by (dx, dy) device pixels. */
  panBy(dx, dy) {
    if (!this.cam) return;
    this.fitted = false;
    this._setCamera(panCamera(this.cam, dx, dy, this.box, this.sensor));
  }

  /** The view this viewer asks for now ("full" or [x, y, w, h]). */
  get view() {
    return this.cam ? viewRequest(this.cam, this.box, this.sensor) : "full";
  }

  /** The zoom in device pixels per sensor pixel (1 = 1:1), or null before the sensor is known. */
  get zoom() {
    return this.cam ? this.cam.zoom : null;
  }

  /** Paint figures: renderer, paintedFps, latency (capture → painted) and paint-time quantiles, ms. */
  get stats() {
    const now = this._perfNow();
    this._paints = this._paints.filter((t) => now - t <= 2000);
    const span = this._paints.length > 1 ? (now - this._paints[0]) / 1000 : 0;
    return {
      renderer: this.renderer.kind,
      paintedFps: span > 0 ? (this._paints.length - 1) / span : 0,
      latencyMs: this._latencies.length ? this._latencies[this._latencies.length - 1] : null,
      latencyP50: quantile(this._latencies, 0.5),
      latencyP95: quantile(this._latencies, 0.95),
      paintP50: quantile(this._paintMs, 0.5),
      paintP95: quantile(this._paintMs, 0.95),
      pipelineP50: quantile(this._pipelineMs, 0.5),
      pipelineP95: quantile(this._pipelineMs, 0.95),
      samples: this._latencies.length,
    };
  }

  /** The painted RGBA at canvas pixel (x, y) (tests and benchmarks). */
  readPixel(x, y) {
    return this.renderer.readPixel(x, y);
  }

  /** The counts of the painted frame at sensor pixel (sx, sy) when it holds them (raw), else null. */
  countsAt(sx, sy) {
    const f = this.frame;
    if (!f || !f.pixels) return null;
    const at = imagePixelAt(f.geometry, sx, sy);
    if (!at) return null;
    const ch = f.geometry.channels === 3 ? 3 : 1;
    const i = (at[1] * f.geometry.width + at[0]) * ch;
    return ch === 3 ? [f.pixels[i], f.pixels[i + 1], f.pixels[i + 2]] : f.pixels[i];
  }

  /** Schedule one paint on the next animation frame. */
  invalidate() {
    if (this._raf !== null) return;
    const raf = this.win.requestAnimationFrame ? this.win.requestAnimationFrame.bind(this.win) : (cb) => setTimeout(() => cb(this._perfNow()), 16);
    this._raf = raf((t) => {
      this._raf = null;
      this._paint(t);
    });
  }

  destroy() {
    for (const u of this._unsubs.splice(0)) u();
    if (this._raf !== null && this.win.cancelAnimationFrame) this.win.cancelAnimationFrame(this._raf);
    this._raf = null;
    if (this.hud) this.hud.remove();
  }

  // ---- internals ----

  _perfNow() {
    return this.win.performance ? this.win.performance.now() : Date.now();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setSensor(sensor) {
    this.sensor = [sensor[0], sensor[1]];
    if (this.options.aspect) this.canvas.style.aspectRatio = `${sensor[0]} / ${sensor[1]}`;
    if (this._region) this.showRegion(this._region);
    else if (this.fitted || !this.cam) this._setCamera(fitCamera(this.box, this.sensor), true);
    else this._setCamera(clampCamera(this.cam, this.box, this.sensor));
  }

  _setCamera(cam, fit = false) {
    this.cam = cam;
    if (fit) this.fitted = true;
    this._requestView();
    this._updateHud();
    if (this._pointer) this._updateReadout(); // the pointer now points at another sensor pixel
    this.invalidate();
  }

  _requestView() {
    const view = this.view;
    const detail = { view, size: [...this.box] };
    if (this.client) this.client.requestView(detail).catch(() => {}); // refusals are the client's error events
    this._emit("view", detail);
  }

  _observeSize() {
    const RO = this.win.ResizeObserver;
    const update = (entry) => {
      const box = deviceBox(this.canvas.clientWidth, this.canvas.clientHeight, this.win.devicePixelRatio || 1, entry);
      if (box[0] === this.box[0] && box[1] === this.box[1]) return;
      this.box = box;
      if (!this.sensor) {
        this._requestView();
        return;
      }
      if (this.fitted) this._setCamera(fitCamera(this.box, this.sensor), true);
      else this._setCamera(clampCamera(this.cam, this.box, this.sensor));
    };
    if (typeof RO === "function") {
      const ro = new RO((entries) => update(entries[entries.length - 1]));
      try {
        ro.observe(this.canvas, { box: "device-pixel-content-box" });
      } catch {
        ro.observe(this.canvas);
      }
      this._unsubs.push(() => ro.disconnect());
    }
    update(null);
  }

  _bindClient(client) {
    this._unsubs.push(client.on("frame", (f) => this.setFrame(f)));
    this._unsubs.push(
      client.on("connected", (msg) => {
        const c = msg && msg.camera;
        if (!this.sensor && c && c.sensor_width > 0 && c.sensor_height > 0) this._setSensor([c.sensor_width, c.sensor_height]);
        this._updateHud();
      }),
    );
    // The query of the first connection carries the size and view from the start.
    client.requestView({ view: this.view, size: [...this.box] }).catch(() => {});
  }

  _percentiles(frame, lo, hi) {
    const g = frame.geometry;
    if (g.histogram) return histogramPercentiles(g.histogram, lo, hi);
    if (frame.pixels) return histogramPercentiles(sampleHistogram(frame.pixels, g.bitDepth, { bins: 1024, channels: g.channels === 3 ? 3 : 1 }), lo, hi);
    return null;
  }

  _resetDisplay(frame) {
    const g = frame.geometry;
    this.display.min = frame.pixels ? 0 : g.display[0];
    this.display.max = frame.pixels ? 2 ** g.bitDepth - 1 : g.display[1];
    this._displaySet = true;
    this._emit("display", { ...this.display });
  }

  /** Continuous auto: JPEG follows the server's own mapping (the header's display); raw, the frame's percentiles. */
  _autoDisplay(frame) {
    const g = frame.geometry;
    const range = frame.pixels ? this._percentiles(frame, 0.001, 0.999) : g.display;
    if (!range) return;
    if (range[0] !== this.display.min || range[1] !== this.display.max) {
      this.display.min = range[0];
      this.display.max = Math.max(range[0] + 1, range[1]);
      this._emit("display", { ...this.display });
    }
  }

  _paint(t) {
    const start = this._perfNow();
    const frame = this.frame;
    const newFrame = !!frame && frame !== this._painted;
    // Backing store: the device-pixel box; at fit, when the frame has fewer pixels than that (a
    // small sensor, max_width, an older server), the frame's own size, and CSS scales it, as before.
    // (CSS object-fit: contain then letterboxes it exactly as the fit camera would.)
    let target = this.box;
    let own = false;
    if (frame && this.fitted && this.sensor) {
      const g = frame.geometry;
      const full = g.view[2] >= this.sensor[0] && g.view[3] >= this.sensor[1];
      const shown = sensorRectToScreen(this.cam, this.box, g.view);
      own = full && g.width <= shown[2] + 0.5 && g.height <= shown[3] + 0.5;
      if (own) target = [g.width, g.height];
    }
    if (this.canvas.width !== target[0] || this.canvas.height !== target[1]) {
      this.canvas.width = target[0];
      this.canvas.height = target[1];
    }
    let rect = [0, 0, 0, 0];
    if (own) rect = [0, 0, target[0], target[1]];
    else if (frame && this.cam) rect = sensorRectToScreen(this.cam, this.box, frame.geometry.view);
    const top = frame ? 2 ** frame.geometry.bitDepth - 1 : 255;
    this.renderer.draw(frame, rect, this.display, top);
    this._painted = frame;
    const paintMs = this._perfNow() - start;
    let latencyMs = null;
    if (newFrame) {
      this._paints.push(t);
      push(this._paintMs, paintMs);
      if (isNum(frame.decodeMs)) push(this._pipelineMs, frame.decodeMs + paintMs);
      latencyMs = this.client ? this.client.captureAgeMs(frame.meta, t) : null;
      if (isNum(latencyMs)) push(this._latencies, latencyMs);
    }
    this._updateHud();
    this._emit("paint", { frame, newFrame, latencyMs, paintMs });
  }

  // ---- input ----

  _devicePoint(ev) {
    const r = this.canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) * this.box[0]) / (r.width || 1), ((ev.clientY - r.top) * this.box[1]) / (r.height || 1)];
  }

  _bindInput() {
    const c = this.canvas;
    const pointers = new Map(); // pointerId -> [px, py]
    let pinch = null; // {d, mid}
    const listen = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this._unsubs.push(() => target.removeEventListener(type, fn, opts));
    };
    c.style.touchAction = "none";
    listen(c, "wheel", (ev) => {
      ev.preventDefault();
      // Wheel events carry whole CSS pixels, pointer events fractions: zoom about the finer one.
      const q = this._devicePoint(ev);
      const p = this._pointer;
      const [px, py] = p && Math.abs(p[0] - q[0]) <= 2 * (this.win.devicePixelRatio || 1) && Math.abs(p[1] - q[1]) <= 2 * (this.win.devicePixelRatio || 1) ? p : q;
      const scale = ev.deltaMode === 1 ? 0.05 : ev.deltaMode === 2 ? 1 : 0.002;
      this.zoomBy(Math.exp(-ev.deltaY * scale), px, py);
    }, { passive: false });
    listen(c, "pointerdown", (ev) => {
      pointers.set(ev.pointerId, this._devicePoint(ev));
      try {
        c.setPointerCapture(ev.pointerId);
      } catch {
        /* synthetic pointers */
      }
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        pinch = { d: Math.hypot(a[0] - b[0], a[1] - b[1]), mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
      }
    });
    listen(c, "pointermove", (ev) => {
      const p = this._devicePoint(ev);
      this._pointer = p;
      const last = pointers.get(ev.pointerId);
      if (last) {
        pointers.set(ev.pointerId, p);
        if (pointers.size === 2 && pinch) {
          const [a, b] = [...pointers.values()];
          const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
          const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
          if (pinch.d > 0 && d > 0) this.zoomBy(d / pinch.d, mid[0], mid[1]);
          this.panBy(mid[0] - pinch.mid[0], mid[1] - pinch.mid[1]);
          pinch = { d, mid };
        } else if (pointers.size === 1) {
          this.panBy(p[0] - last[0], p[1] - last[1]);
        }
      }
      this._updateReadout();
    });
    const up = (ev) => {
      pointers.delete(ev.pointerId);
      if (pointers.size < 2) pinch = null;
    };
    listen(c, "pointerup", up);
    listen(c, "pointercancel", up);
    listen(c, "pointerleave", () => {
      this._pointer = null;
      this._updateReadout();
    });
    listen(c, "dblclick", (ev) => {
      const [px, py] = this._devicePoint(ev);
      if (this.cam && Math.abs(this.cam.zoom - 1) < 1e-6) this.fit();
      else this.oneToOne(px, py);
    });
  }

  // ---- readouts ----

  /** The pixel under the pointer: coordinates now, counts from the frame (raw at full resolution) or a probe. */
  _updateReadout() {
    if (!this._pointer || !this.cam || !this.sensor) {
      this.readout = null;
      this._showReadout();
      return;
    }
    const [fx, fy] = screenToSensor(this.cam, this.box, this._pointer[0], this._pointer[1]);
    const sx = Math.floor(fx);
    const sy = Math.floor(fy);
    const at = [fx, fy]; // where exactly, in sensor px (tests: zoom keeps it under the cursor)
    if (sx < 0 || sy < 0 || sx >= this.sensor[0] || sy >= this.sensor[1]) {
      this.readout = { x: sx, y: sy, at, value: null, source: "outside" };
      this._showReadout();
      return;
    }
    const f = this.frame;
    if (f && f.pixels && f.geometry.scale <= 1) {
      this.readout = { x: sx, y: sy, at, value: this.countsAt(sx, sy), source: "frame", frameNumber: f.meta.frame_number };
      this._showReadout();
      return;
    }
    const keep = this.readout && this.readout.x === sx && this.readout.y === sy ? this.readout.value : null;
    this.readout = { x: sx, y: sy, at, value: keep, source: "probe" };
    this._showReadout();
    this._askProbe(sx, sy);
  }

  /** One probe in flight; the pointer's latest pixel goes next (latest wins). */
  _askProbe(x, y) {
    if (!this.client || !this.client.connected || !this.client.viewAware) return;
    if (this._probe.busy) {
      this._probe.next = [x, y];
      return;
    }
    this._probe.busy = true;
    this.client
      .probe(x, y)
      .then((reply) => {
        if (this.readout && this.readout.x === x && this.readout.y === y && Array.isArray(reply.values)) {
          this.readout = { ...this.readout, value: reply.values[0], frameNumber: reply.frame_number };
          this._showReadout();
        }
      })
      .catch(() => {})
      .finally(() => {
        this._probe.busy = false;
        const next = this._probe.next;
        this._probe.next = null;
        if (next) this._askProbe(next[0], next[1]);
      });
  }

  _showReadout() {
    this._emit("readout", this.readout);
    if (!this.hud) return;
    const r = this.readout;
    const e = this.hudEls.readout;
    e.hidden = !r;
    if (!r) return;
    const v = r.value;
    const value = v === null || v === undefined ? "–" : Array.isArray(v) ? v.join(", ") : String(v);
    e.textContent = `x ${r.x}  y ${r.y}  ${r.source === "outside" ? "outside the sensor" : `${value} counts`}`;
    e.dataset.value = v === null || v === undefined ? "" : String(v);
  }

  // ---- the heads-up display ----

  _buildHud() {
    const doc = this.doc;
    installStyle(doc);
    const parent = this.canvas.parentElement;
    if (parent && this.win.getComputedStyle && this.win.getComputedStyle(parent).position === "static") parent.style.position = "relative";
    const hud = el(doc, "div", "lcv-hud", { "data-testid": "viewer-hud" });
    const tools = el(doc, "div", "lcv-tools");
    const fit = el(doc, "button", "", { type: "button", title: "fit the sensor in the view", "data-testid": "viewer-fit" });
    fit.textContent = "Fit";
    const one = el(doc, "button", "", { type: "button", title: "one sensor pixel per device pixel", "data-testid": "viewer-1to1" });
    one.textContent = "1:1";
    const zoom = el(doc, "span", "lcv-zoom", { "data-testid": "viewer-zoom" });
    const note = el(doc, "span", "lcv-note", { "data-testid": "viewer-renderer" });
    note.textContent = this.rendererNote;
    note.hidden = !this.rendererNote;
    tools.append(fit, one, zoom, note);
    fit.addEventListener("click", () => this.fit());
    one.addEventListener("click", () => this.oneToOne());
    const badge = el(doc, "div", "lcv-badge", { "data-testid": "viewer-saturated", role: "status" });
    badge.hidden = true;
    const map = el(doc, "canvas", "lcv-map", { "data-testid": "viewer-minimap", width: "120", height: "90" });
    const scale = el(doc, "div", "lcv-scale", { "data-testid": "viewer-scalebar" });
    scale.append(el(doc, "div"), el(doc, "span"));
    scale.hidden = true;
    const readout = el(doc, "div", "lcv-readout", { "data-testid": "viewer-readout" });
    readout.hidden = true;
    const hist = el(doc, "canvas", "lcv-hist", { "data-testid": "viewer-histogram", width: "160", height: "48" });
    hist.hidden = true;
    const latency = el(doc, "div", "lcv-latency", { "data-testid": "viewer-latency", title: "capture → painted (p50 / p95 of the last frames), from the clock offset the client estimates" });
    latency.hidden = true;
    hud.append(tools, badge, map, scale, readout, hist, latency);
    (parent || this.canvas).append(hud);
    this.hud = hud;
    this.hudEls = { zoom, note, badge, map, scale, readout, hist, latency };
    this._lastStatsShown = 0;
  }

  _updateHud() {
    if (!this.hud || !this.cam || !this.sensor) return;
    const h = this.hudEls;
    const dpr = this.win.devicePixelRatio || 1;
    const z = this.cam.zoom;
    h.zoom.textContent = Math.abs(z - 1) < 1e-6 ? "1:1" : z >= 1 ? `${+z.toFixed(2)}:1` : `1:${+(1 / z).toFixed(2)}`;
    h.zoom.dataset.zoom = String(z);
    // Minimap: the sensor and where the view lies on it; hidden at fit (the whole sensor is in view).
    const view = viewRequest(this.cam, this.box, this.sensor);
    h.map.hidden = view === "full";
    if (view !== "full") {
      const m = h.map.getContext("2d");
      const s = Math.min(120 / this.sensor[0], 90 / this.sensor[1]);
      const mw = Math.max(8, Math.round(this.sensor[0] * s));
      const mh = Math.max(8, Math.round(this.sensor[1] * s));
      if (h.map.width !== mw || h.map.height !== mh) Object.assign(h.map, { width: mw, height: mh });
      m.clearRect(0, 0, mw, mh);
      m.strokeStyle = "#ffd54a";
      m.lineWidth = 1.5;
      m.strokeRect(view[0] * s + 0.75, view[1] * s + 0.75, Math.max(2, view[2] * s - 1.5), Math.max(2, view[3] * s - 1.5));
      h.map.dataset.view = view.join(",");
    }
    // Scale bar.
    const um = this.options.pixelSizeUm || (this.client && this.client.camera && this.client.camera.pixel_size_um);
    h.scale.hidden = !(um > 0);
    if (um > 0) {
      const bar = scaleBar(um / z, 120 * dpr);
      h.scale.firstChild.style.width = `${bar.px / dpr}px`;
      h.scale.lastChild.textContent = bar.label;
      h.scale.dataset.um = String(bar.um);
    }
    const f = this.frame;
    if (!f) return;
    const g = f.geometry;
    // Saturation badge.
    const saturated = g.saturated !== null ? g.saturated : f.pixels ? countSaturated(f.pixels, g.bitDepth, g.channels === 3 ? 3 : 1) : null;
    h.badge.hidden = !(saturated > 0);
    if (saturated > 0) h.badge.textContent = `saturated: ${saturated.toLocaleString("en-US")} px`;
    h.badge.dataset.count = String(saturated ?? "");
    // Histogram of the camera's counts, with the display range.
    const hist = g.histogram || (f.pixels ? (f._hist ||= sampleHistogram(f.pixels, g.bitDepth, { channels: g.channels === 3 ? 3 : 1 })) : null);
    h.hist.hidden = !hist;
    if (hist) this._drawHistogram(h.hist, hist);
    const now = this._perfNow();
    if (now - this._lastStatsShown > 500) {
      this._lastStatsShown = now;
      const s = this.stats;
      h.latency.hidden = s.latencyP50 === null;
      if (s.latencyP50 !== null) h.latency.textContent = `capture → painted ${Math.round(s.latencyP50)} / ${Math.round(s.latencyP95)} ms`;
    }
  }

  _drawHistogram(cv, hist) {
    const ctx = cv.getContext("2d");
    const { width: w, height: hgt } = cv;
    ctx.clearRect(0, 0, w, hgt);
    const max = Math.max(1, ...hist.bins.map((n) => Math.log1p(n)));
    const bw = w / hist.bins.length;
    ctx.fillStyle = "#9ab";
    hist.bins.forEach((n, i) => {
      const bh = (Math.log1p(n) / max) * (hgt - 2);
      ctx.fillRect(i * bw, hgt - bh, Math.max(1, bw - 0.5), bh);
    });
    const [r0, r1] = hist.range;
    const x = (v) => ((v - r0) / (r1 - r0)) * w;
    ctx.fillStyle = "rgba(255, 213, 74, 0.18)";
    ctx.fillRect(x(this.display.min), 0, x(this.display.max) - x(this.display.min), hgt);
    ctx.strokeStyle = "#ffd54a";
    ctx.beginPath();
    for (const v of [this.display.min, this.display.max]) {
      ctx.moveTo(x(v) + 0.5, 0);
      ctx.lineTo(x(v) + 0.5, hgt);
    }
    ctx.stroke();
    cv.dataset.range = `${this.display.min},${this.display.max}`;
  }
}

function push(list, v) {
  list.push(v);
  if (list.length > HISTORY) list.shift();
}

/**
 * The display controls of a viewer: LUT, min, max, gamma, continuous auto and a one-shot Auto
 * button. Changing them repaints locally (no server message). Returns the element to place.
 */
export function createDisplayControls(viewer, doc = viewer.doc) {
  installStyle(doc);
  const box = el(doc, "div", "lcv-controls", { "data-testid": "viewer-controls" });
  const lut = el(doc, "select", "", { "data-testid": "viewer-lut", "aria-label": "LUT" });
  for (const name of LUTS) lut.append(new Option(name === "hilo" ? "HiLo" : name, name));
  const num = (label, testid, step) => {
    const wrap = el(doc, "label");
    const input = el(doc, "input", "", { type: "number", step, "data-testid": testid });
    wrap.append(doc.createTextNode(label), input);
    return [wrap, input];
  };
  const [minL, min] = num("min", "viewer-min", "1");
  const [maxL, max] = num("max", "viewer-max", "1");
  const [gamL, gamma] = num("γ", "viewer-gamma", "0.05");
  gamma.min = "0.05";
  gamma.max = "10";
  const autoL = el(doc, "label");
  const auto = el(doc, "input", "", { type: "checkbox", "data-testid": "viewer-auto" });
  autoL.append(auto, doc.createTextNode("auto"));
  const once = el(doc, "button", "", { type: "button", "data-testid": "viewer-auto-once", title: "stretch to the 0.1–99.9 % percentiles now" });
  once.textContent = "Auto once";
  const error = el(doc, "span", "lcv-note", { "data-testid": "viewer-display-error" });
  box.append(el(doc, "span", "", {}), lut, minL, maxL, gamL, autoL, once, error);
  box.firstChild.textContent = "Display";
  const show = () => {
    const d = viewer.display;
    lut.value = d.lut;
    if (doc.activeElement !== min) min.value = String(Math.round(d.min));
    if (doc.activeElement !== max) max.value = String(Math.round(d.max));
    if (doc.activeElement !== gamma) gamma.value = String(d.gamma);
    auto.checked = !!d.auto;
  };
  const apply = (changes) => {
    try {
      viewer.setDisplay(changes);
      error.textContent = "";
    } catch (e) {
      error.textContent = e.message;
    }
  };
  lut.addEventListener("change", () => apply({ lut: lut.value }));
  for (const input of [min, max]) input.addEventListener("input", () => apply({ min: Number(min.value), max: Number(max.value), auto: false }));
  gamma.addEventListener("input", () => apply({ gamma: Number(gamma.value) }));
  auto.addEventListener("change", () => apply({ auto: auto.checked }));
  once.addEventListener("click", () => viewer.autoContrast());
  viewer.addEventListener("display", show);
  show();
  return box;
}

export default LabcamViewer;
