// Types of labcam-webrtc.js (bundled to labcam/web/dist/labcam-webrtc.js).

export type WebRTCStatus = "closed" | "connecting" | "live" | "lost" | "refused";

/** The frame shown last: the camera's frame number, its capture time (epoch s) and its age (ms). */
export interface WebRTCFrameInfo {
  frame: number;
  capture: number;
  age_ms: number;
}

/** The inbound video's counters, from RTCPeerConnection.getStats(). */
export interface WebRTCStats {
  framesDecoded: number;
  framesDropped: number;
  packetsLost: number;
  packetsReceived: number;
  framesPerSecond: number;
  frameWidth: number;
  frameHeight: number;
  pliCount: number;
  nackCount: number;
}

export interface WebRTCViewerOptions {
  /** labcam's root URL ("" = this page's server). */
  base?: string;
  /** labcam's token, sent as `Authorization: token …` to `api/webrtc`. */
  token?: string;
  /** Where the stream plays. */
  video: HTMLVideoElement;
  /** Retry after a loss, with back-off (default true). */
  reconnect?: boolean;
}

/** Events: "status" ({status, error}), "frame" (WebRTCFrameInfo). */
export class WebRTCViewer extends EventTarget {
  constructor(options: WebRTCViewerOptions);
  readonly status: WebRTCStatus;
  readonly error: string;
  readonly frameInfo: WebRTCFrameInfo | null;
  readonly framesShown: number;
  /** Capture → shown, ms, the newest 600. */
  readonly ages: number[];
  connect(): Promise<void>;
  stats(): Promise<WebRTCStats | null>;
  close(): void;
}

export default WebRTCViewer;
