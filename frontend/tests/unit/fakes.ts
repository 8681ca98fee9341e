// Test doubles for the unit tests: a scriptable WebSocket (the "server" side is driven by the test),
// protocol message builders, and the browser APIs jsdom lacks (canvas 2D, createImageBitmap).

import { vi } from "vitest";
import type { CameraSettings, ConnectedMessage, FrameHeader, SettingSpecs } from "../../src/types";

export class FakeSocket {
  static instances: FakeSocket[] = [];
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 3;

  readonly url: string;
  readyState = 0;
  binaryType = "blob";
  sent: Array<Record<string, unknown>> = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;

  constructor(url: string) {
    this.url = url;
    FakeSocket.instances.push(this);
  }

  static reset(): void {
    FakeSocket.instances = [];
  }

  static get last(): FakeSocket {
    const s = FakeSocket.instances.at(-1);
    if (!s) throw new Error("no socket was opened");
    return s;
  }

  // -- what the client calls
  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // -- what the test ("the server") does
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(data: unknown): void {
    this.onmessage?.({ data });
  }

  receiveJson(msg: unknown): void {
    this.receive(JSON.stringify(msg));
  }

  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  sentOfType(type: string): Array<Record<string, unknown>> {
    return this.sent.filter((m) => m.type === type);
  }
}

export const SETTINGS: CameraSettings = {
  exposure_ms: 10,
  gain_db: 0,
  fps: 30,
  roi: [0, 0, 1280, 1024],
  pixel_format: "mono8",
  trigger_mode: "free_running",
};

export const SPECS: SettingSpecs = {
  exposure_ms: { kind: "float", unit: "ms", minimum: 0.01, maximum: 1000, allowed: "a number from 0.01 to 1000 ms", settable_while_streaming: true },
  gain_db: { kind: "float", unit: "dB", minimum: 0, maximum: 24, allowed: "a number from 0 to 24 dB", settable_while_streaming: true },
  pixel_format: { kind: "choice", choices: ["mono8", "mono12"], allowed: "one of mono8, mono12", settable_while_streaming: false },
};

export function hello(overrides: Partial<ConnectedMessage> = {}): ConnectedMessage {
  return {
    type: "connected",
    protocol: 1,
    client_id: "c1",
    camera: {
      driver: "simulated",
      model: "labcam simulated microscope",
      serial: "SIM-0001",
      sensor_width: 1280,
      sensor_height: 1024,
      pixel_formats: ["mono8", "mono12"],
      max_bit_depth: 12,
      firmware: "",
      pixel_size_um: 0.65,
    },
    settings: { ...SETTINGS },
    specs: SPECS,
    stream: { format: "binary", fps: null, quality: 80, max_width: null, display: "auto" },
    state: "streaming",
    server_time: Date.now() / 1000,
    ...overrides,
  };
}

export function frameHeader(n: number, overrides: Partial<FrameHeader> = {}): FrameHeader {
  return {
    type: "frame",
    encoding: "jpeg",
    timestamp: Date.now() / 1000,
    frame_number: n,
    width: 1280,
    height: 1024,
    source_width: 1280,
    source_height: 1024,
    pixel_format: "mono8",
    display: [0, 255],
    exposure_ms: 10,
    gain_db: 0,
    ...overrides,
  };
}

/** Not a real JPEG: the decoder is faked, the bytes only need to travel. */
export const JPEG_BYTES = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 0xff, 0xd9]);

/** `| N: uint32 BE | N bytes UTF-8 JSON header | payload |` (docs/protocol.md). */
export function binaryMessage(header: object, payload: Uint8Array = JPEG_BYTES): ArrayBuffer {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const buf = new ArrayBuffer(4 + json.byteLength + payload.byteLength);
  new DataView(buf).setUint32(0, json.byteLength, false);
  new Uint8Array(buf, 4).set(json);
  new Uint8Array(buf, 4 + json.byteLength).set(payload);
  return buf;
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** A frame in the json format: the header plus base64 `data`. */
export function jsonFrame(n: number, overrides: Partial<FrameHeader> = {}): Record<string, unknown> {
  return { ...frameHeader(n, overrides), data: base64(JPEG_BYTES) };
}

export interface BrowserFakes {
  drawImage: ReturnType<typeof vi.fn>;
  createImageBitmap: ReturnType<typeof vi.fn>;
}

/** canvas 2D and createImageBitmap (jsdom has neither). Returns the spies. */
export function installBrowserFakes(): BrowserFakes {
  const drawImage = vi.fn();
  const ctx = { drawImage } as unknown as CanvasRenderingContext2D;
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation((() => ctx) as never);
  const createImageBitmap = vi.fn(async (blob: Blob) => ({ width: 1280, height: 1024, close: vi.fn(), size: blob.size }));
  vi.stubGlobal("createImageBitmap", createImageBitmap);
  return { drawImage, createImageBitmap };
}

/** Let promise callbacks (decoding, request replies) run; works under fake timers. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}
