// The parts of CameraControl.vue that are plain logic (no Vue, no DOM): control ranges, downscale
// choices and the connection diagnosis. Unit-tested in tests/unit/controls-logic.test.ts. The helpers
// every labcam view shares (formats, the log slider, snap file names, overlay texts, the settings
// coalescer) are the client's, re-exported here for the component.

import { STREAM_PATH } from "../../labcam/web/labcam-client.js";
import type { FloatSettingSpec, SettingSpec } from "./types";

export {
  fmt,
  fmtBytes,
  fmtInt,
  fmtMs,
  fmtSeconds,
  fromLogSlider,
  overlayText,
  settingsCoalescer,
  SLIDER_STEPS,
  SNAP_EXTENSIONS,
  snapFileName,
  toLogSlider,
  viewMode,
} from "../../labcam/web/labcam-client.js";

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** A setting's spec when it is a float range (exposure, gain, fps), else null. */
export function floatSpec(spec: SettingSpec | undefined | null): FloatSettingSpec | null {
  return spec && spec.kind === "float" && isNum(spec.minimum) && isNum(spec.maximum) && spec.maximum >= spec.minimum ? spec : null;
}

/**
 * Check a value typed for a float setting against its spec. Returns the number, or throws a
 * RangeError worded like the server's messages ("exposure_ms=5000 is not allowed: ...").
 */
export function checkSetting(name: string, raw: string | number, spec: FloatSettingSpec): number {
  const v = typeof raw === "number" ? raw : raw.trim() === "" ? NaN : Number(raw);
  if (!isNum(v) || v < spec.minimum || v > spec.maximum) {
    const allowed = spec.allowed || `a number from ${spec.minimum} to ${spec.maximum}${spec.unit ? ` ${spec.unit}` : ""}`;
    const shown = typeof raw === "string" && (raw.trim() === "" || !isNum(Number(raw))) ? JSON.stringify(raw) : String(raw).trim();
    throw new RangeError(`${name}=${shown} is not allowed: ${allowed}`);
  }
  return v;
}

export interface DownscaleOption {
  label: string;
  /** The `maxWidth` stream option: null = full width. */
  maxWidth: number | null;
}

/**
 * The downscale choices for frames `width` pixels wide: full width, then 1/2, 1/4, 1/8 (while at
 * least 16 px, the protocol's minimum). A `current` maxWidth that is none of them is listed too.
 */
export function downscaleOptions(width: number | null | undefined, current: number | null = null): DownscaleOption[] {
  const out: DownscaleOption[] = [{ label: width ? `full (${width} px)` : "full width", maxWidth: null }];
  if (isNum(width) && width > 0) {
    for (const [factor, name] of [[2, "½"], [4, "¼"], [8, "⅛"]] as const) {
      const w = Math.floor(width / factor);
      if (w >= 16) out.push({ label: `${name} (${w} px)`, maxWidth: w });
    }
  }
  if (isNum(current) && !out.some((o) => o.maxWidth === current)) {
    out.push({ label: `≤ ${current} px`, maxWidth: current });
  }
  return out;
}

/** The frames-per-second caps offered (null = the camera's own rate). */
export const FPS_CHOICES: ReadonlyArray<number | null> = [null, 60, 30, 15, 10, 5, 2, 1];

/** The server's http(s) root from what the component was given (a root URL or the stream URL). */
export function httpRoot(serverUrl: string, base?: string): URL {
  const here = base ?? (globalThis.location ? globalThis.location.href : undefined);
  const url = here ? new URL(serverUrl, here) : new URL(serverUrl);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  url.pathname = url.pathname.replace(new RegExp(`${STREAM_PATH}/?$`), "");
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  url.search = "";
  url.hash = "";
  return url;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * Why the stream cannot connect, in words, found out over HTTP (a failed WebSocket handshake tells a
 * page nothing: 403 and "nothing listening" look alike; a bad stream option is told by the server itself, close 4400). Returns null when the server looks
 * fine over HTTP.
 *
 * - `GET api/camera` answers 403: the server's own message (a wrong token, or a refused origin).
 * - The request fails as a CORS error but an opaque (no-cors) request gets through: the server is
 *   there and refuses this page's origin (`--allow-origin`).
 * - Both fail: nothing answers at that address.
 */
export async function diagnoseConnection(serverUrl: string, token: string | null | undefined, fetchImpl: Fetch = globalThis.fetch.bind(globalThis)): Promise<string | null> {
  let root: URL;
  try {
    root = httpRoot(serverUrl);
  } catch {
    return `not a valid server URL: ${serverUrl}`;
  }
  const api = new URL("api/camera", root);
  if (token) api.searchParams.set("token", token);
  const origin = globalThis.location ? globalThis.location.origin : null;
  try {
    const r = await fetchImpl(api.href, { cache: "no-store", credentials: "omit" });
    if (r.status === 403) {
      let detail = "";
      try {
        const body = await r.json();
        detail = body && typeof body.error === "string" ? body.error : "";
      } catch {
        /* not JSON */
      }
      return `the server refused this page (403${detail ? `: ${detail}` : ""}): check the token`;
    }
    return null;
  } catch {
    try {
      await fetchImpl(root.href, { mode: "no-cors", cache: "no-store", credentials: "omit" });
      return origin
        ? `the server at ${root.origin} answers but refuses pages from ${origin}: start it with --allow-origin ${origin}`
        : `the server at ${root.origin} answers but refuses this page's origin (--allow-origin)`;
    } catch {
      return `nothing answers at ${root.origin}: is labcam serve running there?`;
    }
  }
}
