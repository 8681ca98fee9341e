"""The notebook live view in a real browser: frames displayed per second, and what it costs the kernel.

Starts JupyterLab (loopback, fresh config/runtime dirs, the labcam extension serving a simulated
1280x1024 mono8 camera), opens a notebook in headless Chromium and shows, one after the other:

- websocket mode (``labcam.connect().live()``: the page streams from the extension) with the camera
  at 30 fps, then at its maximum rate;
- comm mode (``labcam.open(...).live()``: the kernel encodes and pushes frames, acked, 2 in flight),
  at 30 fps and at the maximum rate, for comparison.

For each it measures, over the same window: frames the widget drew per second (its
``data-frames-drawn`` counter), the rate the camera delivered, the kernel's CPU and the Jupyter
server's CPU (``/proc/<pid>/stat`` utime+stime before and after; 100 % = one core).

    python benchmarks/bench_widget.py [--seconds 10] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "labcam-bench"
TICKS = os.sysconf("SC_CLK_TCK")

# The simulated camera's fastest setting: 1 ms exposure fits in a 1 ms frame period.
MAX_RATE = "exposure_ms=0.5, fps=1000"

# (label, cell that displays a view as `v`, cell that closes it)
SCENARIOS: list[tuple[str, str]] = [
    ("websocket, camera 30 fps", "remote.set(exposure_ms=10, fps=30)\nv = remote.live()\nv"),
    ("websocket, camera max rate", f"v.close()\nremote.set({MAX_RATE})\nv = remote.live()\nv"),
    (
        "comm, camera 30 fps",
        "v.close()\nremote.set(exposure_ms=10, fps=30)\n"
        "cam = labcam.open('simulated', width=1280, height=1024, fps=30, seed=1)\nv = cam.live()\nv",
    ),
    ("comm, camera max rate", f"v.close()\ncam.set({MAX_RATE})\nv = cam.live()\nv"),
]
SETUP = "import os, labcam\nremote = labcam.connect()\nprint(os.getpid())"
TEARDOWN = "v.close()\ncam.close()"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (here: Playwright's driver and Chromium's processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def browser_cpu_seconds(lab_pid: int) -> float:
    """CPU of the browser side: our descendants except the Jupyter server and its kernels."""
    server = set(descendants(lab_pid)) | {lab_pid}
    total = 0.0
    for pid in descendants(os.getpid()):
        if pid not in server:
            try:
                total += cpu_seconds(pid)
            except OSError:  # a process that just ended
                pass
    return total


def poll(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class Lab:
    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        (root / "config").mkdir()
        (root / "runtime").mkdir()
        (root / "nb").mkdir()
        cells = [SETUP] + [cell for _, cell in SCENARIOS] + [TEARDOWN]
        notebook = {
            "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c} for c in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (root / "nb" / "bench.ipynb").write_text(json.dumps(notebook))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"))
        self.log = open(root / "lab.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root / 'nb'}",
                "--ServerApp.port_retries=0", "--allow-root", "--ServerApp.ip=127.0.0.1",
                "--LabcamApp.camera=simulated", "--LabcamApp.width=1280", "--LabcamApp.height=1024",
                "--LabcamApp.fps=30",
            ],  # fmt: skip
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        poll(self._up, 90, "jupyter lab")

    def api(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def _up(self) -> bool:
        try:
            self.api("api/status")
            return True
        except OSError:
            return False

    def kernel_idle(self) -> bool:
        return any(s.get("kernel", {}).get("execution_state") == "idle" for s in self.api("api/sessions"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_cell(page: Page, lab: Lab, index: int) -> Any:
    """Run cell ``index`` from the keyboard once the kernel is idle; wait until it has finished."""
    poll(lab.kernel_idle, 60, "an idle kernel")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    poll(lambda: cell.locator(".jp-InputArea-prompt").inner_text().strip() not in ("[ ]:", "[*]:"), 60, f"cell {index}")
    return cell


def measure(page: Page, lab: Lab, cell: Any, kernel_pid: int, label: str, seconds: float, warmup: float) -> dict[str, Any]:
    view = cell.locator(".labcam-liveview")
    view.wait_for(timeout=60_000)
    drawn = lambda: int(view.get_attribute("data-frames-drawn") or 0)  # noqa: E731
    poll(lambda: drawn() >= 5, 60, f"frames in {label}")
    time.sleep(warmup)  # settle: pacing of the measurement, not synchronisation
    cam0 = lab.api("labcam/api/camera/stats")["camera"]["frames"]
    b0 = browser_cpu_seconds(lab.proc.pid)
    k0, s0, d0, t0 = cpu_seconds(kernel_pid), cpu_seconds(lab.proc.pid), drawn(), time.monotonic()
    time.sleep(seconds)
    k1, s1, d1, t1 = cpu_seconds(kernel_pid), cpu_seconds(lab.proc.pid), drawn(), time.monotonic()
    b1 = browser_cpu_seconds(lab.proc.pid)
    cam1 = lab.api("labcam/api/camera/stats")["camera"]["frames"]
    dt = t1 - t0
    return {
        "scenario": label,
        "mode": view.get_attribute("data-mode"),
        "displayed_fps": (d1 - d0) / dt,
        "server_camera_fps": (cam1 - cam0) / dt,
        "kernel_cpu": 100 * (k1 - k0) / dt,
        "server_cpu": 100 * (s1 - s0) / dt,
        "browser_cpu": 100 * (b1 - b0) / dt,
        "status": view.locator(".lc-status").inner_text(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per scenario")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of streaming before measuring")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="labcam-bench-widget-") as tmp:
        lab = Lab(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{lab.url}lab/tree/bench.ipynb?token={TOKEN}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
                setup = run_cell(page, lab, 0)
                kernel_pid = int(setup.locator(".jp-OutputArea-output").first.inner_text().strip())
                for i, (label, _) in enumerate(SCENARIOS, start=1):
                    cell = run_cell(page, lab, i)
                    results.append(measure(page, lab, cell, kernel_pid, label, args.seconds, args.warmup))
                    print(f"  {label}: {results[-1]['status']}", flush=True)
                run_cell(page, lab, len(SCENARIOS) + 1)
                browser.close()
        finally:
            lab.stop()

    print()
    print(f"Live view in headless Chromium, 1280x1024 mono8, {args.seconds:g} s per row "
          f"(CPU: 100 % = one core; {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f})")
    header = (
        f"{'scenario':<28} {'mode':<10} {'displayed fps':>13} {'stream camera fps':>17} "
        f"{'kernel CPU':>10} {'server CPU':>10} {'browser CPU':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['scenario']:<28} {r['mode']:<10} {r['displayed_fps']:>13.1f} {r['server_camera_fps']:>17.1f} "
            f"{r['kernel_cpu']:>9.1f}% {r['server_cpu']:>9.1f}% {r['browser_cpu']:>10.1f}%"
        )
    print("\n'stream camera fps' is the extension's camera; in comm mode the kernel's own camera streams instead.")


if __name__ == "__main__":
    main()
