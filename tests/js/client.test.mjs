// Tests of the pure logic of labcam-client.js: run with `node --test tests/js/` (Node >= 20, no npm deps).
// The WebSocket is a fake driven by the test; timers and Date are node:test's mock timers.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import {
  LabcamClient,
  LabcamError,
  base64ToBytes,
  buildStreamUrl,
  normalizeDisplay,
  normalizeStreamOptions,
  pageStreamBase,
  parseBinaryMessage,
} from "../../labcam/web/labcam-client.js";
import { binaryMessage, fakeWebSocketClass } from "./fake_server.mjs";

// ---- helpers ------------------------------------------------------------------------------




const HELLO = {
  type: "connected",
  protocol: 1,
  client_id: "c7",
  camera: { driver: "simulated", model: "labcam simulated microscope", serial: "SIM-0001", sensor_width: 1280, sensor_height: 1024, max_bit_depth: 16 },
  settings: { exposure_ms: 10, gain_db: 0, fps: 30, roi: [0, 0, 1280, 1024], pixel_format: "mono8", trigger_mode: "free_running" },
  specs: { exposure_ms: { kind: "float", unit: "ms", minimum: 0.01, maximum: 1000 } },
  stream: { format: "binary", fps: null, quality: 80, max_width: null, display: "auto" },
  state: "streaming",
  server_time: 1764059000.123,
};

const FRAME_HEADER = {
  type: "frame", encoding: "jpeg", timestamp: 1764059000.101, frame_number: 1234, width: 640, height: 512,
  source_width: 1280, source_height: 1024, pixel_format: "mono8", display: [0, 255], exposure_ms: 10, gain_db: 0,
};

/** Record every event of a client: events[type] = [detail, ...]. */
function record(client, types = ["state", "connected", "frame", "stats", "settings", "status", "error", "log", "configured", "message"]) {
  const events = {};
  for (const t of types) {
    events[t] = [];
    client.addEventListener(t, (e) => events[t].push(e.detail));
  }
  return events;
}

const flush = () => new Promise((r) => setImmediate(r));

let WS;
function makeClient(options = {}) {
  return new LabcamClient({ url: "http://localhost:8001/", WebSocket: WS, now: () => Date.now(), decode: false, ...options });
}

/** A client connected to a fake server that said hello. */
function connected(options = {}) {
  const client = makeClient(options);
  const events = record(client);
  const ready = client.connect();
  const ws = WS.last;
  ws.open();
  ws.receiveJSON(HELLO);
  return { client, events, ws, ready };
}

beforeEach(() => {
  WS = fakeWebSocketClass();
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
});

afterEach(() => {
  mock.timers.reset();
});

// ---- parseBinaryMessage ---------------------------------------------------------------------

describe("parseBinaryMessage", () => {
  test("splits header and payload", () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const { header, payload: out } = parseBinaryMessage(binaryMessage(FRAME_HEADER, payload));
    assert.deepEqual(header, FRAME_HEADER);
    assert.deepEqual([...out], [1, 2, 3, 4, 5]);
  });

  test("reads a view into a larger buffer (offset, Node Buffer) without copying", () => {
    const msg = new Uint8Array(binaryMessage({ type: "frame", n: "é" }, new Uint8Array([9, 8])));
    const big = new Uint8Array(msg.byteLength + 10);
    big.set(msg, 7);
    const view = big.subarray(7, 7 + msg.byteLength);
    const { header, payload } = parseBinaryMessage(view);
    assert.equal(header.n, "é");
    assert.deepEqual([...payload], [9, 8]);
    assert.equal(payload.buffer, big.buffer);
    assert.deepEqual(parseBinaryMessage(Buffer.from(msg)).header, { type: "frame", n: "é" });
  });

  test("an empty payload is fine", () => {
    const { payload } = parseBinaryMessage(binaryMessage({ type: "snap" }, new Uint8Array()));
    assert.equal(payload.byteLength, 0);
  });

  test("malformed messages throw a LabcamError with code 'protocol'", () => {
    const bad = {
      "too short": new Uint8Array([0, 0, 1]).buffer,
      "length beyond the message": (() => {
        const b = new Uint8Array(binaryMessage({ a: 1 }));
        new DataView(b.buffer).setUint32(0, 1000, false);
        return b.buffer;
      })(),
      "zero-length header": binaryMessage(""),
      "not JSON": binaryMessage("{nope"),
      "an array header": binaryMessage([1, 2]),
      "a number header": binaryMessage("42"),
      "invalid UTF-8": (() => {
        const b = new Uint8Array(6);
        new DataView(b.buffer).setUint32(0, 2, false);
        b.set([0xc3, 0x28], 4);
        return b.buffer;
      })(),
    };
    for (const [what, buf] of Object.entries(bad)) {
      assert.throws(() => parseBinaryMessage(buf), (e) => e instanceof LabcamError && e.code === "protocol", what);
    }
    assert.throws(() => parseBinaryMessage("text"), TypeError);
  });
});

describe("base64ToBytes", () => {
  test("decodes standard base64", () => {
    assert.deepEqual([...base64ToBytes(Buffer.from([0, 255, 128, 7]).toString("base64"))], [0, 255, 128, 7]);
  });
});

// ---- buildStreamUrl -------------------------------------------------------------------------

describe("buildStreamUrl", () => {
  test("server root: http becomes ws, the stream path is appended", () => {
    assert.equal(buildStreamUrl("http://localhost:8001/"), "ws://localhost:8001/ws/camera/stream");
    assert.equal(buildStreamUrl("http://localhost:8001"), "ws://localhost:8001/ws/camera/stream");
    assert.equal(buildStreamUrl("https://lab.example/jp/labcam/"), "wss://lab.example/jp/labcam/ws/camera/stream");
    // A base without its trailing slash is still a directory (unlike urljoin).
    assert.equal(buildStreamUrl("http://h:8888/jp/labcam"), "ws://h:8888/jp/labcam/ws/camera/stream");
  });

  test("a stream URL is used as is; percent-encoded base URLs stay encoded", () => {
    assert.equal(buildStreamUrl("ws://h/ws/camera/stream"), "ws://h/ws/camera/stream");
    assert.equal(buildStreamUrl("wss://h/x/labcam/ws/camera/stream?token=T"), "wss://h/x/labcam/ws/camera/stream?token=T");
    assert.equal(buildStreamUrl("http://h/a%40b/labcam/"), "ws://h/a%40b/labcam/ws/camera/stream");
    assert.equal(buildStreamUrl("http://h/#frag"), "ws://h/ws/camera/stream");
  });

  test("options become the protocol's query parameters", () => {
    const url = new URL(buildStreamUrl("http://h/", { format: "binary", fps: 12.5, quality: 70, maxWidth: 640, display: [100, 4000], token: "s3cret" }));
    assert.equal(url.searchParams.get("format"), "binary");
    assert.equal(url.searchParams.get("fps"), "12.5");
    assert.equal(url.searchParams.get("quality"), "70");
    assert.equal(url.searchParams.get("max_width"), "640");
    assert.equal(url.searchParams.get("display"), "100,4000");
    assert.equal(url.searchParams.get("token"), "s3cret");
    assert.equal(new URL(buildStreamUrl("http://h/", { display: "auto" })).searchParams.get("display"), "auto");
    assert.equal(new URL(buildStreamUrl("http://h/", { display: " 5 , 10" })).searchParams.get("display"), "5,10");
  });

  test("null and undefined options are left out; existing parameters are kept or replaced", () => {
    assert.equal(buildStreamUrl("http://h/", { fps: null, quality: undefined, maxWidth: null, display: null, token: "" }), "ws://h/ws/camera/stream");
    const url = new URL(buildStreamUrl("http://h/?token=old&x=1", { token: "new", fps: 5 }));
    assert.equal(url.searchParams.get("token"), "new");
    assert.equal(url.searchParams.get("x"), "1");
    assert.equal(new URL(buildStreamUrl("http://h/?token=keep")).searchParams.get("token"), "keep");
  });

  test("bad input throws before any connection is tried", () => {
    assert.throws(() => buildStreamUrl("ftp://h/"), TypeError);
    assert.throws(() => buildStreamUrl("not a url"), TypeError);
    assert.throws(() => buildStreamUrl("http://h/", { format: "xml" }), RangeError);
    for (const bad of [{ fps: 0 }, { fps: 2000 }, { fps: NaN }, { fps: "10" }, { quality: 0 }, { quality: 101 }, { quality: 50.5 },
      { maxWidth: 8 }, { maxWidth: 100000 }, { display: [5, 5] }, { display: [-1, 5] }, { display: "1,2,3" }, { display: "a,b" }, { display: [0.5, 9] }]) {
      assert.throws(() => buildStreamUrl("http://h/", bad), RangeError, JSON.stringify(bad));
    }
    assert.throws(() => buildStreamUrl("http://h/", { max_width: 640 }), TypeError);
  });

  test("a relative base resolves against the page's location", () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, "location");
    try {
      Object.defineProperty(globalThis, "location", { value: { href: "https://hub.example/user/x/labcam/?token=T" }, configurable: true });
      assert.equal(buildStreamUrl("./"), "wss://hub.example/user/x/labcam/ws/camera/stream");
      assert.equal(pageStreamBase(), "https://hub.example/user/x/labcam/");
      assert.equal(pageStreamBase("http://127.0.0.1:8001/"), "http://127.0.0.1:8001/");
      assert.equal(pageStreamBase("http://h/jp/labcam/index.html?x"), "http://h/jp/labcam/");
    } finally {
      if (saved) Object.defineProperty(globalThis, "location", saved);
      else delete globalThis.location;
    }
  });
});

describe("normalizeStreamOptions / normalizeDisplay", () => {
  test("camelCase in, protocol names out; null resets", () => {
    assert.deepEqual(normalizeStreamOptions({ fps: 10, quality: null, maxWidth: 320, display: "0,255", extra: undefined }),
      { fps: 10, quality: null, max_width: 320, display: [0, 255] });
    assert.equal(normalizeDisplay("auto"), "auto");
    assert.equal(normalizeDisplay(null), null);
    assert.deepEqual(normalizeDisplay([0, 65535]), [0, 65535]);
  });
});

// ---- the client: construction -----------------------------------------------------------------

describe("LabcamClient construction", () => {
  test("needs a url, refuses unknown options and bad stream options", () => {
    assert.throws(() => new LabcamClient({}), TypeError);
    assert.throws(() => new LabcamClient({ url: "http://h/", fsp: 10 }), TypeError);
    assert.throws(() => new LabcamClient({ url: "http://h/", quality: 0 }), RangeError);
  });

  test("starts idle with the stream URL built from its options (binary by default)", () => {
    const c = makeClient({ fps: 15, token: "T" });
    assert.equal(c.state, "idle");
    assert.equal(c.url, "ws://localhost:8001/ws/camera/stream?format=binary&fps=15&quality=auto&token=T");
    assert.equal(WS.instances.length, 0);
  });
});

// ---- the state machine ----------------------------------------------------------------------

describe("state machine", () => {
  test("idle -> connecting -> connected on the server's hello", async () => {
    const client = makeClient();
    const events = record(client);
    const ready = client.connect();
    assert.equal(client.state, "connecting");
    const ws = WS.last;
    assert.equal(ws.url, client.url);
    assert.equal(ws.binaryType, "arraybuffer");
    ws.open();
    assert.equal(client.state, "connecting", "open is not enough: wait for the hello");
    ws.receiveJSON(HELLO);
    assert.equal(client.state, "connected");
    assert.deepEqual(await ready, HELLO);
    assert.deepEqual(events.state.map((s) => s.state), ["connecting", "connected"]);
    assert.deepEqual(events.connected, [HELLO]);
    assert.equal(client.camera.serial, "SIM-0001");
    assert.equal(client.settings.exposure_ms, 10);
    assert.equal(client.specs.exposure_ms.maximum, 1000);
    assert.equal(client.cameraState, "streaming");
    assert.deepEqual(await client.connect(), HELLO, "connect() while connected resolves at once");
    assert.equal(WS.instances.length, 1);
  });

  test("a lost connection reconnects after reconnectDelay (default 3 s) and resyncs", async () => {
    const { client, events, ws } = connected();
    ws.serverClose(1006);
    assert.equal(client.state, "reconnecting");
    const st = events.state.at(-1);
    assert.equal(st.attempt, 1);
    assert.equal(st.retryIn, 3000);
    mock.timers.tick(2999);
    assert.equal(WS.instances.length, 1, "no retry before the delay");
    mock.timers.tick(1);
    assert.equal(WS.instances.length, 2);
    const ws2 = WS.last;
    assert.equal(ws2.url, ws.url);
    assert.equal(client.state, "reconnecting", "stays reconnecting until the hello");
    ws2.open();
    ws2.receiveJSON({ ...HELLO, settings: { ...HELLO.settings, exposure_ms: 20 } });
    assert.equal(client.state, "connected");
    assert.equal(client.settings.exposure_ms, 20, "state resynced from the new hello");
    assert.equal(client.stats.reconnects, 1);
  });

  test("failed attempts keep retrying at the configured delay; a function gives backoff", () => {
    const delays = [];
    const client = makeClient({ reconnectDelay: (attempt) => { delays.push(attempt); return 1000 * 2 ** (attempt - 1); } });
    client.connect();
    WS.last.serverClose(1006); // handshake refused
    assert.equal(client.state, "reconnecting");
    mock.timers.tick(1000);
    assert.equal(WS.instances.length, 2);
    WS.last.serverClose(1006);
    mock.timers.tick(1999);
    assert.equal(WS.instances.length, 2);
    mock.timers.tick(1);
    assert.equal(WS.instances.length, 3);
    assert.deepEqual(delays, [1, 2]);
  });

  test("a numeric reconnectDelay is used as is", () => {
    const client = makeClient({ reconnectDelay: 500 });
    client.connect();
    WS.last.serverClose(1013, "too many clients (16)");
    mock.timers.tick(499);
    assert.equal(WS.instances.length, 1);
    mock.timers.tick(1);
    assert.equal(WS.instances.length, 2);
  });

  test("connect() while waiting to reconnect retries at once", () => {
    const { client, ws } = connected();
    ws.serverClose(1001, "server shutdown");
    assert.equal(client.state, "reconnecting");
    client.connect();
    assert.equal(WS.instances.length, 2);
    mock.timers.tick(5000);
    assert.equal(WS.instances.length, 2, "the scheduled retry was cancelled");
  });

  test("autoReconnect off: an abnormal close is an error, a server shutdown is closed", async () => {
    let c = makeClient({ autoReconnect: false });
    let events = record(c);
    const p = c.connect();
    WS.last.serverClose(1006);
    assert.equal(c.state, "error");
    assert.equal(events.error.at(-1).source, "socket");
    await assert.rejects(p, LabcamError);
    mock.timers.tick(10000);
    assert.equal(WS.instances.length, 1);

    ({ client: c } = connected({ autoReconnect: false }));
    WS.last.serverClose(1001, "");
    assert.equal(c.state, "closed");
  });

  test("disconnect() closes for good: no reconnect, pending requests rejected", async () => {
    const { client, events, ws } = connected();
    const settings = client.setSettings({ gain_db: 3 });
    client.disconnect();
    assert.equal(client.state, "closed");
    assert.equal(ws.closedWith.code, 1000);
    await assert.rejects(settings, /connection closed/);
    mock.timers.tick(60000);
    assert.equal(WS.instances.length, 1);
    assert.equal(events.state.at(-1).state, "closed");
    // and connect() starts again from scratch
    client.connect();
    assert.equal(client.state, "connecting");
    assert.equal(WS.instances.length, 2);
  });

  test("disconnect() while reconnecting cancels the retry; connect() waiters are rejected", async () => {
    const client = makeClient();
    const p = client.connect();
    WS.last.serverClose(1006);
    client.disconnect();
    assert.equal(client.state, "closed");
    await assert.rejects(p, /connection closed/);
    mock.timers.tick(10000);
    assert.equal(WS.instances.length, 1);
  });

  test("reconnect() drops the current socket and connects now", () => {
    const { client, ws } = connected();
    client.reconnect();
    assert.equal(ws.closedWith.code, 1000);
    assert.equal(WS.instances.length, 2);
    assert.equal(client.state, "connecting");
    WS.last.open();
    WS.last.receiveJSON(HELLO);
    assert.equal(client.state, "connected");
    ws.serverClose(1000); // the old socket's late close event is ignored
    assert.equal(client.state, "connected");
  });

  test("no hello within connectTimeout: the attempt is abandoned and retried", () => {
    const client = makeClient({ connectTimeout: 5000 });
    client.connect();
    const ws = WS.last;
    ws.open();
    mock.timers.tick(5000);
    assert.equal(ws.closedWith.code, 4000);
    assert.equal(client.state, "reconnecting");
    mock.timers.tick(3000);
    assert.equal(WS.instances.length, 2);
  });

  test("a silent connection is declared dead after staleTimeout", () => {
    const { client, ws } = connected({ pingInterval: 2000, staleTimeout: 10000 });
    mock.timers.tick(10000);
    assert.equal(client.state, "connected", "10 s of silence is the limit, not beyond it yet");
    mock.timers.tick(2000);
    assert.equal(client.state, "reconnecting");
    assert.equal(ws.closedWith.code, 4001);
  });

  test("a late tick (frozen or throttled page) does not count as silence", () => {
    let frozen = 0;
    const { client } = connected({ pingInterval: 2000, staleTimeout: 10000, now: () => Date.now() + frozen });
    // The page's clock jumps 15 s between two ticks, as after a long freeze: messages may be queued.
    frozen = 15000;
    mock.timers.tick(2000);
    assert.equal(client.state, "connected");
    mock.timers.tick(2000); // a punctual tick after that, still silent: now it is dead
    assert.equal(client.state, "reconnecting");
  });

  test("messages (pongs) keep a connection alive", () => {
    const { client, ws } = connected({ pingInterval: 2000, staleTimeout: 10000 });
    for (let i = 0; i < 20; i++) {
      mock.timers.tick(2000);
      for (const p of ws.sentOfType("ping").slice(-1)) ws.receiveJSON({ type: "pong", id: p.id, server_time: Date.now() / 1000 });
    }
    assert.equal(client.state, "connected");
  });

  test("a bad WebSocket constructor is an error state, not a retry loop", async () => {
    const client = new LabcamClient({ url: "http://h/", WebSocket: class { constructor() { throw new Error("SecurityError"); } }, now: () => Date.now() });
    await assert.rejects(client.connect(), /SecurityError/);
    assert.equal(client.state, "error");
  });

  test("a stream message before the hello still counts as connected (robust to older servers)", () => {
    const client = makeClient();
    const events = record(client);
    client.connect();
    WS.last.open();
    WS.last.receive(binaryMessage(FRAME_HEADER));
    assert.equal(client.state, "connected");
    assert.equal(events.frame.length, 1);
    WS.last.receiveJSON(HELLO); // a late hello updates, without restarting anything
    assert.equal(client.camera.serial, "SIM-0001");
    assert.equal(events.state.filter((s) => s.state === "connected").length, 1);
  });
});

// ---- requests ---------------------------------------------------------------------------------

describe("requests", () => {
  test("ping() resolves with the round trip time; periodic pings are sent", async () => {
    const { client, ws } = connected({ pingInterval: 2000 });
    assert.equal(ws.sentOfType("ping").length, 1, "a first ping right after the hello");
    ws.receiveJSON({ type: "pong", id: ws.sentOfType("ping")[0].id, server_time: 1 });
    const p = client.ping();
    const { id } = ws.sentOfType("ping").at(-1);
    mock.timers.tick(42);
    ws.receiveJSON({ type: "pong", id: 9999 }); // unknown id: ignored
    ws.receiveJSON({ type: "pong", id, server_time: Date.now() / 1000 });
    assert.equal(await p, 42);
    assert.equal(client.stats.rttMs, 42);
    mock.timers.tick(2000);
    assert.equal(ws.sentOfType("ping").length, 3);
  });

  test("requests while not connected reject", async () => {
    const client = makeClient();
    await assert.rejects(client.ping(), /not connected/);
    await assert.rejects(client.setSettings({ gain_db: 1 }), /not connected/);
    await assert.rejects(client.snap("png"), /not connected/);
  });

  test("setSettings resolves with the settings broadcast", async () => {
    const { client, events, ws } = connected();
    const p = client.setSettings({ exposure_ms: 5, gain_db: 6 });
    assert.deepEqual(ws.sentOfType("settings"), [{ type: "settings", changes: { exposure_ms: 5, gain_db: 6 } }]);
    const settings = { ...HELLO.settings, exposure_ms: 5, gain_db: 6 };
    ws.receiveJSON({ type: "settings", settings });
    assert.deepEqual(await p, settings);
    assert.deepEqual(client.settings, settings);
    assert.deepEqual(events.settings, [settings]);
  });

  test("setSettings rejects with the server's message; the stream carries on", async () => {
    const { client, events, ws } = connected();
    const p = client.setSettings({ exposure_ms: 5000 });
    const message = "exposure_ms=5000 is not allowed: a number from 0.01 to 1000 ms";
    ws.receiveJSON({ type: "error", message, request: "settings" });
    await assert.rejects(p, (e) => e instanceof LabcamError && e.message === message && e.request === "settings" && e.response.message === message);
    assert.equal(events.error.at(-1).source, "server");
    assert.equal(events.error.at(-1).message, message);
    assert.equal(client.state, "connected");
    assert.equal(client.settings.exposure_ms, 10, "nothing changed");
  });

  test("configure sends protocol names, resolves with `configured`, and is kept for reconnects", async () => {
    const { client, ws } = connected();
    const p = client.configure({ fps: 10, quality: 70, maxWidth: 640, display: "100,4000" });
    assert.deepEqual(ws.sentOfType("configure"), [{ type: "configure", fps: 10, quality: 70, max_width: 640, display: [100, 4000] }]);
    const stream = { format: "binary", fps: 10, quality: 70, max_width: 640, display: [100, 4000] };
    ws.receiveJSON({ type: "configured", stream });
    assert.deepEqual(await p, stream);
    assert.deepEqual(client.stream, stream);
    ws.serverClose(1006);
    mock.timers.tick(3000);
    const url = new URL(WS.last.url);
    assert.equal(url.searchParams.get("fps"), "10");
    assert.equal(url.searchParams.get("max_width"), "640");
    assert.equal(url.searchParams.get("display"), "100,4000");
    // null resets to the server's default: sent as null, left out of the URL
    WS.last.open();
    WS.last.receiveJSON(HELLO);
    client.configure({ maxWidth: null });
    assert.deepEqual(WS.last.sentOfType("configure").at(-1), { type: "configure", max_width: null });
    assert.equal(new URL(client.url).searchParams.has("max_width"), false);
  });

  test("configure rejects bad values without sending; the server's error rejects too", async () => {
    const { client, ws } = connected();
    await assert.rejects(client.configure({ quality: 0 }), RangeError);
    await assert.rejects(client.configure({ format: "json" }), TypeError);
    assert.equal(ws.sentOfType("configure").length, 0);
    const p = client.configure({ display: [0, 70000] });
    ws.receiveJSON({ type: "error", message: "display=[0, 70000] is not allowed: ...", request: "configure" });
    await assert.rejects(p, /display=\[0, 70000\]/);
  });

  test("configure while not connected updates the options for the next connection", async () => {
    const client = makeClient();
    const stream = await client.configure({ fps: 5 });
    assert.equal(stream.fps, 5);
    client.connect();
    assert.equal(new URL(WS.last.url).searchParams.get("fps"), "5");
  });

  test("snap (binary) resolves with a blob of the right type and the header as meta", async () => {
    const { client, ws } = connected();
    const p = client.snap("png");
    assert.deepEqual(ws.sentOfType("snap"), [{ type: "snap", format: "png" }]);
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
    ws.receive(binaryMessage({ type: "snap", encoding: "png", frame_number: 7, width: 1280, height: 1024, pixel_format: "mono16" }, png));
    const { blob, meta } = await p;
    assert.equal(blob.type, "image/png");
    assert.deepEqual([...new Uint8Array(await blob.arrayBuffer())], [...png]);
    assert.equal(meta.frame_number, 7);
    assert.equal(meta.pixel_format, "mono16");
  });

  test("snap (json) decodes base64; snap errors reject; bad formats are refused locally", async () => {
    const { client, ws } = connected({ format: "json" });
    let p = client.snap("npy");
    ws.receiveJSON({ type: "snap", data: Buffer.from([1, 2, 3]).toString("base64"), encoding: "npy", frame_number: 3, width: 2, height: 2 });
    const { blob, meta } = await p;
    assert.equal(blob.size, 3);
    assert.equal(meta.data, undefined);
    assert.equal(meta.frame_number, 3);
    p = client.snap("tiff");
    ws.receiveJSON({ type: "error", message: "camera lost", request: "snap" });
    await assert.rejects(p, /camera lost/);
    await assert.rejects(client.snap("bmp"), RangeError);
  });

  test("requests without a reply time out; a lost connection rejects them", async () => {
    const { client, ws } = connected({ requestTimeout: 1000 });
    const p1 = client.setSettings({ gain_db: 1 });
    mock.timers.tick(1000);
    await assert.rejects(p1, (e) => e.code === "timeout");
    const p2 = client.snap();
    ws.serverClose(1006);
    await assert.rejects(p2, /connection closed/);
  });

  test("pause/resume are sent, and a pause survives a reconnect", async () => {
    const { client, ws } = connected();
    const p = client.pause();
    assert.equal(client.paused, true);
    assert.equal(ws.sentOfType("pause").length, 1);
    ws.receiveJSON({ type: "configured", stream: { ...HELLO.stream } });
    await p;
    client.pause(); // already paused: nothing more is sent
    assert.equal(ws.sentOfType("pause").length, 1);
    ws.serverClose(1006);
    mock.timers.tick(3000);
    WS.last.open();
    WS.last.receiveJSON(HELLO);
    assert.equal(WS.last.sentOfType("pause").length, 1, "the new connection is paused too");
    client.resume();
    assert.equal(WS.last.sentOfType("resume").length, 1);
  });

  test("the page being hidden pauses the stream (pauseWhenHidden)", () => {
    const listeners = {};
    const doc = { visibilityState: "visible", addEventListener: (t, f) => (listeners[t] = f), removeEventListener: (t) => delete listeners[t] };
    globalThis.document = doc;
    try {
      const { client, ws } = connected();
      doc.visibilityState = "hidden";
      listeners.visibilitychange();
      assert.equal(ws.sentOfType("pause").length, 1);
      assert.equal(client.paused, false, "paused reports the user's pause only");
      doc.visibilityState = "visible";
      listeners.visibilitychange();
      assert.equal(ws.sentOfType("resume").length, 1);
      client.disconnect();
      assert.equal(listeners.visibilitychange, undefined, "the listener is removed on disconnect");
    } finally {
      delete globalThis.document;
    }
  });
});

// ---- frames and stats -------------------------------------------------------------------------

describe("frames and stats", () => {
  test("binary frames become frame events with meta and a JPEG blob", async () => {
    const { client, events, ws } = connected();
    const jpeg = new Uint8Array([0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);
    ws.receive(binaryMessage(FRAME_HEADER, jpeg));
    assert.equal(events.frame.length, 1);
    const { meta, blob, bitmap, bytes } = events.frame[0];
    assert.deepEqual(meta, FRAME_HEADER);
    assert.equal(blob.type, "image/jpeg");
    assert.deepEqual([...new Uint8Array(await blob.arrayBuffer())], [...jpeg]);
    assert.equal(bitmap, null);
    assert.equal(bytes, jpeg.byteLength);
    assert.equal(client.lastFrame, events.frame[0]);
  });

  test("json frames (base64) become the same frame events, without `data` in meta", async () => {
    const { events, ws } = connected({ format: "json" });
    assert.equal(new URL(ws.url).searchParams.get("format"), "json");
    const jpeg = new Uint8Array([0xff, 0xd8, 9, 0xff, 0xd9]);
    ws.receiveJSON({ ...FRAME_HEADER, data: Buffer.from(jpeg).toString("base64") });
    assert.equal(events.frame.length, 1);
    assert.equal(events.frame[0].meta.data, undefined);
    assert.equal(events.frame[0].meta.frame_number, 1234);
    assert.deepEqual([...new Uint8Array(await events.frame[0].blob.arrayBuffer())], [...jpeg]);
  });

  test("Blob messages (no binaryType support) are read in order", async () => {
    const { events, ws } = connected();
    ws.receive(new Blob([binaryMessage({ ...FRAME_HEADER, frame_number: 1 })]));
    ws.receive(new Blob([binaryMessage({ ...FRAME_HEADER, frame_number: 2 })]));
    mock.timers.reset(); // let real I/O callbacks run for Blob.arrayBuffer()
    for (let i = 0; i < 5 && events.frame.length < 2; i++) await flush();
    assert.deepEqual(events.frame.map((f) => f.meta.frame_number), [1, 2]);
  });

  test("stats: client fps, data rate, frame size, RTT, plus the server's stats", () => {
    const { client, events, ws } = connected({ statsInterval: 1000, pingInterval: 0 });
    const payload = new Uint8Array(1000);
    let wireBytes = 0;
    for (let i = 0; i < 10; i++) {
      mock.timers.tick(i === 0 ? 50 : 100); // frames at 50, 150, ... 950 ms
      const msg = binaryMessage({ ...FRAME_HEADER, frame_number: i }, payload);
      wireBytes += msg.byteLength;
      ws.receive(msg);
    }
    assert.equal(events.stats.length, 0);
    mock.timers.tick(50);
    const server = { type: "stats", fps: 29.8, frames_sent: 1200, frames_skipped: 3, bytes_per_s: 2400000, camera_fps: 30, camera_frames: 1203, camera_dropped: 0, encode_ms: 1.9, in_flight: 1 };
    ws.receiveJSON(server);
    assert.equal(events.stats.length, 1);
    const { client: cs, server: ss } = events.stats[0];
    assert.equal(cs.frames, 10);
    assert.ok(Math.abs(cs.fps - 10) < 1e-9, `fps ${cs.fps}`);
    assert.equal(cs.frameBytes, 1000);
    assert.ok(Math.abs(cs.bytesPerSecond - wireBytes) < 1e-6, `bytes/s ${cs.bytesPerSecond} != ${wireBytes}`);
    assert.equal(cs.bytes, wireBytes);
    assert.equal(cs.width, 640);
    assert.equal(cs.height, 512);
    assert.equal(ss, null, "the server's stats came after the tick");
    mock.timers.tick(1000);
    assert.deepEqual(events.stats.at(-1).server, server);
    assert.equal(events.stats.at(-1).client.fps, 0);
    assert.equal(client.serverStats.camera_fps, 30);
  });

  test("frame age from the ping clock offset (no clock trusted)", () => {
    // The server's clock runs 5 s ahead of ours; the round trip is 20 ms.
    const { client, ws } = connected({ pingInterval: 2000 });
    const ping = ws.sentOfType("ping")[0];
    mock.timers.tick(10);
    const serverTime = (Date.now() + 5000) / 1000; // read halfway through the round trip
    mock.timers.tick(10);
    ws.receiveJSON({ type: "pong", id: ping.id, server_time: serverTime });
    assert.ok(Math.abs(client.stats.clockOffsetMs - 5000) < 1e-6, `offset ${client.stats.clockOffsetMs}`);
    // A frame captured (server clock) 30 ms before it arrives here.
    const captured = (Date.now() + 5000 - 30) / 1000;
    ws.receive(binaryMessage({ ...FRAME_HEADER, timestamp: captured }));
    assert.ok(Math.abs(client.stats.frameAgeMs - 30) < 1e-3, `age ${client.stats.frameAgeMs}`);
  });

  describe("decoding", () => {
    let pending;
    let closed;
    beforeEach(() => {
      pending = [];
      closed = [];
      globalThis.createImageBitmap = (blob) => new Promise((resolve, reject) => {
        pending.push({ blob, resolve: () => resolve({ blob, close() { closed.push(blob); } }), reject });
      });
    });
    afterEach(() => {
      delete globalThis.createImageBitmap;
    });

    test("one decode at a time; a slow page gets the newest frame, never a backlog", async () => {
      const { client, events, ws } = connected({ decode: true });
      for (let n = 1; n <= 4; n++) ws.receive(binaryMessage({ ...FRAME_HEADER, frame_number: n }));
      assert.equal(pending.length, 1, "only frame 1 is being decoded");
      pending[0].resolve();
      await flush();
      assert.equal(pending.length, 2, "then only the newest waiting frame (4)");
      pending[1].resolve();
      await flush();
      assert.deepEqual(events.frame.map((f) => f.meta.frame_number), [1, 4]);
      assert.ok(events.frame[1].bitmap, "a decoded frame carries its bitmap");
      assert.equal(client.stats.framesSkipped, 2, "frames 2 and 3 were never decoded");
      assert.equal(client.stats.frames, 4);
      assert.equal(client.stats.framesDisplayed, 2);
      assert.deepEqual(closed, [events.frame[0].blob], "the previous bitmap is closed when the next one is delivered");
    });

    test("a frame that fails to decode is counted and reported, and decoding goes on", async () => {
      const { client, events, ws } = connected({ decode: true });
      ws.receive(binaryMessage({ ...FRAME_HEADER, frame_number: 1 }));
      pending[0].reject(new Error("InvalidStateError: corrupt JPEG"));
      await flush();
      assert.equal(client.stats.decodeErrors, 1);
      assert.equal(events.error.at(-1).source, "decode");
      ws.receive(binaryMessage({ ...FRAME_HEADER, frame_number: 2 }));
      pending[1].resolve();
      await flush();
      assert.deepEqual(events.frame.map((f) => f.meta.frame_number), [2]);
    });

    test("frames decoded after disconnect() are dropped", async () => {
      const { client, events, ws } = connected({ decode: true });
      ws.receive(binaryMessage(FRAME_HEADER));
      client.disconnect();
      pending[0].resolve();
      await flush();
      assert.equal(events.frame.length, 0);
      assert.equal(closed.length, 1, "its bitmap was closed");
    });
  });
});

// ---- malformed input --------------------------------------------------------------------------

describe("malformed messages never throw out of the socket handler", () => {
  test("each bad message is an error event; the connection and stream carry on", async () => {
    const { client, events, ws } = connected();
    const tooLong = new Uint8Array(binaryMessage({ a: 1 }));
    new DataView(tooLong.buffer).setUint32(0, 0xffffffff, false);
    const bad = [
      "not json at all",
      "[1,2,3]",
      "null",
      "42",
      JSON.stringify({ no: "type" }),
      JSON.stringify({ type: 7 }),
      JSON.stringify({ type: "frame" }), // json frame without data
      JSON.stringify({ type: "frame", data: "%%% not base64 %%%" }),
      JSON.stringify({ type: "settings" }), // no settings object
      new Uint8Array([1, 2]).buffer,
      tooLong.buffer,
      binaryMessage("{broken"),
      binaryMessage("[]"),
      undefined,
      null,
      12345,
      { some: "object" },
    ];
    const errorsBefore = events.error.length;
    for (const data of bad) {
      assert.doesNotThrow(() => ws.receive(data), `message ${String(data).slice(0, 30)}`);
    }
    const protocolErrors = events.error.slice(errorsBefore).filter((e) => e.source === "protocol");
    assert.equal(protocolErrors.length, bad.length);
    assert.equal(client.stats.protocolErrors, bad.length);
    // Odd but well-formed messages are tolerated without errors.
    for (const msg of [
      { type: "unknown-future-message", x: 1 },
      { type: "error" }, // no message, no request
      { type: "error", message: "odd", request: "constructor" },
      { type: "error", message: "odd", request: "__proto__" },
      { type: "pong" },
      { type: "pong", id: "nope" },
      { type: "status" },
      { type: "configured" },
      { type: "stats" },
      { type: "connected" }, // a second hello, without fields
    ]) {
      assert.doesNotThrow(() => ws.receiveJSON(msg), JSON.stringify(msg));
    }
    assert.doesNotThrow(() => ws.receive(binaryMessage({ type: "histogram" })));
    assert.equal(client.state, "connected");
    ws.receive(binaryMessage(FRAME_HEADER));
    assert.equal(events.frame.length, 1, "a good frame after all that is delivered");
  });

  test("status messages update the camera state (camera lost / back)", () => {
    const { client, events, ws } = connected();
    ws.receiveJSON({ type: "status", state: "lost", message: "camera unplugged" });
    assert.equal(client.cameraState, "lost");
    assert.equal(client.state, "connected", "the stream stays open while the camera is lost");
    assert.equal(events.status.at(-1).message, "camera unplugged");
    ws.receiveJSON({ type: "status", state: "streaming" });
    assert.equal(client.cameraState, "streaming");
  });
});

describe("on()", () => {
  test("passes the detail and returns an unsubscribe function", () => {
    const { client, ws } = connected();
    const seen = [];
    const off = client.on("status", (d) => seen.push(d.state));
    ws.receiveJSON({ type: "status", state: "idle" });
    off();
    ws.receiveJSON({ type: "status", state: "streaming" });
    assert.deepEqual(seen, ["idle"]);
  });
});

describe('transport "webrtc"', () => {
  test("needs a known transport and, for webrtc, a video element", () => {
    assert.throws(() => makeClient({ transport: "rtsp" }), RangeError);
    assert.throws(() => makeClient({ transport: "webrtc" }), /needs options.video/);
    assert.equal(makeClient().webrtcStatus, null, "the WebSocket transport has no WebRTC status");
  });

  test("pauses the WebSocket's frames, shows none of them, and keeps settings on the WebSocket", async () => {
    const { client, events, ws } = connected({ transport: "webrtc", video: {} });
    client.disconnect("test over"); // before the viewer's module loads: nothing of it is started
    assert.deepEqual(events.status.map((s) => s.webrtc), ["connecting", "closed"]);
    assert.equal(events.status[0].type, "webrtc");
    assert.equal(client.webrtc, null);
    assert.equal(ws.sentOfType("pause").length, 1, "frames come from Janus, not the WebSocket");
    assert.equal(client.paused, false, "paused reports the user's pause only");

    const second = connected({ transport: "webrtc", video: {} });
    second.ws.receive(binaryMessage({ ...FRAME_HEADER }, new Uint8Array([0xff, 0xd8])));
    assert.equal(second.events.frame.length, 0, "a frame sent before the pause took effect is not shown");
    assert.equal(second.client.stats.frames, 1, "but it is counted");
    const done = second.client.setSettings({ exposure_ms: 5 });
    assert.equal(second.ws.sentOfType("settings").length, 1);
    second.ws.receiveJSON({ type: "settings", settings: { ...HELLO.settings, exposure_ms: 5 } });
    second.client.disconnect("test over"); // all of the above was synchronous: no viewer was started
    assert.equal((await done).exposure_ms, 5);
  });
});
