// Real servers for the end-to-end tests: `labcam serve` (the simulated camera) and Vite's dev server.
// Readiness is awaited on events (the server's "listening on" log line, Vite's listen()), never on sleeps.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ViteDevServer } from "vite";

export const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const REPO = path.resolve(FRONTEND, "..");

/** The `labcam` executable: $LABCAM_BIN, else the repo's .venv, else the active venv, else PATH. */
export function labcamBin(): string {
  if (process.env.LABCAM_BIN) return process.env.LABCAM_BIN;
  const candidates = [path.join(REPO, ".venv/bin/labcam")];
  if (process.env.VIRTUAL_ENV) candidates.push(path.join(process.env.VIRTUAL_ENV, "bin/labcam"));
  return candidates.find((p) => existsSync(p)) ?? "labcam";
}

/** A TCP port nobody listens on right now (127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface LabcamServer {
  port: number;
  url: string;
  proc: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** SIGKILL: no goodbye to the clients, like a crash or a pulled plug. */
  kill(): Promise<void>;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

export interface LabcamOptions {
  port: number;
  token?: string;
  allowOrigins?: string[];
  extraArgs?: string[];
  readyTimeoutMs?: number;
}

function waitExit(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once("exit", () => resolve()));
}

/** Start `labcam serve --camera simulated` on 127.0.0.1:port and wait for its "listening on" line. */
export function startLabcam(opts: LabcamOptions): Promise<LabcamServer> {
  const args = ["serve", "--camera", "simulated", "--host", "127.0.0.1", "--port", String(opts.port), "--width", "640", "--height", "480", "--fps", "20"];
  if (opts.token) args.push("--token", opts.token);
  for (const o of opts.allowOrigins ?? []) args.push("--allow-origin", o);
  args.push(...(opts.extraArgs ?? []));
  return startServer(labcamBin(), args, opts.port, opts.readyTimeoutMs);
}

/** The Python next to `labcam` (its venv's), for helper servers. */
export function pythonBin(): string {
  const bin = labcamBin();
  return bin.includes("/") ? path.join(path.dirname(bin), "python") : "python3";
}

/** A stand-in for the original JSON-only prototype server (tests/e2e/seed_server.py). */
export function startSeedServer(port: number): Promise<LabcamServer> {
  return startServer(pythonBin(), [path.join(FRONTEND, "tests/e2e/seed_server.py"), String(port)], port);
}

function startServer(program: string, args: string[], port: number, readyTimeoutMs = 30000): Promise<LabcamServer> {
  const proc = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
  const opts = { port, readyTimeoutMs };
  let out = "";
  const server: LabcamServer = {
    port: opts.port,
    url: `http://127.0.0.1:${opts.port}`,
    proc,
    output: () => out,
    kill: async () => {
      proc.kill("SIGKILL");
      await waitExit(proc);
    },
    stop: async () => {
      proc.kill("SIGTERM");
      await waitExit(proc);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${program} did not start within ${opts.readyTimeoutMs ?? 30000} ms:\n${out}`));
    }, opts.readyTimeoutMs ?? 30000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (/listening on http/.test(out)) {
        clearTimeout(timer);
        resolve(server);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    proc.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${program} (set LABCAM_BIN): ${e.message}`));
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${program} exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
}

/** Vite's dev server for the demo page on 127.0.0.1:port. */
export async function startVite(port: number): Promise<{ url: string; origin: string; close(): Promise<void> }> {
  const { createServer } = await import("vite");
  const server: ViteDevServer = await createServer({
    root: FRONTEND,
    configFile: path.join(FRONTEND, "vite.config.ts"),
    logLevel: "warn",
    clearScreen: false,
    server: { host: "127.0.0.1", port, strictPort: true, hmr: false },
  });
  await server.listen();
  const origin = `http://127.0.0.1:${port}`;
  return { url: `${origin}/`, origin, close: () => server.close() };
}
