"""End to end in a real browser: JupyterLab with the labcam extension, a notebook, the live view.

JupyterLab runs on loopback with fresh config and runtime directories, so the labcam extension is
only there if installing the package enabled it (nothing in this test enables it). Headless
Debian Chromium, driven by Playwright, opens a notebook and runs its cells from the keyboard, as a
user would:

1. ``labcam.connect().live()``: the widget streams in websocket mode from the extension; frames are
   drawn (the widget's ``data-frames-drawn`` counter and ``data-frame-number`` move);
2. a cell that sleeps 8 s: while it is visibly running (its output says so and its prompt is
   ``[*]``), frames keep being drawn, and they arrive on the extension's WebSocket
   (``/labcam/ws/camera/stream``), while the kernel's WebSocket stays nearly silent. (The frame
   counter alone would prove nothing: a kernel thread can push comm messages during a sleep too.)
3. an in-process camera's ``cam.live()``: comm mode, frames through the kernel's WebSocket;
4. a view of an unreachable server: it says so in the widget (no empty output);
5. the controls (pause/play, exposure, snap) act on the stream, and a view scrolled out of sight
   pauses its stream;
6. a ``labcam serve`` that refuses the page's origin but not the kernel: mode "auto" falls back to
   the comm, with the kernel pulling frames from that server.

Every wait polls the page or the server with a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterlab")

from chromium_args import CHROMIUM_ARGS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TOKEN = "labcam-e2e-token"
STREAM_PATH = "/labcam/ws/camera/stream"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
]

CELLS = [
    # 0: the extension's camera, websocket mode
    "import labcam\nremote = labcam.connect()\nview = remote.live()\nview",
    # 1: a busy kernel
    "print('sleeping', flush=True)\nimport time\ntime.sleep(8)\nprint('awake')",
    # 2: a camera inside the kernel, comm mode
    "local = labcam.open('simulated', seed=2, width=640, height=512, fps=30)\nlocal_view = local.live(max_width=320)\nlocal_view",
    # 3: nothing listens there
    "from labcam import LiveView\nLiveView(url='http://127.0.0.1:9/', mode='websocket')",
    # 4: a long output to scroll the first view out of sight
    "for i in range(150):\n    print(i)",
    # 5: a `labcam serve` that refuses the page (cross-origin) but not the kernel: auto falls back
    "LiveView(url='http://127.0.0.1:{serve_port}/', max_width=320)",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


@dataclass
class Lab:
    url: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def api(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def kernel_state(self, notebook: str) -> str | None:
        for session in self.api("api/sessions"):
            if session.get("path") == notebook and session.get("kernel"):
                return str(session["kernel"].get("execution_state"))
        return None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root, config, runtime = base / "root", base / "config", base / "runtime"
    for d in (root, config, runtime):
        d.mkdir()
    # No news toast over the page (a user setting, in this test's own config dir).
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
            for src in CELLS
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    serve_port = _free_port()
    for cell in notebook["cells"]:
        cell["source"] = cell["source"].replace("{serve_port}", str(serve_port))
    (root / "e2e.ipynb").write_text(json.dumps(notebook))
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime))
    for var in ("LABCAM_URL", "LABCAM_TOKEN", "JUPYTER_TOKEN"):
        env.pop(var, None)
    log = base / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0", "--allow-root", "--ServerApp.ip=127.0.0.1",
        # The camera the extension serves (configuration, not enabling: that is the install's job).
        "--LabcamApp.camera=simulated", "--LabcamApp.width=1280", "--LabcamApp.height=1024", "--LabcamApp.fps=30",
    ]  # fmt: skip
    serve_cmd = [
        sys.executable, "-m", "labcam", "serve", "--port", str(serve_port), "--camera", "simulated",
        "--width", "640", "--height", "512", "--fps", "30",
    ]  # fmt: skip: no --allow-origin, so the Lab page's WebSocket is refused
    with open(log, "wb") as out, open(base / "serve.log", "wb") as serve_out:
        serve = subprocess.Popen(serve_cmd, env=env, stdout=serve_out, stderr=subprocess.STDOUT, cwd=root)
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    the_lab = Lab(f"http://127.0.0.1:{port}/", root, log, proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {proc.returncode}:\n{the_lab.log_tail()}")
        try:
            the_lab.api("api/status")
            return True
        except OSError:
            return False

    try:
        poll(up, 90, "jupyter lab to answer /api/status", interval=0.2)
        if "labcam" not in the_lab.log.read_text(errors="replace"):
            pytest.fail("the labcam server extension did not load (is it enabled by the install?)\n" + the_lab.log_tail())
        yield the_lab
    finally:
        for p in (proc, serve):
            p.send_signal(signal.SIGTERM)  # SIGINT would ask for confirmation on a tty
        for p in (proc, serve):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


@dataclass
class Sockets:
    """Messages the page received, per WebSocket kind (counted in Playwright's event thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stream_binary: int = 0
    stream_urls: list[str] = field(default_factory=list)
    kernel_frames: int = 0

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.stream_binary, self.kernel_frames


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _run_cell(page: Any, index: int) -> None:
    """Click into cell ``index``'s editor and run it with Shift+Enter, as a user would."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def _prompt(page: Any, index: int) -> str:
    text = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-prompt").inner_text()
    return str(text).strip()


def _wait_idle(page: Any, lab: Lab, what: str) -> None:
    """Lab's indicator and the server both say idle (before typing: see the recipes on flakes)."""
    poll(lambda: lab.kernel_state("e2e.ipynb") == "idle", 60, f"the kernel to be idle ({what})")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def _view(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".labcam-liveview")


def _drawn(view: Any) -> int:
    return int(view.get_attribute("data-frames-drawn") or 0)


def _stream_clients(lab: Lab) -> list[dict[str, Any]]:
    """The extension's binary stream clients, as its stats endpoint lists them."""
    return [c for c in lab.api("labcam/api/camera/stats")["clients"] if c.get("format") == "binary"]


def _server_paused(lab: Lab) -> list[bool]:
    return [bool(c["stream"].get("paused")) for c in _stream_clients(lab)]


def test_live_view_streams_from_the_extension_while_a_cell_is_busy(lab: Lab, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    sockets = Sockets()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))

    def on_websocket(ws: Any) -> None:
        if STREAM_PATH in ws.url:
            with sockets.lock:
                sockets.stream_urls.append(ws.url)

            def on_stream(payload: Any) -> None:
                if isinstance(payload, (bytes, bytearray)):
                    with sockets.lock:
                        sockets.stream_binary += 1

            ws.on("framereceived", on_stream)
        elif "/api/kernels/" in ws.url:

            def on_kernel(payload: Any) -> None:
                with sockets.lock:
                    sockets.kernel_frames += 1

            ws.on("framereceived", on_kernel)

    page.on("websocket", on_websocket)
    try:
        page.goto(f"{lab.url}lab/tree/e2e.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        _wait_idle(page, lab, "after opening the notebook")

        # 1. the extension's camera: websocket mode, frames drawn
        _run_cell(page, 0)
        view = _view(page, 0)
        view.wait_for(timeout=60_000)
        poll(lambda: view.get_attribute("data-mode") == "websocket", 30, "websocket mode")
        poll(lambda: _drawn(view) >= 10, 30, "10 frames drawn from the extension's stream")
        first_number = view.get_attribute("data-frame-number")
        poll(lambda: view.get_attribute("data-frame-number") != first_number, 10, "the frame number to change")
        assert sockets.stream_urls, "the page never opened the extension's stream"
        assert all("format=binary" in u for u in sockets.stream_urls)
        status = view.locator(".lc-status").inner_text()
        assert status.startswith("websocket (this Jupyter server)"), status
        poll(lambda: _prompt(page, 0) == "[1]:", 30, "cell 0 to finish")
        _wait_idle(page, lab, "after cell 0")

        # The controls act on the stream itself: pause/play, exposure (the stream's settings
        # message, applied to the camera), snap (a full-resolution PNG download).
        assert _server_paused(lab) == [False]
        view.locator(".lc-play").click()
        poll(lambda: view.get_attribute("data-state") == "paused", 10, "the paused state")
        poll(lambda: _server_paused(lab) == [True], 10, "the server to pause the stream")
        view.locator(".lc-play").click()
        poll(lambda: _server_paused(lab) == [False], 10, "the server to resume the stream")
        resumed = _drawn(view)
        poll(lambda: _drawn(view) > resumed + 5, 10, "frames after resuming")

        exposure = view.locator(".lc-exposure")
        exposure.fill("5")
        exposure.press("Enter")
        poll(lambda: lab.api("labcam/api/camera/settings")["exposure_ms"] == 5.0, 10, "exposure 5 ms on the camera")
        exposure.fill("5000")  # beyond one frame period: the camera refuses, the widget says why
        exposure.press("Enter")
        error_line = view.locator(".lc-error")
        poll(lambda: error_line.is_visible() and "exposure_ms" in error_line.inner_text(), 10, "the refusal shown")
        assert lab.api("labcam/api/camera/settings")["exposure_ms"] == 5.0

        with page.expect_download(timeout=30_000) as download_info:
            view.locator(".lc-snap").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".png")
        snap_path = lab.root.parent / download.suggested_filename
        download.save_as(str(snap_path))
        from PIL import Image

        with Image.open(snap_path) as snap:
            assert snap.size == (1280, 1024)  # the full frame, not the preview

        # 2. a busy kernel: the view keeps drawing, and the frames come over the extension's socket
        _run_cell(page, 1)
        out1 = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
        poll(lambda: out1.count() > 0 and "sleeping" in out1.first.inner_text(), 30, "the sleeping cell to start")
        assert _prompt(page, 1) == "[*]:"
        drawn0 = _drawn(view)
        stream0, kernel0 = sockets.snapshot()
        number0 = view.get_attribute("data-frame-number")
        # 30 frames (1 s at 30 fps; 5 s allowed for a loaded machine) well inside the 8 s sleep.
        poll(lambda: _drawn(view) >= drawn0 + 30, 5, "30 more frames drawn while the cell sleeps")
        drawn1 = _drawn(view)
        stream1, kernel1 = sockets.snapshot()
        still_running = _prompt(page, 1) == "[*]:" and "awake" not in out1.first.inner_text()
        assert still_running, "the sleeping cell finished before the frames were counted"
        assert view.get_attribute("data-frame-number") != number0
        print(f"while the cell slept: {drawn1 - drawn0} frames drawn, {stream1 - stream0} stream frames, "
              f"{kernel1 - kernel0} kernel messages")
        # Every drawn frame came in on the stream socket (Playwright reports socket events a little
        # after the page sees them, hence the slack of a few frames).
        assert stream1 - stream0 >= drawn1 - drawn0 - 5, (stream0, stream1, drawn0, drawn1)
        # Nothing frame-like on the kernel's socket: at most a few status/stream messages.
        assert kernel1 - kernel0 < 10, f"{kernel1 - kernel0} kernel messages while the view drew {drawn1 - drawn0} frames"
        poll(lambda: _prompt(page, 1) == "[2]:", 30, "the sleeping cell to finish")
        _wait_idle(page, lab, "after the sleep")

        # 3. an in-process camera: comm mode, frames through the kernel's socket, acked
        _run_cell(page, 2)
        local_view = _view(page, 2)
        local_view.wait_for(timeout=60_000)
        poll(lambda: local_view.get_attribute("data-mode") == "comm", 30, "comm mode")
        k0 = sockets.snapshot()[1]
        d0 = _drawn(local_view)
        poll(lambda: _drawn(local_view) >= d0 + 20, 30, "20 frames drawn through the comm")
        assert sockets.snapshot()[1] - k0 >= 20  # they came over the kernel's WebSocket
        assert local_view.locator(".lc-status").inner_text().startswith("comm (the kernel)")
        poll(lambda: _prompt(page, 2) == "[3]:", 30, "cell 2 to finish")
        _wait_idle(page, lab, "after cell 2")

        # 4. a server that is not there: the widget says so instead of staying empty
        _run_cell(page, 3)
        bad = _view(page, 3)
        bad.wait_for(timeout=60_000)
        poll(lambda: bad.get_attribute("data-state") in ("reconnecting", "error"), 30, "an error state")
        overlay = bad.locator(".lc-overlay").inner_text()
        assert "Reconnecting" in overlay or "Error" in overlay, overlay
        assert _drawn(bad) == 0

        poll(lambda: _prompt(page, 3) == "[4]:", 30, "cell 3 to finish")
        _wait_idle(page, lab, "after cell 3")

        # 5. scrolled out of sight: the first view pauses its stream, and resumes when back
        _run_cell(page, 4)
        poll(lambda: _prompt(page, 4) == "[5]:", 30, "cell 4 to finish")
        page.locator(".jp-Notebook .jp-Cell").nth(4).locator(".jp-OutputArea-output").first.evaluate(
            "el => el.scrollIntoView({block: 'end'})"
        )
        poll(lambda: view.get_attribute("data-state") == "paused", 10, "the hidden view to pause")
        poll(lambda: _server_paused(lab) == [True], 10, "the server to pause the hidden view's stream")
        view.scroll_into_view_if_needed()
        poll(lambda: _server_paused(lab) == [False], 10, "the stream to resume in sight")
        back = _drawn(view)
        poll(lambda: _drawn(view) > back + 5, 10, "frames again in sight")

        # 6. auto mode: the page is refused (cross-origin), the kernel is not: frames through the comm
        _wait_idle(page, lab, "after cell 4")
        _run_cell(page, 5)
        fallback = _view(page, 5)
        fallback.wait_for(timeout=60_000)
        poll(lambda: fallback.get_attribute("data-mode") == "comm", 60, "the fallback to the comm")
        poll(lambda: _drawn(fallback) >= 10, 60, "frames through the comm from labcam serve")
        assert fallback.locator(".lc-status").inner_text().startswith("comm (the kernel)")

        labcam_errors = [e for e in page_errors if "labcam" in e.lower() or "liveview" in e.lower()]
        assert not labcam_errors, labcam_errors
    except BaseException:
        shot = lab.root.parent / "failure.png"
        try:
            page.screenshot(path=str(shot))
        except Exception:
            pass
        print(f"screenshot: {shot}\n--- jupyter lab log ---\n{lab.log_tail()}")
        raise
    finally:
        context.close()
