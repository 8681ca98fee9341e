// Types of labcam-client.js and of every message of the labcam stream protocol, version 1
// (docs/protocol.md). Server → client messages are `*Message`, client → server `*Request`.

// ---------------------------------------------------------------------------------------------
// Protocol: shared shapes
// ---------------------------------------------------------------------------------------------

export type StreamFormat = "binary" | "json";
export type PixelFormat = "mono8" | "mono12" | "mono16" | "rgb8" | (string & {});
export type TriggerMode = "free_running" | "software" | "hardware" | (string & {});
export type CameraState = "streaming" | "idle" | "lost";
export type SnapFormat = "png" | "jpeg" | "tiff" | "npy";
/** A 12/16-bit display range: automatic, or [min, max] in camera counts (0 <= min < max < 2^bits). */
export type DisplayRange = "auto" | [number, number];

/** What a camera is; never changes while the camera is open. Drivers may add string fields. */
export interface CameraInfo {
  driver: "simulated" | "pixelink" | (string & {});
  model: string;
  serial: string;
  sensor_width: number;
  sensor_height: number;
  pixel_formats: PixelFormat[];
  max_bit_depth: number;
  firmware: string;
  /** Object-side pixel size in micrometres, when known. */
  pixel_size_um: number | null;
  [extra: string]: unknown;
}

/** The camera's settings, in labcam's units. */
export interface CameraSettings {
  exposure_ms: number;
  gain_db: number;
  /** The camera's frame rate (not a client's fps cap). */
  fps: number;
  /** [x, y, width, height] on the sensor. */
  roi: [number, number, number, number];
  pixel_format: PixelFormat;
  trigger_mode: TriggerMode;
}

interface SettingSpecBase {
  /** The allowed values in words, as error messages say them, e.g. "a number from 0.01 to 1000 ms". */
  allowed: string;
  unit?: string;
  settable_while_streaming: boolean;
}
export interface FloatSettingSpec extends SettingSpecBase {
  kind: "float";
  minimum: number;
  maximum: number;
}
export interface ChoiceSettingSpec extends SettingSpecBase {
  kind: "choice";
  choices: string[];
}
export interface RoiSettingSpec extends SettingSpecBase {
  kind: "roi";
  /** [width, height] of the sensor. */
  sensor: [number, number];
  step: number;
  minimum: number;
}
export type SettingSpec = FloatSettingSpec | ChoiceSettingSpec | RoiSettingSpec;
/** What each setting accepts, keyed by setting name (a camera may leave some out). */
export type SettingSpecs = Partial<Record<keyof CameraSettings, SettingSpec>> & Record<string, SettingSpec>;

/** A client's stream options in force (protocol names; null = the server's default). */
export interface StreamOptions {
  format: StreamFormat;
  fps: number | null;
  quality: number | "auto" | null;
  max_width: number | null;
  display: DisplayRange;
  /** Whether this client is paused (pause/resume). */
  paused?: boolean;
  [extra: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Protocol: server → client
// ---------------------------------------------------------------------------------------------

/** The first message of every connection. */
export interface ConnectedMessage {
  type: "connected";
  protocol: number;
  client_id: string;
  camera: CameraInfo;
  settings: CameraSettings;
  specs: SettingSpecs;
  stream: StreamOptions;
  state: CameraState;
  /** Epoch seconds on the server's clock. */
  server_time: number;
  /** true: replies echo the request's `request_id` (servers before it leave this out). */
  request_ids?: boolean;
}

/** A request's id (a string of at most 128 characters, or a number; whole numbers within ±(2^53 − 1)): echoed in its reply and its error. */
export type RequestId = string | number;

/** A frame's metadata: the binary header, or the json frame message without `data`. */
/** A sensor region [x, y, w, h] in sensor pixels. */
export type SensorRect = [number, number, number, number];
/** The `view` stream option: the whole sensor or a region of it. */
export type ViewOption = "full" | SensorRect;
export type StreamEncoding = "jpeg" | "raw" | "h264";
export type RawCompression = "deflate" | "zstd" | "lz4" | "none";

/** The histogram of the camera's counts in a frame header (a sample of the view's pixels). */
export interface CountHistogram {
  bins: number[];
  /** [0, 2**bit_depth]: the counts the bins span, equal widths. */
  range: [number, number];
}

export interface FrameHeader {
  type: "frame";
  /** "raw" frames carry the camera's counts (docs/raw-mode.md) from a view-aware server. */
  encoding: "jpeg" | "raw";
  /** The sensor region this image covers, after clamping/alignment (absent from older servers: the full sensor). */
  view?: SensorRect;
  /** The full frame's size [w, h] (absent from older servers: source_width/source_height). */
  sensor?: [number, number];
  histogram?: CountHistogram;
  /** Pixels at the top count in the view. */
  saturated?: number;
  /** true when the asked view was clamped or realigned. */
  clamped?: boolean;
  /** Raw frames only. */
  dtype?: "uint8" | "uint16";
  shuffle?: boolean;
  compression?: RawCompression;
  channels?: 1 | 3;
  /** Capture time, epoch seconds (server clock). */
  timestamp: number;
  frame_number: number;
  /** Size of the encoded image. */
  width: number;
  height: number;
  /** Size of the camera frame. */
  source_width: number;
  source_height: number;
  pixel_format: PixelFormat;
  /** Significant bits per sample of the camera frame (absent from older servers: see bitDepthOf). */
  bit_depth?: number;
  /** The display range used to map 12/16-bit counts to 8 bits. */
  display: [number, number];
  exposure_ms: number;
  gain_db: number;
  [extra: string]: unknown;
}

/** A frame in `json` format: base64 JPEG in `data`. */
export interface FrameMessage extends FrameHeader {
  data: string;
}

/** The header of a snap (binary format), or the json snap message without `data`. */
export interface SnapHeader {
  type: "snap";
  encoding: SnapFormat;
  frame_number: number;
  timestamp: number;
  width: number;
  height: number;
  pixel_format: PixelFormat;
  /** Significant bits per sample (absent from older servers: see bitDepthOf). */
  bit_depth?: number;
  camera_serial?: string;
  /** The snap request's id, when it had one. */
  request_id?: RequestId;
  [extra: string]: unknown;
}

/** A snap in `json` format: base64 image in `data`. */
export interface SnapMessage extends SnapHeader {
  data: string;
}

/** What this client got, about once a second. */
export interface StatsMessage {
  type: "stats";
  fps: number;
  frames_sent: number;
  /** Frames this client did not get because it was behind (latest frame wins). */
  frames_skipped: number;
  bytes_per_s: number;
  camera_fps: number;
  camera_frames: number;
  /** Frames the camera numbered but labcam never received. */
  camera_dropped: number;
  encode_ms: number;
  in_flight: number;
}

/** To every client whenever the camera's settings change, by anyone. The client whose settings request (with a request_id) made the change gets it with that `request_id`, as its reply; a message without one is a broadcast. */
export interface SettingsMessage {
  type: "settings";
  settings: CameraSettings;
  request_id?: RequestId;
}

/** The camera's state changed. While "lost" the stream stays open and resumes by itself. */
export interface StatusMessage {
  type: "status";
  state: CameraState;
  message?: string;
}

export interface PongMessage {
  type: "pong";
  id: number;
  server_time: number;
  request_id?: RequestId;
}

/** The stream options now in force (after configure, pause or resume). */
export interface ConfiguredMessage {
  type: "configured";
  stream: StreamOptions;
  request_id?: RequestId;
}

/** A request was refused; nothing changed, the connection carries on. With `request` "connect": the stream's options (query parameters) were refused; the server closes with 4400 next. */
export interface ErrorMessage {
  type: "error";
  message: string;
  /** The type of the request refused ("configure", "snap", "settings", "record", ..., or "connect"). */
  request?: string;
  /** The refused request's id, when it had a valid one. */
  request_id?: RequestId;
  /** For a refused "record" request: its action. */
  action?: RecordAction;
}

export type RecordAction = "start" | "stop" | "status";
export type RecordingState = "recording" | "finishing" | "done" | "failed";

/** One recording the server runs or ran (REST `api/recordings/<id>`, the `recording` message). */
export interface RecordingStatus {
  id: string;
  /** The file's name inside the server's recordings folder. */
  name: string;
  format: "ome-tiff" | "ome-zarr";
  state: RecordingState;
  /** Epoch seconds. */
  started_at: number;
  frames_written: number;
  frames_target: number | null;
  duration_target_s: number | null;
  /** Seconds since the first recorded frame. */
  elapsed_s: number;
  bytes_written: number;
  mb_written: number;
  /** Data recorded per second of recording (1 MB = 1e6 bytes). */
  mb_per_s: number;
  /** How fast the disk took it while writing (the headroom). */
  write_mb_per_s: number;
  fps: number;
  /** dropped_camera + dropped_overflow. */
  dropped: number;
  dropped_camera: number;
  dropped_overflow: number;
  /** Frames waiting in memory to be written. */
  buffered: number;
  buffer_capacity: number;
  interruptions: number;
  /** "frames" | "duration" | "stopped" | the error's reason ("disk", "overflow", "camera", "format"). */
  stop_reason: string | null;
  error: string | null;
}

/** A recording's status: the answer to a record request (`reply`) or a broadcast to every client (`event`: started, progress about once a second, finished). */
export interface RecordingMessage extends RecordingStatus {
  type: "recording";
  reply?: RecordAction;
  event?: "started" | "progress" | "finished";
  /** With `reply`: the record request's id, when it had one (`id` is the recording's). */
  request_id?: RequestId;
}
/** The answer to `{"type": "record", "action": "status"}` without an id. */
export interface RecordingsMessage {
  type: "recordings";
  reply: "status";
  recordings: RecordingStatus[];
  max_active: number;
  request_id?: RequestId;
}

export type ServerTextMessage =
  | ConnectedMessage
  | FrameMessage
  | SnapMessage
  | StatsMessage
  | SettingsMessage
  | StatusMessage
  | PongMessage
  | ConfiguredMessage
  | RecordingMessage
  | RecordingsMessage
  | ErrorMessage;

/** The header of a binary message: `| N uint32 BE | N bytes UTF-8 JSON header | image bytes |`. */
export type BinaryHeader = FrameHeader | SnapHeader;

// ---------------------------------------------------------------------------------------------
// Protocol: client → server (JSON text)
// ---------------------------------------------------------------------------------------------

/** Every request may carry a `request_id`, echoed in its reply and in the error refusing it. */
export interface RequestBase {
  request_id?: RequestId;
}
/** Change this client's stream options (any subset; null resets one to its default). Reply: configured | error. */
export interface ConfigureRequest extends RequestBase {
  type: "configure";
  fps?: number | null;
  quality?: number | "auto" | null;
  max_width?: number | null;
  display?: DisplayRange | null;
  view?: ViewOption | null;
  size?: [number, number] | null;
  encoding?: StreamEncoding | null;
  compression?: RawCompression | null;
}
/** Reply: probe (or an error with "request": "probe"). */
export interface ProbeRequest extends RequestBase {
  type: "probe";
  x: number;
  y: number;
  w?: number;
  h?: number;
}
/** Reply: pong. */
export interface PingRequest extends RequestBase {
  type: "ping";
  id: number;
}
/** The next full-resolution frame. Reply: snap | error. */
export interface SnapRequest extends RequestBase {
  type: "snap";
  format: SnapFormat;
}
/** Change camera settings, validated as a whole. Reply: settings (to everyone) | error (to the sender). */
export interface SettingsRequest extends RequestBase {
  type: "settings";
  changes: Partial<CameraSettings>;
}
/** Stop frames for this client. Reply: configured. */
export interface PauseRequest extends RequestBase {
  type: "pause";
}
/** Restart frames for this client. Reply: configured. */
export interface ResumeRequest extends RequestBase {
  type: "resume";
}
/** Start, stop or ask about recordings (answered in request order). Reply: recording | recordings (status without id) | error (request "record"). */
export type RecordRequest = RequestBase &
  (
    | { type: "record"; action: "start"; name: string; frames?: number; duration?: number; format?: "ome-tiff" | "ome-zarr"; overwrite?: boolean }
    | { type: "record"; action: "stop"; id: string }
    | { type: "record"; action: "status"; id?: string }
  );
export type ClientMessage = ConfigureRequest | PingRequest | SnapRequest | SettingsRequest | PauseRequest | ResumeRequest | RecordRequest;

/** The stream's query parameters (`ws/camera/stream?...`). A bad one: the server sends an ErrorMessage with request "connect" and closes with 4400 (CLOSE_BAD_OPTION). */
export interface StreamQuery {
  format?: StreamFormat;
  fps?: number;
  quality?: number | "auto";
  max_width?: number;
  /** "auto" or "MIN,MAX". */
  display?: string;
  token?: string;
}

// ---------------------------------------------------------------------------------------------
// REST (for completeness; the client itself only uses the WebSocket)
// ---------------------------------------------------------------------------------------------

/** GET api/camera */
export interface CameraResponse {
  camera: CameraInfo;
  settings: CameraSettings;
  specs: SettingSpecs;
  state: CameraState;
}
/** GET api/camera/stats */
export interface StatsResponse {
  camera: { state: CameraState; fps: number; frames: number; dropped: number };
  encoder: { variants: number; encode_ms: number };
  clients: Array<{ id: string; format: StreamFormat; fps: number; frames_sent: number; frames_skipped: number; bytes_per_s: number; rtt_ms: number | null; in_flight: number }>;
}
/** GET api/recordings */
export interface RecordingsResponse {
  recordings: RecordingStatus[];
  active: number;
  max_active: number;
  /** The recordings folder on the server. */
  folder: string;
}
/** Any REST error (400, 403, 404, 409, 503). */
export interface RestError {
  error: string;
  /** 409/503 from POST api/recordings: "busy", "disk", "camera", ... */
  reason?: string;
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

export type ClientState = "idle" | "connecting" | "connected" | "reconnecting" | "error" | "closed";

export declare const PROTOCOL_VERSION: 1;
/** "ws/camera/stream" */
export declare const STREAM_PATH: string;
export declare const STATES: readonly ClientState[];
/** The close code of a stream whose options (query parameters) the server refused: the client does not retry them (state "error"). */
export declare const CLOSE_BAD_OPTION: 4400;
export declare const SNAP_FORMATS: readonly SnapFormat[];

/** Stream options in the client's spelling (camelCase). null = the server's default. */
export interface ClientStreamOptions {
  /** Cap on frames per second delivered to this client, 0.1–1000. */
  fps?: number | null;
  /** JPEG quality, whole number 1–100, or "auto" (the default): the server fits quality, size and fps to the link. */
  quality?: number | "auto" | null;
  /** Server-side downscale: frames wider than this are decimated to at most this width, 16–16384. */
  maxWidth?: number | null;
  /** 12/16-bit display range: "auto", [min, max] or "MIN,MAX". */
  display?: DisplayRange | string | null;
  /** The sensor region to show: "full", [x, y, w, h] or "X,Y,W,H" (sent in configure only to a view-aware server). */
  view?: ViewOption | string | null;
  /** The device-pixel box the view must fit, [w, h] 16–16384 each. */
  size?: [number, number] | string | null;
  /** "jpeg" (default) or "raw" (lossless counts). */
  encoding?: StreamEncoding | null;
  /** Raw frames' compression (default "deflate"). */
  compression?: RawCompression | null;
}

/** Where a frame lies on the sensor, from its header (frameGeometry); an older server's header is the full sensor. */
export interface FrameGeometry {
  encoding: StreamEncoding;
  view: SensorRect;
  width: number;
  height: number;
  sensor: [number, number];
  bitDepth: number;
  /** Sensor pixels per image pixel (1 at full resolution). */
  scale: number;
  histogram: CountHistogram | null;
  saturated: number | null;
  clamped: boolean;
  /** The counts the 8-bit JPEG values 0 and 255 stand for ([0, 2**bits - 1] for raw). */
  display: [number, number];
  dtype: "uint8" | "uint16" | null;
  channels: number;
}

/** The reply to a probe: the counts of sensor pixels x..x+w, y..y+h of the latest full-bit-depth frame. */
export interface ProbeReply {
  type: "probe";
  x: number;
  y: number;
  w: number;
  h: number;
  /** Row-major; RGB: [r, g, b] per pixel. */
  values: Array<number | [number, number, number]>;
  frame_number: number;
  bit_depth: number;
  request_id?: string | number;
}

/** A WebSocket constructor (the browser's, or a fake for tests). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType?: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface LabcamClientOptions extends ClientStreamOptions {
  /** The server's root (http(s)://host/ or {base_url}labcam/) or the stream URL itself (ws(s)://…/ws/camera/stream). Relative URLs resolve against the page. */
  url: string | URL;
  /** Sent as ?token= (Jupyter or `labcam serve --token`). Same-origin pages in Jupyter may rely on the login cookie instead. */
  token?: string | null;
  /** Default "binary". Fixed per connection. */
  format?: StreamFormat;
  /** Decode frames to ImageBitmap (createImageBitmap), one at a time, newest wins. Default: true where createImageBitmap exists. */
  decode?: boolean;
  /** Default true. */
  autoReconnect?: boolean;
  /** Milliseconds before a reconnect attempt (default 3000), or a function of the attempt number (1, 2, ...) for backoff. */
  reconnectDelay?: number | ((attempt: number) => number);
  /** Give up an attempt without the server's hello after this many ms (default 10000; 0 = never). */
  connectTimeout?: number;
  /** Ping period in ms while connected (default 2000; 0 = no periodic pings, no stale detection). */
  pingInterval?: number;
  /** A connection silent for longer than this (ms) is dropped and reconnected (default 10000; 0 = never). */
  staleTimeout?: number;
  /** How long ping/configure/snap/settings wait for their reply, in ms (default 15000). */
  requestTimeout?: number;
  /** Period of `stats` events in ms (default 1000; 0 = none). */
  statsInterval?: number;
  /** Pause the stream while the document is hidden (default true; browsers only). */
  pauseWhenHidden?: boolean;
  /** How the picture travels (default "websocket"). "webrtc": through Janus (api/webrtc) into `video`, the
   * WebSocket carries settings, snaps and recordings with its frames paused; connect() imports
   * ./dist/labcam-webrtc.js (the bundle) only then. */
  transport?: Transport;
  /** transport "webrtc": the <video> element the stream plays in (required then). */
  video?: HTMLVideoElement;
  /** WebSocket constructor to use instead of globalThis.WebSocket (tests, Node). */
  WebSocket?: WebSocketConstructor;
  /** Monotonic clock in ms (default performance.now); a hook for tests. */
  now?: () => number;
}

/** Client-side figures, measured on this side of the socket. */
export interface ClientStats {
  /** Frames received per second over the last stats interval. */
  fps: number;
  /** Frames delivered to `frame` listeners (decoded) per second: what a page can draw. */
  displayFps: number;
  /** Frames received since connect() (kept across reconnects). */
  frames: number;
  framesDisplayed: number;
  /** Frames never decoded because a newer one arrived while a decode was running (client side; the server's own skips are in StatsMessage.frames_skipped). */
  framesSkipped: number;
  /** The encoding of the last frame delivered ("jpeg", "raw", "h264"), or null before the first. */
  encoding: StreamEncoding | null;
  /** Why the client streams JPEG though asked for H.264 (no secure context, no WebCodecs, no H.264 decoder), or null. */
  fallbackReason: string | null;
  /** Wire bytes of frame messages per second. */
  bytesPerSecond: number;
  bytes: number;
  /** Size of the last frame's image (JPEG bytes). */
  frameBytes: number;
  width: number | null;
  height: number | null;
  /** Last ping round trip, ms. */
  rttMs: number | null;
  /** Mean of the last 10 round trips, ms. */
  rttAvgMs: number | null;
  /** Capture-to-receive age of the last frame, ms, using clockOffsetMs (uncertainty about rtt/2). */
  frameAgeMs: number | null;
  /** Server clock minus client clock, ms, estimated from the fastest recent ping. */
  clockOffsetMs: number | null;
  decodeErrors: number;
  protocolErrors: number;
  reconnects: number;
  /** Paused by pause() or because the page is hidden. */
  paused: boolean;
}

export interface Frame<M = FrameHeader> {
  meta: M;
  /** The image bytes (image/jpeg for frames). */
  blob: Blob;
  /** The decoded image when `decode` is on (H.264: the WebCodecs VideoFrame, drawn the same way), else null. Valid until the next `frame` event: the client closes it then. */
  bitmap: ImageBitmap | VideoFrame | null;
  /** Raw frames: the camera's counts, row-major (decodeRaw), else null. JPEG frames' blob is then null too. */
  pixels: Uint8Array | Uint16Array | null;
  /** Where the image lies on the sensor; null only for a header without a size that was not decoded (the seed's original server). */
  geometry: FrameGeometry | null;
  /** Decode time in ms (ImageBitmap or raw decode), null when not decoded. */
  decodeMs: number | null;
  /** Image size in bytes. */
  bytes: number;
  /** When it arrived, on the client's monotonic clock (ms). */
  receivedAt: number;
}

export interface Snap {
  blob: Blob;
  meta: SnapHeader;
}

export interface StateDetail {
  state: ClientState;
  previous: ClientState;
  /** Why (close reason, error), when there is one. */
  reason?: string;
  code?: number;
  /** Reconnect attempt number (state "reconnecting"). */
  attempt?: number;
  /** Milliseconds until the next attempt (state "reconnecting"). */
  retryIn?: number;
}

export interface ErrorDetail {
  /** With source "server" and request "connect": the server refused the stream options (close code 4400); the client stops reconnecting (state "error") until connect(), reconnect() or configure() with other options. */
  message: string;
  /** server: an `error` message; socket: the connection failed; protocol: a malformed message; decode: a frame did not decode; client: cannot connect at all. */
  source: "server" | "socket" | "protocol" | "decode" | "client";
  request?: string | null;
  response?: ErrorMessage;
  code?: number;
}

export interface LogDetail {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  /** Epoch milliseconds. */
  time: number;
}

export interface StatsDetail {
  client: ClientStats;
  /** The server's last stats message, or null before the first. */
  server: StatsMessage | null;
}

export interface LabcamClientEventMap {
  state: StateDetail;
  connected: ConnectedMessage;
  frame: Frame;
  stats: StatsDetail;
  settings: CameraSettings;
  status: StatusMessage | WebRTCStatusEvent;
  configured: StreamOptions | null;
  error: ErrorDetail;
  log: LogDetail;
  /** Asked for H.264, the client streams JPEG instead (it cannot decode H.264 here): why. */
  fallback: { reason: string; encoding: "jpeg" };
  /** A recording's status: replies to startRecording/stopRecording and every broadcast (event: started, progress, finished). */
  recording: RecordingStatus & { event?: "started" | "progress" | "finished" };
  /** Every JSON text message, after the client handled it. */
  message: ServerTextMessage | { type: string; [key: string]: unknown };
}

/** A client error, or the server's refusal of a request (`message` is then the server's message). */
export declare class LabcamError extends Error {
  name: "LabcamError";
  /** The request refused or failed ("settings", "snap", "configure", "ping", ...), when known. */
  request: string | null;
  /** The server's error message, when the server refused. */
  response: ErrorMessage | null;
  /** "server" | "timeout" | "closed" | "protocol" | null */
  code: string | null;
  constructor(message: string, options?: { request?: string | null; response?: ErrorMessage | null; code?: string | null });
}

export type Transport = "websocket" | "webrtc";
export declare const TRANSPORTS: readonly Transport[];
/** The WebRTC viewer's status (WebRTCViewer in dist/labcam-webrtc.js). */
export type WebRTCStatus = "connecting" | "live" | "lost" | "refused" | "closed";
/** The `status` event of transport "webrtc" when the viewer's status changes (state: the camera's). */
export interface WebRTCStatusEvent {
  type: "webrtc";
  webrtc: WebRTCStatus;
  error: string;
  state: CameraState | null;
}

export declare class LabcamClient extends EventTarget {
  constructor(options: LabcamClientOptions);
  /** The options in force (configure() updates fps/quality/maxWidth/display). */
  readonly options: Required<Omit<LabcamClientOptions, "WebSocket" | "now" | "token" | "video">> & Pick<LabcamClientOptions, "WebSocket" | "now" | "token" | "video">;
  /** The stream URL the next (or current) connection uses. */
  readonly url: string;
  readonly state: ClientState;
  /** state === "connected" */
  readonly connected: boolean;
  /** Paused by pause() (kept across reconnects). */
  readonly paused: boolean;
  readonly stats: ClientStats;
  /** The server's hello of the current or last connection. */
  readonly serverInfo: ConnectedMessage | null;
  readonly camera: CameraInfo | null;
  readonly settings: CameraSettings | null;
  readonly specs: SettingSpecs;
  readonly stream: StreamOptions | null;
  readonly cameraState: CameraState | null;
  readonly serverStats: StatsMessage | null;
  /** Why the client streams JPEG though asked for H.264, or null (also in `stats` and the `fallback` event). */
  readonly fallbackReason: string | null;
  /** The last `frame` event's detail. */
  readonly lastFrame: Frame | null;
  /** transport "webrtc": the WebRTCViewer once its module is imported (framesShown, frameInfo, ages), else null. */
  readonly webrtc: any;
  /** transport "webrtc": the viewer's status ("closed" before connect()); null for "websocket". */
  readonly webrtcStatus: WebRTCStatus | null;
  /** Why the viewer is lost or refused ("" otherwise). */
  readonly webrtcError: string;
  /** The inbound video's counters (RTCPeerConnection.getStats(): framesDecoded, framesPerSecond, ...), or null. */
  webrtcStats(): Promise<Record<string, number> | null>;

  /** Listen to an event; the listener gets the detail. Returns a function that removes the listener. */
  on<K extends keyof LabcamClientEventMap>(type: K, listener: (detail: LabcamClientEventMap[K], event: CustomEvent<LabcamClientEventMap[K]>) => void): () => void;
  addEventListener<K extends keyof LabcamClientEventMap>(type: K, listener: (event: CustomEvent<LabcamClientEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof LabcamClientEventMap>(type: K, listener: (event: CustomEvent<LabcamClientEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;

  /** Open the stream; resolves with the server's hello. Rejects on disconnect() (or, with autoReconnect off, on failure). No-op while connecting/connected; retries at once while reconnecting. */
  connect(): Promise<ConnectedMessage | null>;
  /** Drop the connection and connect again now. */
  reconnect(): Promise<ConnectedMessage | null>;
  /** Close for good: no reconnect; pending requests reject. */
  disconnect(reason?: string): void;
  /** Change this client's stream options; kept for reconnects. Resolves with the options in force; rejects with RangeError (bad value, nothing sent) or the server's message. In state "error" after the server refused the options (4400), options that differ connect again. */
  configure(changes: ClientStreamOptions): Promise<StreamOptions>;
  /** Whether the server knows view/size/encoding/compression (its stream options or a frame header said so). */
  readonly viewAware: boolean;
  /** Change the view-aware options, coalesced (one configure in flight, latest wins); kept for reconnects. */
  requestView(changes: Pick<ClientStreamOptions, "view" | "size" | "encoding" | "compression">): Promise<StreamOptions>;
  /** The counts of sensor pixels x..x+w, y..y+h (w, h 1–64) of the latest full-bit-depth frame. */
  probe(x: number, y: number, w?: number, h?: number): Promise<ProbeReply>;
  /** ms from a frame's capture to the client's monotonic time `t` (default now), via the clock offset; null before a pong. */
  captureAgeMs(meta: { timestamp?: number } | null, t?: number): number | null;
  /** Round-trip time in ms. */
  ping(): Promise<number>;
  /** The next full-resolution frame (default "png"). */
  snap(format?: SnapFormat): Promise<Snap>;
  /** Change camera settings; resolves with the new settings, rejects with the server's message (nothing changed). */
  setSettings(changes: Partial<CameraSettings>): Promise<CameraSettings>;
  /** Start recording every frame to `name` in the server's recordings folder; resolves with its status (`id`), rejects with the server's message. */
  startRecording(opts: { name: string; frames?: number | null; duration?: number | null; format?: "ome-tiff" | "ome-zarr" | null; overwrite?: boolean }): Promise<RecordingStatus>;
  /** Stop a recording; resolves with its status once the file is closed (or after a few seconds with the state reached). */
  stopRecording(id: string): Promise<RecordingStatus>;
  /** Every recording the server knows, running and recently finished. */
  recordings(): Promise<RecordingStatus[]>;
  /** Stop frames for this client (kept across reconnects). */
  pause(): Promise<StreamOptions | null>;
  resume(): Promise<StreamOptions | null>;
}

/** Split a binary message into its JSON header and payload (a view, no copy). Throws LabcamError (code "protocol") when malformed. */
export declare function parseBinaryMessage(data: ArrayBuffer | ArrayBufferView): { header: Record<string, unknown> & Partial<BinaryHeader>; payload: Uint8Array };

/** The stream's ws(s) URL from a server root or stream URL, with the options as query parameters. Throws TypeError/RangeError. */
export declare function buildStreamUrl(base: string | URL, options?: ClientStreamOptions & { format?: StreamFormat | null; token?: string | null }): string;

/** The directory of a page served by labcam (`/` or `{base_url}labcam/`): the `url` to give the client. */
export declare function pageStreamBase(href?: string): string;

/** Check camelCase stream options and return them in protocol form. Throws RangeError/TypeError. */
export declare function normalizeStreamOptions(options: ClientStreamOptions): Omit<ConfigureRequest, "type">;

/** "auto" | [min, max] | "MIN,MAX" → "auto" | [min, max]. Throws RangeError. */
export declare function normalizeDisplay(display: DisplayRange | string): DisplayRange;
export declare function normalizeDisplay(display: null | undefined): null | undefined;

export declare function base64ToBytes(text: string): Uint8Array;

/** The stream options' ranges, [minimum, maximum], of protocol version 1 (quality and max_width: whole numbers). */
export declare const STREAM_OPTION_RANGES: Readonly<{ fps: readonly [number, number]; quality: readonly [number, number]; max_width: readonly [number, number]; size: readonly [number, number]; view: readonly [number, number] }>;
export declare const ENCODINGS: readonly StreamEncoding[];
/** The codec string h264Unsupported asks VideoDecoder.isConfigSupported about. */
export declare const H264_PROBE_CODEC: string;
/** Access units waiting in the decoder beyond which deltas are dropped until the next keyframe. */
export declare const H264_MAX_DECODE_QUEUE: number;
/** Why this browser (`env`, default globalThis) cannot decode the H.264 stream (secure context, VideoDecoder, H.264 support), or null when it can. */
export declare function h264Unsupported(env?: { isSecureContext?: boolean; VideoDecoder?: unknown; EncodedVideoChunk?: unknown }): Promise<string | null>;
export declare const COMPRESSIONS: readonly RawCompression[];
export declare const VIEW_OPTION_KEYS: readonly ["view", "size", "encoding", "compression"];
export declare function normalizeView(view: ViewOption | string): ViewOption;
export declare function normalizeSize(size: [number, number] | string): [number, number];
/** Where a frame lies on the sensor; throws a LabcamError (code "protocol") for a header without a size. */
export declare function frameGeometry(meta: Partial<FrameHeader>): FrameGeometry;

// ---- helpers shared by the test page, the notebook widget and the Vue component ----------------

/** `v` with `digits` decimals (default 1) and a unit; "–" when not a finite number. */
export declare function fmt(v: unknown, digits?: number, unit?: string): string;
/** A whole number with thousands separators ("12,346"); "–" when not a finite number. */
export declare function fmtInt(v: unknown): string;
/** Bytes (per second with `perSecond`) in B, kB or MB ("2.40 MB/s"); "–" when not a finite number. */
export declare function fmtBytes(n: unknown, perSecond?: boolean): string;
/** Milliseconds, one decimal below 10 ("3.1 ms", "42 ms"); "–" when not a finite number. */
export declare function fmtMs(v: unknown): string;
/** A delay in ms, in seconds from 1 s on ("250 ms", "3 s", "1.5 s"); "–" when not a finite number. */
export declare function fmtSeconds(ms: unknown): string;

/** The order of a recording's states; a status never goes back to a lower rank. */
export declare const RECORDING_RANK: Readonly<Record<RecordingState, number>>;
/** The newer of two statuses of one recording: the higher state rank, then more frames written (`b` on a tie). */
export declare function newerStatus<T extends Pick<RecordingStatus, "state"> & { frames_written?: number | null }>(a: T | null | undefined, b: T): T;
export declare function newerStatus<T extends Pick<RecordingStatus, "state"> & { frames_written?: number | null }>(a: T, b: T | null | undefined): T;
/** A default recording name: `labcam-<yyyymmdd-hhmmss><ext>` (now, local time; ext default ".ome.tif"). */
export declare function recordingName(ext?: string): string;

/** File extension per snap format: png, jpg, tif, npy. */
export declare const SNAP_EXTENSIONS: Readonly<Record<SnapFormat, string>>;
/**
 * The snapshot file name, the one rule of every labcam host and view:
 * `labcam_<serial>_<yyyymmdd-hhmmss>_<frame_number>.<ext>`, then every run of characters other than
 * `A-Z a-z 0-9 _ . -` replaced by one `_`.
 * - serial: the argument, else `meta.camera_serial`, else "camera";
 * - the time: `meta.timestamp` (epoch seconds) in local time, else now;
 * - frame_number: "frame" when unknown; ext: SNAP_EXTENSIONS[format], else the format itself.
 *
 * `snapFileName("SIM 0001", "tiff", {timestamp, frame_number: 12})` -> "labcam_SIM_0001_20251125-093320_12.tif".
 */
export declare function snapFileName(serial: string | null | undefined, format: SnapFormat | string, meta?: { timestamp?: unknown; frame_number?: unknown; camera_serial?: unknown }): string;

/** Significant bits per sample of the pixel formats labcam knows (mono8/10/12/14/16, rgb8, bgr8). */
export declare const PIXEL_BIT_DEPTHS: Readonly<Record<string, number>>;
/**
 * The bit depth of a frame or snap header: its `bit_depth`, else (an older server) from `pixel_format`
 * (PIXEL_BIT_DEPTHS, or the number of monoN/rgbN/bgrN), else `fallback` (default null).
 */
export declare function bitDepthOf<F extends number | null = null>(header: { bit_depth?: unknown; pixel_format?: unknown } | null | undefined, fallback?: F): number | F;

/**
 * One request in flight, latest wins: `push(changes)` sends at once when nothing is in flight; changes
 * pushed meanwhile are merged (later values win) and sent as one request once the one in flight settles.
 * `push` returns the promise of the request that carries its changes; `push.busy` says one is in flight.
 */
export declare function settingsCoalescer<C extends object, R>(send: (changes: C) => Promise<R>): ((changes: C) => Promise<R>) & { readonly busy: boolean };

/** Positions of the log slider: 0..SLIDER_STEPS. */
export declare const SLIDER_STEPS: 1000;
/** A value's position on a log slider from min to max (clamped); SLIDER_STEPS / 2 for a bad range or value. */
export declare function toLogSlider(value: number, min: number, max: number): number;
/** The value at a log slider position: three significant digits, kept inside [min, max]. */
export declare function fromLogSlider(t: number, min: number, max: number): number;

/** What a view shows: the client's state, or once connected what the picture is doing. */
export type ViewMode = ClientState | "lost" | "paused" | "camera-idle" | "waiting" | "live";
/** A view's mode from its client's state, the camera's state, pause and the frames drawn so far. */
export declare function viewMode(view: { state: ClientState; cameraState?: CameraState | string | null; paused?: boolean; framesDrawn?: number }): ViewMode;
export interface OverlayDetails {
  /** The server, said while connecting. */
  where?: string;
  /** Why it is not connected (reconnecting, error, closed). */
  reason?: string;
  /** The next retry's delay, ms, and the attempt (reconnecting). */
  retryIn?: number | null;
  attempt?: number;
  /** Whether the view was connected before (lost vs cannot connect). */
  everConnected?: boolean;
  /** The camera's or the source's own words (lost, camera-idle, waiting). */
  message?: string;
  /** Paused because the view is scrolled out of sight. */
  outOfView?: boolean;
}
/** The overlay over a view's picture in `mode`: a short title and the sentence; both "" when live. */
export declare function overlayText(mode: ViewMode | "streaming", details?: OverlayDetails): { title: string; text: string };

export default LabcamClient;
