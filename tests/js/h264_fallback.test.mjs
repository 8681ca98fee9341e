// The decision whether the client can decode H.264 here (h264Unsupported): a secure context,
// WebCodecs' VideoDecoder and EncodedVideoChunk, and H.264 support as the decoder reports it.
import test from "node:test";
import assert from "node:assert/strict";
import { h264Unsupported, H264_PROBE_CODEC, ENCODINGS, normalizeStreamOptions } from "../../labcam/web/labcam-client.js";

// What a browser exposes, with a VideoDecoder class whose static isConfigSupported answers `support`.
function browser({ secure = true, support = { supported: true }, decoder = true, chunk = true } = {}) {
  const asked = [];
  class VideoDecoder {
    static async isConfigSupported(config) {
      asked.push(config);
      if (support instanceof Error) throw support;
      return support;
    }
  }
  return { env: { isSecureContext: secure, VideoDecoder: decoder ? VideoDecoder : undefined, EncodedVideoChunk: chunk ? class {} : undefined }, asked };
}

test("a secure context with an H.264 VideoDecoder decodes H.264", async () => {
  const { env, asked } = browser();
  assert.equal(await h264Unsupported(env), null);
  assert.deepEqual(asked.map((c) => c.codec), [H264_PROBE_CODEC]);
});

test("an insecure context falls back before asking the decoder, and says so", async () => {
  const { env, asked } = browser({ secure: false });
  assert.match(await h264Unsupported(env), /not a secure context/);
  assert.equal(asked.length, 0);
});

test("no VideoDecoder or no EncodedVideoChunk: no WebCodecs", async () => {
  assert.match(await h264Unsupported(browser({ decoder: false }).env), /no WebCodecs VideoDecoder/);
  assert.match(await h264Unsupported(browser({ chunk: false }).env), /no WebCodecs EncodedVideoChunk/);
});

test("a decoder without H.264 support, or whose check throws, falls back with the reason", async () => {
  assert.match(await h264Unsupported(browser({ support: { supported: false } }).env), /cannot decode H\.264 \(avc1\.42E01F\)/);
  assert.match(await h264Unsupported(browser({ support: new TypeError("bad codec") }).env), /cannot decode H\.264 \(bad codec\)/);
});

test("node itself (no isSecureContext, no VideoDecoder) has no WebCodecs", async () => {
  assert.match(await h264Unsupported({}), /no WebCodecs VideoDecoder/);
});

test("h264 is a known encoding option", () => {
  assert.ok(ENCODINGS.includes("h264"));
  assert.deepEqual(normalizeStreamOptions({ encoding: "h264" }), { encoding: "h264" });
  assert.throws(() => normalizeStreamOptions({ encoding: "vp9" }), RangeError);
});

test("a client asked for h264 where it cannot decode it connects with encoding=jpeg and says why", async () => {
  const { LabcamClient } = await import("../../labcam/web/labcam-client.js");
  const { fakeWebSocketClass } = await import("./fake_server.mjs");
  const WS = fakeWebSocketClass();
  const client = new LabcamClient({ url: "http://localhost:8001/", WebSocket: WS, encoding: "h264", decode: false, autoReconnect: false });
  const fallbacks = [];
  client.on("fallback", (d) => fallbacks.push(d));
  client.connect();
  assert.equal(client.state, "connecting");
  // node has no VideoDecoder: the check settles, then the one socket opens asking for JPEG
  for (let i = 0; i < 20 && WS.instances.length === 0; i++) await new Promise((r) => setImmediate(r));
  assert.equal(WS.instances.length, 1);
  const url = new URL(WS.last.url);
  assert.equal(url.searchParams.get("encoding"), "jpeg");
  assert.match(client.fallbackReason, /no WebCodecs VideoDecoder/);
  assert.equal(client.stats.fallbackReason, client.fallbackReason);
  assert.deepEqual(fallbacks.map((f) => f.encoding), ["jpeg"]);
  assert.equal(client.options.encoding, "jpeg");
  client.disconnect();
});
