// labcam-client.js: the browser client of the labcam stream protocol (docs/protocol.md, version 1).
//
// A dependency-free ES module, no build step; its one import is labcam-raw.js (the raw payload
// decoder) beside it. The test page imports it, the notebook widget imports both from blob: URLs (in
// both its modes; see liveview.js), the Vue app imports it. Types: labcam-client.d.ts.
// Beside the client it exports the helpers those three views share (end of this file): number
// formats, recording-status order, the snapshot file name, bit depth, the settings coalescer, the log
// slider and the overlay texts.
//
//   import { LabcamClient } from "./static/labcam-client.js";
//   const client = new LabcamClient({ url: "http://localhost:8001/", fps: 15 });
//   client.on("frame", ({ bitmap }) => ctx.drawImage(bitmap, 0, 0));
//   client.on("state", ({ state }) => badge.textContent = state);
//   await client.connect();
//   await client.setSettings({ exposure_ms: 5 });   // rejects with the server's message
//   const rec = await client.startRecording({ name: "run1.ome.tif", frames: 500 });
//   client.on("recording", (s) => s.id === rec.id && console.log(s.state, s.frames_written));
//
// Design notes:
// - Frames are never queued. With `decode` on (the default where createImageBitmap exists), at most one
//   decode runs at a time; a frame that arrives meanwhile waits in a one-slot mailbox and a newer one
//   replaces it (counted in `framesSkipped`). A slow page therefore shows the newest frame, late, never
//   an ever-older backlog.
// - Latency is the ping/pong round trip, measured on the client's monotonic clock. The frame age
//   estimate (`frameAgeMs`) uses a clock offset estimated from the same pings (NTP-style, from the
//   fastest round trip), so no clock is trusted.
// - Nothing thrown while handling a socket message escapes the socket handler: malformed messages
//   become `error` events (source "protocol") and the stream carries on.
// - When the server says `request_ids: true` in `connected`, every request (configure/pause/resume,
//   snap, settings, record) carries a `request_id` (a number counting up per client), which the server
//   echoes in the reply and in the `error` refusing it: replies are matched by id, so a `settings` broadcast caused
//   by another client never settles our own setSettings (only the reply with our id does). With an
//   older server (no `request_ids` in `connected`) each kind is matched first-in first-out as before
//   (the server answers each kind in order), an `error` by its `request` field, and a `recording`/
//   `recordings` message with a `reply` field settles the oldest record request.
// - A stream option the server refuses (an `error` with `"request": "connect"`, then close 4400) will be
//   refused again: no reconnect loop. The state becomes "error" with the server's message; connect(),
//   reconnect() or configure() with different options tries again.
// - `transport: "webrtc"` (with `video`: an HTMLVideoElement) plays the picture through Janus
//   (docs/scale-out.md): connect() imports ./dist/labcam-webrtc.js (the bundle scripts/setup.sh
//   builds) only then, so the notebook widget's blob: URLs never try to resolve it. The WebSocket stays
//   for settings, snaps and recordings, with its frames paused. The viewer's status ("connecting",
//   "live", "lost", "refused", "closed") is `webrtcStatus`, announced as a `status` event
//   `{type: "webrtc", webrtc, error, state}` (state: the camera's, as in the server's `status`).

import { decodeRaw, RAW_COMPRESSIONS } from "./labcam-raw.js";

export const PROTOCOL_VERSION = 1;
export const STREAM_PATH = "ws/camera/stream";
export const STATES = Object.freeze(["idle", "connecting", "connected", "reconnecting", "error", "closed"]);
export const SNAP_FORMATS = Object.freeze(["png", "tiff", "npy", "jpeg"]);
/** Close code of a stream refused for a bad option (query parameter); retrying the same options fails again. */
export const CLOSE_BAD_OPTION = 4400;
/**
 * The stream options' ranges, [minimum, maximum] (docs/protocol.md; the server's are the truth, these are
 * what a server of protocol version 1 accepts). quality and max_width are whole numbers.
 */
export const STREAM_OPTION_RANGES = Object.freeze({
  fps: Object.freeze([0.1, 1000]),
  quality: Object.freeze([1, 100]),
  max_width: Object.freeze([16, 16384]),
  size: Object.freeze([16, 16384]),
  view: Object.freeze([0, 65536]),
});
/** The `encoding` stream option's values: JPEG of the 8-bit mapping (default), the raw counts, or H.264 (decoded with WebCodecs). */
export const ENCODINGS = Object.freeze(["jpeg", "raw", "h264"]);
/** How the picture travels: labcam's WebSocket (default) or WebRTC through Janus (api/webrtc). */
export const TRANSPORTS = Object.freeze(["websocket", "webrtc"]);
/** The WebRTC viewer's module, beside this file; imported only for transport "webrtc". */
const WEBRTC_MODULE = "./dist/labcam-webrtc.js";

/** The codec the H.264 support check asks the browser about (constrained baseline, level 3.1), as libx264 sends it. */
export const H264_PROBE_CODEC = "avc1.42E01F";
/** The colour space of the server's H.264 stream: full-range BT.601 (mono: luma with neutral chroma). */
export const H264_COLOR_SPACE = Object.freeze({ fullRange: true, matrix: "smpte170m", primaries: "smpte170m", transfer: "smpte170m" });
/** Access units waiting in the VideoDecoder beyond which deltas are dropped until the next keyframe. */
export const H264_MAX_DECODE_QUEUE = 2;

/**
 * Why this browser cannot decode the H.264 stream (a sentence for the status), or null when it can:
 * a secure context (https, localhost, 127.0.0.1), WebCodecs' VideoDecoder and its H.264 support are
 * all needed. `env` is the global object (a parameter so the decision can be checked anywhere). Never rejects.
 */
export async function h264Unsupported(env = globalThis) {
  if (env.isSecureContext === false) return "not a secure context (https or localhost needed for WebCodecs): JPEG instead of H.264";
  const Decoder = env.VideoDecoder;
  if (typeof Decoder !== "function") return "this browser has no WebCodecs VideoDecoder: JPEG instead of H.264";
  if (typeof env.EncodedVideoChunk !== "function") return "this browser has no WebCodecs EncodedVideoChunk: JPEG instead of H.264";
  try {
    const support = await Decoder.isConfigSupported({ codec: H264_PROBE_CODEC, optimizeForLatency: true });
    if (!support || support.supported !== true) return `this browser cannot decode H.264 (${H264_PROBE_CODEC}): JPEG instead`;
  } catch (e) {
    return `this browser cannot decode H.264 (${(e && e.message) || e}): JPEG instead`;
  }
  return null;
}
/** The `compression` stream option's values (raw frames only; the browser inflates deflate natively). */
export const COMPRESSIONS = RAW_COMPRESSIONS;

const MIME = { jpeg: "image/jpeg", jpg: "image/jpeg", png: "image/png", tiff: "image/tiff", npy: "application/x-npy" };

const CLOSE_REASONS = {
  1000: "closed normally",
  1001: "the server went away (shutdown or restart)",
  1006: "the connection failed or dropped (server unreachable, or the handshake was refused: token or origin)",
  1008: "refused by the server (policy)",
  1009: "a message was too big",
  1011: "the server hit an internal error",
  1013: "the server is busy",
  4400: "the server refused a stream option",
};

/** An error of the labcam client or a rejection by the server. `response` is the server's error message, if any. */
export class LabcamError extends Error {
  constructor(message, { request = null, response = null, code = null } = {}) {
    super(message);
    this.name = "LabcamError";
    this.request = request;
    this.response = response;
    this.code = code;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function toBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // ArrayBuffers from another realm (iframe, vm) fail instanceof.
  if (data && Object.prototype.toString.call(data) === "[object ArrayBuffer]") return new Uint8Array(data);
  throw new TypeError("a binary message must be an ArrayBuffer or a typed array");
}

/**
 * Split a binary stream message: `| N: uint32 big-endian | N bytes UTF-8 JSON header | payload |`.
 * Returns `{header, payload}` (payload: a Uint8Array view, no copy). Throws a LabcamError (code
 * "protocol") when the message is malformed.
 */
export function parseBinaryMessage(data) {
  const bytes = toBytes(data);
  if (bytes.byteLength < 4) {
    throw new LabcamError(`binary message too short (${bytes.byteLength} bytes; the header length takes 4)`, { code: "protocol" });
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  if (4 + n > bytes.byteLength) {
    throw new LabcamError(`binary message header length ${n} exceeds the message (${bytes.byteLength} bytes)`, { code: "protocol" });
  }
  let header;
  try {
    header = JSON.parse(utf8.decode(bytes.subarray(4, 4 + n)));
  } catch (e) {
    throw new LabcamError(`binary message header is not UTF-8 JSON: ${e.message}`, { code: "protocol" });
  }
  if (!isObject(header)) throw new LabcamError("binary message header is not a JSON object", { code: "protocol" });
  return { header, payload: bytes.subarray(4 + n) };
}

/** Decode standard base64 into bytes. Throws on bad input. */
export function base64ToBytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function checkNumber(name, value, min, max, integer = false) {
  if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new RangeError(`${name}=${JSON.stringify(value)} is not allowed: ${integer ? "a whole number" : "a number"} from ${min} to ${max}`);
  }
  return value;
}

/** Normalise a display range: "auto", [min, max] or "MIN,MAX" -> "auto" | [min, max]. null/undefined pass through. */
export function normalizeDisplay(display) {
  if (display === null || display === undefined) return display;
  if (display === "auto") return "auto";
  let pair = display;
  if (typeof display === "string") pair = display.split(",").map((s) => (s.trim() === "" ? NaN : Number(s)));
  if (!Array.isArray(pair) || pair.length !== 2) {
    throw new RangeError(`display=${JSON.stringify(display)} is not allowed: "auto" or [min, max]`);
  }
  const [lo, hi] = pair;
  if (![lo, hi].every((v) => typeof v === "number" && Number.isInteger(v)) || lo < 0 || lo >= hi) {
    throw new RangeError(`display=${JSON.stringify(display)} is not allowed: "auto" or [min, max] of whole numbers, 0 <= min < max`);
  }
  return [lo, hi];
}

/**
 * Normalise a view: "full", [x, y, w, h] or "X,Y,W,H" (whole sensor pixels, w and h >= 1) ->
 * "full" | [x, y, w, h]. null/undefined pass through. Throws RangeError naming `view`.
 */
export function normalizeView(view) {
  if (view === null || view === undefined || view === "full") return view;
  let quad = view;
  if (typeof view === "string") quad = view.split(",").map((s) => (s.trim() === "" ? NaN : Number(s)));
  const [lo, hi] = STREAM_OPTION_RANGES.view;
  const ok =
    Array.isArray(quad) &&
    quad.length === 4 &&
    quad.every((v) => Number.isInteger(v) && v >= lo && v <= hi) &&
    quad[2] >= 1 &&
    quad[3] >= 1;
  if (!ok) {
    throw new RangeError(`view=${JSON.stringify(view)} is not allowed: "full" or [x, y, w, h] of whole sensor pixels, x, y >= 0, w, h >= 1, each at most ${hi}`);
  }
  return [quad[0], quad[1], quad[2], quad[3]];
}

/** Normalise a size (the device-pixel box a view must fit): [w, h] or "W,H" -> [w, h]. Throws RangeError naming `size`. */
export function normalizeSize(size) {
  if (size === null || size === undefined) return size;
  let pair = size;
  if (typeof size === "string") pair = size.split(",").map((s) => (s.trim() === "" ? NaN : Number(s)));
  const [lo, hi] = STREAM_OPTION_RANGES.size;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => Number.isInteger(v) && v >= lo && v <= hi)) {
    throw new RangeError(`size=${JSON.stringify(size)} is not allowed: [w, h] of whole device pixels, each from ${lo} to ${hi}`);
  }
  return [pair[0], pair[1]];
}

function checkChoice(name, value, choices) {
  if (!choices.includes(value)) throw new RangeError(`${name}=${JSON.stringify(value)} is not allowed: one of ${choices.join(", ")}`);
  return value;
}

/** The stream options of issue 11 (view-aware streaming): sent in `configure` only to a server that knows them. */
export const VIEW_OPTION_KEYS = Object.freeze(["view", "size", "encoding", "compression"]);

/**
 * Check stream options (camelCase; `null` = the server's default, `undefined` = leave unchanged) and
 * return them in protocol form (`max_width`, display as "auto" | [min, max]). Throws RangeError.
 */
export function normalizeStreamOptions(options = {}) {
  const out = {};
  for (const key of Object.keys(options)) {
    const value = options[key];
    if (value === undefined) continue;
    switch (key) {
      case "fps":
        out.fps = value === null ? null : checkNumber("fps", value, ...STREAM_OPTION_RANGES.fps);
        break;
      case "quality":
        out.quality = value === null || value === "auto" ? value : checkNumber("quality", value, ...STREAM_OPTION_RANGES.quality, true);
        break;
      case "maxWidth":
        out.max_width = value === null ? null : checkNumber("maxWidth", value, ...STREAM_OPTION_RANGES.max_width, true);
        break;
      case "display":
        out.display = normalizeDisplay(value);
        break;
      case "view":
        out.view = normalizeView(value);
        break;
      case "size":
        out.size = normalizeSize(value);
        break;
      case "encoding":
        out.encoding = value === null ? null : checkChoice("encoding", value, ENCODINGS);
        break;
      case "compression":
        out.compression = value === null ? null : checkChoice("compression", value, COMPRESSIONS);
        break;
      default:
        throw new TypeError(`unknown stream option ${JSON.stringify(key)} (known: fps, quality, maxWidth, display, view, size, encoding, compression)`);
    }
  }
  return out;
}

/**
 * The stream's WebSocket URL. `base` is either the stream URL itself (ending in ws/camera/stream) or
 * the server's root (`http://localhost:8001/`, `https://hub/user/x/labcam/`); http(s) becomes ws(s).
 * A relative `base` is resolved against `location` in a browser. `options`: format, fps, quality,
 * maxWidth, display, token; `null`/`undefined` ones are left out (server defaults). Parameters already
 * in `base` are kept unless an option replaces them. Throws TypeError/RangeError on bad input.
 */
export function buildStreamUrl(base, options = {}) {
  let url;
  try {
    const here = globalThis.location && globalThis.location.href;
    url = here ? new URL(String(base), here) : new URL(String(base));
  } catch {
    throw new TypeError(`not a valid URL: ${JSON.stringify(String(base))}`);
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`not an http(s) or ws(s) URL: ${url.href}`);
  }
  if (!/(^|\/)ws\/camera\/stream\/?$/.test(url.pathname)) {
    url.pathname = (url.pathname.endsWith("/") ? url.pathname : url.pathname + "/") + STREAM_PATH;
  }
  url.hash = "";
  const { format, token, ...rest } = options;
  if (format !== undefined && format !== null) {
    if (format !== "binary" && format !== "json") throw new RangeError(`format=${JSON.stringify(format)} is not allowed: "binary" or "json"`);
    url.searchParams.set("format", format);
  }
  const stream = normalizeStreamOptions(rest);
  for (const [key, value] of Object.entries(stream)) {
    if (value === null) continue;
    url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  if (token) url.searchParams.set("token", String(token));
  return url.href;
}

/** The WebSocket URL of a page served by labcam: the page's own directory + ws/camera/stream. */
export function pageStreamBase(href = globalThis.location && globalThis.location.href) {
  return new URL(".", href).href;
}

function describeClose(code, reason) {
  const what = CLOSE_REASONS[code] || `closed (code ${code})`;
  return reason ? `${what}: ${reason}` : what;
}

function makeEvent(type, detail) {
  if (typeof CustomEvent === "function") return new CustomEvent(type, { detail });
  const ev = new Event(type);
  Object.defineProperty(ev, "detail", { value: detail });
  return ev;
}

const DEFAULTS = {
  url: undefined,
  token: undefined,
  format: "binary",
  fps: undefined,
  quality: "auto", // the server fits quality, size and fps to this viewer's link; a number pins it
  maxWidth: undefined,
  display: undefined,
  view: undefined,
  size: undefined,
  encoding: undefined,
  compression: undefined,
  decode: undefined, // default: true where createImageBitmap exists
  autoReconnect: true,
  reconnectDelay: 3000,
  connectTimeout: 10000,
  pingInterval: 2000,
  staleTimeout: 10000,
  requestTimeout: 15000,
  statsInterval: 1000,
  pauseWhenHidden: true,
  transport: "websocket",
  video: undefined, // transport "webrtc": the <video> element the stream plays in
  WebSocket: undefined,
  now: undefined,
};

const OPEN = 1;

/**
 * The labcam stream client. An EventTarget: listen with addEventListener (event.detail) or `on()`
 * (the listener gets the detail). See labcam-client.d.ts for every option, event and message.
 */
export class LabcamClient extends EventTarget {
  constructor(options = {}) {
    super();
    if (!options || options.url === undefined || options.url === null || options.url === "") {
      throw new TypeError("LabcamClient needs options.url: the server's root or the stream URL");
    }
    for (const key of Object.keys(options)) {
      if (!Object.prototype.hasOwnProperty.call(DEFAULTS, key)) throw new TypeError(`unknown LabcamClient option ${JSON.stringify(key)}`);
    }
    this.options = { ...DEFAULTS, ...options };
    if (!TRANSPORTS.includes(this.options.transport)) {
      throw new RangeError(`transport=${JSON.stringify(this.options.transport)} is not allowed: "websocket" or "webrtc"`);
    }
    if (this.options.transport === "webrtc" && (!this.options.video || typeof this.options.video !== "object")) {
      throw new TypeError('transport "webrtc" needs options.video: the <video> element to play in');
    }
    if (this.options.decode === undefined) this.options.decode = typeof globalThis.createImageBitmap === "function";
    this._now = typeof this.options.now === "function" ? this.options.now : () => globalThis.performance.now();
    this._epochBase = Date.now() - this._now();
    // Fail early on bad options: the server would refuse every connection with them (close 4400).
    this.url = buildStreamUrl(this.options.url, this._urlOptions());

    this._state = "idle";
    this._ws = null;
    this._session = 0;
    this._manualClose = false;
    this._attempt = 0;
    this._reconnects = 0;
    this._timers = { reconnect: null, connect: null, ping: null, stats: null };
    this._waiters = [];
    this._pending = { configure: [], snap: [], settings: [], record: [], probe: [] };
    this._requestSeq = 0;
    this._echoesIds = false; // the server echoes request_id (said so in `connected`)
    this._connectError = null; // the server's `error` ("request": "connect") before it closed with 4400
    this._refusedUrl = null; // the URL the server refused (4400): not retried until the options change
    this._pings = new Map();
    this._pingId = 0;
    this._userPaused = false;
    this._hidden = false;
    this._serverPaused = false;
    this._lastTick = null;
    this._visibilityHandler = null;
    this._blobChain = Promise.resolve();
    this._queryView = {};
    this._viewAware = false; // the server knows view/size/encoding (its stream options or frame headers say so)
    this._viewPush = settingsCoalescer((changes) => this._sendView(changes));
    this._h264Checked = false; // the browser's H.264 support was checked (once, before the first h264 connection)
    this._h264 = null; // {decoder, codec, pending: Map(chunk timestamp -> frame), needKey, seq}
    /** Why the client streams JPEG though it was asked for H.264 (a sentence), or null. */
    this.fallbackReason = null;

    /** The server's `connected` message of the current (or last) connection. */
    this.serverInfo = null;
    this.camera = null;
    this.settings = null;
    this.specs = {};
    this.stream = null;
    /** The camera's state: "streaming" | "idle" | "lost" (from `connected` and `status`), or null. */
    this.cameraState = null;
    /** The last `stats` message of the server, or null. */
    this.serverStats = null;
    /** The last `frame` event's detail (its bitmap is valid until the next frame), or null. */
    this.lastFrame = null;
    /** transport "webrtc": the WebRTCViewer (dist/labcam-webrtc.js) once imported, its status and error. */
    this.webrtc = null;
    this.webrtcStatus = this.options.transport === "webrtc" ? "closed" : null;
    this.webrtcError = "";
    this._webrtcStarting = null;
    this._resetCounters();
  }

  // ---- public API -------------------------------------------------------------------------

  get state() {
    return this._state;
  }

  get connected() {
    return this._state === "connected";
  }

  get paused() {
    return this._userPaused;
  }

  /** Client-side figures (see ClientStats in the .d.ts); also sent with every `stats` event. */
  get stats() {
    return this._clientStats();
  }

  /** Listen to an event; the listener gets the event's detail. Returns a function that removes it. */
  on(type, listener) {
    const handler = (ev) => listener(ev.detail, ev);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /**
   * Open the stream (no-op while connecting or connected; while reconnecting, retry now). Resolves
   * with the server's `connected` message; rejects if the client is disconnected (or gives up,
   * with autoReconnect off) first. Reconnects after failures unless `autoReconnect` is false.
   */
  connect() {
    const promise = new Promise((resolve, reject) => {
      if (this._state === "connected") return resolve(this.serverInfo);
      this._waiters.push({ resolve, reject });
    });
    promise.catch(() => {}); // a caller that does not await must not get an unhandled rejection
    if (this._state === "connecting" || this._state === "connected") return promise;
    if (this._state === "reconnecting") {
      if (this._timers.reconnect !== null) {
        this._clearTimer("reconnect");
        this._open("reconnecting");
      }
      return promise;
    }
    this._manualClose = false;
    this._refusedUrl = null;
    this._attempt = 0;
    this._resetCounters();
    this._installVisibility();
    if (this.options.encoding === "h264" && !this._h264Checked) {
      // Ask the browser first: without H.264 decoding the first connection already asks for JPEG.
      this._setState("connecting");
      const session = this._session;
      h264Unsupported().then((why) => {
        this._h264Checked = true;
        if (why) this._fallBackToJpeg(why, false);
        if (session === this._session && this._state === "connecting" && this._ws === null) this._open("connecting");
      });
      return promise;
    }
    this._open("connecting");
    this._startWebRTC();
    return promise;
  }

  /** Drop the current connection (if any) and connect again now. */
  reconnect() {
    if (this._state === "idle" || this._state === "closed" || this._state === "error") return this.connect();
    this._dropSocket(1000, "reconnecting");
    this._teardownConnection(new LabcamError("reconnecting", { code: "closed" }));
    this._clearTimer("reconnect");
    this._attempt = 0;
    const promise = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    promise.catch(() => {});
    this._open("connecting");
    return promise;
  }

  /** Close the stream for good (no reconnect). State becomes "closed". */
  disconnect(reason = "disconnected") {
    this._manualClose = true;
    this._session++;
    this._clearTimer("reconnect");
    this._dropSocket(1000, reason);
    this._teardownConnection(new LabcamError(`connection closed: ${reason}`, { code: "closed" }));
    this._removeVisibility();
    this._nextFrame = null;
    this._stopWebRTC();
    this._closeH264();
    if (this._state !== "idle" && this._state !== "closed") {
      this._log("info", `disconnected (${reason})`);
      this._setState("closed", { reason });
    }
    this._rejectWaiters(new LabcamError(`connection closed: ${reason}`, { code: "closed" }));
  }

  /**
   * Change this client's stream options (fps, quality, maxWidth, display; `null` resets one to the
   * server's default). Kept for reconnects. Resolves with the options in force (`configured`), or
   * rejects with the server's message. Not connected: resolves with the local options.
   */
  configure(changes = {}) {
    let normalized;
    try {
      if (changes && "format" in changes) throw new TypeError("format is fixed per connection: create a client with the other format");
      normalized = normalizeStreamOptions(changes);
    } catch (e) {
      return Promise.reject(e);
    }
    for (const [key, value] of Object.entries(changes)) if (value !== undefined) this.options[key] = value;
    this.url = buildStreamUrl(this.options.url, this._urlOptions());
    if (this._refusedUrl !== null && this._state === "error" && this.url !== this._refusedUrl) {
      // The server refused the previous options (4400): these may do, so try again.
      this._log("info", "stream options changed: connecting again");
      this.connect().catch(() => {});
    }
    if (!this._viewAware) {
      // An older server refuses configure fields it does not know: these wait in the options (and
      // go in the query of the next connection, which it ignores).
      for (const key of VIEW_OPTION_KEYS) delete normalized[key];
    }
    if (!this._isOpen() || Object.keys(normalized).length === 0) {
      return Promise.resolve(this.stream ? { ...this.stream, ...normalized } : { format: this.options.format, ...normalized });
    }
    return this._request("configure", { type: "configure", ...normalized });
  }

  /** Whether the server knows the view-aware options (view, size, encoding, compression). */
  get viewAware() {
    return this._viewAware;
  }

  /**
   * Change the view-aware options ({view, size, encoding, compression}), coalesced: one configure in
   * flight, changes made meanwhile merged (latest wins) and sent when it settles. Zoom and pan call
   * this on every wheel step; the server sees at most one request per round trip. Resolves with the
   * options in force; the options are kept for reconnects either way.
   */
  requestView(changes = {}) {
    try {
      for (const key of Object.keys(changes)) {
        if (!VIEW_OPTION_KEYS.includes(key)) throw new TypeError(`requestView takes ${VIEW_OPTION_KEYS.join(", ")}, not ${JSON.stringify(key)}`);
      }
      normalizeStreamOptions(changes);
    } catch (e) {
      return Promise.reject(e);
    }
    if (changes.encoding === "h264" && this.fallbackReason) changes = { ...changes, encoding: "jpeg" }; // known not to decode here
    for (const [key, value] of Object.entries(changes)) if (value !== undefined) this.options[key] = value;
    return this._viewPush(changes);
  }

  _sendView(changes) {
    // The options as they are when the request leaves (latest wins), and only those the server
    // was not already told on this connection (a resize to the same box sends nothing).
    const current = {};
    for (const key of Object.keys(changes)) {
      const value = this.options[key];
      if (JSON.stringify(value) !== JSON.stringify(this._queryView[key])) current[key] = value;
    }
    const told = this._queryView;
    const sent = this.configure(current);
    // Refused values are not "told": the next request carries them again.
    if (this._viewAware && this._isOpen()) sent.then(() => Object.assign(told, current), () => {});
    return sent;
  }

  /**
   * The counts of the sensor pixels x..x+w, y..y+h (w, h up to 64) of the latest full-bit-depth
   * frame: resolves with the server's `probe` reply ({values, frame_number, bit_depth, ...}); rejects
   * with the server's message (outside the frame) or, with an older server, a timeout.
   */
  probe(x, y, w = 1, h = 1) {
    const whole = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
    if (!whole(x, 0, 65536) || !whole(y, 0, 65536) || !whole(w, 1, 64) || !whole(h, 1, 64)) {
      return Promise.reject(new RangeError(`probe(${x}, ${y}, ${w}, ${h}) is not allowed: whole sensor pixels x, y >= 0 and w, h from 1 to 64`));
    }
    if (!this._isOpen()) return Promise.reject(new LabcamError("not connected", { request: "probe", code: "closed" }));
    return this._request("probe", { type: "probe", x, y, w, h });
  }

  /**
   * Milliseconds from a frame's capture (`meta.timestamp`, the server's clock) to the client's
   * monotonic time `t` (default: now), through the clock offset estimated from pings; null until
   * a ping has come back or when the frame has no timestamp.
   */
  captureAgeMs(meta, t = this._now()) {
    if (!meta || typeof meta.timestamp !== "number" || this._clockOffset === null) return null;
    return this._epochNow(t) + this._clockOffset - meta.timestamp * 1000;
  }

  /** Measure the round trip to the server. Resolves with the RTT in milliseconds. */
  ping() {
    if (!this._isOpen()) return Promise.reject(new LabcamError("not connected", { request: "ping", code: "closed" }));
    const id = ++this._pingId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pings.delete(id);
        reject(new LabcamError(`no pong within ${this.options.requestTimeout} ms`, { request: "ping", code: "timeout" }));
      }, this.options.requestTimeout);
      this._pings.set(id, { t0: this._now(), resolve, reject, timer });
      try {
        this._send({ type: "ping", id });
      } catch (e) {
        clearTimeout(timer);
        this._pings.delete(id);
        reject(e);
      }
    });
  }

  /**
   * The next full-resolution frame: "png" (default) | "tiff" | "npy" (lossless, 12/16-bit kept) or
   * "jpeg". Resolves with {blob, meta}; rejects with the server's message.
   */
  snap(format = "png") {
    if (!SNAP_FORMATS.includes(format)) {
      return Promise.reject(new RangeError(`snap format ${JSON.stringify(format)} is not allowed: one of ${SNAP_FORMATS.join(", ")}`));
    }
    return this._request("snap", { type: "snap", format }, { format });
  }

  /**
   * Change camera settings (validated as a whole by the server: nothing changes on error). Resolves
   * with the new settings; rejects with the server's message (error.message), e.g.
   * "exposure_ms=5000 is not allowed: a number from 0.01 to 1000 ms".
   */
  setSettings(changes) {
    if (!isObject(changes)) return Promise.reject(new TypeError("setSettings needs an object of changes"));
    return this._request("settings", { type: "settings", changes });
  }

  /**
   * Start recording every frame to a file in the server's recordings folder. `opts`: `name`
   * ("run1.ome.tif", "day1/run2.ome.zarr"; relative to that folder), `frames` and/or `duration`
   * (seconds; neither: until stopRecording), `format` ("ome-tiff" | "ome-zarr", default from the
   * suffix), `overwrite`. Resolves with the recording's status (its `id`); rejects with the server's
   * message (a refused name, too many recordings). Progress arrives as `recording` events.
   */
  startRecording(opts = {}) {
    const msg = { type: "record", action: "start" };
    try {
      if (!isObject(opts)) throw new TypeError("startRecording needs an object: { name, frames?, duration?, format?, overwrite? }");
      for (const key of Object.keys(opts)) {
        if (!["name", "frames", "duration", "format", "overwrite"].includes(key)) throw new TypeError(`unknown recording option ${JSON.stringify(key)} (known: name, frames, duration, format, overwrite)`);
      }
      if (typeof opts.name !== "string" || opts.name.trim() === "") throw new TypeError('a recording needs a name, such as "run1.ome.tif"');
      msg.name = opts.name;
      const { frames, duration } = opts;
      if (frames !== undefined && frames !== null) {
        if (!Number.isSafeInteger(frames) || frames < 1) throw new RangeError(`frames=${JSON.stringify(frames)} is not allowed: a whole number >= 1 (or leave it out)`);
        msg.frames = frames;
      }
      if (duration !== undefined && duration !== null) {
        if (typeof duration !== "number" || !Number.isFinite(duration) || duration <= 0) throw new RangeError(`duration=${JSON.stringify(duration)} is not allowed: a number of seconds > 0 (or leave it out)`);
        msg.duration = duration;
      }
      if (opts.format !== undefined && opts.format !== null) msg.format = String(opts.format);
      if (opts.overwrite !== undefined) msg.overwrite = !!opts.overwrite;
    } catch (e) {
      return Promise.reject(e);
    }
    return this._request("record", msg);
  }

  /** Stop a recording: resolves with its status once the server has closed the file (or after a few seconds, with the state reached). */
  stopRecording(id) {
    if (typeof id !== "string" || !id) return Promise.reject(new TypeError("stopRecording needs the recording's id"));
    return this._request("record", { type: "record", action: "stop", id });
  }

  /** Every recording the server knows (running and recently finished): resolves with an array of statuses. */
  recordings() {
    return this._request("record", { type: "record", action: "status" });
  }

  /** Stop frames for this client (kept across reconnects until resume()). */
  pause() {
    this._userPaused = true;
    return this._syncPause();
  }

  /** Restart frames for this client. */
  resume() {
    this._userPaused = false;
    return this._syncPause();
  }

  // ---- connection lifecycle ---------------------------------------------------------------

  _urlOptions() {
    const o = this.options;
    return {
      format: o.format,
      fps: o.fps,
      quality: o.quality,
      maxWidth: o.maxWidth,
      display: o.display,
      view: o.view,
      size: o.size,
      encoding: o.encoding,
      compression: o.compression,
      token: o.token,
    };
  }

  // ---- WebRTC (transport "webrtc") ---------------------------------------------------------

  /** The inbound video's counters (framesDecoded, framesPerSecond, ...; RTCPeerConnection.getStats()), or null. */
  async webrtcStats() {
    return this.webrtc ? this.webrtc.stats() : null;
  }

  /** labcam's root over http(s), from the stream URL: where api/webrtc is. */
  _httpBase() {
    const url = new URL(this.url);
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    url.pathname = url.pathname.replace(/ws\/camera\/stream\/?$/, "");
    url.search = "";
    return url.href;
  }

  _setWebRTCStatus(status, error = "") {
    if (this.webrtcStatus === status && this.webrtcError === error) return;
    this.webrtcStatus = status;
    this.webrtcError = error;
    this._log(status === "lost" || status === "refused" ? "warn" : "info", `WebRTC via Janus: ${status}${error ? ` (${error})` : ""}`);
    this._emit("status", { type: "webrtc", webrtc: status, error, state: this.cameraState });
  }

  _startWebRTC() {
    if (this.options.transport !== "webrtc" || this._webrtcStarting) return;
    this._setWebRTCStatus("connecting");
    const starting = (this._webrtcStarting = import(/* @vite-ignore */ WEBRTC_MODULE).then(({ WebRTCViewer }) => {
      if (starting !== this._webrtcStarting) return; // disconnected meanwhile
      const viewer = new WebRTCViewer({ base: this._httpBase(), token: this.options.token, video: this.options.video });
      viewer.addEventListener("status", (ev) => {
        if (viewer === this.webrtc && ev.detail.status !== "closed") this._setWebRTCStatus(ev.detail.status, ev.detail.error);
      });
      this.webrtc = viewer;
      viewer.connect().catch(() => {}); // refused or lost: its status says so (and it retries a loss)
    }, (e) => {
      if (starting !== this._webrtcStarting) return;
      this._webrtcStarting = null;
      const message = `cannot load the WebRTC viewer ${WEBRTC_MODULE} (scripts/setup.sh builds it): ${e && e.message}`;
      this._emit("error", { message, source: "client" });
      this._setWebRTCStatus("lost", message);
    }));
  }

  _stopWebRTC() {
    if (this.options.transport !== "webrtc") return;
    this._webrtcStarting = null;
    const viewer = this.webrtc;
    this.webrtc = null;
    if (viewer) viewer.close();
    this._setWebRTCStatus("closed");
  }

  _isOpen() {
    return this._ws !== null && this._ws.readyState === OPEN;
  }

  _setState(state, extra = {}) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit("state", { state, previous, ...extra });
  }

  _open(state) {
    this._setState(state, state === "reconnecting" ? { attempt: this._attempt } : {});
    let ws;
    try {
      this.url = buildStreamUrl(this.options.url, this._urlOptions());
      const WS = this.options.WebSocket || globalThis.WebSocket;
      if (typeof WS !== "function") throw new LabcamError("no WebSocket implementation (pass options.WebSocket)");
      this._log("info", `connecting to ${redact(this.url)}`);
      ws = new WS(this.url);
    } catch (e) {
      // A bad URL or a missing WebSocket will not fix itself: no retry.
      this._log("error", `cannot connect: ${e.message}`);
      this._emit("error", { message: e.message, source: "client" });
      this._setState("error", { reason: e.message });
      this._rejectWaiters(e);
      return;
    }
    try {
      ws.binaryType = "arraybuffer";
    } catch {
      /* some implementations have no binaryType: Blob messages are handled too */
    }
    this._ws = ws;
    this._serverPaused = false;
    this._gotHello = false;
    this._echoesIds = false;
    this._viewAware = false;
    this._queryView = Object.fromEntries(VIEW_OPTION_KEYS.map((k) => [k, this.options[k]])); // what this connection's server was told
    this._connectError = null;
    ws.onopen = () => {
      if (ws === this._ws) this._log("debug", "socket open, waiting for the server's hello");
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      try {
        this._onMessage(ev.data);
      } catch (e) {
        this._protocolError(`could not handle a message: ${e && e.message}`);
      }
    };
    ws.onerror = () => {
      if (ws === this._ws) this._log("debug", "socket error (the close event says more)");
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._onClose(ev ? ev.code : 1006, ev ? ev.reason : "");
    };
    this._clearTimer("connect");
    if (this.options.connectTimeout > 0) {
      this._timers.connect = setTimeout(() => {
        this._timers.connect = null;
        if (ws !== this._ws || this._state === "connected") return;
        this._log("warn", `no answer from the server within ${this.options.connectTimeout} ms`);
        this._dropSocket(4000, "connect timeout");
        this._onClose(4000, "no answer within the connect timeout");
      }, this.options.connectTimeout);
    }
  }

  /** The server's hello (`connected`), or null when a stream message came first (an older server). */
  _onHello(msg) {
    if (msg) {
      if (msg.protocol !== undefined && msg.protocol !== PROTOCOL_VERSION) {
        this._log("warn", `the server speaks protocol ${msg.protocol}; this client knows ${PROTOCOL_VERSION}`);
      }
      this.serverInfo = msg;
      this.camera = isObject(msg.camera) ? msg.camera : null;
      this.settings = isObject(msg.settings) ? msg.settings : null;
      this.specs = isObject(msg.specs) ? msg.specs : {};
      this.stream = isObject(msg.stream) ? msg.stream : null;
      this._viewAware = !!this.stream && VIEW_OPTION_KEYS.some((k) => k in this.stream);
      this.cameraState = typeof msg.state === "string" ? msg.state : null;
      this._echoesIds = msg.request_ids === true;
    }
    if (this._gotHello) {
      // A late hello (after a frame) only updates what we know.
      if (msg) this._emit("connected", msg);
      return;
    }
    this._gotHello = true;
    this._clearTimer("connect");
    if (this._attempt > 0 || this._state === "reconnecting") this._reconnects++;
    this._attempt = 0;
    const cam = this.camera ? ` to ${this.camera.model || this.camera.driver || "camera"}${this.camera.serial ? ` (${this.camera.serial})` : ""}` : "";
    this._log("info", `connected${cam}${msg && msg.client_id ? ` as ${msg.client_id}` : ""}`);
    this._setState("connected");
    if (msg) this._emit("connected", msg);
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) w.resolve(msg);
    if (this.options.pingInterval > 0) {
      this._lastTick = this._now();
      this._timers.ping = setInterval(() => this._tick(), this.options.pingInterval);
      this.ping().catch(() => {});
    }
    if (this.options.statsInterval > 0) {
      this._statsMark = { t: this._now(), frames: this._frames, decoded: this._decoded, bytes: this._bytes };
      this._timers.stats = setInterval(() => this._emitStats(), this.options.statsInterval);
    }
    this._syncPause().catch(() => {});
  }

  _tick() {
    if (!this._isOpen()) return;
    const now = this._now();
    // A late tick means this page was frozen or throttled (busy main thread, background tab):
    // messages may be waiting in the task queue, so silence proves nothing this time.
    const late = this._lastTick !== null && now - this._lastTick > 2 * this.options.pingInterval;
    this._lastTick = now;
    const silent = now - this._lastMessageAt;
    if (!late && this.options.staleTimeout > 0 && silent > this.options.staleTimeout) {
      this._log("warn", `nothing heard from the server for ${Math.round(silent)} ms: the connection is dead`);
      this._dropSocket(4001, "stale");
      this._onClose(4001, "nothing heard from the server");
      return;
    }
    this.ping().catch(() => {});
  }

  _onClose(code, reason) {
    const wasConnected = this._state === "connected";
    this._ws = null;
    const message = describeClose(code, reason);
    this._teardownConnection(new LabcamError(`connection closed: ${message}`, { code: "closed" }));
    if (this._manualClose) return;
    if (code === CLOSE_BAD_OPTION) {
      // Refused for a bad option: the same URL would be refused again, so no reconnect loop.
      const response = this._connectError;
      const why = response && typeof response.message === "string" && response.message ? response.message : reason || message;
      this._refusedUrl = this.url;
      this._log("error", `the server refused the stream options: ${why}`);
      this._emit("error", { message: why, source: "server", request: "connect", code, response });
      this._setState("error", { reason: why, code });
      this._rejectWaiters(new LabcamError(why, { request: "connect", response, code: "server" }));
      return;
    }
    this._log(wasConnected ? "warn" : "info", wasConnected ? `connection lost: ${message}` : `could not connect: ${message}`);
    if (this.options.autoReconnect) {
      this._scheduleReconnect(message);
    } else if (code === 1000 || code === 1001) {
      this._setState("closed", { reason: message, code });
      this._rejectWaiters(new LabcamError(`connection closed: ${message}`, { code: "closed" }));
    } else {
      this._emit("error", { message, source: "socket", code });
      this._setState("error", { reason: message, code });
      this._rejectWaiters(new LabcamError(`connection failed: ${message}`, { code: "closed" }));
    }
  }

  _scheduleReconnect(reason) {
    this._attempt++;
    const d = this.options.reconnectDelay;
    let delay = typeof d === "function" ? Number(d(this._attempt)) : Number(d);
    if (!Number.isFinite(delay) || delay < 0) delay = 3000;
    this._log("info", `reconnecting in ${fmtSeconds(delay)} (attempt ${this._attempt})`);
    this._setState("reconnecting", { reason, attempt: this._attempt, retryIn: delay });
    this._clearTimer("reconnect");
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      if (!this._manualClose) this._open("reconnecting");
    }, delay);
  }

  _dropSocket(code, reason) {
    const ws = this._ws;
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** Stop this connection's timers and reject its pending requests (the client itself carries on). */
  _teardownConnection(error) {
    for (const name of ["connect", "ping", "stats"]) this._clearTimer(name);
    for (const [, p] of this._pings) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this._pings.clear();
    for (const queue of Object.values(this._pending)) {
      for (const p of queue.splice(0)) {
        clearTimeout(p.timer);
        p.reject(error);
      }
    }
    this._serverPaused = false;
    this._blobChain = Promise.resolve();
  }

  _rejectWaiters(error) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) w.reject(error);
  }

  _clearTimer(name) {
    const t = this._timers[name];
    if (t === null) return;
    if (name === "ping" || name === "stats") clearInterval(t);
    else clearTimeout(t);
    this._timers[name] = null;
  }

  _installVisibility() {
    const doc = globalThis.document;
    if (!this.options.pauseWhenHidden || this._visibilityHandler || !doc || typeof doc.addEventListener !== "function") return;
    this._visibilityHandler = () => {
      this._hidden = doc.visibilityState === "hidden";
      this._syncPause().catch(() => {});
    };
    doc.addEventListener("visibilitychange", this._visibilityHandler);
    this._hidden = doc.visibilityState === "hidden";
  }

  _removeVisibility() {
    if (!this._visibilityHandler) return;
    globalThis.document.removeEventListener("visibilitychange", this._visibilityHandler);
    this._visibilityHandler = null;
    this._hidden = false;
  }

  /** Tell the server to pause or resume when what we want differs from what it was told. */
  _syncPause() {
    // With WebRTC the picture comes from Janus: the WebSocket carries no frames.
    const want = this._userPaused || this._hidden || this.options.transport === "webrtc";
    if (!this._isOpen() || !this._gotHello || want === this._serverPaused) {
      return Promise.resolve(this.stream);
    }
    this._serverPaused = want;
    this._log("debug", want ? (this._userPaused ? "pausing the stream" : "page hidden: pausing the stream") : "resuming the stream");
    return this._request("configure", { type: want ? "pause" : "resume" });
  }

  // ---- requests ---------------------------------------------------------------------------

  _send(msg) {
    if (!this._isOpen()) throw new LabcamError("not connected", { request: msg.type, code: "closed" });
    this._ws.send(JSON.stringify(msg));
  }

  _request(kind, msg, extra = {}) {
    return new Promise((resolve, reject) => {
      const queue = this._pending[kind];
      // Only to a server that echoes ids: an older one refuses fields it does not know.
      const requestId = this._echoesIds ? ++this._requestSeq : null;
      if (requestId !== null) msg = { ...msg, request_id: requestId };
      const entry = { resolve, reject, timer: null, request: msg.type, requestId, ...extra };
      try {
        this._send(msg);
      } catch (e) {
        reject(e);
        return;
      }
      entry.timer = setTimeout(() => {
        const i = queue.indexOf(entry);
        if (i >= 0) queue.splice(i, 1);
        reject(new LabcamError(`no reply to ${msg.type} within ${this.options.requestTimeout} ms`, { request: msg.type, code: "timeout" }));
      }, this.options.requestTimeout);
      queue.push(entry);
    });
  }

  /**
   * The pending request a reply answers, removed from its queue: by `request_id` when the server
   * echoes ids (a reply without one answers nothing: a broadcast), else the oldest of its kind.
   */
  _take(kind, msg) {
    const queue = this._pending[kind];
    const id = msg ? msg.request_id : undefined;
    if (id !== undefined && id !== null) {
      const i = queue.findIndex((e) => e.requestId === id);
      return i >= 0 ? queue.splice(i, 1)[0] : null;
    }
    if (this._echoesIds) return null;
    return queue.shift() || null;
  }

  _settle(kind, value, msg) {
    const entry = this._take(kind, msg);
    if (!entry) return false;
    clearTimeout(entry.timer);
    entry.resolve(typeof value === "function" ? value(entry) : value);
    return true;
  }

  // ---- messages ---------------------------------------------------------------------------

  _protocolError(message) {
    this._protocolErrors++;
    this._log("warn", message);
    this._emit("error", { message, source: "protocol" });
  }

  _onMessage(data) {
    this._lastMessageAt = this._now();
    if (typeof data === "string") {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        this._protocolError(`a text message is not JSON: ${JSON.stringify(data.slice(0, 80))}`);
        return;
      }
      if (!isObject(msg) || typeof msg.type !== "string") {
        this._protocolError(`a text message has no type: ${JSON.stringify(data.slice(0, 80))}`);
        return;
      }
      this._onText(msg, data.length);
      return;
    }
    if (typeof Blob === "function" && data instanceof Blob) {
      // Only when binaryType could not be set to "arraybuffer": keep the order of messages.
      const ws = this._ws;
      const size = data.size;
      this._blobChain = this._blobChain
        .then(() => data.arrayBuffer())
        .then((buf) => {
          if (ws === this._ws) this._onBinary(buf, size);
        })
        .catch((e) => this._protocolError(`could not read a binary message: ${e && e.message}`));
      return;
    }
    let bytes;
    try {
      bytes = toBytes(data);
    } catch (e) {
      this._protocolError(`unexpected message data: ${e.message}`);
      return;
    }
    this._onBinary(bytes, bytes.byteLength);
  }

  _onBinary(data, size) {
    let parsed;
    try {
      parsed = parseBinaryMessage(data);
    } catch (e) {
      this._protocolError(e.message);
      return;
    }
    const { header, payload } = parsed;
    const type = header.type === undefined ? "frame" : header.type;
    if (!this._gotHello) this._onHello(null);
    if (type === "frame") this._onFrame(header, payload, size);
    else if (type === "snap") this._onSnap(header, payload);
    else this._log("debug", `ignored a binary message of type ${JSON.stringify(type)}`);
  }

  _onText(msg, size) {
    if (msg.type === "error" && msg.request === "connect") {
      // The server refuses this connection's options; the close (4400) that follows says so.
      this._connectError = msg;
      this._emit("message", msg);
      return;
    }
    if (!this._gotHello && msg.type !== "connected") this._onHello(null);
    switch (msg.type) {
      case "connected":
        this._onHello(msg);
        break;
      case "frame":
      case "snap": {
        let payload;
        try {
          if (typeof msg.data !== "string") throw new Error("no data");
          payload = base64ToBytes(msg.data);
        } catch (e) {
          this._protocolError(`a ${msg.type} message has no valid base64 data (${e.message})`);
          if (msg.type === "snap") this._rejectOne("snap", `the snap reply had no valid data`, msg, msg);
          break;
        }
        const meta = { ...msg };
        delete meta.data;
        if (msg.type === "frame") this._onFrame(meta, payload, size);
        else this._onSnap(meta, payload);
        break;
      }
      case "stats":
        this.serverStats = msg;
        break;
      case "settings":
        if (isObject(msg.settings)) {
          this.settings = msg.settings;
          this._emit("settings", msg.settings);
          this._settle("settings", msg.settings, msg);
        } else {
          this._protocolError("a settings message has no settings object");
        }
        break;
      case "status": {
        const prev = this.cameraState;
        this.cameraState = typeof msg.state === "string" ? msg.state : prev;
        if (this.cameraState !== prev) {
          const level = this.cameraState === "lost" ? "warn" : "info";
          this._log(level, `camera ${this.cameraState}${msg.message ? `: ${msg.message}` : ""}`);
        }
        this._emit("status", msg);
        break;
      }
      case "pong":
        this._onPong(msg);
        break;
      case "probe":
        this._settle("probe", msg, msg);
        break;
      case "configured":
        if (isObject(msg.stream)) this.stream = msg.stream;
        this._emit("configured", this.stream);
        this._settle("configure", this.stream, msg);
        break;
      case "error":
        this._onServerError(msg);
        break;
      case "recording":
      case "recordings":
        this._onRecording(msg);
        break;
      default:
        this._log("debug", `message of unknown type ${JSON.stringify(msg.type)}`);
    }
    this._emit("message", msg);
  }

  /** A recording's status: the reply to a record request (`reply`), or a broadcast (`event`). */
  _onRecording(msg) {
    const { type, reply, request_id: _requestId, ...status } = msg;
    if (type === "recordings") {
      if (reply) this._settle("record", Array.isArray(msg.recordings) ? msg.recordings : [], msg);
      return;
    }
    if (reply) this._settle("record", status, msg);
    this._emit("recording", status);
  }

  _onFrame(meta, payload, size) {
    const now = this._now();
    this._frames++;
    this._bytes += size;
    // WebRTC: the picture is Janus's; a frame sent before the server saw our pause is counted, not shown.
    if (this.options.transport === "webrtc") return;
    this._lastFrameBytes = payload.byteLength;
    if (typeof meta.width === "number") this._width = meta.width;
    if (typeof meta.height === "number") this._height = meta.height;
    if (typeof meta.timestamp === "number" && this._clockOffset !== null) {
      this._frameAge = this._epochNow(now) + this._clockOffset - meta.timestamp * 1000;
    }
    let geometry = null; // the seed's original server sends no size: known once the image is decoded
    try {
      geometry = frameGeometry(meta);
    } catch {
      /* filled in from the bitmap below */
    }
    if (Array.isArray(meta.view) && !this._viewAware) {
      // A server that sends views knows the options: send the ones held back.
      this._viewAware = true;
      const held = {};
      for (const key of VIEW_OPTION_KEYS) {
        const value = this.options[key];
        if (value !== undefined && value !== null && JSON.stringify(value) !== JSON.stringify(this._queryView[key])) held[key] = value;
      }
      if (Object.keys(held).length) this._viewPush(held).catch(() => {});
    }
    if (meta.encoding === "h264") {
      this._onH264(meta, geometry, payload, now);
      return;
    }
    const raw = meta.encoding === "raw";
    const blob = raw ? null : new Blob([payload], { type: MIME[meta.encoding] || "image/jpeg" });
    const frame = { meta, geometry, blob, bitmap: null, pixels: null, payload: raw ? payload : null, bytes: payload.byteLength, receivedAt: now, decodeMs: null };
    Object.defineProperty(frame, "session", { value: this._session });
    if (!raw && (!this.options.decode || typeof globalThis.createImageBitmap !== "function")) {
      this._deliver(frame);
      return;
    }
    if (this._decoding) {
      if (this._nextFrame) this._skipped++;
      this._nextFrame = frame;
      return;
    }
    this._decodeFrame(frame);
  }

  _decodeFrame(frame) {
    this._decoding = true;
    const session = this._session;
    const t0 = this._now();
    let done;
    try {
      // Raw frames: the camera's counts (labcam-raw.js); JPEG: an ImageBitmap. One at a time either way.
      done = Promise.resolve(frame.payload ? decodeRaw(frame.meta, frame.payload) : globalThis.createImageBitmap(frame.blob));
    } catch (e) {
      done = Promise.reject(e);
    }
    done
      .then(
        (decoded) => {
          if (session !== this._session) {
            if (decoded && typeof decoded.close === "function") decoded.close();
            return;
          }
          frame.decodeMs = this._now() - t0;
          if (frame.payload) {
            frame.pixels = decoded;
            frame.payload = null; // the socket's buffer is no longer needed
          } else {
            frame.bitmap = decoded;
            if (!frame.geometry && decoded && decoded.width > 0) {
              frame.geometry = frameGeometry({ ...frame.meta, width: decoded.width, height: decoded.height });
            }
          }
          this._deliver(frame);
        },
        (e) => {
          this._decodeErrors++;
          if (this._decodeErrors <= 3 || this._decodeErrors % 100 === 0) {
            this._log("warn", `could not decode frame ${frame.meta.frame_number ?? "?"} (${this._decodeErrors} so far): ${e && e.message}`);
            this._emit("error", { message: `could not decode a frame: ${e && e.message}`, source: "decode" });
          }
        },
      )
      .finally(() => {
        this._decoding = false;
        const next = this._nextFrame;
        this._nextFrame = null;
        if (next && next.session === this._session) this._decodeFrame(next);
      });
  }

  // ---- H.264 through WebCodecs ---------------------------------------------------------------

  /**
   * One access unit: decoded in order by one VideoDecoder. Its output (a VideoFrame, drawn like an
   * ImageBitmap and closed when the next frame replaces it) is delivered as `frame.bitmap`. With more
   * than H264_MAX_DECODE_QUEUE units waiting in the decoder, deltas are dropped up to the next
   * keyframe (the server sends one every `gop` frames): a slow page shows fewer frames, never a
   * broken picture or a growing backlog.
   */
  _onH264(meta, geometry, payload, now) {
    const frame = { meta, geometry, blob: null, bitmap: null, pixels: null, payload: null, bytes: payload.byteLength, receivedAt: now, decodeMs: null };
    Object.defineProperty(frame, "session", { value: this._session });
    if (typeof globalThis.VideoDecoder !== "function" || typeof globalThis.EncodedVideoChunk !== "function") {
      this._fallBackToJpeg("this browser has no WebCodecs VideoDecoder: JPEG instead of H.264", true);
      return;
    }
    const codec = typeof meta.codec === "string" && meta.codec ? meta.codec : H264_PROBE_CODEC;
    let h = this._h264;
    if (h && (h.codec !== codec || h.decoder.state === "closed")) {
      this._closeH264();
      h = null;
    }
    if (!h) {
      if (!meta.keyframe) {
        this._skipped++; // a decoder starts at a keyframe
        return;
      }
      h = this._openH264(codec);
      if (!h) return;
    }
    if (meta.keyframe && h.decoder.decodeQueueSize > 4 * H264_MAX_DECODE_QUEUE) {
      // Keyframes still queue behind a decoder that does not keep up at all: start afresh at this one.
      this._closeH264();
      h = this._openH264(codec);
      if (!h) return;
    }
    if (meta.keyframe) h.needKey = false;
    else if (h.needKey || h.decoder.decodeQueueSize > H264_MAX_DECODE_QUEUE) {
      h.needKey = true;
      this._skipped++;
      return;
    }
    const timestamp = ++h.seq; // matches the output to its header
    frame.decodeStart = now;
    h.pending.set(timestamp, frame);
    try {
      h.decoder.decode(new globalThis.EncodedVideoChunk({ type: meta.keyframe ? "key" : "delta", timestamp, data: payload }));
    } catch (e) {
      h.pending.delete(timestamp);
      this._h264Failed(e);
    }
  }

  _openH264(codec) {
    const h = { decoder: null, codec, pending: new Map(), needKey: false, seq: 0 };
    try {
      h.decoder = new globalThis.VideoDecoder({
        output: (videoFrame) => this._onVideoFrame(h, videoFrame),
        error: (e) => this._h264Failed(e, h),
      });
      // No `description`: the access units are Annex B, with SPS/PPS on every keyframe. The server's
      // stream is always full-range BT.601 (docs/protocol.md) and says so in its VUI, but Chromium's
      // VideoFrames ignore that (colorSpace bt709, fullRange false: 16..235 stretched, 25.8 dB PSNR
      // measured in tests/test_h264_browser.py), so the client says it too.
      h.decoder.configure({ codec, optimizeForLatency: true, colorSpace: H264_COLOR_SPACE });
    } catch (e) {
      this._h264Failed(e, h);
      return null;
    }
    this._h264 = h;
    return h;
  }

  _onVideoFrame(h, videoFrame) {
    const frame = h.pending.get(videoFrame.timestamp);
    h.pending.delete(videoFrame.timestamp);
    if (!frame || frame.session !== this._session || h !== this._h264) {
      videoFrame.close();
      return;
    }
    frame.decodeMs = this._now() - frame.decodeStart;
    frame.bitmap = videoFrame;
    if (!frame.geometry && videoFrame.displayWidth > 0) {
      frame.geometry = frameGeometry({ ...frame.meta, width: videoFrame.displayWidth, height: videoFrame.displayHeight });
    }
    this._deliver(frame);
  }

  _h264Failed(e, h = this._h264) {
    const message = (e && e.message) || String(e);
    this._decodeErrors++;
    if (h === this._h264) this._closeH264();
    if (e && e.name === "NotSupportedError") {
      this._fallBackToJpeg(`this browser cannot decode this H.264 stream (${h ? h.codec : "?"}): JPEG instead`, true);
      return;
    }
    this._log("warn", `H.264 decoder error (${this._decodeErrors} so far): ${message}; waiting for the next keyframe`);
    this._emit("error", { message: `could not decode a frame: ${message}`, source: "decode" });
    if (this._decodeErrors >= 3) this._fallBackToJpeg(`the H.264 decoder failed ${this._decodeErrors} times (${message}): JPEG instead`, true);
  }

  _closeH264() {
    const h = this._h264;
    this._h264 = null;
    if (!h) return;
    h.pending.clear();
    try {
      if (h.decoder && h.decoder.state !== "closed") h.decoder.close();
    } catch {
      /* already closed */
    }
  }

  /** Stream JPEG from now on, saying why (`fallbackReason`, a warning, a "fallback" event); `reconnect`: the open connection asks for it again. */
  _fallBackToJpeg(reason, reconnect) {
    if (this.options.encoding !== "h264") return;
    this.fallbackReason = reason;
    this.options.encoding = "jpeg";
    this._closeH264();
    this._log("warn", reason);
    this._emit("fallback", { reason, encoding: "jpeg" });
    if (reconnect && this._ws !== null) this.reconnect().catch(() => {});
  }

  _deliver(frame) {
    const previous = this.lastFrame;
    this.lastFrame = frame;
    this._decoded++;
    try {
      this._emit("frame", frame);
    } finally {
      // The previous bitmap is done with: listeners were told it is valid until the next frame.
      if (previous && previous.bitmap && previous.bitmap !== frame.bitmap && typeof previous.bitmap.close === "function") {
        previous.bitmap.close();
      }
    }
  }

  _onSnap(meta, payload) {
    const entry = this._take("snap", meta);
    if (!entry) {
      this._log("debug", "a snap arrived that nobody asked for");
      return;
    }
    clearTimeout(entry.timer);
    const fmt = meta.encoding || entry.format || "png";
    entry.resolve({ blob: new Blob([payload], { type: MIME[fmt] || "application/octet-stream" }), meta });
  }

  _rejectOne(kind, message, response, msg) {
    const entry = this._take(kind, msg);
    if (!entry) return false;
    clearTimeout(entry.timer);
    entry.reject(new LabcamError(message, { request: entry.request, response, code: "server" }));
    return true;
  }

  _onServerError(msg) {
    const message = typeof msg.message === "string" && msg.message ? msg.message : "the server reported an error";
    const request = typeof msg.request === "string" ? msg.request : null;
    const kind = request === "pause" || request === "resume" ? "configure" : request;
    if (kind && Object.prototype.hasOwnProperty.call(this._pending, kind)) this._rejectOne(kind, message, msg, msg);
    else if (request === "ping" && this._pings.size) {
      const [id, p] = this._pings.entries().next().value;
      this._pings.delete(id);
      clearTimeout(p.timer);
      p.reject(new LabcamError(message, { request, response: msg, code: "server" }));
    }
    this._log("error", request ? `server refused ${request}: ${message}` : `server error: ${message}`);
    this._emit("error", { message, source: "server", request, response: msg });
  }

  _onPong(msg) {
    const p = this._pings.get(msg.id);
    if (!p) return;
    this._pings.delete(msg.id);
    clearTimeout(p.timer);
    const t1 = this._now();
    const rtt = t1 - p.t0;
    this._rtt = rtt;
    this._rtts.push(rtt);
    if (this._rtts.length > 10) this._rtts.shift();
    if (typeof msg.server_time === "number") {
      // NTP-style: the server read its clock about halfway through the round trip. Keep the estimate
      // from the fastest recent round trip, the least uncertain one (error <= rtt / 2).
      const offset = msg.server_time * 1000 - (this._epochNow(p.t0) + this._epochNow(t1)) / 2;
      this._offsets.push({ rtt, offset });
      if (this._offsets.length > 16) this._offsets.shift();
      this._clockOffset = this._offsets.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
    }
    p.resolve(rtt);
  }

  // ---- stats and events -------------------------------------------------------------------

  _epochNow(t) {
    return this._epochBase + t;
  }

  _resetCounters() {
    this._frames = 0;
    this._decoded = 0;
    this._bytes = 0;
    this._skipped = 0;
    this._decodeErrors = 0;
    this._protocolErrors = 0;
    this._lastFrameBytes = 0;
    this._width = null;
    this._height = null;
    this._rtt = null;
    this._rtts = [];
    this._offsets = [];
    this._clockOffset = null;
    this._frameAge = null;
    this._reconnects = 0;
    this._lastMessageAt = this._now();
    this._rates = { fps: 0, displayFps: 0, bytesPerSecond: 0 };
    this._statsMark = { t: this._now(), frames: 0, decoded: 0, bytes: 0 };
    this._decoding = false;
    this._nextFrame = null;
  }

  _clientStats() {
    const rtts = this._rtts;
    return {
      fps: this._rates.fps,
      encoding: this.lastFrame && this.lastFrame.meta ? this.lastFrame.meta.encoding || "jpeg" : null,
      fallbackReason: this.fallbackReason,
      displayFps: this._rates.displayFps,
      frames: this._frames,
      framesDisplayed: this._decoded,
      framesSkipped: this._skipped,
      bytesPerSecond: this._rates.bytesPerSecond,
      bytes: this._bytes,
      frameBytes: this._lastFrameBytes,
      width: this._width,
      height: this._height,
      rttMs: this._rtt,
      rttAvgMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : null,
      frameAgeMs: this._frameAge,
      clockOffsetMs: this._clockOffset,
      decodeErrors: this._decodeErrors,
      protocolErrors: this._protocolErrors,
      reconnects: this._reconnects,
      paused: this._userPaused || this._hidden,
    };
  }

  _emitStats() {
    const now = this._now();
    const mark = this._statsMark;
    const dt = (now - mark.t) / 1000;
    if (dt > 0) {
      this._rates = {
        fps: (this._frames - mark.frames) / dt,
        displayFps: (this._decoded - mark.decoded) / dt,
        bytesPerSecond: (this._bytes - mark.bytes) / dt,
      };
    }
    this._statsMark = { t: now, frames: this._frames, decoded: this._decoded, bytes: this._bytes };
    this._emit("stats", { client: this._clientStats(), server: this.serverStats });
  }

  _log(level, message) {
    this._emit("log", { level, message, time: Date.now() });
  }

  _emit(type, detail) {
    this.dispatchEvent(makeEvent(type, detail));
  }
}

// ---- helpers shared by the test page, the notebook widget and the Vue component -------------
// Plain functions, no DOM: each view keeps only its own UI and takes these from here.

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

// -- number formats ("–" for a missing value) --

/** `v` with `digits` decimals and a unit: fmt(12.345, 1, " fps") -> "12.3 fps". */
export function fmt(v, digits = 1, unit = "") {
  return isNum(v) ? `${v.toFixed(digits)}${unit}` : "–";
}

/** A whole number with thousands separators: 12345.6 -> "12,346". */
export function fmtInt(v) {
  return isNum(v) ? Math.round(v).toLocaleString("en-US") : "–";
}

/** Bytes (or bytes per second) in B, kB, MB: 2400000 -> "2.40 MB". */
export function fmtBytes(n, perSecond = false) {
  if (!isNum(n)) return "–";
  const s = perSecond ? "/s" : "";
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB${s}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB${s}`;
  return `${Math.round(n)} B${s}`;
}

/** Milliseconds, one decimal below 10: 3.14 -> "3.1 ms", 42.4 -> "42 ms". */
export function fmtMs(v) {
  if (!isNum(v)) return "–";
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

/** A delay in milliseconds, in seconds from 1 s on: 250 -> "250 ms", 3000 -> "3 s", 1500 -> "1.5 s". */
export function fmtSeconds(ms) {
  if (!isNum(ms)) return "–";
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

// -- recordings --

/** The order of a recording's states: a status never goes back to a lower rank. */
export const RECORDING_RANK = Object.freeze({ recording: 0, finishing: 1, done: 2, failed: 2 });

/**
 * The newer of two statuses of one recording (a broadcast may overtake the reply, messages from two
 * sources may cross): the higher state rank, then the more frames written (b on a tie). Either may be null.
 */
export function newerStatus(a, b) {
  if (!a) return b;
  if (!b) return a;
  const ra = RECORDING_RANK[a.state] ?? 0;
  const rb = RECORDING_RANK[b.state] ?? 0;
  if (ra !== rb) return ra > rb ? a : b;
  return (b.frames_written ?? 0) >= (a.frames_written ?? 0) ? b : a;
}

// -- snapshots --

/** File extension per snap format. */
export const SNAP_EXTENSIONS = Object.freeze({ png: "png", jpeg: "jpg", tiff: "tif", npy: "npy" });

function localStamp(epochSeconds) {
  const d = isNum(epochSeconds) ? new Date(epochSeconds * 1000) : new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * The snapshot file name, the one rule of every labcam host and view:
 * `labcam_<serial>_<yyyymmdd-hhmmss>_<frame_number>.<ext>`, then every run of characters other than
 * `A-Z a-z 0-9 _ . -` replaced by one `_`. serial: the argument, else `meta.camera_serial`, else
 * "camera"; the time: the frame's `timestamp` (epoch seconds) in local time, else now; frame_number:
 * "frame" when unknown; ext: SNAP_EXTENSIONS[format], else the format itself.
 */
export function snapFileName(serial, format, meta = {}) {
  const who = serial || meta.camera_serial || "camera";
  const frame = isNum(meta.frame_number) ? String(meta.frame_number) : "frame";
  const ext = SNAP_EXTENSIONS[format] || format;
  return `labcam_${who}_${localStamp(meta.timestamp)}_${frame}.${ext}`.replace(/[^A-Za-z0-9_.-]+/g, "_");
}

/** A default recording name: `labcam-<yyyymmdd-hhmmss>.ome.tif` (now, local time). */
export function recordingName(ext = ".ome.tif") {
  return `labcam-${localStamp()}${ext}`;
}

// -- bit depth --

/** Significant bits per sample of the pixel formats labcam knows. */
export const PIXEL_BIT_DEPTHS = Object.freeze({ mono8: 8, mono10: 10, mono12: 12, mono14: 14, mono16: 16, rgb8: 8, bgr8: 8 });

/**
 * The bit depth of a frame or snap header: its `bit_depth` field, else (an older server) from the pixel
 * format's name (PIXEL_BIT_DEPTHS, or the trailing number of monoN/rgbN/bgrN), else `fallback`.
 */
export function bitDepthOf(header, fallback = null) {
  if (header && Number.isInteger(header.bit_depth) && header.bit_depth > 0) return header.bit_depth;
  const pf = header && typeof header.pixel_format === "string" ? header.pixel_format.toLowerCase() : "";
  if (Object.prototype.hasOwnProperty.call(PIXEL_BIT_DEPTHS, pf)) return PIXEL_BIT_DEPTHS[pf];
  const m = /^(?:mono|rgb|bgr)(\d{1,2})$/.exec(pf);
  return m ? Number(m[1]) : fallback;
}

// -- a frame's place on the sensor --

const isQuad = (v, n) => Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x) && x >= 0);

/**
 * What a frame header says about the image's place on the sensor (docs/protocol.md), with the
 * defaults of an older server, which sends the whole sensor and no view:
 * `{encoding, view: [x, y, w, h], width, height, sensor: [w, h], bitDepth, scale (sensor px per
 * image px), histogram, saturated, clamped, dtype, channels}`. Throws a LabcamError (code "protocol")
 * for a header without a size.
 */
export function frameGeometry(meta) {
  const width = meta && meta.width;
  const height = meta && meta.height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new LabcamError(`a frame header has no valid width and height (${JSON.stringify(width)}x${JSON.stringify(height)})`, { code: "protocol" });
  }
  const sw = Number.isInteger(meta.source_width) ? meta.source_width : width;
  const sh = Number.isInteger(meta.source_height) ? meta.source_height : height;
  const sensor = isQuad(meta.sensor, 2) && meta.sensor[0] > 0 && meta.sensor[1] > 0 ? [meta.sensor[0], meta.sensor[1]] : [sw, sh];
  const view = isQuad(meta.view, 4) && meta.view[2] > 0 && meta.view[3] > 0 ? [...meta.view] : [0, 0, sensor[0], sensor[1]];
  const hist = meta.histogram;
  const histogram =
    isObject(hist) && Array.isArray(hist.bins) && hist.bins.length > 0 && hist.bins.every(isNum) && Array.isArray(hist.range) && hist.range.length === 2 && hist.range.every(isNum)
      ? { bins: hist.bins, range: [hist.range[0], hist.range[1]] }
      : null;
  const bitDepth = bitDepthOf(meta, 8);
  return {
    encoding: meta.encoding === "raw" ? "raw" : "jpeg",
    view,
    width,
    height,
    sensor,
    bitDepth,
    scale: view[2] / width,
    histogram,
    saturated: isNum(meta.saturated) ? meta.saturated : null,
    clamped: meta.clamped === true,
    display: Array.isArray(meta.display) && meta.display.length === 2 && meta.display.every(isNum) ? [meta.display[0], meta.display[1]] : [0, 2 ** bitDepth - 1],
    dtype: typeof meta.dtype === "string" ? meta.dtype : null,
    channels: Number.isInteger(meta.channels) ? meta.channels : meta.pixel_format && /^(rgb|bgr)/i.test(meta.pixel_format) ? 3 : 1,
  };
}

// -- the settings coalescer --

/**
 * One request in flight, latest wins: `push(changes)` sends at once when nothing is in flight; changes
 * pushed meanwhile are merged (a later value of a key replaces an earlier one) and sent as one request
 * when the one in flight has settled, whatever its outcome. `send(changes)` returns a promise.
 * `push` returns the promise of the request that carries its changes.
 */
export function settingsCoalescer(send) {
  let busy = false;
  let queued = null; // { changes, promise, resolve, reject }
  const run = (changes) => {
    busy = true;
    let sent;
    try {
      sent = Promise.resolve(send(changes));
    } catch (e) {
      sent = Promise.reject(e);
    }
    const next = () => {
      busy = false;
      if (!queued) return;
      const q = queued;
      queued = null;
      run(q.changes).then(q.resolve, q.reject);
    };
    sent.then(next, next);
    return sent;
  };
  const push = (changes) => {
    if (!busy) return run({ ...changes });
    if (!queued) {
      let resolve, reject;
      const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => {}); // the caller may not listen; the send's own handlers report failures
      queued = { changes: {}, promise, resolve, reject };
    }
    Object.assign(queued.changes, changes);
    return queued.promise;
  };
  Object.defineProperty(push, "busy", { get: () => busy });
  return push;
}

// -- the log slider (exposure spans decades, µs to s) --

/** The slider's positions: 0..SLIDER_STEPS. */
export const SLIDER_STEPS = 1000;

/** A value's slider position on a log scale from min to max (clamped); the middle for a bad range. */
export function toLogSlider(value, min, max) {
  if (!(min > 0 && max > min) || !isNum(value)) return SLIDER_STEPS / 2;
  const v = Math.min(Math.max(value, min), max);
  return Math.round((SLIDER_STEPS * Math.log(v / min)) / Math.log(max / min));
}

/** The value at a slider position, three significant digits, kept inside [min, max]. */
export function fromLogSlider(t, min, max) {
  if (!(min > 0 && max > min)) return min;
  const v = min * (max / min) ** (Math.min(Math.max(t, 0), SLIDER_STEPS) / SLIDER_STEPS);
  return Math.min(Math.max(+v.toPrecision(3), min), max);
}

// -- what a view says over its picture --

/**
 * A view's mode from its client: the client's state, or, once connected, "lost" (camera lost), "paused",
 * "camera-idle" / "waiting" (no frame drawn yet) or "live".
 */
export function viewMode({ state, cameraState = null, paused = false, framesDrawn = 0 }) {
  if (state !== "connected") return state;
  if (cameraState === "lost") return "lost";
  if (paused) return "paused";
  if (!framesDrawn) return cameraState === "idle" ? "camera-idle" : "waiting";
  return "live";
}

/**
 * The overlay of a view in `mode` (see viewMode): `{title, text}`; both "" when live. title: a short
 * headline; text: the sentence. details: where (the server, for "connecting"), reason (why it is not
 * connected), retryIn (ms) and attempt (reconnecting), everConnected, message (the camera's or the
 * source's words), outOfView (paused because scrolled away).
 */
export function overlayText(mode, { where = "", reason = "", retryIn = null, attempt = 0, everConnected = false, message = "", outOfView = false } = {}) {
  const because = (fallback) => reason || fallback;
  switch (mode) {
    case "live":
    case "streaming":
      return { title: "", text: "" };
    case "idle":
      return { title: "Not connected", text: "Not connected" };
    case "connecting":
      return { title: "Connecting…", text: where ? `Connecting to ${where}…` : message || "Connecting…" };
    case "reconnecting": {
      const when = isNum(retryIn) ? ` Retrying every ${fmtSeconds(retryIn)} (attempt ${attempt}).` : "";
      return { title: "Reconnecting…", text: `${everConnected ? "Connection lost" : "Cannot connect"}: ${because("the connection failed")}.${when}` };
    }
    case "error":
      return { title: "Error", text: `${everConnected ? "Connection failed" : "Cannot connect"}: ${because("see the log")}` };
    case "closed":
      return { title: "Disconnected", text: reason ? `Disconnected: ${reason}` : "Disconnected." };
    case "lost":
      return { title: "Camera lost", text: `Camera lost${message ? `: ${message}` : ""}. The stream resumes by itself when it returns.` };
    case "paused":
      return { title: "Paused", text: outOfView ? "Paused (out of view)" : "Paused" };
    case "camera-idle":
      return { title: "Camera idle", text: message ? `Camera idle: ${message}` : "Camera idle" };
    case "waiting":
      return { title: "Waiting…", text: message || "Waiting for the first frame…" };
    default:
      return { title: String(mode), text: message || String(mode) };
  }
}

function redact(url) {
  return url.replace(/([?&]token=)[^&]*/, "$1…");
}

export default LabcamClient;
