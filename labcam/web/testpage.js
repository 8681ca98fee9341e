// The labcam test page (index.html). Served at "/" by `labcam serve` and at "{base_url}labcam/" in
// Jupyter: every URL is relative to the page's own directory. Page URL parameters (all optional):
//   ?token=T        passed to the stream (Jupyter / `labcam serve --token`)
//   ?format=json    use the json stream format instead of binary
//   ?autoconnect=0  do not connect on load
//   ?fps=, ?quality=, ?max_width=   initial stream options
//   ?encoding=raw   raw frames (the camera's counts, lossless) instead of JPEG
//   ?encoding=h264  H.264 decoded with WebCodecs (JPEG, with the reason in the status, where it cannot be)
//   ?renderer=2d|webgl2   how the viewer draws (default: WebGL2 on a GPU, else the 2D canvas)
//   ?transport=webrtc   the picture through Janus (labcam serve --webrtc janus) in a <video>;
//                   settings, snaps and recordings stay on the WebSocket
//   ?debug=1        show the client's debug log lines
// Browser tests read window.labcamTestPage = {client, framesDrawn, recording, ...}.

// Same file as "./static/labcam-client.js" seen from the page.
import {
  bitDepthOf,
  fmt,
  fmtBytes,
  fmtInt,
  fmtMs,
  fromLogSlider,
  LabcamClient,
  newerStatus,
  overlayText,
  pageStreamBase,
  recordingName,
  settingsCoalescer,
  snapFileName,
  toLogSlider,
  viewMode,
} from "./labcam-client.js";
import { createDisplayControls, LabcamViewer } from "./labcam-viewer.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEBUG = params.get("debug") === "1";
const LOG_MAX = 400;

// ---- formatting -----------------------------------------------------------------------------

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

function clockTime(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// ---- log ------------------------------------------------------------------------------------

const logEl = $("log");

function log(level, message, time = Date.now()) {
  if (level === "debug" && !DEBUG) return;
  const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
  const entry = document.createElement("div");
  entry.className = `entry lvl-${level}`;
  entry.dataset.level = level;
  const t = document.createElement("time");
  t.textContent = clockTime(time);
  entry.append(t, document.createTextNode(`  ${message}`));
  logEl.append(entry);
  while (logEl.childElementCount > LOG_MAX) logEl.firstElementChild.remove();
  if (atBottom) logEl.scrollTop = logEl.scrollHeight;
}

$("log-clear").addEventListener("click", () => logEl.replaceChildren());

// ---- the client -----------------------------------------------------------------------------

function numberParam(name) {
  const v = params.get(name);
  if (v === null || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

// ?transport=webrtc: a <video> instead of the canvas (and its display controls).
const WEBRTC = params.get("transport") === "webrtc";
const video = WEBRTC ? document.createElement("video") : null;
if (video) {
  Object.assign(video, { id: "video", autoplay: true, muted: true, playsInline: true });
  video.dataset.testid = "video";
  video.setAttribute("aria-label", "camera video (WebRTC via Janus)");
  $("view").hidden = true;
  $("view").before(video);
  $("viewer-controls").hidden = true;
}

function makeClient() {
  const base = {
    url: pageStreamBase(),
    token: params.get("token") || undefined,
    format: params.get("format") === "json" ? "json" : "binary",
    ...(WEBRTC ? { transport: "webrtc", video } : {}),
  };
  const encoding = ["raw", "h264"].includes(params.get("encoding")) ? params.get("encoding") : undefined;
  const initial = { fps: numberParam("fps"), quality: numberParam("quality"), maxWidth: numberParam("max_width"), encoding };
  try {
    return new LabcamClient({ ...base, ...initial });
  } catch (e) {
    log("warn", `ignoring the page's stream parameters: ${e.message}`);
    return new LabcamClient(base);
  }
}

const client = makeClient();
const canvas = $("view");
// The shared viewer draws the client's frames (zoom, pan, display mapping, readouts); see labcam-viewer.js.
const viewer = new LabcamViewer(canvas, { client, renderer: ["2d", "webgl2"].includes(params.get("renderer")) ? params.get("renderer") : "auto" });
$("viewer-controls").append(createDisplayControls(viewer));
let framesDrawn = 0;
let lastMeta = null;
let lastSnap = null;
let drawing = false; // only for the no-ImageBitmap fallback
let webrtcStats = null;
let recording = null; // the latest status of the recording this page started (see "recording" below)

window.labcamTestPage = {
  get client() {
    return client;
  },
  get viewer() {
    return viewer;
  },
  get framesDrawn() {
    return WEBRTC ? client.webrtc?.framesShown ?? 0 : framesDrawn;
  },
  /** transport=webrtc: the inbound video's counters (framesDecoded, framesPerSecond, ...), refreshed with the stats. */
  get webrtcStats() {
    return webrtcStats;
  },
  get lastFrameMeta() {
    return lastMeta;
  },
  get lastSnap() {
    return lastSnap;
  },
  get recording() {
    return recording;
  },
};

$("url").textContent = client.url.replace(/([?&]token=)[^&]*/, "$1…");
if (client.options.fps !== undefined) $("fps").value = client.options.fps;
if (client.options.quality !== undefined) $("quality").value = $("quality-slider").value = client.options.quality;
if (client.options.maxWidth !== undefined) $("max-width").value = client.options.maxWidth;

// ---- drawing --------------------------------------------------------------------------------

viewer.addEventListener("paint", (ev) => {
  if (ev.detail.newFrame) framesDrawn++;
});
$("stat-renderer").textContent = viewer.rendererNote || "WebGL2";

client.on("frame", (frame) => {
  lastMeta = frame.meta;
  if (!frame.bitmap && !frame.pixels && !drawing) {
    // No createImageBitmap: decode through an <img>, one at a time; the viewer draws images too.
    drawing = true;
    const url = URL.createObjectURL(frame.blob);
    const img = new Image();
    img.onload = () => {
      viewer.setFrame({ ...frame, bitmap: img });
      URL.revokeObjectURL(url);
      drawing = false;
    };
    img.onerror = () => {
      URL.revokeObjectURL(url);
      drawing = false;
    };
    img.src = url;
  }
  showFrameInfo(frame.meta);
  updateView();
});

function showFrameInfo(m) {
  const parts = [];
  if (isNum(m.frame_number)) parts.push(`#${m.frame_number}`);
  if (isNum(m.width) && isNum(m.height)) {
    let size = `${m.width}×${m.height}`;
    if (isNum(m.source_width) && isNum(m.source_height) && (m.source_width !== m.width || m.source_height !== m.height)) {
      size += ` of ${m.source_width}×${m.source_height}`;
    }
    parts.push(size);
  }
  if (m.pixel_format) parts.push(String(m.pixel_format));
  if (Array.isArray(m.display) && m.display.length === 2) parts.push(`display ${m.display[0]}–${m.display[1]}`);
  if (isNum(m.exposure_ms)) parts.push(`${+m.exposure_ms.toPrecision(4)} ms`);
  if (isNum(m.gain_db)) parts.push(`${+m.gain_db.toFixed(2)} dB`);
  $("frame-info").textContent = parts.join("  ·  ") || "frame";
  updateDisplayHint(m);
}

// ---- status, overlay, buttons ---------------------------------------------------------------

const STATUS_TEXT = {
  idle: "not connected",
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  error: "error",
  closed: "disconnected",
  lost: "camera lost",
  refused: "refused",
};
// Where the page is not a secure context (http:// from another machine) the browser has no WebCodecs.
const INSECURE_NOTE = window.isSecureContext !== false ? "" : "not a secure context (http:// from another machine): "
  + "no WebCodecs, so no H.264, only JPEG (about 12x the bytes); serve with --certfile/--keyfile (https)";
let lastStateDetail = {}; // the client's last "state" event: why it is not connected, the next retry
let everConnected = false;

/** What the overlay over the picture says now. */
function currentOverlay() {
  const drawn = window.labcamTestPage.framesDrawn;
  const mode = WEBRTC && client.state === "connected" && client.webrtcStatus !== "live"
    ? `webrtc-${client.webrtcStatus}`
    : viewMode({ state: client.state, cameraState: client.cameraState, paused: WEBRTC ? false : client.paused, framesDrawn: drawn });
  const d = lastStateDetail;
  if (mode.startsWith("webrtc-")) return { mode, title: "WebRTC", text: `WebRTC via Janus: ${client.webrtcStatus}${client.webrtcError ? ` (${client.webrtcError})` : ""}` };
  return { mode, ...overlayText(mode, { reason: d.reason, retryIn: d.retryIn, attempt: d.attempt, everConnected }) };
}

function updateStatus() {
  const state = client.state;
  const lost = state === "connected" && client.cameraState === "lost";
  // WebRTC refused by labcam (no valid token) is the page's news, whatever the WebSocket does.
  const key = WEBRTC && client.webrtcStatus === "refused" ? "refused" : lost ? "lost" : state;
  const badge = $("status");
  badge.dataset.state = key;
  badge.dataset.cameraState = client.cameraState || "";
  badge.dataset.webrtc = client.webrtcStatus || "";
  const via = WEBRTC ? ` · WebRTC via Janus: ${client.webrtcStatus}` : "";
  badge.textContent = (STATUS_TEXT[key] || key) + via + (INSECURE_NOTE ? " · not secure" : "") + (client.fallbackReason ? " · JPEG, not H.264" : "");
  badge.title = [state === "reconnecting" ? currentOverlay().text : "", INSECURE_NOTE, client.fallbackReason || ""].filter(Boolean).join("\n");
  badge.dataset.fallbackReason = client.fallbackReason || "";
  badge.dataset.secure = String(!INSECURE_NOTE);

  const live = state === "connected";
  $("url").textContent = client.url.replace(/([?&]token=)[^&]*/, "$1…");
  if (!live) clearLiveStats();
  $("connect").disabled = state === "connecting" || live;
  $("connect").textContent = state === "reconnecting" ? "Retry now" : "Connect";
  $("disconnect").disabled = state === "idle" || state === "closed" || state === "error";
  $("pause").disabled = !live || WEBRTC; // the WebSocket's frames are paused already; the video is Janus's
  $("snap").disabled = !live;
  for (const id of ["exposure", "exposure-slider", "gain", "gain-slider", "camera-fps", "pixel-format"]) {
    const el = $(id);
    el.disabled = !live || el.dataset.unavailable === "1" || el.dataset.locked === "1";
  }
  updateView();
}

function updateView() {
  const { mode, text } = currentOverlay();
  $("view-wrap").dataset.state = mode;
  const overlay = $("overlay");
  if (overlay.textContent !== text) {
    const box = document.createElement("span");
    box.textContent = text;
    overlay.replaceChildren(...(text ? [box] : []));
  }
}

client.on("state", (d) => {
  lastStateDetail = d;
  if (d.state === "connected") everConnected = true;
  updateStatus();
});

client.on("status", () => updateStatus());
if (video) video.requestVideoFrameCallback?.(function shown() {
  updateView(); // the overlay goes once frames show
  if (client.webrtc?.frameInfo) showWebRTCFrame(client.webrtc.frameInfo);
  video.requestVideoFrameCallback(shown);
});

function showWebRTCFrame(info) {
  const parts = [`#${info.frame}`];
  if (video.videoWidth) parts.push(`${video.videoWidth}×${video.videoHeight}`);
  parts.push("H.264, WebRTC via Janus");
  $("frame-info").textContent = parts.join("  ·  ");
}

client.on("fallback", () => updateStatus());

client.on("log", (d) => log(d.level, d.message, d.time));

$("connect").addEventListener("click", () => {
  client.connect().catch(() => {}); // failures are in the log and the badge
});
$("disconnect").addEventListener("click", () => client.disconnect("disconnected by the user"));
$("pause").addEventListener("click", () => {
  const pausing = !client.paused;
  const p = pausing ? client.pause() : client.resume();
  $("pause").setAttribute("aria-pressed", String(pausing));
  $("pause").textContent = pausing ? "Resume" : "Pause";
  log("info", pausing ? "stream paused" : "stream resumed");
  p.catch((e) => log("error", `${pausing ? "pause" : "resume"} failed: ${e.message}`));
  updateView();
});

window.addEventListener("pagehide", () => client.disconnect("page closed"));

// ---- camera info and stats ------------------------------------------------------------------

client.on("connected", (msg) => {
  const c = msg.camera || {};
  const parts = [c.model || c.driver || "camera"];
  if (c.serial) parts.push(c.serial);
  if (isNum(c.sensor_width) && isNum(c.sensor_height)) parts.push(`${c.sensor_width}×${c.sensor_height}`);
  if (isNum(c.max_bit_depth)) parts.push(`${c.max_bit_depth}-bit`);
  if (c.driver && c.model && !String(c.model).toLowerCase().includes(String(c.driver).toLowerCase())) parts.push(c.driver);
  $("camera-info").textContent = parts.join("  ·  ");
  setupCameraControls(msg.specs || {}, msg.settings || {}, c);
  showStream(msg.stream);
  updateStatus();
});

/** Rates mean nothing without a connection: show dashes, keep the totals. */
function clearLiveStats() {
  for (const id of ["stat-fps", "stat-rate", "stat-latency", "stat-age", "stat-camera-fps", "stat-encode", "stat-painted", "stat-draw"]) $(id).textContent = "–";
}

client.on("stats", ({ client: cs, server: ss }) => {
  const s = ss || {};
  $("stat-fps").textContent = fmt(cs.displayFps, 1);
  $("stat-frames").textContent = fmtInt(cs.frames);
  const serverSkipped = isNum(s.frames_skipped) ? s.frames_skipped : 0;
  $("stat-skipped").textContent = fmtInt(serverSkipped + cs.framesSkipped);
  $("stat-skipped").title = `skipped by the server for this client: ${fmtInt(s.frames_skipped)}; not decoded by this page (busy): ${fmtInt(cs.framesSkipped)}`;
  $("stat-rate").textContent = fmtBytes(cs.bytesPerSecond, true);
  $("stat-size").textContent = fmtBytes(cs.frameBytes);
  $("stat-latency").textContent = fmtMs(cs.rttAvgMs ?? cs.rttMs);
  $("stat-latency").title = `WebSocket ping round trip; last ${fmtMs(cs.rttMs)}, mean of the last 10 ${fmtMs(cs.rttAvgMs)}`;
  $("stat-age").textContent = fmtMs(cs.frameAgeMs);
  $("stat-camera-fps").textContent = fmt(s.camera_fps, 1);
  $("stat-dropped").textContent = fmtInt(s.camera_dropped);
  $("stat-encode").textContent = fmtMs(s.encode_ms);
  if (WEBRTC) {
    showWebRTCStats();
    return;
  }
  const vs = viewer.stats;
  $("stat-painted").textContent = vs.latencyP50 === null ? "–" : `${fmtMs(vs.latencyP50)} / ${fmtMs(vs.latencyP95)}`;
  $("stat-draw").textContent = vs.pipelineP50 === null ? "–" : `${fmtMs(vs.pipelineP50)} / ${fmtMs(vs.pipelineP95)}`;
});

/** transport=webrtc: fps and latency are the video's (getStats, and the viewer's capture → shown ages). */
function showWebRTCStats() {
  client.webrtcStats().then((s) => {
    webrtcStats = s;
    const v = client.webrtc;
    $("stat-fps").textContent = s ? fmt(s.framesPerSecond, 1) : "–";
    $("stat-fps").title = "frames decoded per second (WebRTC getStats)";
    $("stat-frames").textContent = s ? fmtInt(s.framesDecoded) : "–";
    $("stat-skipped").textContent = s ? fmtInt(s.framesDropped) : "–";
    $("stat-rate").textContent = "–";
    $("stat-size").textContent = s ? `${s.frameWidth}×${s.frameHeight}` : "–";
    $("stat-age").textContent = fmtMs(v?.frameInfo?.age_ms);
    $("stat-age").title = "capture to shown, from labcam's SEI in the H.264 stream";
    const ages = v ? [...v.ages].sort((a, b) => a - b) : [];
    const at = (q) => ages[Math.min(ages.length - 1, Math.floor(q * ages.length))];
    $("stat-painted").textContent = ages.length ? `${fmtMs(at(0.5))} / ${fmtMs(at(0.95))}` : "–";
    $("stat-draw").textContent = "–";
    $("stat-renderer").textContent = "<video> (WebRTC via Janus)";
  }).catch(() => {});
}

// encoding: jpeg or raw (held back by the client for a server that does not know it)
$("encoding").value = client.options.encoding || "jpeg";
$("encoding").addEventListener("change", () => {
  const encoding = $("encoding").value;
  if (client.connected && !client.viewAware) log("warn", `this server does not know encoding=${encoding}: it goes in the query of the next connection`);
  applyStream({ encoding }, `encoding ${encoding}`);
});

// ---- stream controls ------------------------------------------------------------------------

function showError(id, message) {
  const el = $(id);
  el.textContent = message || "";
  el.hidden = !message;
}

function readNumber(input) {
  const raw = input.value.trim();
  if (raw === "") return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

/** Run `fn` after `ms` of quiet (typing), or at once via .now(). */
function debounce(fn, ms) {
  let timer = null;
  const run = () => {
    clearTimeout(timer);
    timer = null;
    fn();
  };
  const debounced = () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  debounced.now = run;
  return debounced;
}

function applyStream(changes, what) {
  client
    .configure(changes)
    .then((stream) => {
      showError("stream-error", "");
      log("info", `stream: ${what}`);
      if (client.connected) showStream(stream);
      $("url").textContent = client.url.replace(/([?&]token=)[^&]*/, "$1…");
    })
    .catch((e) => {
      showError("stream-error", e.message);
      if (!(e && e.name === "LabcamError")) log("warn", e.message); // server errors are logged by the client
    });
}

function bindStreamNumber(id, key, label, integer = false) {
  const input = $(id);
  const apply = () => {
    const v = readNumber(input);
    if (v === undefined) {
      showError("stream-error", `${label}: not a number`);
      return;
    }
    if (v === client.options[key] || (v === null && (client.options[key] === null || client.options[key] === undefined))) return;
    applyStream({ [key]: v === null ? null : integer ? Math.round(v) : v }, `${label} ${v === null ? "default" : v}`);
  };
  const debounced = debounce(apply, 500);
  input.addEventListener("input", debounced);
  input.addEventListener("change", debounced.now);
  return input;
}

bindStreamNumber("fps", "fps", "fps cap");
bindStreamNumber("quality", "quality", "JPEG quality", true);
bindStreamNumber("max-width", "maxWidth", "max width", true);

$("quality").addEventListener("input", () => {
  if ($("quality").value !== "") $("quality-slider").value = $("quality").value;
});
{
  const slider = $("quality-slider");
  const sync = () => ($("quality").value = slider.value);
  slider.addEventListener("input", sync);
  slider.addEventListener("change", () => {
    sync();
    $("quality").dispatchEvent(new Event("change"));
  });
}

function showStream(stream) {
  if (!stream) return;
  const set = (id, v) => {
    const el = $(id);
    if (document.activeElement !== el) el.value = v === null || v === undefined ? "" : v;
  };
  set("fps", stream.fps);
  set("quality", stream.quality);
  if (isNum(stream.quality)) $("quality-slider").value = stream.quality;
  set("max-width", stream.max_width);
  const d = stream.display;
  if (Array.isArray(d) && d.length === 2) {
    $("display-mode").value = "manual";
    set("display-min", d[0]);
    set("display-max", d[1]);
  } else if (d === "auto") {
    $("display-mode").value = "auto";
  }
  syncDisplayInputs();
}

// display range (12/16-bit)

function currentBits() {
  return bitDepthOf(lastMeta) || bitDepthOf(client.settings) || (client.camera && client.camera.max_bit_depth) || 16;
}

/** The display range inputs' limits and hint for a frame header or the settings (null: not known yet). */
function updateDisplayHint(header) {
  const pixelFormat = header && header.pixel_format;
  const bits = bitDepthOf(header) || currentBits();
  const top = 2 ** bits - 1;
  $("display-min").max = String(top - 1);
  $("display-max").max = String(top);
  $("display-hint").textContent = bits > 8 ? `camera counts, 0–${top} (${bits}-bit)` : `applies to 12/16-bit formats (now ${pixelFormat || "8-bit"})`;
}

function syncDisplayInputs() {
  const manual = $("display-mode").value === "manual";
  $("display-min").disabled = !manual;
  $("display-max").disabled = !manual;
}

function applyDisplay() {
  syncDisplayInputs();
  if ($("display-mode").value === "auto") {
    const inForce = (client.stream && client.stream.display) || client.options.display || "auto";
    if (inForce !== "auto") applyStream({ display: "auto" }, "display range auto");
    return;
  }
  const lo = readNumber($("display-min"));
  const hi = readNumber($("display-max"));
  if (lo === null || hi === null) return; // still being filled in
  if (lo === undefined || hi === undefined || !Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || lo >= hi) {
    showError("stream-error", "display range: whole numbers with 0 ≤ min < max");
    return;
  }
  applyStream({ display: [lo, hi] }, `display range ${lo}–${hi}`);
}

const debouncedDisplay = debounce(applyDisplay, 500);
$("display-mode").addEventListener("change", applyDisplay);
for (const id of ["display-min", "display-max"]) {
  $(id).addEventListener("input", debouncedDisplay);
  $(id).addEventListener("change", debouncedDisplay.now);
}
$("display-from-frame").addEventListener("click", () => {
  const d = lastMeta && lastMeta.display;
  if (!Array.isArray(d) || d.length !== 2) {
    log("warn", "no display range known yet: wait for a frame");
    return;
  }
  $("display-mode").value = "manual";
  $("display-min").value = d[0];
  $("display-max").value = d[1];
  applyDisplay();
});
updateDisplayHint(null);
syncDisplayInputs();

// ---- camera settings ------------------------------------------------------------------------

/** One settings request in flight; changes made meanwhile are merged and sent next (latest wins). */
const settingsSender = settingsCoalescer((changes) => {
  const what = Object.entries(changes).map(([k, v]) => `${k}=${v}`).join(", ");
  return client
    .setSettings(changes)
    .then(() => {
      showError("settings-error", "");
      log("info", `settings: ${what}`);
    })
    .catch((e) => {
      showError("settings-error", e.message);
      if (!(e && e.name === "LabcamError" && e.code === "server")) log("warn", `settings ${what}: ${e.message}`);
      showSettings(client.settings || {}, true); // back to what the camera has
    });
});

// Exposure spans decades (µs to s): its slider is logarithmic.
let exposureRange = { min: 0.01, max: 1000 };
const expToSlider = (v) => toLogSlider(v, exposureRange.min, exposureRange.max);
const sliderToExp = (t) => fromLogSlider(t, exposureRange.min, exposureRange.max);

function floatSpec(spec) {
  return spec && spec.kind === "float" && isNum(spec.minimum) && isNum(spec.maximum) ? spec : null;
}

function setupNumberControl(id, sliderId, spec, rangeId) {
  const input = $(id);
  const slider = sliderId ? $(sliderId) : null;
  const f = floatSpec(spec);
  input.dataset.unavailable = spec ? "0" : "1";
  if (slider) slider.dataset.unavailable = f ? "0" : "1";
  if (f) {
    input.min = String(f.minimum);
    input.max = String(f.maximum);
  } else {
    input.removeAttribute("min");
    input.removeAttribute("max");
  }
  if (rangeId) {
    $(rangeId).textContent = !spec
      ? "not available on this camera"
      : (spec.allowed || (f ? `${f.minimum} – ${f.maximum} ${spec.unit || ""}` : "")) + (spec.settable_while_streaming === false ? " (not while streaming)" : "");
  }
  input.title = spec && spec.allowed ? `allowed: ${spec.allowed}` : "";
}

function setupCameraControls(specs, settings, camera) {
  const exp = floatSpec(specs.exposure_ms);
  if (exp && exp.minimum > 0) exposureRange = { min: exp.minimum, max: exp.maximum };
  setupNumberControl("exposure", "exposure-slider", specs.exposure_ms, "exposure-range");
  setupNumberControl("gain", "gain-slider", specs.gain_db, "gain-range");
  const gain = floatSpec(specs.gain_db);
  if (gain) {
    $("gain-slider").min = String(gain.minimum);
    $("gain-slider").max = String(gain.maximum);
  }
  setupNumberControl("camera-fps", null, specs.fps, null);

  const select = $("pixel-format");
  const spec = specs.pixel_format;
  const choices = spec && spec.kind === "choice" && Array.isArray(spec.choices) ? spec.choices : Array.isArray(camera.pixel_formats) ? camera.pixel_formats : [];
  select.replaceChildren(...choices.map((c) => new Option(String(c), String(c))));
  select.dataset.unavailable = choices.length ? "0" : "1";
  // The camera may refuse this while streaming (and the page keeps it streaming): say so up front.
  const locked = !!spec && spec.settable_while_streaming === false;
  select.dataset.locked = locked ? "1" : "0";
  select.title = locked ? "cannot be changed while the camera streams (use the REST API or the Python API)" : spec && spec.allowed ? `allowed: ${spec.allowed}` : "";
  showSettings(settings, true);
}

function showSettings(settings, force = false) {
  const set = (id, v) => {
    const el = $(id);
    if (isNum(v) && (force || document.activeElement !== el)) el.value = String(+v.toPrecision(6));
  };
  set("exposure", settings.exposure_ms);
  if (isNum(settings.exposure_ms) && document.activeElement !== $("exposure-slider")) $("exposure-slider").value = expToSlider(settings.exposure_ms);
  set("gain", settings.gain_db);
  if (isNum(settings.gain_db) && document.activeElement !== $("gain-slider")) $("gain-slider").value = settings.gain_db;
  set("camera-fps", settings.fps);
  if (settings.pixel_format && (force || document.activeElement !== $("pixel-format"))) $("pixel-format").value = settings.pixel_format;
  if (settings.pixel_format) updateDisplayHint(settings);
}

client.on("settings", (settings) => showSettings(settings));

function bindSetting(id, key) {
  const input = $(id);
  const apply = () => {
    const v = readNumber(input);
    if (v === null || v === undefined) return;
    if (client.settings && client.settings[key] === v) {
      showError("settings-error", ""); // back at the camera's value: nothing to send, nothing wrong
      return;
    }
    settingsSender({ [key]: v });
  };
  const debounced = debounce(apply, 500);
  input.addEventListener("input", debounced);
  input.addEventListener("change", debounced.now);
}

bindSetting("exposure", "exposure_ms");
bindSetting("gain", "gain_db");
bindSetting("camera-fps", "fps");

$("exposure-slider").addEventListener("input", () => {
  const v = sliderToExp(Number($("exposure-slider").value));
  $("exposure").value = String(v);
  settingsSender({ exposure_ms: v });
});
$("gain-slider").addEventListener("input", () => {
  const v = +Number($("gain-slider").value).toPrecision(4);
  $("gain").value = String(v);
  settingsSender({ gain_db: v });
});
$("pixel-format").addEventListener("change", () => settingsSender({ pixel_format: $("pixel-format").value }));

// ---- snapshot -------------------------------------------------------------------------------

$("snap").addEventListener("click", async () => {
  const format = $("snap-format").value;
  const button = $("snap");
  button.disabled = true;
  $("snap-info").textContent = "waiting for the next frame…";
  try {
    const { blob, meta } = await client.snap(format);
    const name = snapFileName(client.camera && client.camera.serial, format, meta);
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    const dims = isNum(meta.width) && isNum(meta.height) ? `${meta.width}×${meta.height} ` : "";
    const info = `${name}: ${dims}${meta.pixel_format || ""}, ${fmtBytes(blob.size)}`;
    lastSnap = { name, size: blob.size, type: blob.type, meta };
    $("snap-info").textContent = info;
    log("info", `snap saved: ${info}`);
  } catch (e) {
    $("snap-info").textContent = `snap failed: ${e.message}`;
    if (!(e && e.name === "LabcamError" && e.code === "server")) log("error", `snap failed: ${e.message}`);
  } finally {
    button.disabled = !client.connected;
  }
});

// ---- recording ------------------------------------------------------------------------------
// The server records (every frame, full bit depth, into its recordings folder, whatever this page
// draws); the page starts and stops it with the stream's record messages and follows the progress
// broadcasts (about one a second, and when it ends).

const seenRecordings = new Map(); // id -> latest status seen in broadcasts (a reply may come after them)

function recordingActive() {
  return !!recording && (recording.state === "recording" || recording.state === "finishing");
}

function updateRecordButtons() {
  const live = client.connected;
  $("record").disabled = !live || recordingActive();
  $("record-stop").disabled = !live || !recordingActive() || recording.state === "finishing";
}

function showRecording(st) {
  recording = newerStatus(recording && recording.id === st.id ? recording : null, st);
  const r = recording;
  const el = $("record-status");
  el.dataset.state = r.state;
  el.dataset.id = r.id;
  el.dataset.frames = String(r.frames_written);
  const target = isNum(r.frames_target) ? `/${fmtInt(r.frames_target)}` : "";
  const figures = `${fmtInt(r.frames_written)}${target} frames · ${fmt(r.mb_per_s, 1)} MB/s · dropped ${fmtInt(r.dropped)}`;
  const head = { recording: "● recording", finishing: "finishing", done: "done", failed: "failed" }[r.state] || r.state;
  el.textContent = `${head} ${r.name}: ${figures}${r.error ? ` — ${r.error}` : ""}`;
  el.title = `${r.id}; ${fmtBytes(r.bytes_written)} written; disk took ${fmt(r.write_mb_per_s, 1)} MB/s while writing`;
  showError("record-error", r.state === "failed" ? r.error : "");
  updateRecordButtons();
}

client.on("recording", (st) => {
  if (seenRecordings.size > 64) seenRecordings.delete(seenRecordings.keys().next().value);
  seenRecordings.set(st.id, newerStatus(seenRecordings.get(st.id), st));
  if (recording && st.id === recording.id) {
    showRecording(st);
    if (st.event === "finished") log(st.error ? "error" : "info", `recording ${st.name} ${st.state}: ${fmtInt(st.frames_written)} frames, dropped ${fmtInt(st.dropped)}${st.error ? `: ${st.error}` : ""}`);
  }
});
client.on("state", updateRecordButtons);
client.on("connected", () => {
  // Broadcasts sent while this page was disconnected are lost: ask for the state now.
  if (!recordingActive()) return;
  client
    .recordings()
    .then((list) => {
      const st = list.find((s) => s.id === recording.id);
      if (st) showRecording(st);
    })
    .catch(() => {});
});

$("record").addEventListener("click", async () => {
  const frames = readNumber($("record-frames"));
  const duration = readNumber($("record-duration"));
  if (frames === undefined || duration === undefined) {
    showError("record-error", "frames and duration: numbers, or empty for no limit");
    return;
  }
  const name = $("record-name").value.trim() || recordingName();
  $("record").disabled = true;
  try {
    const st = await client.startRecording({ name, frames: frames ?? undefined, duration: duration ?? undefined });
    showError("record-error", "");
    log("info", `recording ${st.name} (${st.id})${frames ? `, ${frames} frames` : ""}${duration ? `, ${duration} s` : ""}`);
    showRecording(newerStatus(seenRecordings.get(st.id), st));
  } catch (e) {
    showError("record-error", e.message);
    if (!(e && e.name === "LabcamError" && e.code === "server")) log("warn", `record: ${e.message}`);
  } finally {
    updateRecordButtons();
  }
});

$("record-stop").addEventListener("click", async () => {
  if (!recordingActive()) return;
  $("record-stop").disabled = true;
  try {
    showRecording(await client.stopRecording(recording.id));
  } catch (e) {
    showError("record-error", e.message);
  } finally {
    updateRecordButtons();
  }
});

// ---- camera picker (a host of several cameras: api/cameras, each camera's page under cameras/<id>/) ----

(async () => {
  const own = location.pathname.match(/\/cameras\/([A-Za-z0-9_-]{1,64})\/$/);
  const root = new URL(own ? "../../" : "./", location.href);
  const token = params.get("token");
  const res = await fetch(new URL("api/cameras", root), { headers: token ? { Authorization: `token ${token}` } : {} });
  const list = res.ok ? (await res.json()).cameras : [];
  if (list.length < 2) return; // one camera (or a host without api/cameras): nothing to pick
  const pick = Object.assign(document.createElement("select"), { id: "camera-picker", title: "camera" });
  pick.dataset.testid = "camera-picker";
  for (const c of list) pick.add(new Option(`${c.id} (${c.driver} ${c.serial})`, c.path, false, own ? c.id === own[1] : c.legacy));
  pick.addEventListener("change", () => (location.href = new URL(pick.value, root).href + location.search));
  $("url").before(pick);
})().catch((e) => log("debug", `no camera list: ${e.message}`));

// ---- start ----------------------------------------------------------------------------------

updateStatus();
log("info", `labcam test page; stream ${client.options.format}${client.options.token ? ", with token" : ""}`);
if (params.get("autoconnect") !== "0") client.connect().catch(() => {});
