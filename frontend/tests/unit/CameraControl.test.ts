// CameraControl.vue with the shared client against a scripted WebSocket: message parsing (binary
// and json frames, malformed messages), the original JSON-only server, reconnect timing (fake
// timers), the controls (bounded settings, stream options, snap) and cleanup.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mount, type VueWrapper } from "@vue/test-utils";
import { nextTick } from "vue";
import CameraControl from "../../src/components/CameraControl.vue";
import { binaryMessage, FakeSocket, frameHeader, hello, installBrowserFakes, jsonFrame, settle, SETTINGS, type BrowserFakes } from "./fakes";

let fakes: BrowserFakes;
let wrapper: VueWrapper | null = null;

beforeEach(() => {
  FakeSocket.reset();
  fakes = installBrowserFakes();
  // The component asks over HTTP why a connection fails: no network in unit tests.
  vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("no network in tests"))));
});

afterEach(() => {
  wrapper?.unmount();
  wrapper = null;
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function mountControl(props: Record<string, unknown> = {}): VueWrapper {
  wrapper = mount(CameraControl, {
    props: { clientOptions: { WebSocket: FakeSocket, pingInterval: 0, statsInterval: 0, pauseWhenHidden: false }, ...props },
    attachTo: document.body,
  });
  return wrapper;
}

const root = (w: VueWrapper) => w.get(".labcam-camera");
const testid = (w: VueWrapper, id: string) => w.get(`[data-testid="${id}"]`);

async function connect(w: VueWrapper, msg = hello()): Promise<FakeSocket> {
  const ws = FakeSocket.last;
  ws.open();
  ws.receiveJson(msg);
  await settle();
  await nextTick();
  expect(root(w).attributes("data-state")).toBe("connected");
  return ws;
}

describe("connecting", () => {
  it("connects on mount to the server's stream with format and token in the URL", async () => {
    mountControl({ serverUrl: "http://lab-pc:8001", token: "T0K" });
    await nextTick();
    expect(FakeSocket.instances).toHaveLength(1);
    const url = new URL(FakeSocket.last.url);
    expect(url.protocol).toBe("ws:");
    expect(url.host).toBe("lab-pc:8001");
    expect(url.pathname).toBe("/ws/camera/stream");
    expect(url.searchParams.get("format")).toBe("binary");
    expect(url.searchParams.get("token")).toBe("T0K");
    expect(root(wrapper!).attributes("data-state")).toBe("connecting");
    expect(testid(wrapper!, "overlay").text()).toContain("Connecting to http://lab-pc:8001");
  });

  it("defaults to http://localhost:8001 and passes initial stream options", async () => {
    mountControl({ fps: 10, maxWidth: 640 });
    await nextTick();
    const url = new URL(FakeSocket.last.url);
    expect(url.host).toBe("localhost:8001");
    expect(url.searchParams.get("fps")).toBe("10");
    expect(url.searchParams.get("max_width")).toBe("640");
    expect(url.searchParams.has("token")).toBe(false);
  });

  it("shows the camera, emits connected and bounds exposure and gain by the specs", async () => {
    const w = mountControl();
    await connect(w);
    expect(w.emitted("connected")?.[0]?.[0]).toMatchObject({ protocol: 1, client_id: "c1" });
    expect(testid(w, "camera").text()).toContain("labcam simulated microscope");
    const exposure = testid(w, "exposure");
    expect(exposure.attributes("min")).toBe("0.01");
    expect(exposure.attributes("max")).toBe("1000");
    expect((exposure.element as HTMLInputElement).value).toBe("10");
    expect(testid(w, "gain").attributes("max")).toBe("24");
    expect(testid(w, "exposure-range").text()).toBe("0.01 – 1000 ms");
    expect(testid(w, "overlay").text()).toContain("Waiting for the first frame");
  });

  it("a bad server URL is an error state, not a retry loop", async () => {
    const w = mountControl({ serverUrl: "ftp://nowhere" });
    await nextTick();
    expect(root(w).attributes("data-state")).toBe("error");
    expect(w.emitted("error")?.[0]?.[0]).toMatchObject({ source: "client" });
    expect(FakeSocket.instances).toHaveLength(0);
  });
});

describe("frames", () => {
  it("draws binary frames on the canvas and emits their metadata, never the bytes", async () => {
    const w = mountControl();
    const ws = await connect(w);
    ws.receive(binaryMessage(frameHeader(7)));
    await settle();
    await nextTick();
    expect(fakes.createImageBitmap).toHaveBeenCalledTimes(1);
    const blob = fakes.createImageBitmap.mock.calls[0][0] as Blob;
    expect(blob.type).toBe("image/jpeg");
    expect(blob.size).toBe(10);
    expect(fakes.drawImage).toHaveBeenCalledTimes(1);
    expect(testid(w, "frames-drawn").text()).toBe("1");
    expect(root(w).attributes("data-frames-drawn")).toBe("1");
    const meta = w.emitted("frame")?.[0]?.[0] as Record<string, unknown>;
    expect(meta).toMatchObject({ frame_number: 7, width: 1280, source_width: 1280, encoding: "jpeg" });
    expect(meta).not.toHaveProperty("data");
    expect(w.findAll('[data-testid="overlay"]')).toHaveLength(0);
    const canvas = testid(w, "canvas").element as HTMLCanvasElement;
    expect([canvas.width, canvas.height]).toEqual([1280, 1024]);
  });

  it("json format: base64 frames are decoded and drawn the same way", async () => {
    const w = mountControl({ format: "json" });
    expect(new URL(FakeSocket.last.url).searchParams.get("format")).toBe("json");
    const ws = await connect(w, hello({ stream: { format: "json", fps: null, quality: 80, max_width: null, display: "auto" } }));
    for (let n = 1; n <= 3; n++) {
      ws.receiveJson(jsonFrame(n, { width: 640, height: 512 }));
      await settle();
    }
    await nextTick();
    expect(fakes.drawImage).toHaveBeenCalledTimes(3);
    expect(testid(w, "frames-drawn").text()).toBe("3");
    const blob = fakes.createImageBitmap.mock.calls[0][0] as Blob;
    expect(new Uint8Array(await blob.arrayBuffer())).toEqual(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 0xff, 0xd9]));
    const metas = (w.emitted("frame") ?? []).map((e) => e[0] as Record<string, unknown>);
    expect(metas.map((m) => m.frame_number)).toEqual([1, 2, 3]);
    expect(metas.every((m) => !("data" in m))).toBe(true);
  });

  it("malformed messages become error events and the stream carries on", async () => {
    const w = mountControl();
    const ws = await connect(w);
    ws.receive(new Uint8Array([0, 0]).buffer); // shorter than the length prefix
    ws.receive(binaryMessage(frameHeader(1)).slice(0, 10)); // header length beyond the message
    ws.receive("not json");
    ws.receiveJson({ type: "frame", data: "%%%not base64" });
    ws.receive(binaryMessage(frameHeader(8)));
    await settle();
    await nextTick();
    const errors = (w.emitted("error") ?? []).map((e) => e[0] as { source: string; message: string });
    expect(errors.map((e) => e.source)).toEqual(["protocol", "protocol", "protocol", "protocol"]);
    expect(errors[0].message).toMatch(/too short/);
    expect(errors[1].message).toMatch(/exceeds the message/);
    expect(testid(w, "frames-drawn").text()).toBe("1");
    expect(root(w).attributes("data-state")).toBe("connected");
  });

  it("a frame arriving while one decodes waits in a one-slot mailbox (latest wins)", async () => {
    const w = mountControl();
    const ws = await connect(w);
    let release!: () => void;
    fakes.createImageBitmap.mockImplementationOnce(() => new Promise((resolve) => (release = () => resolve({ width: 1280, height: 1024, close: vi.fn() }))));
    for (let n = 1; n <= 4; n++) ws.receive(binaryMessage(frameHeader(n)));
    await settle();
    release();
    await settle();
    await nextTick();
    const numbers = (w.emitted("frame") ?? []).map((e) => (e[0] as { frame_number: number }).frame_number);
    expect(numbers).toEqual([1, 4]);
  });
});

describe("the original JSON-only server", () => {
  it("streams without a hello: frames drawn, connected(null) emitted, stream and camera controls off", async () => {
    const w = mountControl({ format: "json" });
    const ws = FakeSocket.last;
    ws.open();
    // What the seed's FastAPI server sent: base64 JPEG inside JSON, nothing else.
    for (let n = 1; n <= 2; n++) ws.receiveJson({ type: "frame", data: jsonFrame(n).data, timestamp: Date.now() / 1000, frame_number: n });
    await settle();
    await nextTick();
    expect(root(w).attributes("data-state")).toBe("connected");
    expect(root(w).attributes("data-legacy")).toBe("1");
    expect(w.emitted("connected")?.[0]).toEqual([null]);
    expect(testid(w, "frames-drawn").text()).toBe("2");
    expect(testid(w, "camera").text()).toContain("original JSON-only server");
    expect((testid(w, "fps").element as HTMLSelectElement).closest("fieldset")!.disabled).toBe(true);
    expect(testid(w, "exposure").attributes("disabled")).toBeDefined();
    // Nothing was sent that this server would not understand (no pings with pingInterval 0).
    expect(ws.sent).toEqual([]);
  });

  it("a hello without a protocol version (the seed's confirmation message) is legacy too", async () => {
    const w = mountControl({ format: "json" });
    const ws = FakeSocket.last;
    ws.open();
    ws.receiveJson({ type: "connected", message: "Connected to camera stream" });
    ws.receiveJson({ type: "frame", data: jsonFrame(1).data });
    await settle();
    await nextTick();
    expect(root(w).attributes("data-legacy")).toBe("1");
    expect(testid(w, "frames-drawn").text()).toBe("1");
  });
});

describe("reconnecting", () => {
  it("retries after the default 3 s, then resumes drawing", async () => {
    vi.useFakeTimers();
    const w = mountControl();
    const ws = await connect(w);
    ws.receive(binaryMessage(frameHeader(1)));
    await settle();
    ws.drop(1006);
    await nextTick();
    expect(root(w).attributes("data-state")).toBe("reconnecting");
    expect(testid(w, "overlay").text()).toMatch(/Connection lost: .*Retrying every 3 s \(attempt 1\)/);
    expect(w.emitted("state")?.map((e) => e[0])).toContain("reconnecting");
    vi.advanceTimersByTime(2999);
    expect(FakeSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.instances).toHaveLength(2);
    const again = await connect(w);
    again.receive(binaryMessage(frameHeader(2)));
    await settle();
    await nextTick();
    expect(testid(w, "frames-drawn").text()).toBe("2");
  });

  it("uses the reconnectDelay prop, keeps retrying while the server is down, and says why", async () => {
    vi.useFakeTimers();
    const w = mountControl({ reconnectDelay: 500 });
    FakeSocket.last.drop(1006); // never connected: refused or nothing listening
    await nextTick();
    expect(testid(w, "overlay").text()).toContain("Cannot connect");
    for (let attempt = 2; attempt <= 4; attempt++) {
      vi.advanceTimersByTime(499);
      expect(FakeSocket.instances).toHaveLength(attempt - 1);
      vi.advanceTimersByTime(1);
      expect(FakeSocket.instances).toHaveLength(attempt);
      FakeSocket.last.drop(1006);
    }
    await settle(30);
    await nextTick();
    expect(testid(w, "diagnosis").text()).toContain("nothing answers at http://localhost:8001");
    // One HTTP diagnosis per failure streak, not one per attempt.
    expect((globalThis.fetch as ReturnType<typeof vi.fn>).mock.calls.length).toBe(2);
  });

  it("the Reconnect button retries at once", async () => {
    vi.useFakeTimers();
    const w = mountControl({ reconnectDelay: 60_000 });
    FakeSocket.last.drop(1006);
    await nextTick();
    expect(FakeSocket.instances).toHaveLength(1);
    await testid(w, "reconnect").trigger("click");
    expect(FakeSocket.instances).toHaveLength(2);
    await connect(w);
  });

  it("Reconnect while connected drops the socket and opens a new one", async () => {
    const w = mountControl();
    const first = await connect(w);
    await testid(w, "reconnect").trigger("click");
    expect(first.closedByClient).not.toBeNull();
    expect(FakeSocket.instances).toHaveLength(2);
    await connect(w);
  });

  it("a new serverUrl closes the old connection and opens a new one", async () => {
    const w = mountControl();
    const first = await connect(w);
    await w.setProps({ serverUrl: "http://other:9000" });
    await nextTick();
    expect(first.closedByClient).not.toBeNull();
    expect(new URL(FakeSocket.last.url).host).toBe("other:9000");
  });

  it("a new reconnectDelay keeps the connection and applies to the next reconnect", async () => {
    vi.useFakeTimers();
    const w = mountControl();
    const ws = await connect(w);
    await w.setProps({ reconnectDelay: 200 });
    expect(ws.closedByClient).toBeNull();
    ws.drop(1006);
    vi.advanceTimersByTime(200);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it("an equal clientOptions object does not reconnect; new fps/quality/maxWidth props are configured", async () => {
    const w = mountControl();
    const ws = await connect(w);
    await w.setProps({ clientOptions: { WebSocket: FakeSocket, pingInterval: 0, statsInterval: 0, pauseWhenHidden: false } });
    expect(ws.closedByClient).toBeNull();
    expect(FakeSocket.instances).toHaveLength(1);
    await w.setProps({ quality: 50 });
    expect(ws.sentOfType("configure").at(-1)).toEqual({ type: "configure", quality: 50 });
  });

  it("unmounting closes the stream for good", async () => {
    vi.useFakeTimers();
    const w = mountControl();
    const ws = await connect(w);
    w.unmount();
    wrapper = null;
    expect(ws.closedByClient).not.toBeNull();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });
});

describe("controls", () => {
  it("exposure outside the camera's range is refused locally; inside it is sent", async () => {
    const w = mountControl();
    const ws = await connect(w);
    const exposure = testid(w, "exposure");
    await exposure.setValue("5000");
    expect(testid(w, "error").text()).toContain("exposure_ms=5000 is not allowed: a number from 0.01 to 1000 ms");
    expect(ws.sentOfType("settings")).toEqual([]);
    expect((exposure.element as HTMLInputElement).value).toBe("10");

    await exposure.setValue("5");
    expect(ws.sentOfType("settings")).toEqual([{ type: "settings", changes: { exposure_ms: 5 } }]);
    ws.receiveJson({ type: "settings", settings: { ...SETTINGS, exposure_ms: 5 } });
    await settle();
    await nextTick();
    expect(w.emitted("settings")?.[0]?.[0]).toMatchObject({ exposure_ms: 5 });
    expect(w.findAll('[data-testid="error"]')).toHaveLength(0);
  });

  it("the server's refusal of a setting is shown and the field goes back to the camera's value", async () => {
    const w = mountControl();
    const ws = await connect(w);
    await testid(w, "gain").setValue("12");
    expect(ws.sentOfType("settings")).toHaveLength(1);
    ws.receiveJson({ type: "error", message: "gain_db=12 is not allowed now", request: "settings" });
    await settle();
    await nextTick();
    expect(testid(w, "error").text()).toBe("gain_db=12 is not allowed now");
    expect((testid(w, "gain").element as HTMLInputElement).value).toBe("0");
  });

  it("the exposure slider is logarithmic over the spec's range", async () => {
    const w = mountControl();
    const ws = await connect(w);
    const slider = testid(w, "exposure-slider");
    await slider.setValue("1000");
    expect(ws.sentOfType("settings").at(-1)).toEqual({ type: "settings", changes: { exposure_ms: 1000 } });
    await settle();
    ws.receiveJson({ type: "settings", settings: { ...SETTINGS, exposure_ms: 1000 } });
    await settle();
    await slider.setValue("500"); // the middle of 0.01..1000 on a log scale: 3.16 ms
    expect(ws.sentOfType("settings").at(-1)).toEqual({ type: "settings", changes: { exposure_ms: 3.16 } });
  });

  it("fps, quality and downscale send configure and show what the server put in force", async () => {
    const w = mountControl();
    const ws = await connect(w);
    await testid(w, "fps").setValue("10");
    expect(ws.sentOfType("configure").at(-1)).toEqual({ type: "configure", fps: 10 });
    ws.receiveJson({ type: "configured", stream: { format: "binary", fps: 10, quality: 80, max_width: null, display: "auto" } });
    await testid(w, "quality").setValue("60");
    expect(ws.sentOfType("configure").at(-1)).toEqual({ type: "configure", quality: 60 });
    ws.receiveJson({ type: "configured", stream: { format: "binary", fps: 10, quality: 60, max_width: null, display: "auto" } });
    const options = testid(w, "downscale").findAll("option").map((o) => o.attributes("value"));
    expect(options).toEqual(["", "640", "320", "160"]);
    await testid(w, "downscale").setValue("640");
    expect(ws.sentOfType("configure").at(-1)).toEqual({ type: "configure", max_width: 640 });
    ws.receiveJson({ type: "configured", stream: { format: "binary", fps: 10, quality: 60, max_width: 640, display: "auto" } });
    await settle();
    await nextTick();
    expect(testid(w, "quality-value").text()).toBe("60");
    expect((testid(w, "downscale").element as HTMLSelectElement).value).toBe("640");
  });

  it("a refused stream option shows the server's message", async () => {
    const w = mountControl();
    const ws = await connect(w);
    await testid(w, "fps").setValue("5");
    ws.receiveJson({ type: "error", message: "fps=5 is not allowed here", request: "configure" });
    await settle();
    await nextTick();
    expect(testid(w, "error").text()).toBe("fps=5 is not allowed here");
  });

  it("snap downloads the full frame while the stream goes on", async () => {
    const createObjectURL = vi.fn(() => "blob:snap");
    vi.stubGlobal("URL", Object.assign(URL, { createObjectURL, revokeObjectURL: vi.fn() }));
    const clicks: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicks.push(this.download);
    });
    const w = mountControl();
    const ws = await connect(w);
    await testid(w, "snap").trigger("click");
    expect(ws.sentOfType("snap")).toEqual([{ type: "snap", format: "png" }]);
    ws.receive(binaryMessage(frameHeader(41))); // frames keep coming while the snap is pending
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
    ws.receive(binaryMessage({ type: "snap", encoding: "png", frame_number: 42, timestamp: 1764059000, width: 1280, height: 1024, pixel_format: "mono8" }, png));
    await settle(20);
    await nextTick();
    expect(clicks).toHaveLength(1);
    expect(clicks[0]).toMatch(/^labcam_SIM-0001_\d{8}-\d{6}_42\.png$/);
    expect(w.emitted("snap")?.[0]?.[1]).toMatchObject({ size: 4 });
    expect(testid(w, "snap-info").text()).toContain("1280×1024 mono8");
    expect(testid(w, "frames-drawn").text()).toBe("1");
  });

  it("pause and resume", async () => {
    const w = mountControl();
    const ws = await connect(w);
    await testid(w, "pause").trigger("click");
    expect(ws.sentOfType("pause")).toHaveLength(1);
    ws.receiveJson({ type: "configured", stream: { format: "binary", fps: null, quality: 80, max_width: null, display: "auto", paused: true } });
    await settle();
    await nextTick();
    expect(testid(w, "pause").text()).toBe("Resume");
    expect(testid(w, "state").text()).toBe("paused");
    await testid(w, "pause").trigger("click");
    expect(ws.sentOfType("resume")).toHaveLength(1);
  });

  it("camera lost: the overlay says the stream resumes by itself", async () => {
    const w = mountControl();
    const ws = await connect(w);
    ws.receive(binaryMessage(frameHeader(1)));
    ws.receiveJson({ type: "status", state: "lost", message: "camera unplugged" });
    await settle();
    await nextTick();
    expect(testid(w, "overlay").text()).toContain("Camera lost: camera unplugged");
    expect(root(w).attributes("data-camera-state")).toBe("lost");
  });
});
