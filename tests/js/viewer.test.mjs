// Tests of the view-aware client (issue 11) and the pure logic of labcam-viewer.js: `node --test tests/js/`.
// The WebSocket is the fake of fake_server.mjs, driven by the test as the server would.

import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { beforeEach, describe, test } from "node:test";

import { buildStreamUrl, frameGeometry, LabcamClient, normalizeStreamOptions } from "../../labcam/web/labcam-client.js";
import {
  clampCamera,
  countWords,
  deviceBox,
  fitCamera,
  histogramPercentiles,
  imagePixelAt,
  lutTable,
  mapCount,
  panCamera,
  quantile,
  regionCamera,
  remapToRGBA,
  sampleHistogram,
  scaleBar,
  screenToSensor,
  sensorRectToScreen,
  viewRequest,
  viridis,
  windowLevel,
  zoomAbout,
} from "../../labcam/web/labcam-viewer.js";
import { binaryMessage, fakeWebSocketClass } from "./fake_server.mjs";

const flush = () => new Promise((r) => setImmediate(r));
const close = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);

const HELLO_OLD = { type: "connected", protocol: 1, camera: { sensor_width: 4096, sensor_height: 3000 }, stream: { format: "binary", fps: null, quality: 80, max_width: null, display: "auto" } };
const HELLO_NEW = { ...HELLO_OLD, request_ids: true, stream: { ...HELLO_OLD.stream, view: "full", size: null, encoding: "jpeg", compression: "deflate" } };

let WS;
beforeEach(() => {
  WS = fakeWebSocketClass();
});

function connectedClient(hello, options = {}) {
  const client = new LabcamClient({ url: "http://localhost:8001/", WebSocket: WS, decode: false, pingInterval: 0, statsInterval: 0, pauseWhenHidden: false, ...options });
  client.connect().catch(() => {});
  WS.last.open();
  WS.last.receiveJSON(hello);
  return client;
}

describe("stream options of issue 11", () => {
  test("view, size, encoding and compression go into the query in the contract's form", () => {
    const url = new URL(buildStreamUrl("http://h/", { view: [10, 20, 300, 200], size: [1280, 1024], encoding: "raw", compression: "none" }));
    assert.equal(url.searchParams.get("view"), "10,20,300,200");
    assert.equal(url.searchParams.get("size"), "1280,1024");
    assert.equal(url.searchParams.get("encoding"), "raw");
    assert.equal(url.searchParams.get("compression"), "none");
    assert.equal(new URL(buildStreamUrl("http://h/", { view: "full" })).searchParams.get("view"), "full");
  });

  test("strings are parsed and bad values refused naming the option", () => {
    assert.deepEqual(normalizeStreamOptions({ view: "1,2,3,4", size: "640,480" }), { view: [1, 2, 3, 4], size: [640, 480] });
    for (const bad of [[0, 0, 0, 5], [-1, 0, 5, 5], [0, 0, NaN, 5], [0.5, 0, 5, 5], [0, 0, 70000, 5], "x"]) {
      assert.throws(() => normalizeStreamOptions({ view: bad }), /^RangeError: view=/);
    }
    for (const bad of [[15, 100], [100, 16385], [100], "a,b"]) assert.throws(() => normalizeStreamOptions({ size: bad }), /^RangeError: size=/);
    assert.throws(() => normalizeStreamOptions({ encoding: "png" }), /encoding="png" is not allowed: one of jpeg, raw/);
    assert.throws(() => normalizeStreamOptions({ compression: "brotli" }), /compression="brotli" is not allowed/);
  });
});

describe("frameGeometry", () => {
  test("reads the new header fields", () => {
    const g = frameGeometry({ encoding: "raw", width: 640, height: 512, view: [100, 200, 1280, 1024], sensor: [4096, 3000], bit_depth: 12, histogram: { bins: [1, 2, 3], range: [0, 4096] }, saturated: 7, clamped: true, dtype: "uint16", channels: 1 });
    assert.deepEqual([g.encoding, g.view, g.sensor, g.scale, g.bitDepth, g.saturated, g.clamped, g.dtype], ["raw", [100, 200, 1280, 1024], [4096, 3000], 2, 12, 7, true, "uint16"]);
    assert.deepEqual(g.histogram, { bins: [1, 2, 3], range: [0, 4096] });
  });

  test("an older server's header is the full sensor", () => {
    const g = frameGeometry({ encoding: "jpeg", width: 640, height: 512, source_width: 1280, source_height: 1024, pixel_format: "mono12", display: [10, 900] });
    assert.deepEqual([g.view, g.sensor, g.scale, g.bitDepth, g.histogram, g.saturated, g.display], [[0, 0, 1280, 1024], [1280, 1024], 2, 12, null, null, [10, 900]]);
  });

  test("a header without a size is a protocol error", () => {
    assert.throws(() => frameGeometry({ encoding: "jpeg" }), /no valid width and height/);
  });
});

describe("view requests against old and new servers", () => {
  test("an older server gets the view options in the query only, never in configure", async () => {
    const client = connectedClient(HELLO_OLD, { size: [640, 480] });
    assert.match(WS.last.url, /size=640%2C480/);
    await client.requestView({ view: [0, 0, 100, 100], size: [800, 600] });
    assert.deepEqual(WS.last.sentOfType("configure"), []);
    assert.deepEqual(client.options.view, [0, 0, 100, 100]); // kept for the next connection's query
    assert.match(client.url, /view=0%2C0%2C100%2C100/);
  });

  test("a new server gets coalesced configures: one in flight, the latest values next", async () => {
    const client = connectedClient(HELLO_NEW);
    const ws = WS.last;
    client.requestView({ view: [0, 0, 100, 100], size: [800, 600] });
    client.requestView({ view: [10, 0, 100, 100] });
    client.requestView({ view: [20, 0, 100, 100] });
    const last = client.requestView({ view: [30, 0, 100, 100], size: [900, 600] });
    await flush();
    let sent = ws.sentOfType("configure");
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].view, [0, 0, 100, 100]);
    ws.receiveJSON({ type: "configured", request_id: sent[0].request_id, stream: { ...HELLO_NEW.stream, view: [0, 0, 100, 100] } });
    await flush();
    sent = ws.sentOfType("configure");
    assert.equal(sent.length, 2);
    assert.deepEqual([sent[1].view, sent[1].size], [[30, 0, 100, 100], [900, 600]]);
    ws.receiveJSON({ type: "configured", request_id: sent[1].request_id, stream: { ...HELLO_NEW.stream, view: [30, 0, 100, 100] } });
    assert.deepEqual((await last).view, [30, 0, 100, 100]);
    // the same view and box again (a resize to the same box): nothing to tell the server
    await client.requestView({ view: [30, 0, 100, 100], size: [900, 600] });
    assert.equal(ws.sentOfType("configure").length, 2);
  });

  test("a frame with a view header makes a server view-aware and sends the options held back", async () => {
    const client = connectedClient(HELLO_OLD);
    await client.requestView({ view: [5, 5, 50, 50] });
    assert.equal(WS.last.sentOfType("configure").length, 0);
    WS.last.receive(binaryMessage({ type: "frame", encoding: "jpeg", width: 50, height: 50, view: [5, 5, 50, 50], sensor: [100, 100], timestamp: 1 }));
    await flush();
    assert.equal(client.viewAware, true);
    assert.deepEqual(WS.last.sentOfType("configure").map((m) => m.view), [[5, 5, 50, 50]]);
  });
});

describe("probe", () => {
  test("replies are matched by request_id", async () => {
    const client = connectedClient(HELLO_NEW);
    const a = client.probe(10, 20);
    const b = client.probe(30, 40, 2, 2);
    const [ma, mb] = WS.last.sentOfType("probe");
    assert.deepEqual([ma.x, ma.y, ma.w, ma.h, mb.w, mb.h], [10, 20, 1, 1, 2, 2]);
    WS.last.receiveJSON({ type: "probe", x: 30, y: 40, w: 2, h: 2, values: [1, 2, 3, 4], frame_number: 9, bit_depth: 12, request_id: mb.request_id });
    WS.last.receiveJSON({ type: "probe", x: 10, y: 20, w: 1, h: 1, values: [77], frame_number: 9, bit_depth: 12, request_id: ma.request_id });
    assert.deepEqual((await a).values, [77]);
    assert.deepEqual((await b).values, [1, 2, 3, 4]);
  });

  test("a refused probe rejects with the server's message; bad arguments never leave", async () => {
    const client = connectedClient(HELLO_NEW);
    const p = client.probe(5000, 0);
    const m = WS.last.sentOfType("probe")[0];
    WS.last.receiveJSON({ type: "error", request: "probe", message: "x=5000 is not allowed: inside the frame, 0 to 4095", request_id: m.request_id });
    await assert.rejects(p, /x=5000 is not allowed/);
    await assert.rejects(client.probe(0, 0, 65, 1), RangeError);
    assert.equal(WS.last.sentOfType("probe").length, 1);
  });
});

describe("raw frames", () => {
  test("are decoded into counts with decodeRaw, one at a time, newest wins", async () => {
    const client = connectedClient(HELLO_NEW, { decode: true });
    const frames = [];
    client.on("frame", (f) => frames.push(f));
    const make = (n) => {
      const counts = new Uint16Array(6).map((_, i) => n * 100 + i);
      const bytes = new Uint8Array(counts.buffer);
      const shuffled = new Uint8Array(12);
      for (let i = 0; i < 6; i++) [shuffled[i], shuffled[6 + i]] = [bytes[2 * i], bytes[2 * i + 1]];
      const header = { type: "frame", encoding: "raw", frame_number: n, width: 3, height: 2, view: [0, 0, 3, 2], sensor: [3, 2], bit_depth: 12, dtype: "uint16", shuffle: true, compression: "deflate", channels: 1, timestamp: 1 };
      return binaryMessage(header, new Uint8Array(deflateSync(shuffled)));
    };
    for (const n of [1, 2, 3]) WS.last.receive(make(n)); // 2 is replaced by 3 while 1 decodes
    const deadline = Date.now() + 5000;
    while (frames.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(frames.map((f) => f.meta.frame_number), [1, 3]);
    assert.deepEqual([...frames[1].pixels], [300, 301, 302, 303, 304, 305]);
    assert.equal(frames[1].geometry.encoding, "raw");
    assert.equal(client.stats.framesSkipped, 1);
  });
});

describe("camera model", () => {
  const sensor = [4096, 3000];
  const box = [1280, 1024];

  test("fit shows the whole sensor and asks for the full view", () => {
    const cam = fitCamera(box, sensor);
    close(cam.zoom, Math.min(1280 / 4096, 1024 / 3000));
    assert.equal(viewRequest(cam, box, sensor), "full");
    const r = sensorRectToScreen(cam, box, [0, 0, 4096, 3000]);
    close(r[0], 0);
    assert.ok(r[2] <= 1280 + 1e-9 && r[3] <= 1024 + 1e-9);
  });

  test("zooming about a point keeps the sensor pixel under it", () => {
    const cam = fitCamera(box, sensor);
    const before = screenToSensor(cam, box, 300, 200);
    const z = zoomAbout(cam, 2.5, 300, 200, box, sensor);
    const after = screenToSensor(z, box, 300, 200);
    close(after[0], before[0], 1e-6);
    close(after[1], before[1], 1e-6);
  });

  test("1:1 asks for a region the size of the box", () => {
    const cam = clampCamera({ cx: 2000, cy: 1500, zoom: 1 }, box, sensor);
    assert.deepEqual(viewRequest(cam, box, sensor), [1360, 988, 1280, 1024]);
  });

  test("a view never needs a larger reduction than its zoom: partial edge pixels are left out", () => {
    // Centred between pixels, the box covers 1281 x 1025 partial sensor pixels at 1:1; asking for
    // that would make the server halve the resolution to fit the 1280 x 1024 box.
    const cam = clampCamera({ cx: 2000.5, cy: 1500.5, zoom: 1 }, box, sensor);
    const [, , w, h] = viewRequest(cam, box, sensor);
    assert.ok(w <= 1280 && h <= 1024, `${w}x${h}`);
    const half = clampCamera({ cx: 2000.25, cy: 1500.25, zoom: 0.5 }, box, sensor);
    const [, , w2, h2] = viewRequest(half, box, sensor);
    assert.ok(w2 <= 2560 && h2 <= 2048 && w2 >= 2559, `${w2}x${h2}`);
  });

  test("the camera stays on the sensor: pans stop at its edges and zoom has limits", () => {
    const cam = { cx: 2000, cy: 1500, zoom: 1 };
    const panned = panCamera(cam, 1e6, 1e6, box, sensor);
    assert.deepEqual(viewRequest(panned, box, sensor), [0, 0, 1280, 1024]);
    assert.equal(clampCamera({ ...cam, zoom: 1000 }, box, sensor).zoom, 32);
    const out = clampCamera({ ...cam, zoom: 0.001 }, box, sensor);
    close(out.zoom, fitCamera(box, sensor).zoom / 2);
    assert.deepEqual([out.cx, out.cy], [2048, 1500]);
  });

  test("device boxes follow devicePixelRatio or the ResizeObserver's device-pixel box, within the size limits", () => {
    assert.deepEqual(deviceBox(640, 480, 2), [1280, 960]);
    assert.deepEqual(deviceBox(640, 480, 2, { devicePixelContentBoxSize: [{ inlineSize: 1279, blockSize: 959 }] }), [1279, 959]);
    assert.deepEqual(deviceBox(1, 99999, 1), [16, 16384]);
  });

  test("a sensor pixel maps to its image pixel in a reduced frame", () => {
    const g = frameGeometry({ encoding: "raw", width: 640, height: 512, view: [100, 200, 1280, 1024], sensor });
    assert.deepEqual(imagePixelAt(g, 100, 200), [0, 0]);
    assert.deepEqual(imagePixelAt(g, 1379, 1223), [639, 511]);
    assert.equal(imagePixelAt(g, 99, 200), null);
  });
});

describe("display mapping", () => {
  test("window, level and gamma", () => {
    assert.equal(windowLevel(100, 100, 200), 0);
    assert.equal(windowLevel(150, 100, 200), 0.5);
    assert.equal(windowLevel(300, 100, 200), 1);
    close(windowLevel(150, 100, 200, 2), 0.25);
  });

  test("LUTs: grey, inverted, viridis ends, HiLo marks saturated red and zero blue", () => {
    const grey = lutTable("grey");
    assert.deepEqual([...grey.subarray(0, 4)], [0, 0, 0, 255]);
    assert.deepEqual([...lutTable("inverted").subarray(0, 4)], [255, 255, 255, 255]);
    // matplotlib's viridis runs from #440154 to #fde725; the polynomial fit is within a few levels.
    const [r0, g0, b0] = viridis(0).map((v) => v * 255);
    const [r1, g1, b1] = viridis(1).map((v) => v * 255);
    for (const [a, b] of [[r0, 0x44], [g0, 0x01], [b0, 0x54], [r1, 0xfd], [g1, 0xe7], [b1, 0x25]]) assert.ok(Math.abs(a - b) < 6, `${a} vs ${b}`);
    const d = { min: 0, max: 4095, gamma: 1, lut: "hilo" };
    assert.deepEqual(mapCount(4095, d, 4095, grey), [255, 0, 0, 255]);
    assert.deepEqual(mapCount(0, d, 4095, grey), [0, 0, 255, 255]);
    assert.deepEqual(mapCount(2048, { ...d, lut: "grey" }, 4095, grey), [128, 128, 128, 255]);
    assert.throws(() => lutTable("jet"), /lut="jet" is not allowed/);
  });

  test("percentiles from a histogram and from a sample of counts", () => {
    const hist = { bins: [0, 0, 100, 0, 0, 0, 0, 100], range: [0, 800] };
    assert.deepEqual(histogramPercentiles(hist, 0.25, 0.75), [250, 750]);
    assert.equal(histogramPercentiles({ bins: [0, 0], range: [0, 10] }), null);
    const pixels = new Uint16Array(1000).map((_, i) => i);
    const [lo, hi] = histogramPercentiles(sampleHistogram(pixels, 10, { bins: 1024 }), 0.1, 0.9);
    assert.ok(Math.abs(lo - 100) <= 1 && Math.abs(hi - 900) <= 1, `${lo} ${hi}`);
  });

  test("scale bars are round lengths near the target", () => {
    const bar = scaleBar(0.65 / 0.3125, 120); // 0.65 µm pixels at 1:3.2
    assert.equal(bar.um, 200);
    close(bar.px, 200 / (0.65 / 0.3125));
    assert.equal(scaleBar(0.001, 120).label, "100 nm");
    assert.equal(quantile([5, 1, 3], 0.5), 3);
  });
});

describe("the 2D renderer's remap through a table of every count", () => {
  const display = { min: 100, max: 3000, gamma: 0.7, lut: "hilo" };
  const top = 4095;
  test("paints every pixel as mapCount does, saturated red and zero blue", () => {
    const counts = new Uint16Array([0, 1, 99, 100, 1500, 2999, 3000, 4094, 4095, 9000]);
    const words = countWords(4096, (v) => v, display, top);
    const out = new Uint32Array(counts.length);
    remapToRGBA(counts, 1, 1, counts.length, words, out);
    const rgba = new Uint8Array(out.buffer);
    const table = lutTable("grey");
    counts.forEach((v, i) => assert.deepEqual([...rgba.subarray(i * 4, i * 4 + 4)], mapCount(Math.min(v, top), display, top, table), `count ${v}`));
    assert.deepEqual([...rgba.subarray(0, 4)], [0, 0, 255, 255]);
    assert.deepEqual([...rgba.subarray(8 * 4, 9 * 4)], [255, 0, 0, 255]);
  });

  test("reads decoded RGBA in place (stride 4) for JPEG frames", () => {
    const rgbaIn = new Uint8ClampedArray([10, 10, 10, 255, 200, 200, 200, 255]);
    const words = countWords(256, (v) => v, { min: 0, max: 255, gamma: 1, lut: "inverted" }, 255);
    const out = new Uint32Array(2);
    remapToRGBA(rgbaIn, 4, 1, 2, words, out);
    assert.deepEqual([...new Uint8Array(out.buffer)], [245, 245, 245, 255, 55, 55, 55, 255]);
  });
});

describe("regionCamera", () => {
  test("shows the region whole and centred, 1:1 when it matches the box", () => {
    assert.deepEqual(regionCamera([640, 512, 320, 256], [320, 256], [1280, 1024]), { cx: 800, cy: 640, zoom: 1 });
    const cam = regionCamera([0, 0, 100, 50], [400, 400], [1280, 1024]);
    assert.equal(cam.zoom, 4); // the wider side decides
    assert.deepEqual([cam.cx, cam.cy], [50, 50]); // clamped: the view stays on the sensor
  });
});
