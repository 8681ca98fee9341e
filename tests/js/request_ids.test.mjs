// Request ids (replies matched by `request_id`) and refused stream options (an `error` with
// "request": "connect", then close 4400: no reconnect loop) in labcam-client.js, against a fake
// WebSocket that plays the server: run with `node --test tests/js/`.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { CLOSE_BAD_OPTION, LabcamClient, LabcamError } from "../../labcam/web/labcam-client.js";
import { binaryMessage, fakeWebSocketClass } from "./fake_server.mjs";

const FakeWebSocket = fakeWebSocketClass();

const SETTINGS = { exposure_ms: 10, gain_db: 0, fps: 30, roi: [0, 0, 1280, 1024], pixel_format: "mono12", trigger_mode: "free_running" };
const HELLO = {
  type: "connected", protocol: 1, client_id: "c1", camera: {}, settings: SETTINGS, specs: {},
  stream: { format: "binary", fps: null, quality: 80, max_width: null, display: "auto", paused: false },
  state: "streaming", server_time: 1764059000, request_ids: true,
};


function makeClient(options = {}) {
  return new LabcamClient({ url: "http://localhost:8001/", WebSocket: FakeWebSocket, now: () => Date.now(), decode: false, pingInterval: 0, statsInterval: 0, pauseWhenHidden: false, ...options });
}

function connected(hello = HELLO, options = {}) {
  const client = makeClient(options);
  const events = { settings: [], error: [], state: [], recording: [] };
  for (const t of Object.keys(events)) client.on(t, (d) => events[t].push(d));
  const ready = client.connect();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receiveJSON(hello);
  return { client, events, ws, ready };
}

/** Whether a promise has settled (after pending microtasks). */
async function settled(p) {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

beforeEach(() => {
  FakeWebSocket.instances = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
});

afterEach(() => {
  mock.timers.reset();
});

describe("request ids", () => {
  test("another client's settings broadcast does not resolve our setSettings; our reply (by id) does", async () => {
    const { client, events, ws } = connected();
    const p = client.setSettings({ gain_db: 6 });
    const [sent] = ws.sentOfType("settings");
    assert.deepEqual(Object.keys(sent).sort(), ["changes", "request_id", "type"]);
    assert.equal(typeof sent.request_id, "number");
    // someone else changed the exposure meanwhile: a plain broadcast
    const theirs = { ...SETTINGS, exposure_ms: 3 };
    ws.receiveJSON({ type: "settings", settings: theirs });
    assert.equal(await settled(p), false, "a broadcast must not settle our request");
    assert.deepEqual(client.settings, theirs, "the broadcast still updates the settings");
    const ours = { ...theirs, gain_db: 6 };
    ws.receiveJSON({ type: "settings", settings: ours, request_id: sent.request_id });
    assert.deepEqual(await p, ours);
    assert.deepEqual(events.settings, [theirs, ours]);
  });

  test("replies are matched by id whatever their order; errors reject the request they name", async () => {
    const { client, ws } = connected();
    const a = client.snap("png");
    const b = client.snap("tiff");
    const c = client.configure({ fps: 5 });
    const d = client.configure({ quality: 50 });
    const [sa, sb] = ws.sentOfType("snap");
    const [sc, sd] = ws.sentOfType("configure");
    assert.equal(new Set([sa.request_id, sb.request_id, sc.request_id, sd.request_id]).size, 4, "ids are unique");
    ws.receive(binaryMessage({ type: "snap", encoding: "tiff", frame_number: 8, request_id: sb.request_id }));
    ws.receiveJSON({ type: "error", message: "no snap: the camera is lost", request: "snap", request_id: sa.request_id });
    ws.receiveJSON({ type: "configured", stream: { ...HELLO.stream, quality: 50 }, request_id: sd.request_id });
    ws.receiveJSON({ type: "error", message: "fps=5 is not allowed", request: "configure", request_id: sc.request_id });
    const snapB = await b;
    assert.equal(snapB.meta.frame_number, 8);
    assert.equal(snapB.blob.type, "image/tiff");
    await assert.rejects(a, (e) => e instanceof LabcamError && e.message === "no snap: the camera is lost" && e.request === "snap");
    assert.equal((await d).quality, 50);
    await assert.rejects(c, (e) => e.message === "fps=5 is not allowed");
  });

  test("record replies are matched by request_id; the recording's own id is kept", async () => {
    const { client, events, ws } = connected();
    const start = client.startRecording({ name: "run1.ome.tif", frames: 10 });
    const list = client.recordings();
    const [s1, s2] = ws.sentOfType("record");
    ws.receiveJSON({ type: "recordings", reply: "status", recordings: [], max_active: 4, request_id: s2.request_id });
    assert.deepEqual(await list, []);
    ws.receiveJSON({ type: "recording", event: "progress", id: "r0-old", state: "recording" });
    assert.equal(await settled(start), false, "a broadcast is not a reply");
    ws.receiveJSON({ type: "recording", reply: "start", id: "r1-ab12", state: "recording", request_id: s1.request_id });
    const status = await start;
    assert.equal(status.id, "r1-ab12");
    assert.equal("request_id" in status, false);
    assert.deepEqual(events.recording.map((r) => r.id), ["r0-old", "r1-ab12"]);
  });

  test("a server that does not echo ids gets none, and replies are matched in order as before", async () => {
    const { request_ids: _ignored, ...oldHello } = HELLO;
    const { client, ws } = connected(oldHello);
    const p = client.setSettings({ gain_db: 6 });
    assert.deepEqual(ws.sentOfType("settings"), [{ type: "settings", changes: { gain_db: 6 } }]);
    const s = { ...SETTINGS, gain_db: 6 };
    ws.receiveJSON({ type: "settings", settings: s });
    assert.deepEqual(await p, s);
  });
});

describe("refused stream options (close 4400)", () => {
  function refuse(ws, message) {
    ws.open();
    ws.receiveJSON({ type: "error", message, request: "connect" });
    ws.serverClose(CLOSE_BAD_OPTION, message.slice(0, 100));
  }
  const MESSAGE = "display='0,4095' is not allowed: 'auto' or MIN,MAX with 0 <= MIN < MAX <= 255 (8-bit camera counts)";

  test("the client stops in state error with the server's message instead of reconnecting", async () => {
    const client = makeClient({ display: [0, 4095], reconnectDelay: 100 });
    const states = [];
    const errors = [];
    client.on("state", (d) => states.push(d));
    client.on("error", (d) => errors.push(d));
    const ready = client.connect();
    refuse(FakeWebSocket.last, MESSAGE);
    await assert.rejects(ready, (e) => e instanceof LabcamError && e.message === MESSAGE && e.request === "connect" && e.response.request === "connect");
    assert.equal(client.state, "error");
    assert.equal(states.at(-1).reason, MESSAGE);
    assert.equal(states.at(-1).code, 4400);
    assert.equal(states.some((s) => s.state === "connected"), false, "the error is not a hello");
    assert.equal(errors.length, 1);
    assert.deepEqual([errors[0].source, errors[0].request, errors[0].message, errors[0].code], ["server", "connect", MESSAGE, 4400]);
    mock.timers.tick(60_000);
    assert.equal(FakeWebSocket.instances.length, 1, "no reconnect loop");
  });

  test("changing the options connects again; the same options do not", async () => {
    const client = makeClient({ display: [0, 4095], reconnectDelay: 100 });
    client.connect();
    refuse(FakeWebSocket.last, MESSAGE);
    await client.configure({ fps: null, display: [0, 4095] }); // the same URL: still refused
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.equal(client.state, "error");
    await client.configure({ display: "auto" });
    assert.equal(FakeWebSocket.instances.length, 2);
    const ws = FakeWebSocket.last;
    assert.equal(new URL(ws.url).searchParams.get("display"), "auto");
    assert.equal(client.state, "connecting");
    ws.open();
    ws.receiveJSON(HELLO);
    assert.equal(client.state, "connected");
  });

  test("reconnect() after a refusal tries again; other close codes still reconnect", async () => {
    const client = makeClient({ reconnectDelay: 100 });
    client.connect();
    refuse(FakeWebSocket.last, "fps='0' is not allowed");
    const again = client.reconnect();
    assert.equal(FakeWebSocket.instances.length, 2);
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receiveJSON(HELLO);
    await again;
    ws.serverClose(1006);
    assert.equal(client.state, "reconnecting");
    mock.timers.tick(100);
    assert.equal(FakeWebSocket.instances.length, 3);
  });
});
