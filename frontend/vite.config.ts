/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// The component imports the shared client straight from the Python package
// (../labcam/web/labcam-client.js): one client, no fork. The dev server may read it.
const repoRoot = fileURLToPath(new URL("..", import.meta.url));

export default defineConfig({
  plugins: [vue()],
  server: {
    // Fixed, because labcam serve must allow this origin (--allow-origin http://localhost:5173):
    // another port would only produce refused connections.
    port: 5173,
    strictPort: true,
    fs: { allow: [repoRoot] },
  },
  build: {
    target: "es2022",
  },
  test: {
    environment: "jsdom",
    include: ["tests/unit/**/*.test.ts"],
    restoreMocks: true,
  },
});
