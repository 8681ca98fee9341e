// The helpers labcam-client.js exports for the test page, the notebook widget and the Vue component:
// run with `node --test tests/js/` (Node >= 20, no npm deps).

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  bitDepthOf,
  fmt,
  fmtBytes,
  fmtInt,
  fmtMs,
  fmtSeconds,
  fromLogSlider,
  newerStatus,
  normalizeStreamOptions,
  overlayText,
  recordingName,
  RECORDING_RANK,
  settingsCoalescer,
  SLIDER_STEPS,
  snapFileName,
  STREAM_OPTION_RANGES,
  toLogSlider,
  viewMode,
} from "../../labcam/web/labcam-client.js";

// ---- recording statuses -----------------------------------------------------------------------

test("newerStatus: a later state wins whatever the frame counts", () => {
  const recording = { id: "r1", state: "recording", frames_written: 90 };
  const done = { id: "r1", state: "done", frames_written: 50 };
  assert.equal(newerStatus(recording, done), done);
  assert.equal(newerStatus(done, recording), done); // a late progress broadcast does not undo "done"
  const finishing = { id: "r1", state: "finishing", frames_written: 100 };
  assert.equal(newerStatus(finishing, recording), finishing);
  assert.ok(RECORDING_RANK.done > RECORDING_RANK.finishing && RECORDING_RANK.finishing > RECORDING_RANK.recording);
  assert.equal(RECORDING_RANK.failed, RECORDING_RANK.done);
});

test("newerStatus: within a state, more frames written wins; a tie goes to the second", () => {
  const a = { state: "recording", frames_written: 10 };
  const b = { state: "recording", frames_written: 20 };
  assert.equal(newerStatus(a, b), b);
  assert.equal(newerStatus(b, a), b);
  const same = { state: "recording", frames_written: 10 };
  assert.equal(newerStatus(a, same), same);
  assert.equal(newerStatus(null, a), a);
  assert.equal(newerStatus(a, null), a);
  assert.equal(newerStatus(a, { state: "recording" }), a); // no count counts as 0
});

// ---- snapshot and recording names -------------------------------------------------------------

function localStamp(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

test("snapFileName: labcam_<serial>_<local time of the frame>_<frame>.<ext>", () => {
  const t = 1764059000.25;
  assert.equal(snapFileName("SIM-0001", "png", { timestamp: t, frame_number: 12 }), `labcam_SIM-0001_${localStamp(t)}_12.png`);
  assert.equal(snapFileName("SIM-0001", "tiff", { timestamp: t, frame_number: 12 }), `labcam_SIM-0001_${localStamp(t)}_12.tif`);
  assert.equal(snapFileName("SIM-0001", "jpeg", { timestamp: t, frame_number: 0 }), `labcam_SIM-0001_${localStamp(t)}_0.jpg`);
  assert.equal(snapFileName("SIM-0001", "npy", { timestamp: t, frame_number: 3 }), `labcam_SIM-0001_${localStamp(t)}_3.npy`);
});

test("snapFileName: the serial falls back to the header's, then to 'camera'; unsafe characters become _", () => {
  const t = 1764059000;
  assert.equal(snapFileName(null, "png", { timestamp: t, frame_number: 5, camera_serial: "PL 42" }), `labcam_PL_42_${localStamp(t)}_5.png`);
  assert.equal(snapFileName("", "png", { timestamp: t, frame_number: 5 }), `labcam_camera_${localStamp(t)}_5.png`);
  assert.equal(snapFileName("a/b:c", "png", { timestamp: t, frame_number: 5 }), `labcam_a_b_c_${localStamp(t)}_5.png`);
  assert.match(snapFileName(undefined, "npy", {}), /^labcam_camera_\d{8}-\d{6}_frame\.npy$/);
  assert.match(snapFileName("x", "bmp", { frame_number: 1 }), /^labcam_x_\d{8}-\d{6}_1\.bmp$/); // unknown format: its own name
});

test("recordingName: a dated OME-TIFF name by default, another extension on request", () => {
  assert.match(recordingName(), /^labcam-\d{8}-\d{6}\.ome\.tif$/);
  assert.match(recordingName(".ome.zarr"), /^labcam-\d{8}-\d{6}\.ome\.zarr$/);
});

// ---- bit depth --------------------------------------------------------------------------------

test("bitDepthOf: the header's bit_depth when present, even against the pixel format", () => {
  assert.equal(bitDepthOf({ bit_depth: 12, pixel_format: "mono16" }), 12);
  assert.equal(bitDepthOf({ bit_depth: 10 }), 10);
});

test("bitDepthOf: older servers: from the pixel format's name, else the fallback", () => {
  const cases = { mono8: 8, mono10: 10, mono12: 12, mono14: 14, mono16: 16, rgb8: 8, bgr8: 8, MONO12: 12 };
  for (const [pf, bits] of Object.entries(cases)) assert.equal(bitDepthOf({ pixel_format: pf }), bits, pf);
  assert.equal(bitDepthOf({ pixel_format: "bayer_rg8" }), null);
  assert.equal(bitDepthOf({ pixel_format: "yuv422" }, 8), 8);
  assert.equal(bitDepthOf({ bit_depth: "12", pixel_format: "mono8" }), 8); // not a number: not trusted
  assert.equal(bitDepthOf(null, 16), 16);
  assert.equal(bitDepthOf(undefined), null);
});

// ---- the settings coalescer -------------------------------------------------------------------

/** A send function whose requests the test settles by hand, in order. */
function manualSend() {
  const calls = [];
  const send = (changes) =>
    new Promise((resolve, reject) => {
      calls.push({ changes, resolve, reject });
    });
  return { calls, send };
}

test("settingsCoalescer: one request in flight, changes made meanwhile merged, the latest value wins", async () => {
  const { calls, send } = manualSend();
  const push = settingsCoalescer(send);
  const first = push({ exposure_ms: 1 });
  assert.equal(calls.length, 1);
  assert.ok(push.busy);
  const second = push({ exposure_ms: 2 });
  const third = push({ gain_db: 3, exposure_ms: 4 });
  assert.equal(second, third, "changes queued together travel in one request");
  assert.equal(calls.length, 1, "nothing more is sent while a request is in flight");
  calls[0].resolve("one");
  assert.equal(await first, "one");
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1].changes, { exposure_ms: 4, gain_db: 3 });
  calls[1].resolve("two");
  assert.equal(await second, "two");
  await new Promise((r) => setImmediate(r));
  assert.equal(push.busy, false);
  assert.equal(calls.length, 2, "nothing left to send");
});

test("settingsCoalescer: a refused request still lets the queued changes go, and its caller sees the refusal", async () => {
  const { calls, send } = manualSend();
  const push = settingsCoalescer(send);
  const refused = push({ exposure_ms: 5000 });
  const next = push({ exposure_ms: 5 });
  calls[0].reject(new Error("exposure_ms=5000 is not allowed"));
  await assert.rejects(refused, /not allowed/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls[1].changes, { exposure_ms: 5 });
  calls[1].resolve("ok");
  assert.equal(await next, "ok");
  // idle again: the next change goes at once, in a request of its own
  push({ gain_db: 1 });
  assert.equal(calls.length, 3);
  assert.deepEqual(calls[2].changes, { gain_db: 1 });
});

test("settingsCoalescer: a send that throws is a rejected request, not a stuck coalescer", async () => {
  let n = 0;
  const push = settingsCoalescer((changes) => {
    n++;
    if (changes.bad) throw new TypeError("not connected");
    return Promise.resolve(changes);
  });
  await assert.rejects(push({ bad: true }), /not connected/);
  assert.deepEqual(await push({ gain_db: 2 }), { gain_db: 2 });
  assert.equal(n, 2);
});

test("settingsCoalescer: the caller's object is not changed by later merges", async () => {
  const { calls, send } = manualSend();
  const push = settingsCoalescer(send);
  const mine = { exposure_ms: 1 };
  push(mine);
  push({ gain_db: 2 });
  calls[0].resolve();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(mine, { exposure_ms: 1 });
  assert.notEqual(calls[0].changes, mine);
});

// ---- the log slider ---------------------------------------------------------------------------

test("log slider: the ends, a decade in the middle, and values outside are clamped", () => {
  assert.equal(SLIDER_STEPS, 1000);
  assert.equal(toLogSlider(0.01, 0.01, 1000), 0);
  assert.equal(toLogSlider(1000, 0.01, 1000), SLIDER_STEPS);
  assert.equal(toLogSlider(1, 0.01, 1000), 400); // 2 of 5 decades
  assert.equal(toLogSlider(1e-9, 0.01, 1000), 0);
  assert.equal(toLogSlider(1e9, 0.01, 1000), SLIDER_STEPS);
  assert.equal(fromLogSlider(0, 0.01, 1000), 0.01);
  assert.equal(fromLogSlider(SLIDER_STEPS, 0.01, 1000), 1000);
  assert.equal(fromLogSlider(500, 0.01, 1000), 3.16); // three significant digits
  assert.equal(fromLogSlider(-5, 0.01, 1000), 0.01);
  assert.equal(fromLogSlider(5000, 0.01, 1000), 1000);
});

test("log slider: position -> value -> position round-trips, value -> position -> value within a step", () => {
  for (const [min, max] of [[0.01, 1000], [0.02, 2000], [1, 10]]) {
    for (let t = 0; t <= SLIDER_STEPS; t += 37) {
      assert.ok(Math.abs(toLogSlider(fromLogSlider(t, min, max), min, max) - t) <= 2, `${t} in ${min}..${max}`);
    }
    const step = (max / min) ** (1 / SLIDER_STEPS); // one position's ratio
    for (const v of [min * 1.5, Math.sqrt(min * max), max / 3]) {
      const back = fromLogSlider(toLogSlider(v, min, max), min, max);
      assert.ok(back / v < step * 1.006 && v / back < step * 1.006, `${v} came back as ${back}`);
    }
  }
});

test("log slider: a range it cannot map gives the middle position and the minimum", () => {
  assert.equal(toLogSlider(5, 0, 10), SLIDER_STEPS / 2);
  assert.equal(toLogSlider(5, 10, 10), SLIDER_STEPS / 2);
  assert.equal(toLogSlider(Number.NaN, 1, 10), SLIDER_STEPS / 2);
  assert.equal(fromLogSlider(300, 10, 5), 10);
});

// ---- formatters -------------------------------------------------------------------------------

test("formatters: numbers, counts, bytes, milliseconds and delays; a dash for anything not a number", () => {
  assert.equal(fmt(12.345), "12.3");
  assert.equal(fmt(12.345, 2, " fps"), "12.35 fps");
  assert.equal(fmtInt(12345.6), "12,346");
  assert.equal(fmtBytes(512), "512 B");
  assert.equal(fmtBytes(1500), "1.5 kB");
  assert.equal(fmtBytes(2_400_000, true), "2.40 MB/s");
  assert.equal(fmtMs(3.14159), "3.1 ms");
  assert.equal(fmtMs(42.4), "42 ms");
  assert.equal(fmtSeconds(250), "250 ms");
  assert.equal(fmtSeconds(3000), "3 s");
  assert.equal(fmtSeconds(1540), "1.5 s");
  for (const f of [fmt, fmtInt, fmtBytes, fmtMs, fmtSeconds]) {
    for (const bad of [null, undefined, Number.NaN, Infinity, "3"]) assert.equal(f(bad), "–", `${f.name}(${String(bad)})`);
  }
});

// ---- stream-option ranges ---------------------------------------------------------------------

test("STREAM_OPTION_RANGES are the ranges the client enforces", () => {
  const { fps, quality, max_width: maxWidth } = STREAM_OPTION_RANGES;
  assert.deepEqual(normalizeStreamOptions({ fps: fps[0], quality: quality[1], maxWidth: maxWidth[0] }), { fps: fps[0], quality: quality[1], max_width: maxWidth[0] });
  assert.throws(() => normalizeStreamOptions({ fps: fps[1] * 1.01 }), new RegExp(`from ${fps[0]} to ${fps[1]}`));
  assert.throws(() => normalizeStreamOptions({ quality: quality[0] - 1 }), RangeError);
  assert.throws(() => normalizeStreamOptions({ maxWidth: maxWidth[1] + 1 }), RangeError);
  assert.ok(Object.isFrozen(STREAM_OPTION_RANGES) && Object.isFrozen(fps));
});

// ---- overlay texts ----------------------------------------------------------------------------

test("viewMode: the client's state, or what the picture does once connected", () => {
  assert.equal(viewMode({ state: "reconnecting", framesDrawn: 10 }), "reconnecting");
  assert.equal(viewMode({ state: "connected", cameraState: "lost", paused: true, framesDrawn: 3 }), "lost");
  assert.equal(viewMode({ state: "connected", paused: true, framesDrawn: 0 }), "paused");
  assert.equal(viewMode({ state: "connected", cameraState: "idle" }), "camera-idle");
  assert.equal(viewMode({ state: "connected", cameraState: "streaming", framesDrawn: 0 }), "waiting");
  assert.equal(viewMode({ state: "connected", cameraState: "streaming", framesDrawn: 1 }), "live");
});

test("overlayText: nothing over a live picture, a sentence for every other mode", () => {
  assert.deepEqual(overlayText("live"), { title: "", text: "" });
  assert.deepEqual(overlayText("streaming"), { title: "", text: "" });
  assert.equal(overlayText("idle").text, "Not connected");
  assert.equal(overlayText("connecting", { where: "http://lab-pc:8001" }).text, "Connecting to http://lab-pc:8001…");
  assert.equal(overlayText("connecting").text, "Connecting…");
  assert.equal(overlayText("connecting", { message: "Waiting for frames from the kernel…" }).text, "Waiting for frames from the kernel…");
  assert.equal(overlayText("closed").text, "Disconnected.");
  assert.equal(overlayText("paused").text, "Paused");
  assert.equal(overlayText("paused", { outOfView: true }).text, "Paused (out of view)");
  assert.equal(overlayText("waiting").text, "Waiting for the first frame…");
  assert.equal(overlayText("camera-idle", { message: "stopped by the script" }).text, "Camera idle: stopped by the script");
  assert.equal(overlayText("lost", { message: "camera unplugged" }).text, "Camera lost: camera unplugged. The stream resumes by itself when it returns.");
  assert.equal(overlayText("lost").text, "Camera lost. The stream resumes by itself when it returns.");
});

test("overlayText: reconnecting and errors say why, and whether the view was ever connected", () => {
  const lost = overlayText("reconnecting", { reason: "the server went away", retryIn: 3000, attempt: 1, everConnected: true });
  assert.deepEqual(lost, { title: "Reconnecting…", text: "Connection lost: the server went away. Retrying every 3 s (attempt 1)." });
  const never = overlayText("reconnecting", { reason: "refused", retryIn: 500, attempt: 4 });
  assert.equal(never.text, "Cannot connect: refused. Retrying every 500 ms (attempt 4).");
  assert.equal(overlayText("reconnecting").text, "Cannot connect: the connection failed.");
  assert.deepEqual(overlayText("error", { reason: "bad option" }), { title: "Error", text: "Cannot connect: bad option" });
  assert.equal(overlayText("error", { reason: "connection closed", everConnected: true }).text, "Connection failed: connection closed");
});
