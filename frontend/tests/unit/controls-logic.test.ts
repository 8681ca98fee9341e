// The component's plain logic: control ranges, file names, URLs and the connection diagnosis.

import { describe, expect, it, vi } from "vitest";
import {
  checkSetting,
  diagnoseConnection,
  downscaleOptions,
  fmtBytes,
  fromLogSlider,
  httpRoot,
  snapFileName,
  toLogSlider,
} from "../../src/cameraControl";
import { parseBinaryMessage, buildStreamUrl } from "../../../labcam/web/labcam-client.js";
import { binaryMessage, frameHeader, SPECS } from "./fakes";
import type { FloatSettingSpec } from "../../src/types";

describe("binary messages (docs/protocol.md layout)", () => {
  it("the header and the JPEG bytes come apart at the length prefix", () => {
    const { header, payload } = parseBinaryMessage(binaryMessage(frameHeader(3), new Uint8Array([9, 8, 7])));
    expect(header).toMatchObject({ type: "frame", frame_number: 3, encoding: "jpeg" });
    expect(Array.from(payload)).toEqual([9, 8, 7]);
  });

  it("malformed messages throw a protocol error", () => {
    expect(() => parseBinaryMessage(new Uint8Array([1]))).toThrow(/too short/);
    const bad = new Uint8Array([0, 0, 0, 2, 0x7b, 0x7b]);
    expect(() => parseBinaryMessage(bad)).toThrow(/not UTF-8 JSON/);
  });
});

describe("stream URLs", () => {
  it("the component's serverUrl becomes ws://…/ws/camera/stream with the options", () => {
    expect(buildStreamUrl("http://localhost:8001", { format: "json", token: "x", maxWidth: 320 })).toBe("ws://localhost:8001/ws/camera/stream?format=json&max_width=320&token=x");
    expect(buildStreamUrl("https://hub.example/user/a/labcam/", { format: "binary" })).toBe("wss://hub.example/user/a/labcam/ws/camera/stream?format=binary");
  });

  it("httpRoot turns a stream URL back into the server's root", () => {
    expect(httpRoot("ws://h:8001/ws/camera/stream?token=x").href).toBe("http://h:8001/");
    expect(httpRoot("https://hub/user/a/labcam").href).toBe("https://hub/user/a/labcam/");
    expect(httpRoot("http://localhost:8001").href).toBe("http://localhost:8001/");
  });
});

describe("controls", () => {
  const exposure = SPECS.exposure_ms as FloatSettingSpec;

  it("the log slider maps the ends of the range and round-trips", () => {
    expect(toLogSlider(0.01, 0.01, 1000)).toBe(0);
    expect(toLogSlider(1000, 0.01, 1000)).toBe(1000);
    expect(toLogSlider(1, 0.01, 1000)).toBe(400);
    expect(fromLogSlider(400, 0.01, 1000)).toBe(1);
    expect(fromLogSlider(0, 0.01, 1000)).toBe(0.01);
    expect(fromLogSlider(2000, 0.01, 1000)).toBe(1000);
    for (const v of [0.05, 2.5, 10, 333]) {
      expect(Math.abs(fromLogSlider(toLogSlider(v, 0.01, 1000), 0.01, 1000) - v) / v).toBeLessThan(0.02);
    }
  });

  it("checkSetting keeps values inside the spec and words refusals like the server", () => {
    expect(checkSetting("exposure_ms", "2.5", exposure)).toBe(2.5);
    expect(checkSetting("exposure_ms", 1000, exposure)).toBe(1000);
    expect(() => checkSetting("exposure_ms", "0", exposure)).toThrow("exposure_ms=0 is not allowed: a number from 0.01 to 1000 ms");
    expect(() => checkSetting("exposure_ms", "", exposure)).toThrow(RangeError);
    expect(() => checkSetting("exposure_ms", "abc", exposure)).toThrow(RangeError);
  });

  it("downscale choices halve the width down to the protocol's 16 px minimum", () => {
    expect(downscaleOptions(1280).map((o) => o.maxWidth)).toEqual([null, 640, 320, 160]);
    expect(downscaleOptions(64).map((o) => o.maxWidth)).toEqual([null, 32, 16]);
    expect(downscaleOptions(null).map((o) => o.maxWidth)).toEqual([null]);
    expect(downscaleOptions(1280, 500).at(-1)).toEqual({ label: "≤ 500 px", maxWidth: 500 });
  });

  it("snap file names carry the serial, the capture time and the frame number", () => {
    const name = snapFileName("SIM 0001", "tiff", { timestamp: 1764059000, frame_number: 12 });
    expect(name).toMatch(/^labcam_SIM_0001_\d{8}-\d{6}_12\.tif$/);
    expect(snapFileName(null, "npy", {})).toMatch(/^labcam_camera_\d{8}-\d{6}_frame\.npy$/);
  });

  it("formats bytes", () => {
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtBytes(2_400_000, true)).toBe("2.40 MB/s");
    expect(fmtBytes(undefined)).toBe("–");
  });
});

describe("diagnoseConnection", () => {
  it("a 403 from the REST API: the server's own message", async () => {
    const fetch = vi.fn(async (_url: string, _init?: RequestInit) => new Response(JSON.stringify({ error: "a valid token is required" }), { status: 403 }));
    const why = await diagnoseConnection("http://h:8001", "bad", fetch);
    expect(why).toBe("the server refused this page (403: a valid token is required): check the token");
    expect(fetch.mock.calls[0][0]).toBe("http://h:8001/api/camera?token=bad");
  });

  it("a CORS failure but an opaque answer: the origin is not allowed", async () => {
    const fetch = vi.fn(async (_url: string, init?: RequestInit) => {
      if (init?.mode === "no-cors") return new Response(null, { status: 200 });
      throw new TypeError("Failed to fetch");
    });
    const why = await diagnoseConnection("http://h:8001", null, fetch);
    expect(why).toBe(`the server at http://h:8001 answers but refuses pages from ${location.origin}: start it with --allow-origin ${location.origin}`);
  });

  it("nothing answers at all", async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError("Failed to fetch");
    });
    expect(await diagnoseConnection("http://h:8001", null, fetch)).toBe("nothing answers at http://h:8001: is labcam serve running there?");
  });

  it("a healthy REST API: nothing to say", async () => {
    const fetch = vi.fn(async () => new Response("{}", { status: 200 }));
    expect(await diagnoseConnection("http://h:8001", null, fetch)).toBeNull();
  });
});
