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
} from "../../labcam/web/labcam-client.js";

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
} from "../../labcam/web/labcam-client.js";

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

