/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The labcam server the demo page connects to (default http://localhost:8001). */
  readonly VITE_LABCAM_URL?: string;
  readonly VITE_LABCAM_TOKEN?: string;
  /** "binary" (default) or "json". */
  readonly VITE_LABCAM_FORMAT?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}

declare module "*.vue" {
  import type { DefineComponent } from "vue";
  const component: DefineComponent<object, object, unknown>;
  export default component;
}
