// Types of labcam-viewer.js: the shared live view (zoom, pan, GPU display mapping, readouts).
import type { Frame, FrameGeometry, LabcamClient } from "./labcam-client.js";

export type Lut = "grey" | "inverted" | "viridis" | "hilo";
export type RendererKind = "webgl2" | "2d";
export interface ViewerCamera {
  /** The sensor pixel at the canvas's centre. */
  cx: number;
  cy: number;
  /** Device pixels per sensor pixel (1 = 1:1). */
  zoom: number;
}
export interface DisplayMapping {
  /** The window in camera counts. */
  min: number;
  max: number;
  /** t ** gamma after the window; < 1 lifts the darks. */
  gamma: number;
  lut: Lut;
  /** Follow each frame: raw, its 0.1–99.9 % percentiles; JPEG, the server's own mapping. */
  auto: boolean;
}
export interface Readout {
  x: number;
  y: number;
  /** The exact sensor coordinates under the pointer. */
  at: [number, number];
  value: number | number[] | null;
  source: "frame" | "probe" | "outside";
  frameNumber?: number;
}
export interface ViewerStats {
  renderer: RendererKind;
  paintedFps: number;
  /** Capture → painted (the painting animation frame minus the capture time), ms. */
  latencyMs: number | null;
  latencyP50: number | null;
  latencyP95: number | null;
  /** Upload + draw. */
  paintP50: number | null;
  paintP95: number | null;
  /** Decode + upload + draw. */
  pipelineP50: number | null;
  pipelineP95: number | null;
  samples: number;
}
export interface LabcamViewerOptions {
  client?: LabcamClient | null;
  renderer?: "auto" | RendererKind;
  lut?: Lut;
  gamma?: number;
  contrast?: "auto" | [number, number];
  hud?: boolean;
  interactive?: boolean;
  pixelSizeUm?: number | null;
  aspect?: boolean;
}
export interface ViewerFrame {
  meta: Frame["meta"];
  geometry: FrameGeometry;
  bitmap?: CanvasImageSource | null;
  pixels?: Uint8Array | Uint16Array | null;
  decodeMs?: number | null;
}

export declare const MAX_ZOOM: number;
export declare const LUTS: readonly Lut[];
export declare class LabcamViewer extends EventTarget {
  constructor(canvas: HTMLCanvasElement, options?: LabcamViewerOptions);
  readonly canvas: HTMLCanvasElement;
  readonly renderer: { kind: RendererKind };
  /** "" with WebGL2, else what the status says ("2D canvas (no WebGL2)"). */
  readonly rendererNote: string;
  readonly display: DisplayMapping;
  readonly readout: Readout | null;
  readonly fitted: boolean;
  readonly box: [number, number];
  readonly view: "full" | [number, number, number, number];
  readonly zoom: number | null;
  readonly stats: ViewerStats;
  readonly frame: ViewerFrame | null;
  setFrame(frame: ViewerFrame): void;
  setSensor(sensor: [number, number]): void;
  setDisplay(changes: Partial<DisplayMapping>): void;
  autoContrast(lo?: number, hi?: number): [number, number] | null;
  fit(): void;
  /** Zoom so that the sensor region [x, y, w, h] fills the canvas, centred ("full": fit); waits for the sensor's size. */
  showRegion(rect: "full" | [number, number, number, number] | null): void;
  oneToOne(px?: number, py?: number): void;
  zoomBy(factor: number, px?: number, py?: number): void;
  panBy(dx: number, dy: number): void;
  readPixel(x: number, y: number): number[];
  countsAt(sx: number, sy: number): number | number[] | null;
  invalidate(): void;
  destroy(): void;
}
export declare function createDisplayControls(viewer: LabcamViewer, doc?: Document): HTMLElement;
export declare function fitZoom(box: [number, number], sensor: [number, number]): number;
export declare function fitCamera(box: [number, number], sensor: [number, number]): ViewerCamera;
export declare function clampCamera(cam: ViewerCamera, box: [number, number], sensor: [number, number]): ViewerCamera;
export declare function zoomAbout(cam: ViewerCamera, factor: number, px: number, py: number, box: [number, number], sensor: [number, number]): ViewerCamera;
export declare function panCamera(cam: ViewerCamera, dx: number, dy: number, box: [number, number], sensor: [number, number]): ViewerCamera;
export declare function screenToSensor(cam: ViewerCamera, box: [number, number], px: number, py: number): [number, number];
export declare function sensorRectToScreen(cam: ViewerCamera, box: [number, number], rect: [number, number, number, number]): [number, number, number, number];
export declare function viewRequest(cam: ViewerCamera, box: [number, number], sensor: [number, number]): "full" | [number, number, number, number];
export declare function deviceBox(cssWidth: number, cssHeight: number, dpr: number, entry?: ResizeObserverEntry | null): [number, number];
export declare function regionCamera(rect: [number, number, number, number], box: [number, number], sensor: [number, number]): ViewerCamera;
export declare function viridis(t: number): [number, number, number];
export declare function lutTable(name: Lut): Uint8Array;
export declare function windowLevel(v: number, lo: number, hi: number, gamma?: number): number;
/** The RGBA [r, g, b, a] a count is painted with (window, gamma, LUT; HiLo marks top and 0). */
export declare function mapCount(v: number, display: DisplayMapping, top: number, table: Uint8Array): [number, number, number, number];
/** The 2D renderer's table: the RGBA word (Uint32, this machine's byte order) of every sample value. */
export declare function countWords(levels: number, toCounts: (v: number) => number, display: DisplayMapping, top: number, ch?: 1 | 3): Uint32Array;
/** Paint n pixels into a Uint32Array over RGBA bytes through countWords' table. */
export declare function remapToRGBA(src: ArrayLike<number>, stride: number, ch: 1 | 3, n: number, words: Uint32Array, out32: Uint32Array, sat?: Uint8Array | null): void;
export declare function histogramPercentiles(hist: { bins: number[]; range: [number, number] }, lo?: number, hi?: number): [number, number] | null;
export declare function scaleBar(umPerPx: number, targetPx?: number): { um: number; px: number; label: string };
export default LabcamViewer;
