// TypeScript types of every labcam stream protocol message (docs/protocol.md, version 1) and of the
// shared JavaScript client, re-exported from the client's own declaration file so that there is one
// source of truth: labcam/web/labcam-client.d.ts. Plus the types of CameraControl.vue.

import type {
  CameraSettings,
  ClientState,
  ClientStats,
  ConnectedMessage,
  ErrorDetail,
  FrameHeader,
  SnapFormat,
  SnapHeader,
  StatsMessage,
  StreamFormat,
  LabcamClientOptions,
  StreamEncoding,
  ViewOption,
} from "../../labcam/web/labcam-client.js";
import type { Lut, RendererKind } from "../../labcam/web/labcam-viewer.js";

export type {
  // shared shapes
  StreamFormat,
  PixelFormat,
  TriggerMode,
  CameraState,
  SnapFormat,
  DisplayRange,
  CameraInfo,
  CameraSettings,
  FloatSettingSpec,
  ChoiceSettingSpec,
  RoiSettingSpec,
  SettingSpec,
  SettingSpecs,
  StreamOptions,
  // server -> client
  ConnectedMessage,
  FrameHeader,
  FrameMessage,
  SnapHeader,
  SnapMessage,
  StatsMessage,
  SettingsMessage,
  StatusMessage,
  PongMessage,
  ConfiguredMessage,
  ErrorMessage,
  ServerTextMessage,
  BinaryHeader,
  // client -> server
  ConfigureRequest,
  PingRequest,
  SnapRequest,
  SettingsRequest,
  PauseRequest,
  ResumeRequest,
  ClientMessage,
  StreamQuery,
  // REST
  CameraResponse,
  StatsResponse,
  RestError,
  // the client
  ClientState,
  ClientStreamOptions,
  WebSocketLike,
  WebSocketConstructor,
  LabcamClientOptions,
  ClientStats,
  Frame,
  Snap,
  StateDetail,
  ErrorDetail,
  LogDetail,
  StatsDetail,
  LabcamClientEventMap,
  // issue 11: view-aware streaming
  SensorRect,
  ViewOption,
  StreamEncoding,
  RawCompression,
  CountHistogram,
  FrameGeometry,
  ProbeReply,
} from "../../labcam/web/labcam-client.js";
export type { Lut, RendererKind, DisplayMapping, Readout, ViewerStats, LabcamViewerOptions } from "../../labcam/web/labcam-viewer.js";

/** Every message type the server sends, by its `type` field. */
export type ServerMessageType =
  | "connected"
  | "frame"
  | "snap"
  | "stats"
  | "settings"
  | "status"
  | "pong"
  | "configured"
  | "error";

/** Every message type a client sends, by its `type` field. */
export type ClientMessageType = "configure" | "ping" | "snap" | "settings" | "pause" | "resume";

// ---------------------------------------------------------------------------------------------
// CameraControl.vue
// ---------------------------------------------------------------------------------------------

/** The props of CameraControl.vue. */
export interface CameraControlProps {
  /** The labcam server's root: `http://localhost:8001` (`labcam serve`) or `{base_url}labcam/` (Jupyter). */
  serverUrl?: string;
  /** The server's token (`labcam serve --token`, Jupyter's token). */
  token?: string | null;
  /** "binary" (default) or "json": the original base64-in-JSON format, for servers that only speak it. */
  format?: StreamFormat;
  /** Milliseconds before each reconnect attempt (default 3000). */
  reconnectDelay?: number;
  /** Initial cap on frames per second for this viewer (default: the camera's rate). */
  fps?: number | null;
  /** Initial JPEG quality 1–100 (default: the server's, 80). */
  quality?: number | null;
  /** Initial server-side downscale: frames wider than this are decimated (default: full width). */
  maxWidth?: number | null;
  /** Default snap format. */
  snapFormat?: SnapFormat;
  /** Extra LabcamClient options (e.g. `WebSocket` for tests, `pingInterval`). */
  clientOptions?: Partial<LabcamClientOptions>;
  /** "jpeg" (the server's 8-bit mapping) or "raw" (the camera's counts, lossless); null: the server's default. */
  encoding?: StreamEncoding | null;
  /**
   * The sensor region to show, [x, y, w, h] in sensor pixels: the viewer zooms so that it fills the
   * canvas (showRegion), zoom and pan move on from there; null or "full": fit the whole sensor.
   */
  view?: ViewOption | null;
  /** The display LUT (grey, inverted, viridis, HiLo), applied in the browser. */
  lut?: Lut;
  /** The display window in camera counts, or "auto"; applied in the browser, no server message. */
  contrast?: "auto" | [number, number];
  /**
   * The shared viewer (labcam-viewer.js: zoom, pan, 1:1, display mapping, readouts, histogram) and
   * how it draws: "auto" (WebGL2 where there is one, else 2D), "webgl2" or "2d". null (the default):
   * no viewer, each frame drawn as it comes on a 2D canvas, exactly as before issue 11, so the lab's
   * existing app (which reads the canvas with a 2D context) is unchanged. encoding, view, lut and
   * contrast need the viewer.
   */
  renderer?: "auto" | RendererKind | null;
}

/** The events CameraControl.vue emits. */
export interface CameraControlEmits {
  /** The server's hello (null from a server that sends no `connected` message). */
  connected: [hello: ConnectedMessage | null];
  /** A frame was drawn: its metadata (never the bytes). */
  frame: [meta: FrameHeader];
  /** A connection, server, protocol or decode error. */
  error: [error: ErrorDetail];
  /** The connection state changed. */
  state: [state: ClientState];
  /** The camera's settings changed (by anyone). */
  settings: [settings: CameraSettings];
  /** A snap was downloaded. */
  snap: [meta: SnapHeader, file: { name: string; size: number }];
}

/** What the component shows about the stream, refreshed once a second. */
export interface StreamFigures {
  client: ClientStats | null;
  /** The server's `stats` message, null before the first (or from an original JSON-only server). */
  server: StatsMessage | null;
}

/** True when the server is the original JSON-only one: it sent no protocol version in its hello. */
export function isLegacyServer(hello: ConnectedMessage | null | undefined): boolean {
  return !hello || typeof hello.protocol !== "number";
}

