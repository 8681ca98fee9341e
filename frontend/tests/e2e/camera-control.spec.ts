// CameraControl against a real `labcam serve` (simulated camera) in headless chromium: frames drawn,
// stats moving, controls bounded by the camera's specs, snap, and, after the server is killed and
// restarted on the same port, a reconnect by itself. Run for the binary format (with a token) and
// the json format; then against a stand-in for the original JSON-only prototype server
// (seed_server.py), and with an origin the server refuses. All waiting is on DOM state with
// timeouts, never on sleeps.

import { readFileSync } from "node:fs";
import { expect, test, type Page } from "@playwright/test";
import { freePort, startLabcam, startSeedServer, startVite, type LabcamServer } from "./servers";

let vite: Awaited<ReturnType<typeof startVite>>;

test.beforeAll(async () => {
  vite = await startVite(await freePort());
});

test.afterAll(async () => {
  await vite?.close();
});

const number = (text: string | null): number => {
  const n = Number((text ?? "").replace(/[^\d.]/g, ""));
  return Number.isFinite(n) && (text ?? "").trim() !== "–" ? n : NaN;
};

async function framesDrawn(page: Page): Promise<number> {
  return number(await page.getByTestId("frames-drawn").textContent());
}

async function stat(page: Page, key: string): Promise<number> {
  return number(await page.getByTestId(`stat-${key}`).textContent());
}

/** A cheap signature of the canvas pixels. */
function canvasSignature(page: Page): Promise<string> {
  return page.evaluate(() => {
    const c = document.querySelector<HTMLCanvasElement>("[data-testid=canvas]")!;
    const data = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < data.length; i += 97) h = (h * 31 + data[i]) | 0;
    return `${c.width}x${c.height}:${h}`;
  });
}

async function waitCanvasChanges(page: Page, timeout = 20_000): Promise<void> {
  const before = await canvasSignature(page);
  await page.waitForFunction(
    (prev) => {
      const c = document.querySelector<HTMLCanvasElement>("[data-testid=canvas]")!;
      const data = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
      let h = 0;
      for (let i = 0; i < data.length; i += 97) h = (h * 31 + data[i]) | 0;
      return `${c.width}x${c.height}:${h}` !== prev;
    },
    before,
    { timeout, polling: 100 },
  );
}

async function expectStreaming(page: Page, label: string): Promise<void> {
  const root = page.locator(".labcam-camera");
  await expect(root, `${label}: connected`).toHaveAttribute("data-state", "connected");
  const start = await framesDrawn(page);
  await expect.poll(() => framesDrawn(page), { message: `${label}: frames drawn`, timeout: 20_000 }).toBeGreaterThan(start + 5);
  await waitCanvasChanges(page);
  // Stats move: the client's frame count and the server's frames_sent both grow.
  await expect.poll(() => stat(page, "frames"), { message: `${label}: client stats`, timeout: 15_000 }).toBeGreaterThan(0);
  const sent = await stat(page, "server-sent").then((n) => (Number.isNaN(n) ? -1 : n));
  await expect.poll(() => stat(page, "server-sent"), { message: `${label}: server stats move`, timeout: 15_000 }).toBeGreaterThan(sent);
  await expect.poll(() => stat(page, "fps"), { message: `${label}: fps`, timeout: 15_000 }).toBeGreaterThan(0);
}

for (const variant of [
  { format: "binary", token: "e2e-secret" },
  { format: "json", token: undefined },
] as const) {
  test(`${variant.format} format: streams, controls work, reconnects after a server restart`, async ({ page }) => {
    const port = await freePort();
    const start = () => startLabcam({ port, token: variant.token, allowOrigins: [vite.origin] });
    let server: LabcamServer = await start();
    try {
      const q = new URLSearchParams({ server: server.url, format: variant.format, reconnectDelay: "1000" });
      if (variant.token) q.set("token", variant.token);
      await page.goto(`${vite.url}?${q}`);

      await expectStreaming(page, "first connection");
      await expect(page.getByTestId("camera")).toContainText("simulated");
      await expect(page.getByTestId("overlay")).toHaveCount(0);

      // Exposure and gain are bounded by the camera's specs.
      const exposure = page.getByTestId("exposure");
      await expect(exposure).toBeEnabled();
      const max = Number(await exposure.getAttribute("max"));
      expect(max).toBeGreaterThan(0);
      await exposure.fill(String(max * 10));
      await exposure.press("Enter");
      await expect(page.getByTestId("error")).toContainText("exposure_ms");
      await exposure.fill("5");
      await exposure.press("Enter");
      await expect(page.getByTestId("events")).toContainText("settings: exposure 5 ms");
      await expect(page.getByTestId("error")).toHaveCount(0);

      // Downscale: the frames get narrower.
      const options = page.getByTestId("downscale").locator("option");
      const half = await options.nth(1).getAttribute("value");
      await page.getByTestId("downscale").selectOption(half!);
      await expect.poll(async () => (await page.getByTestId("last-frame").textContent()) ?? "", { timeout: 15_000 }).toContain(` ${half}×`);

      // Snap downloads the full frame while streaming.
      const download = page.waitForEvent("download");
      await page.getByTestId("snap").click();
      const file = await download;
      expect(file.suggestedFilename()).toMatch(/^labcam_SIM.*\.png$/);
      const png = readFileSync((await file.path())!);
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      await expect(page.getByTestId("snap-info")).toContainText("640×480");

      // Kill the server: the component says so and keeps trying.
      await server.kill();
      await expect(page.locator(".labcam-camera")).toHaveAttribute("data-state", "reconnecting");
      await expect(page.getByTestId("overlay")).toContainText("Connection lost");
      await expect(page.getByTestId("diagnosis")).toContainText("nothing answers");

      // Restart it on the same port: the component reconnects by itself and draws again.
      server = await start();
      await expectStreaming(page, "after the restart");
      await expect.poll(() => stat(page, "reconnects"), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
      // The stream options chosen before the restart are kept.
      await expect.poll(async () => (await page.getByTestId("last-frame").textContent()) ?? "", { timeout: 15_000 }).toContain(` ${half}×`);
    } finally {
      await server.stop();
    }
  });
}

test("the original JSON-only server: frames drawn, controls off, reconnects after a restart", async ({ page }) => {
  const port = await freePort();
  let server = await startSeedServer(port);
  try {
    await page.goto(`${vite.url}?${new URLSearchParams({ server: server.url, format: "json", reconnectDelay: "1000" })}`);
    const root = page.locator(".labcam-camera");
    await expect(root).toHaveAttribute("data-state", "connected");
    await expect(root).toHaveAttribute("data-legacy", "1");
    await expect.poll(() => framesDrawn(page), { timeout: 20_000 }).toBeGreaterThan(5);
    await waitCanvasChanges(page);
    await expect(page.getByTestId("camera")).toContainText("original JSON-only server");
    await expect(page.getByTestId("fps")).toBeDisabled();
    await expect(page.getByTestId("exposure")).toBeDisabled();
    await expect.poll(() => stat(page, "fps"), { timeout: 15_000 }).toBeGreaterThan(0);

    await server.kill();
    await expect(root).toHaveAttribute("data-state", "reconnecting");
    server = await startSeedServer(port);
    await expect(root).toHaveAttribute("data-state", "connected");
    const n = await framesDrawn(page);
    await expect.poll(() => framesDrawn(page), { timeout: 20_000 }).toBeGreaterThan(n + 5);
  } finally {
    await server.stop();
  }
});

test("a page whose origin the server does not allow is told how to fix it", async ({ page }) => {
  const server = await startLabcam({ port: await freePort() });
  try {
    await page.goto(`${vite.url}?${new URLSearchParams({ server: server.url, reconnectDelay: "1000" })}`);
    await expect(page.locator(".labcam-camera")).toHaveAttribute("data-state", "reconnecting");
    await expect(page.getByTestId("diagnosis")).toContainText(`--allow-origin ${vite.origin}`);
    expect(await framesDrawn(page)).toBe(0);
  } finally {
    await server.stop();
  }
});

test("a wrong token is reported with the server's own message", async ({ page }) => {
  const server = await startLabcam({ port: await freePort(), token: "right", allowOrigins: [vite.origin] });
  try {
    await page.goto(`${vite.url}?${new URLSearchParams({ server: server.url, token: "wrong", reconnectDelay: "1000" })}`);
    await expect(page.locator(".labcam-camera")).toHaveAttribute("data-state", "reconnecting");
    await expect(page.getByTestId("diagnosis")).toContainText("a valid token is required");
  } finally {
    await server.stop();
  }
});
