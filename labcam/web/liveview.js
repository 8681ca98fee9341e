// liveview.js: the browser side of labcam.widget.LiveView (an anywidget ES module, no build step).
//
// Python prepends `const LABCAM_CLIENT_SOURCE = "<labcam-client.js source>";` and
// `const LABCAM_MODULE_SOURCES = {"labcam-raw.js": ..., "labcam-viewer.js": ...};` when it builds `_esm`.
// anywidget imports this module from a blob: URL, where a relative import of the client cannot
// resolve, so each module is imported from a blob: URL of its own, made from those strings (the
// client's import of labcam-raw.js rewritten to that module's URL), before this module finishes
// loading (top-level await): both modes use the client's helpers (formats, overlay texts, bit depth,
// recording-status order, snapshot names, the log slider), websocket mode its LabcamClient too, and
// both draw with the shared viewer (labcam-viewer.js: zoom, pan, display mapping, readouts); websocket
// mode gets everything, comm mode what the kernel's frames carry.
//
// Two sources of frames (the `mode` trait, shown in the status line):
// - WsSource: the stream's WebSocket, opened here with the shared client. Frames never touch the
//   kernel: the view keeps running while a cell is busy.
// - CommSource: JPEG frames pushed by the kernel through the widget's comm. Every drawn frame is
//   acknowledged (cumulatively, by sequence number) so that the kernel keeps at most 2 in flight.
//
// Recording: the toolbar's record button asks the source: WsSource sends the stream's `record`
// message (the server writes the file into its recordings folder), CommSource asks the kernel
// (`camera.record`). Both report `recording` statuses, shown next to the button.
//
// Test hooks on the `.labcam-liveview` element: data-frames-drawn, data-frame-number, data-mode,
// data-state, data-source (the URL or "comm"), data-recording-state, data-recording-frames.

/* global LABCAM_CLIENT_SOURCE, LABCAM_MODULE_SOURCES */

/**
 * Import embedded module sources in order ([[name, source], ...]): each from a blob: URL of its own,
 * with its relative imports of the ones before it (`from "./labcam-raw.js"`) rewritten to their URLs.
 * Returns {name: module}. Where blob: URLs cannot be imported (Node, which runs this module's tests),
 * data: URLs are used instead.
 */
async function importModules(sources) {
  const attempt = async (makeUrl) => {
    const urls = {};
    const modules = {};
    try {
      for (const [name, source] of sources) {
        let text = source;
        for (const [dep, url] of Object.entries(urls)) text = text.split(`from "./${dep}"`).join(`from "${url}"`);
        urls[name] = makeUrl(text);
        modules[name] = await import(/* webpackIgnore: true */ urls[name]);
      }
      return modules;
    } finally {
      for (const url of Object.values(urls)) if (url.startsWith("blob:")) URL.revokeObjectURL(url);
    }
  };
  try {
    return await attempt((text) => URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  } catch {
    return await attempt((text) => `data:text/javascript;charset=utf-8,${encodeURIComponent(text)}`);
  }
}

/** The shared JS client (and its helpers) and the shared viewer, imported from the embedded sources. */
async function importClient() {
  if (typeof LABCAM_CLIENT_SOURCE !== "string") {
    throw new Error("labcam-client.js is missing from the installed labcam package");
  }
  const extra = typeof LABCAM_MODULE_SOURCES === "object" && LABCAM_MODULE_SOURCES ? LABCAM_MODULE_SOURCES : {};
  for (const name of ["labcam-raw.js", "labcam-viewer.js"]) {
    if (typeof extra[name] !== "string") throw new Error(`${name} is missing from the installed labcam package`);
  }
  const m = await importModules([
    ["labcam-raw.js", extra["labcam-raw.js"]],
    ["labcam-client.js", LABCAM_CLIENT_SOURCE],
    ["labcam-viewer.js", extra["labcam-viewer.js"]],
  ]);
  return { lib: m["labcam-client.js"], viewerLib: m["labcam-viewer.js"] };
}

let lib = null; // the client module, once imported
let viewerLib = null; // the shared viewer (labcam-viewer.js)
let libError = null; // why it could not be: every view then shows this instead of starting
try {
  ({ lib, viewerLib } = await importClient());
} catch (e) {
  libError = e;
}

/** The page's Jupyter config (JupyterLab and Notebook 7 both embed it), or null (VS Code...). */
function pageConfig() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null;
  try {
    const cfg = JSON.parse(node.textContent || "{}");
    return cfg && typeof cfg === "object" ? cfg : null;
  } catch {
    return null;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * Where the stream is, as seen from this page: {url, token, where} or {error}.
 * "" means the labcam extension of the Jupyter server serving this page. An explicit URL that is that
 * same server seen from the kernel (a loopback address with the page's base path: the kernel sits next
 * to the server, the page may come through a tunnel or proxy) is replaced by the page's own origin,
 * where the login cookie authenticates.
 */
function resolveStream(explicit, token) {
  const cfg = pageConfig();
  const own = cfg && typeof cfg.baseUrl === "string"
    ? new URL(cfg.baseUrl.replace(/\/?$/, "/") + "labcam/", window.location.href)
    : null;
  const pageToken = cfg && typeof cfg.token === "string" && cfg.token ? cfg.token : undefined;
  if (!explicit) {
    if (!own) return { error: "this page is not served by Jupyter (no jupyter-config-data), so the labcam extension cannot be found" };
    return { url: own.href, token: pageToken, where: "this Jupyter server" };
  }
  let u;
  try {
    u = new URL(explicit, window.location.href);
  } catch {
    return { error: `not a valid URL: ${explicit}` };
  }
  if (own) {
    const root = u.pathname.replace(/ws\/camera\/stream\/?$/, "").replace(/\/?$/, "/");
    if (root === own.pathname && (u.host === window.location.host || LOOPBACK.has(u.hostname))) {
      return { url: own.href, token: pageToken || token || undefined, where: "this Jupyter server" };
    }
  }
  return { url: u.href, token: token || undefined, where: u.host };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function download(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 30000);
}

// ---------------------------------------------------------------------------------------------
// Frame sources

/** Frames from the labcam stream's WebSocket, through the shared client. */
class WsSource {
  constructor(view) {
    this.view = view;
    this.model = view.model;
    this.client = null;
    this.everConnected = false;
    this.fellBack = false;
    this.closed = false;
  }

  async start() {
    const view = this.view;
    const target = resolveStream(this.model.get("stream_url"), this.model.get("token"));
    if (target.error) {
      this.fail(target.error);
      return;
    }
    view.setSourceLabel(target.where, target.url);
    view.setState("connecting", { where: `the camera stream of ${target.where}` });
    const opts = view.streamOptions();
    const client = new lib.LabcamClient({
      url: target.url,
      token: target.token,
      format: "binary",
      fps: opts.fps,
      quality: opts.quality,
      maxWidth: opts.maxWidth,
      display: opts.display,
      // raw: the camera's counts at full bit depth, drawn and read out by the shared viewer
      encoding: opts.encoding === "raw" ? "raw" : undefined,
      reconnectDelay: 3000,
      pauseWhenHidden: true, // the client pauses the stream itself on visibilitychange
    });
    this.client = client;
    client.on("state", view.guard((d) => this.onState(d)));
    client.on("connected", view.guard((msg) => view.setCamera({ camera: msg.camera, settings: msg.settings, specs: msg.specs })));
    client.on("settings", view.guard((s) => view.setSettings(s)));
    client.on("status", view.guard((msg) => view.setCameraStatus(msg.state, msg.message)));
    // The shared viewer draws the client's frames itself (raw ones too) and asks for views and probes.
    if (!view.useViewer(client)) client.on("frame", view.guard((f) => view.drawFrame(f.bitmap || f.blob, f.meta)));
    client.on("stats", view.guard(({ client: c, server: s }) => {
      view.setStats({
        rttMs: c.rttMs,
        ageMs: c.frameAgeMs,
        dropped: (c.framesSkipped || 0) + (s ? (s.frames_skipped || 0) + (s.camera_dropped || 0) : 0),
      });
    }));
    client.on("error", view.guard((e) => {
      if (e.source === "server" && e.request !== "record") view.flash(e.message); // record errors reject the button's request
    }));
    client.on("recording", view.guard((st) => view.onRecording(st)));
    this.applyPause();
    client.connect().catch(() => {}); // failures arrive as state events
  }

  onState({ state, reason, retryIn, attempt }) {
    const view = this.view;
    if (state === "connected") {
      this.everConnected = true;
      view.setState(this.client.paused ? "paused" : "streaming");
    } else if (state === "connecting") {
      view.setState("connecting");
    } else if (state === "reconnecting") {
      view.setState("reconnecting", { reason, retryIn, attempt, everConnected: this.everConnected });
      if (!this.everConnected) this.maybeFallBack(reason || "the stream could not be reached");
    } else if (state === "error") {
      view.setState("error", { reason: reason || "connection failed", everConnected: this.everConnected });
      if (!this.everConnected) this.maybeFallBack(reason || "the stream could not be reached");
    } else if (state === "closed" && !this.closed) {
      view.setState("error", { reason: `connection closed${reason ? `: ${reason}` : ""}`, everConnected: true });
    }
  }

  fail(message) {
    this.view.setState("error", { reason: message });
    this.maybeFallBack(message);
  }

  /** mode="auto": the page cannot reach the stream, so ask the kernel to push frames instead. */
  maybeFallBack(reason) {
    if (this.fellBack || this.model.get("requested_mode") !== "auto") return;
    this.fellBack = true;
    this.model.send({ type: "fallback", reason, view: this.view.id });
  }

  applyPause() {
    if (!this.client) return;
    // Page visibility is the client's own business (pauseWhenHidden); scrolled out of view and
    // the play/pause button are ours.
    const want = this.model.get("paused") || !this.view.intersecting;
    (want ? this.client.pause() : this.client.resume()).catch(() => {});
    if (this.client.connected) this.view.setState(want ? "paused" : "streaming");
  }

  configure(opts) {
    if (!this.client) return Promise.resolve();
    const { encoding, ...rest } = opts;
    // The encoding goes with the view requests (coalesced, and only to a server that knows it).
    return Promise.all([this.client.configure(rest), this.client.requestView({ encoding })]);
  }

  setSettings(changes) {
    if (!this.client) return Promise.reject(new Error("not connected"));
    return this.client.setSettings(changes);
  }

  async snap() {
    if (!this.client || !this.client.connected) throw new Error("not connected");
    const { blob, meta } = await this.client.snap("png");
    return { blob, filename: lib.snapFileName(this.client.camera && this.client.camera.serial, "png", meta) };
  }

  startRecording({ name, frames }) {
    if (!this.client || !this.client.connected) return Promise.reject(new Error("not connected"));
    return this.client.startRecording({ name, frames: frames ?? undefined });
  }

  stopRecording(id) {
    if (!this.client || !this.client.connected) return Promise.reject(new Error("not connected"));
    return this.client.stopRecording(id);
  }

  close() {
    this.closed = true;
    if (this.client) this.client.disconnect("view closed");
    this.client = null;
  }
}

/** Frames pushed by the kernel through the widget's comm, acknowledged one by one. */
class CommSource {
  constructor(view) {
    this.view = view;
    this.model = view.model;
    this.decoding = false;
    this.mailbox = null; // latest frame waiting for the decoder: newer replaces older
    this.pendingSnap = null;
    this.pendingSettings = null;
    this.pendingRecord = null;
    this.onMsg = view.guard((msg, buffers) => this.handle(msg, buffers));
    this.onInfo = view.guard(() => this.publishInfo());
    this.closed = false;
  }

  start() {
    const view = this.view;
    view.setSourceLabel("the kernel", "comm");
    view.useViewer(); // zoom, pan, contrast and readouts of the kernel's frames (no view requests)
    this.model.on("msg:custom", this.onMsg);
    this.model.on("change:camera_info", this.onInfo);
    this.publishInfo();
    if (this.model.get("paused")) view.setState("paused");
    else view.setState("connecting", { message: "Waiting for frames from the kernel…" });
    this.model.send({ type: "hello", view: view.id, visible: view.visible() });
  }

  publishInfo() {
    const info = this.model.get("camera_info") || {};
    if (info.error) this.view.flash(info.error);
    if (info.camera) this.view.setCamera(info);
  }

  handle(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "frame":
        if (!buffers || !buffers.length) return;
        this.offer({ meta: msg, blob: new Blob([buffers[0]], { type: "image/jpeg" }) });
        break;
      case "status":
        if (msg.state === "streaming") this.view.setState(this.model.get("paused") ? "paused" : "streaming");
        else if (msg.state === "waiting") this.view.setState("waiting", { message: msg.message || "waiting for frames" });
        else if (msg.state === "idle") this.view.setState("idle", { message: msg.message });
        else if (msg.state === "error") this.view.setState("error", { reason: msg.message || "the kernel stopped streaming", everConnected: true });
        break;
      case "snap":
        if (this.pendingSnap && buffers && buffers.length) {
          this.pendingSnap.resolve({ blob: new Blob([buffers[0]], { type: msg.mime || "image/png" }), filename: msg.filename || "labcam-snap.png" });
          this.pendingSnap = null;
        }
        break;
      case "recording": {
        const { type, reply, ...status } = msg;
        if (reply && this.pendingRecord) {
          this.pendingRecord.resolve(status);
          this.pendingRecord = null;
        }
        this.view.onRecording(status);
        break;
      }
      case "error":
        if (msg.request === "record" && this.pendingRecord) {
          this.pendingRecord.reject(new Error(msg.message));
          this.pendingRecord = null;
        } else if (msg.request === "snap" && this.pendingSnap) {
          this.pendingSnap.reject(new Error(msg.message));
          this.pendingSnap = null;
        } else if (msg.request === "settings" && this.pendingSettings) {
          this.pendingSettings.reject(new Error(msg.message));
          this.pendingSettings = null;
        } else {
          this.view.flash(msg.message);
        }
        break;
      default:
        break;
    }
  }

  offer(frame) {
    if (this.decoding) {
      this.mailbox = frame; // an older waiting frame is simply replaced (latest wins)
      return;
    }
    this.decode(frame);
  }

  async decode(frame) {
    this.decoding = true;
    let bitmap = null;
    try {
      bitmap = typeof createImageBitmap === "function" ? await createImageBitmap(frame.blob) : frame.blob;
      if (!this.closed) this.view.drawFrame(bitmap, frame.meta);
    } catch (e) {
      this.view.flash(`could not draw a frame: ${e && e.message}`);
    } finally {
      // The viewer paints on the next animation frame and closes the bitmap when the next one comes.
      if (bitmap && typeof bitmap.close === "function" && !this.view.viewer) bitmap.close();
      // Ack even a frame that failed to decode: the kernel must never wait on a frame we dropped.
      if (!this.closed) this.model.send({ type: "ack", seq: frame.meta.seq, view: this.view.id });
      this.decoding = false;
      const next = this.mailbox;
      this.mailbox = null;
      if (next && !this.closed) this.decode(next);
    }
  }

  applyPause() {
    // The play/pause trait is the kernel's to read; visibility is per view, so tell it ours.
    this.model.send({ type: "visible", view: this.view.id, visible: this.view.visible() });
    if (this.model.get("paused")) this.view.setState("paused");
  }

  configure() {
    return Promise.resolve(); // the kernel reads fps/quality/max_width/display_range itself (and sends JPEG)
  }

  setSettings(changes) {
    return new Promise((resolve, reject) => {
      if (this.pendingSettings) this.pendingSettings.resolve();
      this.pendingSettings = { resolve, reject };
      this.model.send({ type: "settings", changes, view: this.view.id });
      // Success shows up as a camera_info change; an error as an "error" message.
      setTimeout(() => {
        if (this.pendingSettings && this.pendingSettings.resolve === resolve) {
          this.pendingSettings = null;
          resolve();
        }
      }, 5000);
    });
  }

  snap() {
    return new Promise((resolve, reject) => {
      this.pendingSnap = { resolve, reject };
      this.model.send({ type: "snap", format: "png", view: this.view.id });
    });
  }

  /** The kernel calls camera.record: resolves with its first status, rejects with its error. */
  startRecording({ name, frames }) {
    return new Promise((resolve, reject) => {
      if (this.pendingRecord) this.pendingRecord.reject(new Error("superseded"));
      this.pendingRecord = { resolve, reject };
      this.model.send({ type: "record", action: "start", name, frames: frames ?? null, view: this.view.id });
    });
  }

  /** The kernel stops it; the final status arrives as a `recording` message. */
  stopRecording() {
    this.model.send({ type: "record", action: "stop", view: this.view.id });
    return Promise.resolve(null);
  }

  close() {
    this.closed = true;
    this.model.off("msg:custom", this.onMsg);
    this.model.off("change:camera_info", this.onInfo);
    try {
      this.model.send({ type: "closed", view: this.view.id });
    } catch {
      /* the comm may be gone already */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The view

const ZOOMS = [["fit", "fit"], ["0.25", "25%"], ["0.5", "50%"], ["1", "100%"], ["2", "200%"]];
const SIZES = [["", "full"], ["1280", "≤1280 px"], ["640", "≤640 px"], ["320", "≤320 px"]];

class LiveViewUI {
  constructor(model, root) {
    this.model = model;
    this.root = root;
    this.id = `v${Math.random().toString(36).slice(2, 10)}`;
    this.source = null;
    this.intersecting = true;
    this.framesDrawn = 0;
    this.drawTimes = [];
    this.lastMeta = null;
    this.stats = { rttMs: null, ageMs: null, dropped: 0 };
    this.camera = null;
    this.settings = null;
    this.specs = {};
    this.state = "connecting";
    this.cameraStatus = null;
    this.bits = 8;
    this.lastHist = 0;
    this.autoOnce = 0; // frames to wait before freezing the auto range (one-shot auto-contrast)
    this.recording = null; // the latest status of the recording this view started
    this.seenRecordings = new Map(); // id -> latest status seen (a broadcast may come before the reply)
    this.flashTimer = null;
    this.disposers = [];
    this.build();
  }

  /** Wrap a callback so an exception shows in the widget instead of vanishing into the console. */
  guard(fn) {
    return (...args) => {
      try {
        const r = fn(...args);
        if (r && typeof r.catch === "function") r.catch((e) => this.showError(e));
        return r;
      } catch (e) {
        this.showError(e);
        return undefined;
      }
    };
  }

  visible() {
    return this.intersecting && document.visibilityState !== "hidden";
  }

  // -- DOM ------------------------------------------------------------------------------------
  build() {
    const r = this.root;
    r.classList.add("labcam-liveview");
    this.playBtn = el("button", { class: "lc-play", type: "button", title: "play / pause" });
    this.snapBtn = el("button", { class: "lc-snap", type: "button", title: "download the next full-resolution frame (PNG)", text: "Snap" });
    this.recBtn = el("button", { class: "lc-record", type: "button", title: "record every frame at full bit depth (OME-TIFF / OME-Zarr)", text: "● Rec" });
    this.recName = el("input", { class: "lc-rec-name", type: "text", spellcheck: "false", placeholder: "name.ome.tif", title: "file name (.ome.tif or .ome.zarr); empty: a dated name. Over the stream it lands in the server's recordings folder" });
    this.recFrames = el("input", { class: "lc-rec-frames", type: "number", min: "1", step: "1", placeholder: "frames", title: "frames to record (empty: until you press Stop)" });
    this.recStatus = el("span", { class: "lc-rec-status" });
    const ranges = this.optionRanges();
    this.fpsInput = el("input", { class: "lc-fps", type: "number", min: String(ranges.fps[0]), max: String(ranges.fps[1]), step: "any", placeholder: "max", title: "frame-rate cap (empty: the camera's rate)" });
    this.qualityInput = el("input", { class: "lc-quality", type: "range", min: String(ranges.quality[0]), max: String(ranges.quality[1]), step: "1", title: "JPEG quality" });
    this.qualityLabel = el("span", { class: "lc-value" });
    this.sizeSelect = el("select", { class: "lc-size", title: "downscale frames before they are sent" });
    for (const [v, t] of SIZES) this.sizeSelect.append(el("option", { value: v, text: t }));
    this.zoomSelect = el("select", { class: "lc-zoom", title: "zoom (relative to camera pixels)" });
    for (const [v, t] of ZOOMS) this.zoomSelect.append(el("option", { value: v, text: t }));
    this.expRange = el("input", { class: "lc-exposure-range", type: "range", min: "0", max: String(lib.SLIDER_STEPS), step: "1", title: "exposure (log scale)" });
    this.expInput = el("input", { class: "lc-exposure", type: "number", step: "any", title: "exposure, ms" });
    this.gainRange = el("input", { class: "lc-gain-range", type: "range", step: "any", title: "gain, dB" });
    this.gainInput = el("input", { class: "lc-gain", type: "number", step: "any", title: "gain, dB" });

    const group = (label, ...kids) => el("label", { class: "lc-group" }, el("span", { class: "lc-label", text: label }), ...kids);
    this.cameraControls = el("span", { class: "lc-camera-controls" },
      group("exposure", this.expRange, this.expInput, el("span", { class: "lc-unit", text: "ms" })),
      group("gain", this.gainRange, this.gainInput, el("span", { class: "lc-unit", text: "dB" })));
    this.toolbar = el("div", { class: "lc-toolbar" },
      this.playBtn, this.snapBtn,
      el("span", { class: "lc-record-controls" }, this.recBtn, this.recName, this.recFrames, this.recStatus),
      group("fps ≤", this.fpsInput),
      group("quality", this.qualityInput, this.qualityLabel),
      group("size", this.sizeSelect),
      group("zoom", this.zoomSelect),
      this.cameraControls);

    // display range (12/16-bit)
    this.autoBox = el("input", { class: "lc-auto", type: "checkbox", title: "follow the image (auto range)" });
    this.minInput = el("input", { class: "lc-min", type: "number", step: "1", min: "0", title: "display minimum (camera counts)" });
    this.maxInput = el("input", { class: "lc-max", type: "number", step: "1", min: "1", title: "display maximum (camera counts)" });
    this.autoBtn = el("button", { class: "lc-autocontrast", type: "button", text: "Auto-contrast", title: "fit the range to this image once" });
    this.histCanvas = el("canvas", { class: "lc-hist", width: "192", height: "40" });
    this.displayBar = el("div", { class: "lc-displaybar" },
      group("auto", this.autoBox), group("min", this.minInput), group("max", this.maxInput), this.autoBtn, this.histCanvas);
    this.displayBar.hidden = true;

    this.canvas = el("canvas", { class: "lc-canvas", width: "0", height: "0" });
    this.overlay = el("div", { class: "lc-overlay" });
    this.viewport = el("div", { class: "lc-viewport" }, this.canvas, this.overlay);
    this.status = el("div", { class: "lc-status" });
    this.errorLine = el("div", { class: "lc-error" });
    this.errorLine.hidden = true;
    r.append(this.toolbar, this.displayBar, this.viewport, this.status, this.errorLine);
    this.ctx = null; // the 2D path's context, made on first use (a viewer's canvas has its own)
    this.viewer = null; // the shared viewer, once useViewer() made one

    this.syncControls();
    this.wire();
    this.root.dataset.framesDrawn = "0";
    this.root.dataset.frameNumber = "";
  }

  listen(target, type, fn) {
    const h = this.guard(fn);
    target.addEventListener(type, h);
    this.disposers.push(() => target.removeEventListener(type, h));
  }

  onModel(name, fn) {
    const h = this.guard(fn);
    this.model.on(name, h);
    this.disposers.push(() => this.model.off(name, h));
  }

  setTrait(name, value) {
    this.model.set(name, value);
    this.model.save_changes();
  }

  wire() {
    this.listen(this.playBtn, "click", () => this.setTrait("paused", !this.model.get("paused")));
    this.listen(this.snapBtn, "click", () => this.snap());
    this.listen(this.recBtn, "click", () => this.toggleRecording());
    this.listen(this.fpsInput, "change", () => {
      const v = this.fpsInput.value === "" ? null : Number(this.fpsInput.value);
      const [lo, hi] = this.optionRanges().fps;
      if (v === null || (Number.isFinite(v) && v >= lo && v <= hi)) this.setTrait("fps", v);
      else this.flash(`fps: a number from ${lo} to ${hi}, or empty for the camera's rate`);
    });
    this.listen(this.qualityInput, "input", () => (this.qualityLabel.textContent = this.qualityInput.value));
    this.listen(this.qualityInput, "change", () => this.setTrait("quality", Number(this.qualityInput.value)));
    this.listen(this.sizeSelect, "change", () => this.setTrait("max_width", this.sizeSelect.value === "" ? null : Number(this.sizeSelect.value)));
    this.listen(this.zoomSelect, "change", () => this.applyZoom());
    this.listen(this.expRange, "input", () => (this.expInput.value = String(this.expFromSlider(Number(this.expRange.value)))));
    this.listen(this.expRange, "change", () => this.changeSetting("exposure_ms", Number(this.expInput.value)));
    this.listen(this.expInput, "change", () => this.changeSetting("exposure_ms", Number(this.expInput.value)));
    this.listen(this.gainRange, "input", () => (this.gainInput.value = this.gainRange.value));
    this.listen(this.gainRange, "change", () => this.changeSetting("gain_db", Number(this.gainRange.value)));
    this.listen(this.gainInput, "change", () => this.changeSetting("gain_db", Number(this.gainInput.value)));
    this.listen(this.autoBox, "change", () => {
      if (this.autoBox.checked) this.setTrait("display_range", "auto");
      else if (this.lastMeta && Array.isArray(this.lastMeta.display)) this.setTrait("display_range", [...this.lastMeta.display]);
    });
    const manual = () => {
      const lo = Math.round(Number(this.minInput.value));
      const hi = Math.round(Number(this.maxInput.value));
      if (Number.isFinite(lo) && Number.isFinite(hi) && lo >= 0 && lo < hi) this.setTrait("display_range", [lo, hi]);
      else this.flash("display range: whole numbers with 0 <= min < max");
    };
    this.listen(this.minInput, "change", manual);
    this.listen(this.maxInput, "change", manual);
    this.listen(this.autoBtn, "click", () => this.autoContrast());
    // Enter commits a typed number: Chromium fires no "change" on Enter outside a form, and the
    // notebook must not take the key as a shortcut.
    for (const input of [this.fpsInput, this.expInput, this.gainInput, this.minInput, this.maxInput, this.recName, this.recFrames]) {
      this.listen(input, "keydown", (e) => {
        if (e.key !== "Enter") return;
        e.preventDefault();
        e.stopPropagation();
        input.blur(); // fires "change" once
      });
    }

    this.onModel("change:paused", () => {
      this.syncControls();
      if (this.source) this.source.applyPause();
    });
    for (const name of ["fps", "quality", "max_width", "display_range", "encoding"]) {
      this.onModel(`change:${name}`, () => {
        this.syncControls();
        if (this.source) this.source.configure(this.streamOptions()).catch((e) => this.flash(e.message));
      });
    }
    this.onModel("change:lut", () => this.applyViewerTraits());
    this.onModel("change:view", () => this.applyViewerTraits(true));
    this.onModel("change:mode", () => this.startSource());
    this.onModel("change:kernel_error", () => this.showKernelError());

    const onVisibility = () => {
      if (this.source instanceof CommSource) this.source.applyPause();
    };
    this.listen(document, "visibilitychange", onVisibility);
    if (typeof IntersectionObserver === "function") {
      const io = new IntersectionObserver(this.guard((entries) => {
        const entry = entries[entries.length - 1];
        const now = entry.isIntersecting;
        if (now === this.intersecting) return;
        this.intersecting = now;
        if (this.source) this.source.applyPause();
      }));
      io.observe(this.root);
      this.disposers.push(() => io.disconnect());
    }
    const timer = setInterval(this.guard(() => this.renderStatus()), 1000);
    this.disposers.push(() => clearInterval(timer));
  }

  /**
   * The stream options' ranges, {fps, quality, max_width: [min, max]}: the kernel's (the
   * `option_ranges` trait, from the server's parsers) where it has them, else the client's.
   */
  optionRanges() {
    const given = this.model.get("option_ranges");
    const out = { ...lib.STREAM_OPTION_RANGES };
    if (given && typeof given === "object") {
      for (const name of Object.keys(out)) {
        const r = given[name];
        if (Array.isArray(r) && r.length === 2 && r.every(Number.isFinite)) out[name] = r;
      }
    }
    return out;
  }

  streamOptions() {
    const m = this.model;
    const d = m.get("display_range");
    return {
      fps: m.get("fps") ?? null,
      quality: m.get("quality") ?? null,
      maxWidth: m.get("max_width") ?? null,
      display: d === "auto" || d === null || d === undefined ? "auto" : [d[0], d[1]],
      encoding: m.get("encoding") === "raw" ? "raw" : "jpeg",
    };
  }

  /** The viewer's traits (lut; view with `region`) into the shared viewer, checked there too. */
  applyViewerTraits(region = false) {
    if (!this.viewer) return;
    try {
      const lut = this.model.get("lut") || "grey";
      if (this.viewer.display.lut !== lut) this.viewer.setDisplay({ lut });
      if (region) this.viewer.showRegion(this.model.get("view") ?? "full");
    } catch (e) {
      this.flash(e.message);
    }
  }

  syncControls() {
    const m = this.model;
    const paused = !!m.get("paused");
    this.playBtn.textContent = paused ? "▶ Play" : "❚❚ Pause";
    this.playBtn.setAttribute("aria-pressed", String(paused));
    const fps = m.get("fps");
    if (document.activeElement !== this.fpsInput) this.fpsInput.value = fps === null || fps === undefined ? "" : String(fps);
    const q = m.get("quality") ?? 80;
    this.qualityInput.value = String(q);
    this.qualityLabel.textContent = String(q);
    const mw = m.get("max_width");
    const sizeValue = mw === null || mw === undefined ? "" : String(mw);
    if (![...this.sizeSelect.options].some((o) => o.value === sizeValue)) {
      this.sizeSelect.append(el("option", { value: sizeValue, text: `≤${sizeValue} px` }));
    }
    this.sizeSelect.value = sizeValue;
    const d = m.get("display_range");
    this.autoBox.checked = d === "auto" || d === null || d === undefined;
    if (Array.isArray(d)) {
      this.minInput.value = String(d[0]);
      this.maxInput.value = String(d[1]);
    }
  }

  // -- source ---------------------------------------------------------------------------------
  startSource() {
    if (this.source) this.source.close();
    const mode = this.model.get("mode");
    this.root.dataset.mode = mode;
    this.source = mode === "comm" ? new CommSource(this) : new WsSource(this);
    const started = this.source.start();
    if (started && typeof started.catch === "function") started.catch((e) => this.showError(e));
    this.showKernelError();
    this.renderStatus();
  }

  setSourceLabel(where, url) {
    this.where = where;
    this.root.dataset.source = url;
  }

  // -- camera info and controls ----------------------------------------------------------------
  setCamera({ camera, settings, specs }) {
    this.camera = camera || this.camera;
    this.specs = specs || this.specs || {};
    const exp = this.specs.exposure_ms;
    if (exp && Number.isFinite(exp.minimum) && Number.isFinite(exp.maximum)) {
      this.expInput.min = String(exp.minimum);
      this.expInput.max = String(exp.maximum);
    }
    const gain = this.specs.gain_db;
    if (gain && Number.isFinite(gain.minimum) && Number.isFinite(gain.maximum)) {
      for (const input of [this.gainRange, this.gainInput]) {
        input.min = String(gain.minimum);
        input.max = String(gain.maximum);
      }
      this.gainRange.step = String((gain.maximum - gain.minimum) / 200 || 0.1);
    }
    this.cameraControls.hidden = !exp && !gain;
    if (settings) this.setSettings(settings);
  }

  setSettings(settings) {
    this.settings = settings;
    if (!settings) return;
    if (Number.isFinite(settings.exposure_ms) && document.activeElement !== this.expInput) {
      this.expInput.value = String(+settings.exposure_ms.toPrecision(4));
      this.expRange.value = String(this.sliderFromExp(settings.exposure_ms));
    }
    if (Number.isFinite(settings.gain_db) && document.activeElement !== this.gainInput) {
      this.gainInput.value = String(+settings.gain_db.toPrecision(4));
      this.gainRange.value = String(settings.gain_db);
    }
    if (settings.pixel_format) {
      this.bits = lib.bitDepthOf({ pixel_format: settings.pixel_format }, 8);
      this.displayBar.hidden = this.bits <= 8;
    }
  }

  setCameraStatus(state, message) {
    this.cameraStatus = state === "streaming" ? null : `camera ${state}${message ? `: ${message}` : ""}`;
    this.renderStatus();
  }

  // Exposure spans decades (0.01 ms to seconds): a log-scale slider.
  expBounds() {
    const s = this.specs.exposure_ms || {};
    const lo = Math.max(Number(s.minimum) || 0.01, 1e-6);
    const hi = Math.max(Number(s.maximum) || 1000, lo * 1.0001);
    return [lo, hi];
  }

  expFromSlider(t) {
    return lib.fromLogSlider(t, ...this.expBounds());
  }

  sliderFromExp(ms) {
    return lib.toLogSlider(ms, ...this.expBounds());
  }

  async changeSetting(name, value) {
    if (!Number.isFinite(value)) return;
    const spec = this.specs[name];
    if (spec && Number.isFinite(spec.minimum) && Number.isFinite(spec.maximum) && (value < spec.minimum || value > spec.maximum)) {
      this.flash(`${name}=${value} is not allowed: ${spec.allowed || `from ${spec.minimum} to ${spec.maximum}`}`);
      this.setSettings(this.settings);
      return;
    }
    try {
      await this.source.setSettings({ [name]: value });
    } catch (e) {
      this.flash(e.message);
      this.setSettings(this.settings); // show what is really in force
    }
  }

  // -- display range ------------------------------------------------------------------------------
  autoContrast() {
    const meta = this.lastMeta;
    if (meta && Array.isArray(meta.auto_range)) {
      this.setTrait("display_range", [...meta.auto_range]); // the kernel measured this frame's range
    } else {
      // The stream computes the auto range: switch to auto, then keep the range it settles on.
      this.autoOnce = 4;
      this.setTrait("display_range", "auto");
    }
  }

  drawHistogram(meta, bitmap) {
    const bits = this.bits;
    const top = 2 ** bits;
    const display = Array.isArray(meta.display) ? meta.display : [0, top - 1];
    // The kernel's bins (comm mode), or the stream header's histogram of the camera's counts.
    let bins = Array.isArray(meta.histogram) ? meta.histogram : meta.histogram && Array.isArray(meta.histogram.bins) ? meta.histogram.bins : null;
    if (!bins && bitmap && typeof bitmap.width === "number") {
      // WebSocket frames are 8-bit already: histogram the displayed values on a small copy and
      // place them back in camera counts (the window [min, max] of the full range).
      const w = Math.min(128, bitmap.width);
      const h = Math.max(1, Math.round((bitmap.height * w) / bitmap.width));
      if (!this.histWork) this.histWork = document.createElement("canvas");
      this.histWork.width = w;
      this.histWork.height = h;
      const c = this.histWork.getContext("2d", { willReadFrequently: true });
      c.drawImage(bitmap, 0, 0, w, h);
      const px = c.getImageData(0, 0, w, h).data;
      bins = new Array(64).fill(0);
      const [lo, hi] = display;
      for (let i = 0; i < px.length; i += 4) {
        const raw = lo + (px[i] / 255) * (hi - lo);
        bins[Math.min(63, Math.max(0, Math.floor((raw / top) * 64)))]++;
      }
    }
    if (!bins) return;
    const cv = this.histCanvas;
    const g = cv.getContext("2d");
    g.clearRect(0, 0, cv.width, cv.height);
    const max = Math.max(1, ...bins.map((b) => Math.sqrt(b)));
    const bw = cv.width / bins.length;
    g.fillStyle = "#6a8fbf";
    bins.forEach((b, i) => {
      const bh = (Math.sqrt(b) / max) * (cv.height - 2);
      g.fillRect(i * bw, cv.height - bh, Math.max(1, bw - 0.5), bh);
    });
    g.fillStyle = "#d9534f";
    for (const v of display) g.fillRect(Math.min(cv.width - 1, (v / top) * cv.width), 0, 1, cv.height);
  }

  // -- frames ------------------------------------------------------------------------------------
  /**
   * Draw with the shared viewer on a canvas of its own (swapped in only once it works): websocket
   * mode passes the client (views, probes, raw frames), comm mode none (frames come through
   * drawFrame). Returns whether the viewer is in use; without one the 2D path below draws.
   */
  useViewer(client = null) {
    if (this.viewer) return true;
    if (!viewerLib || typeof document.createElement("canvas").getBoundingClientRect !== "function") return false;
    let viewer;
    const canvas = el("canvas", { class: "lc-canvas lc-gpu" });
    try {
      this.viewport.replaceChild(canvas, this.canvas);
      viewer = new viewerLib.LabcamViewer(canvas, { client, lut: this.model.get("lut") || "grey" });
    } catch (e) {
      if (canvas.parentNode === this.viewport) this.viewport.replaceChild(this.canvas, canvas);
      this.flash(`the live view falls back to plain drawing: ${e && e.message}`);
      return false;
    }
    this.canvas = canvas;
    this.viewer = viewer;
    this.zoomSelect.closest(".lc-group").hidden = true; // the viewer zooms (wheel, pinch, Fit, 1:1)
    this.displayControls = viewerLib.createDisplayControls(viewer);
    this.displayControls.classList.add("lc-viewer-controls");
    this.viewport.after(this.displayControls);
    viewer.addEventListener("paint", this.guard((ev) => {
      const { frame, newFrame } = ev.detail;
      if (newFrame && frame) this.frameShown(frame.meta, frame.bitmap);
    }));
    this.disposers.push(() => viewer.destroy());
    const region = this.model.get("view");
    if (region && region !== "full") this.applyViewerTraits(true);
    return true;
  }

  drawFrame(image, meta) {
    if (!image) return;
    if (this.viewer) {
      // Comm mode: the kernel's JPEG, drawn by the viewer (zoom, contrast, readouts of what it shows).
      const previous = this.heldBitmap;
      this.heldBitmap = image;
      const geometry = lib.frameGeometry({ ...meta, width: meta.width || image.width, height: meta.height || image.height });
      this.viewer.setFrame({ meta, geometry, bitmap: image });
      if (previous && previous !== image && typeof previous.close === "function") previous.close();
      return;
    }
    const w = meta.width || image.width;
    const h = meta.height || image.height;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.applyZoom(meta);
    }
    if (!this.ctx) this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.ctx.drawImage(image, 0, 0, w, h);
    this.frameShown(meta, image);
  }

  /** The bookkeeping of a frame on screen: counters, stats, display bar, histogram, test hooks. */
  frameShown(meta, image) {
    this.framesDrawn++;
    this.lastMeta = meta;
    const now = performance.now();
    this.drawTimes.push(now);
    while (this.drawTimes.length && now - this.drawTimes[0] > 2000) this.drawTimes.shift();
    if (typeof meta.timestamp === "number" && this.source instanceof CommSource) {
      this.stats.ageMs = Date.now() - meta.timestamp * 1000;
      this.stats.rttMs = meta.rtt_ms;
      this.stats.dropped = (meta.skipped || 0) + (meta.camera_dropped || 0) + (meta.lost || 0);
    }
    const bits = lib.bitDepthOf(meta, 8);
    if (bits !== this.bits || this.displayBar.hidden !== bits <= 8) {
      this.bits = bits;
      this.displayBar.hidden = bits <= 8;
    }
    if (bits > 8) {
      if (this.model.get("display_range") === "auto" && Array.isArray(meta.display)) {
        if (document.activeElement !== this.minInput) this.minInput.value = String(meta.display[0]);
        if (document.activeElement !== this.maxInput) this.maxInput.value = String(meta.display[1]);
        if (this.autoOnce > 0 && --this.autoOnce === 0) this.setTrait("display_range", [...meta.display]);
      }
      if (now - this.lastHist > 250) {
        this.lastHist = now;
        this.drawHistogram(meta, image);
      }
    }
    const ds = this.root.dataset;
    ds.framesDrawn = String(this.framesDrawn);
    ds.frameNumber = String(meta.frame_number ?? "");
    ds.encoding = meta.encoding || "jpeg";
    if (this.state !== "streaming" && this.state !== "paused") this.setState("streaming");
    else this.overlay.hidden = this.state === "streaming";
  }

  applyZoom(meta = this.lastMeta) {
    const z = this.zoomSelect.value;
    const c = this.canvas;
    if (z === "fit") {
      c.style.width = "";
      c.classList.add("lc-fit");
    } else {
      c.classList.remove("lc-fit");
      const sourceWidth = (meta && meta.source_width) || c.width;
      c.style.width = `${Math.round(sourceWidth * Number(z))}px`;
    }
  }

  // -- state, status and errors -------------------------------------------------------------------
  /** The view's state (data-state) and what its overlay says; details: see overlayText in the client. */
  setState(state, details = {}) {
    this.state = state;
    this.root.dataset.state = state;
    // Every state but "streaming" says itself over the image (paused: a small badge, see the CSS).
    this.overlay.hidden = state === "streaming";
    this.overlay.className = `lc-overlay lc-${state}${this.framesDrawn ? " lc-over-image" : ""}`;
    const mode = state === "idle" ? "camera-idle" : state;
    const { title, text } = lib.overlayText(mode, { ...details, outOfView: !this.intersecting });
    const headline = (state === "reconnecting" || state === "error") && title;
    this.overlay.replaceChildren(...(headline ? [el("strong", { class: "lc-overlay-title", text: title })] : []), text);
    this.renderStatus();
  }

  setStats(s) {
    Object.assign(this.stats, s);
  }

  renderStatus() {
    const now = performance.now();
    while (this.drawTimes.length && now - this.drawTimes[0] > 2000) this.drawTimes.shift();
    const fps = this.drawTimes.length > 1 ? (this.drawTimes.length - 1) / ((now - this.drawTimes[0]) / 1000 || 1) : 0;
    const m = this.lastMeta;
    const parts = [
      `${this.model.get("mode")}${this.where ? ` (${this.where})` : ""}`,
      this.state,
      `${lib.fmt(this.state === "streaming" ? fps : 0)} fps`,
      `rtt ${lib.fmtSeconds(this.stats.rttMs)}`,
      `latency ${lib.fmtSeconds(this.stats.ageMs)}`,
      `dropped ${this.stats.dropped || 0}`,
    ];
    if (m) {
      const size = m.source_width && m.source_width !== m.width ? `${m.width}×${m.height} of ${m.source_width}×${m.source_height}` : `${m.width}×${m.height}`;
      parts.push(`${size} ${m.pixel_format || ""}`.trim(), `#${m.frame_number}`);
    }
    if (this.cameraStatus) parts.push(this.cameraStatus);
    this.status.textContent = parts.join(" · ");
  }

  flash(message) {
    this.errorLine.textContent = message;
    this.errorLine.hidden = false;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => this.showKernelError(), 8000);
  }

  showKernelError() {
    const err = this.model.get("kernel_error");
    this.errorLine.textContent = err || "";
    this.errorLine.hidden = !err;
  }

  showError(e) {
    const message = e && e.message ? e.message : String(e);
    console.error("labcam live view:", e);
    this.flash(`live view error: ${message}`);
  }

  async snap() {
    this.snapBtn.disabled = true;
    try {
      const { blob, filename } = await this.source.snap();
      download(blob, filename);
      this.root.dataset.lastSnap = filename;
    } catch (e) {
      this.flash(`snap failed: ${e.message}`);
    } finally {
      this.snapBtn.disabled = false;
    }
  }

  // -- recording -----------------------------------------------------------------------------------
  recordingActive() {
    const r = this.recording;
    return !!r && (r.state === "recording" || r.state === "finishing");
  }

  async toggleRecording() {
    if (!this.source) return;
    this.recBtn.disabled = true;
    try {
      if (this.recordingActive()) {
        const st = await this.source.stopRecording(this.recording.id);
        if (st) this.onRecording(st);
        return;
      }
      const raw = this.recFrames.value.trim();
      const frames = raw === "" ? null : Number(raw);
      if (frames !== null && !(Number.isInteger(frames) && frames >= 1)) {
        this.flash("frames: a whole number >= 1, or empty to record until Stop");
        return;
      }
      const st = await this.source.startRecording({ name: this.recName.value.trim() || lib.recordingName(), frames });
      this.recording = null;
      this.onRecording(lib.newerStatus(this.seenRecordings.get(st.id), st), true);
    } catch (e) {
      this.flash(`record: ${e.message}`);
    } finally {
      this.recBtn.disabled = false;
      this.renderRecording();
    }
  }

  /** A recording status (a reply, a broadcast, a kernel message); shown when it is this view's. */
  onRecording(st, ours = false) {
    if (!st || !st.id) return;
    if (this.seenRecordings.size > 64) this.seenRecordings.delete(this.seenRecordings.keys().next().value);
    this.seenRecordings.set(st.id, lib.newerStatus(this.seenRecordings.get(st.id), st));
    if (!ours && !(this.recording && this.recording.id === st.id)) return;
    const before = this.recording && this.recording.id === st.id ? this.recording : null;
    this.recording = lib.newerStatus(before, st);
    if (this.recording.state === "failed" && (!before || before.state !== "failed")) this.flash(`recording failed: ${this.recording.error || "unknown error"}`);
    this.renderRecording();
  }

  renderRecording() {
    const r = this.recording;
    const active = this.recordingActive();
    this.recBtn.textContent = active ? "■ Stop" : "● Rec";
    this.recBtn.setAttribute("aria-pressed", String(active));
    const ds = this.root.dataset;
    if (!r) return;
    ds.recordingState = r.state;
    ds.recordingFrames = String(r.frames_written ?? 0);
    const target = Number.isFinite(r.frames_target) ? `/${r.frames_target}` : "";
    const figures = `${r.frames_written ?? 0}${target} frames · ${lib.fmt(r.mb_per_s)} MB/s · dropped ${r.dropped ?? 0}`;
    const head = { recording: "● rec", finishing: "finishing", done: "✓", failed: "✗ failed" }[r.state] || r.state;
    this.recStatus.textContent = `${head} ${r.name || ""}: ${figures}${r.error ? ` — ${r.error}` : ""}`;
    this.recStatus.title = r.path || r.name || "";
  }

  dispose() {
    if (this.source) this.source.close();
    this.source = null;
    for (const d of this.disposers.splice(0)) {
      try {
        d();
      } catch {
        /* best effort */
      }
    }
    clearTimeout(this.flashTimer);
  }
}

function showFatal(host, e) {
  const box = document.createElement("pre");
  box.className = "labcam-liveview-fatal";
  box.textContent = `labcam live view failed to start: ${e && e.stack ? e.stack : e}`;
  host.replaceChildren(box);
}

export default {
  render({ model, el: host }) {
    let ui = null;
    if (!lib) {
      showFatal(host, new Error(`cannot load the labcam JavaScript client: ${libError && libError.message}`));
      return undefined;
    }
    try {
      const root = document.createElement("div");
      host.replaceChildren(root);
      ui = new LiveViewUI(model, root);
      ui.startSource();
    } catch (e) {
      // An exception escaping render would leave an empty output: show it instead.
      console.error("labcam live view:", e);
      if (ui) ui.dispose();
      showFatal(host, e);
      return undefined;
    }
    return () => ui.dispose();
  },
};
