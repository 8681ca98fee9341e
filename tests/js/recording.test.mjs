// Recording through labcam-client.js (startRecording, stopRecording, recordings, the `recording`
// event) against a fake WebSocket that plays the server: run with `node --test tests/js/`.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { LabcamClient, LabcamError } from "../../labcam/web/labcam-client.js";
import { fakeWebSocketClass } from "./fake_server.mjs";

const FakeWebSocket = fakeWebSocketClass();

const HELLO = { type: "connected", protocol: 1, client_id: "c1", camera: {}, settings: {}, specs: {}, stream: {}, state: "streaming" };

function status(over = {}) {
  return {
    id: "r1-ab12", name: "run1.ome.tif", format: "ome-tiff", state: "recording", started_at: 1764059000, frames_written: 0,
    frames_target: 100, duration_target_s: null, elapsed_s: 0, bytes_written: 0, mb_written: 0, mb_per_s: 0, write_mb_per_s: 0,
    fps: 0, dropped: 0, dropped_camera: 0, dropped_overflow: 0, buffered: 0, buffer_capacity: 50, interruptions: 0,
    stop_reason: null, error: null, ...over,
  };
}

function connected() {
  const client = new LabcamClient({ url: "http://localhost:8001/", WebSocket: FakeWebSocket, decode: false, pingInterval: 0, statsInterval: 0 });
  const events = [];
  client.on("recording", (s) => events.push(s));
  client.connect();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receiveJSON(HELLO);
  return { client, ws, events };
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "setInterval"] }));
afterEach(() => mock.timers.reset());

describe("recording", () => {
  test("startRecording sends the record message and resolves with the reply's status", async () => {
    const { client, ws, events } = connected();
    const p = client.startRecording({ name: "run1.ome.tif", frames: 100 });
    assert.deepEqual(ws.sentOfType("record"), [{ type: "record", action: "start", name: "run1.ome.tif", frames: 100 }]);
    // the broadcast to everyone may come first: it does not settle the request
    ws.receiveJSON({ type: "recording", event: "started", ...status() });
    ws.receiveJSON({ type: "recording", reply: "start", ...status() });
    const st = await p;
    assert.equal(st.id, "r1-ab12");
    assert.equal(st.reply, undefined, "the status has no protocol fields left");
    assert.deepEqual(events.map((e) => e.event), ["started", undefined]);
  });

  test("progress broadcasts become recording events; stopRecording resolves with the final status", async () => {
    const { client, ws, events } = connected();
    ws.receiveJSON({ type: "recording", event: "progress", ...status({ frames_written: 40, mb_per_s: 12.5 }) });
    assert.equal(events.at(-1).frames_written, 40);
    assert.equal(events.at(-1).event, "progress");
    const p = client.stopRecording("r1-ab12");
    assert.deepEqual(ws.sentOfType("record").at(-1), { type: "record", action: "stop", id: "r1-ab12" });
    ws.receiveJSON({ type: "recording", reply: "stop", ...status({ state: "done", frames_written: 55, stop_reason: "stopped" }) });
    assert.equal((await p).frames_written, 55);
  });

  test("recordings() resolves with the list", async () => {
    const { client, ws } = connected();
    const p = client.recordings();
    assert.deepEqual(ws.sentOfType("record").at(-1), { type: "record", action: "status" });
    ws.receiveJSON({ type: "recordings", reply: "status", recordings: [status({ state: "done" })], max_active: 4 });
    const list = await p;
    assert.equal(list.length, 1);
    assert.equal(list[0].state, "done");
  });

  test("a refused start rejects with the server's message; replies are matched in request order", async () => {
    const { client, ws } = connected();
    const bad = client.startRecording({ name: "../x.ome.tif", frames: 5 });
    const good = client.recordings();
    const message = "recording name '../x.ome.tif' has '..'; names must stay inside the recordings folder";
    ws.receiveJSON({ type: "error", message, request: "record", action: "start" });
    ws.receiveJSON({ type: "recordings", reply: "status", recordings: [], max_active: 4 });
    await assert.rejects(bad, (e) => e instanceof LabcamError && e.message === message && e.request === "record");
    assert.deepEqual(await good, []);
    assert.equal(client.state, "connected");
  });

  test("bad options are refused locally, nothing is sent", async () => {
    const { client, ws } = connected();
    await assert.rejects(client.startRecording({}), /needs a name/);
    await assert.rejects(client.startRecording({ name: "a.ome.tif", frames: 0 }), /frames=0 is not allowed/);
    await assert.rejects(client.startRecording({ name: "a.ome.tif", duration: -1 }), /duration=-1 is not allowed/);
    await assert.rejects(client.startRecording({ name: "a.ome.tif", frams: 3 }), /unknown recording option "frams"/);
    await assert.rejects(client.stopRecording(), /needs the recording's id/);
    assert.deepEqual(ws.sentOfType("record"), []);
  });

  test("not connected: the requests reject", async () => {
    const client = new LabcamClient({ url: "http://localhost:8001/", WebSocket: FakeWebSocket, decode: false });
    await assert.rejects(client.startRecording({ name: "a.ome.tif" }), /not connected/);
    await assert.rejects(client.recordings(), /not connected/);
  });
});
