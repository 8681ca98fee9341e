// labcam's WebRTC viewer: the camera through a Janus streaming mountpoint.
//
// Bundled with janus-gateway (npm) by esbuild into labcam/web/dist/labcam-webrtc.js
// (`npm run build` in webrtc/, run by scripts/setup.sh); the bundle is never committed.
//
// labcam decides who may view: `GET api/webrtc` (with labcam's token) answers Janus's URL, the
// mountpoint and a fresh Janus token for this viewer alone; Janus refuses anyone without one.
// Settings, snaps and recordings stay on labcam's WebSocket/REST.
//
// Status: "connecting" → "live" (frames decoding) → "lost" (Janus or the network gone; retried
// with back-off, each time with a new token from labcam) | "refused" (labcam said no: 401/403,
// not retried) | "closed".
//
// Frame info: each access unit carries labcam's SEI (frame number, capture time; see
// labcam/webrtc/rtp.py). An RTCRtpScriptTransform reads it from the encoded frames (where the
// browser has one), and requestVideoFrameCallback matches it to the decoded frame by RTP
// timestamp, so `frameInfo` gives the frame shown, its capture time and its age.

import Janus from "janus-gateway";
import adapter from "webrtc-adapter";

const SEI_UUID = "6c616263616d46728a6d65496e666f30"; // FRAME_INFO_UUID in labcam/webrtc/rtp.py
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
const INFO_KEEP = 64; // frame infos kept waiting for their decoded frame (bounded)

let janusReady = null;
function initJanus() {
  janusReady ??= new Promise((resolve) => {
    Janus.init({ debug: false, dependencies: Janus.useDefaultDependencies({ adapter }), callback: resolve });
  });
  return janusReady;
}

// The worker that reads the SEI from each encoded video frame (as a blob: no extra file to serve).
const WORKER_SOURCE = `
const UUID = "${SEI_UUID}";
function hex(b, o, n) { let s = ""; for (let i = o; i < o + n; i++) s += b[i].toString(16).padStart(2, "0"); return s; }
function unescape(b) { const out = []; let z = 0; for (const x of b) { if (z >= 2 && x === 3) { z = 0; continue; } out.push(x); z = x === 0 ? z + 1 : 0; } return Uint8Array.from(out); }
function frameInfo(data) {
  const b = new Uint8Array(data);
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1 && (b[i + 3] & 0x1f) === 6) {
      let end = i + 4; while (end + 2 < b.length && !(b[end] === 0 && b[end + 1] === 0 && (b[end + 2] === 1 || b[end + 2] === 0))) end++;
      const r = unescape(b.subarray(i + 4, end));
      if (r[0] === 5 && r[1] >= 32 && hex(r, 2, 16) === UUID) {
        const v = new DataView(r.buffer, r.byteOffset + 18, 16);
        return { frame: Number(v.getBigUint64(0)), capture: v.getFloat64(8) };
      }
    }
  }
  return null;
}
onrtctransform = (event) => {
  const t = event.transformer;
  t.readable.pipeThrough(new TransformStream({ transform(frame, controller) {
    const info = frameInfo(frame.data);
    if (info) postMessage({ ...info, rtpTimestamp: frame.getMetadata().rtpTimestamp, received: performance.timeOrigin + performance.now() });
    controller.enqueue(frame);
  } })).pipeTo(t.writable);
};`;

export class WebRTCViewer extends EventTarget {
  /**
   * @param {object} o
   * @param {string} [o.base] labcam's root URL ("" = this page's server), e.g. "http://127.0.0.1:8001/"
   * @param {string} [o.token] labcam's token (sent as `Authorization: token …`)
   * @param {HTMLVideoElement} o.video where the stream plays (muted, autoplay)
   * @param {boolean} [o.reconnect] retry after a loss (default true)
   */
  constructor({ base = "", token, video, reconnect = true }) {
    super();
    this.base = base && !base.endsWith("/") ? base + "/" : base;
    this.token = token;
    this.video = video;
    this.reconnect = reconnect;
    this.status = "closed";
    this.error = "";
    this.frameInfo = null; // { frame, capture, age_ms } of the frame shown last
    this.framesShown = 0;
    this.ages = []; // capture → shown, ms, the newest 600 (bounded)
    this._janus = null;
    this._handle = null;
    this._retry = RETRY_MIN_MS;
    this._timer = null;
    this._infos = new Map();
    this._worker = null;
    this._generation = 0;
  }

  _setStatus(status, error = "") {
    if (this.status === status && this.error === error) return;
    this.status = status;
    this.error = error;
    this.dispatchEvent(new CustomEvent("status", { detail: { status, error } }));
  }

  /** Connect (again). Resolves once Janus has the viewer's session; rejects when labcam refuses. */
  async connect() {
    clearTimeout(this._timer);
    this._teardown();
    this._closed = false;
    this._setStatus("connecting");
    const headers = this.token ? { Authorization: `token ${this.token}` } : {};
    let info;
    try {
      const response = await fetch(`${this.base}api/webrtc`, { headers, cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        this._setStatus("refused", `labcam refused WebRTC (${response.status})`);
        throw new Error(this.error);
      }
      if (!response.ok) throw new Error(`api/webrtc answered ${response.status}: ${await response.text()}`);
      info = await response.json();
    } catch (err) {
      if (this.status !== "refused") this._lost(String(err));
      throw err;
    }
    await initJanus();
    const generation = ++this._generation;
    // Callbacks of an earlier session (its long poll failing after a reconnect) must not end this one.
    const lost = (why) => { if (generation === this._generation) this._lost(why); };
    return new Promise((resolve, reject) => {
      this._janus = new Janus({
        server: info.janus_url,
        token: info.token,
        iceServers: info.ice_servers || [], // none: never a public STUN server by default
        success: () => this._attach(info, lost, resolve, reject),
        error: (err) => { lost(`Janus: ${err}`); reject(new Error(String(err))); },
        destroyed: () => {},
      });
    });
  }

  _attach(info, lost, resolve, reject) {
    this._janus.attach({
      plugin: "janus.plugin.streaming",
      success: (handle) => {
        this._handle = handle;
        handle.send({ message: { request: "watch", id: info.mountpoint } });
        resolve();
      },
      error: (err) => { lost(`attach: ${err}`); reject(new Error(String(err))); },
      onmessage: (msg, jsep) => {
        if (msg.error) { lost(`streaming: ${msg.error}`); return; }
        if (jsep) {
          this._handle.createAnswer({
            jsep,
            tracks: [], // receive only: no local tracks
            success: (answer) => this._handle.send({ message: { request: "start" }, jsep: answer }),
            error: (err) => lost(`answer: ${err}`),
          });
        }
      },
      iceState: (state) => {
        if (state === "failed" || state === "disconnected" || state === "closed") lost(`ICE ${state}`);
      },
      onremotetrack: (track, _mid, on) => {
        // janus.js calls this on "track" and again on each unmute: set the stream up once per track.
        if (!on || track.kind !== "video" || this.video.srcObject?.getVideoTracks()[0] === track) return;
        this._watchFrames(track);
        this.video.muted = true;
        this.video.srcObject = new MediaStream([track]);
        this.video.play().catch(() => {});
      },
      webrtcState: (up) => { if (!up) lost("PeerConnection closed"); },
      oncleanup: () => {},
    });
  }

  _watchFrames(track) {
    const pc = this._handle?.webrtcStuff?.pc;
    const receiver = pc?.getReceivers().find((r) => r.track === track);
    if (receiver && typeof RTCRtpScriptTransform === "function") {
      const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
      this._worker = new Worker(url);
      URL.revokeObjectURL(url);
      this._worker.onmessage = ({ data }) => {
        this._infos.set(data.rtpTimestamp, data);
        if (this._infos.size > INFO_KEEP) this._infos.delete(this._infos.keys().next().value);
      };
      receiver.transform = new RTCRtpScriptTransform(this._worker, {});
    }
    const onFrame = (_now, meta) => {
      if (this.status === "closed" || this.video.srcObject?.getVideoTracks()[0] !== track) return;
      if (this.status !== "live") this._setStatus("live");
      this._retry = RETRY_MIN_MS;
      this.framesShown += 1;
      const info = this._infos.get(meta.rtpTimestamp);
      if (info) {
        const age = performance.timeOrigin + meta.presentationTime - info.capture * 1000;
        this.frameInfo = { frame: info.frame, capture: info.capture, age_ms: age };
        this.ages.push(age);
        if (this.ages.length > 600) this.ages.shift();
        this.dispatchEvent(new CustomEvent("frame", { detail: this.frameInfo }));
      }
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  _lost(why) {
    if (this._closed) return;
    this._generation += 1; // whatever the lost session still reports is about the past
    this._setStatus("lost", why);
    this._teardown();
    if (!this.reconnect) return;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.connect().catch(() => {}), this._retry);
    this._retry = Math.min(this._retry * 2, RETRY_MAX_MS);
  }

  _teardown() {
    const janus = this._janus;
    this._janus = null;
    this._handle = null;
    this._infos.clear();
    this._worker?.terminate();
    this._worker = null;
    if (janus) {
      try { janus.destroy({ unload: true, notifyDestroyed: false }); } catch { /* already gone */ }
    }
  }

  /** The inbound video's counters (RTCPeerConnection.getStats()), or null before the stream. */
  async stats() {
    const pc = this._handle?.webrtcStuff?.pc;
    if (!pc) return null;
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        return {
          framesDecoded: s.framesDecoded ?? 0, framesDropped: s.framesDropped ?? 0, packetsLost: s.packetsLost ?? 0,
          packetsReceived: s.packetsReceived ?? 0, framesPerSecond: s.framesPerSecond ?? 0,
          frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, pliCount: s.pliCount ?? 0,
          nackCount: s.nackCount ?? 0,
        };
      }
    }
    return null;
  }

  /** Stop watching for good. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._teardown();
    if (this.video) this.video.srcObject = null;
    this._setStatus("closed");
  }
}

export default WebRTCViewer;
