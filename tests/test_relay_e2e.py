"""End to end in a real browser: JupyterLab relaying a ``labcam serve`` that holds the camera.

A ``labcam serve`` (simulated camera, 640x512) runs first and announces itself in the runtime
folder; JupyterLab starts with the labcam extension on its defaults (``camera = 'auto'``), finds the
host and relays it. In headless Chromium a notebook runs ``labcam.connect().live()`` and then a cell
that sleeps: the view keeps drawing the host's frames, which come over the extension's WebSocket
while the kernel is busy. Every wait polls with a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterlab")

from test_jupyterlab_e2e import (  # noqa: E402  (browser: its headless Chromium fixture)
    CHROMIUM, STREAM_PATH, TOKEN, Lab, _drawn, _free_port, _prompt, _run_cell, _view, _wait_idle, browser, poll,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
]

CELLS = [
    "import labcam\nremote = labcam.connect()\nview = remote.live()\nview",
    "print('sleeping', flush=True)\nimport time\ntime.sleep(8)\nprint('awake')",
]


def host_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/camera/stats", timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def relaying_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, int]]:
    base = tmp_path_factory.mktemp("relay-lab")
    root, config, runtime = base / "root", base / "config", base / "runtime"
    for d in (root, config, runtime):
        d.mkdir()
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in CELLS]
    (root / "e2e.ipynb").write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    }))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime))
    for var in ("LABCAM_URL", "LABCAM_TOKEN", "JUPYTER_TOKEN"):
        env.pop(var, None)
    host_port, port = _free_port(), _free_port()
    with open(base / "serve.log", "wb") as serve_out:
        host = subprocess.Popen(
            [sys.executable, "-m", "labcam", "serve", "--port", str(host_port), "--camera", "simulated",
             "--width", "640", "--height", "512", "--fps", "30"],
            env=env, stdout=serve_out, stderr=subprocess.STDOUT, cwd=root,
        )
    log = base / "jupyterlab.log"
    procs = [host]
    try:
        poll(lambda: _answers(f"http://127.0.0.1:{host_port}/api/camera"), 60, "labcam serve to answer")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                 f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
                 "--allow-root", "--ServerApp.ip=127.0.0.1"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root,
            )
        procs.append(proc)
        the_lab = Lab(f"http://127.0.0.1:{port}/", root, log, proc)
        poll(lambda: _answers(f"{the_lab.url}api/status?token={TOKEN}"), 90, "jupyter lab to answer /api/status", 0.2)
        yield the_lab, host_port
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_live_view_draws_the_relayed_hosts_frames_while_a_cell_sleeps(relaying_lab: tuple[Lab, int], browser: Any) -> None:
    lab, host_port = relaying_lab
    info = lab.api("labcam/api/camera")
    assert info["relayed_from"] == f"http://127.0.0.1:{host_port}/"  # not a camera of its own
    assert info["camera"]["sensor_width"] == 640
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    stream_frames = [0]  # binary messages on the extension's stream socket (Playwright's thread counts)

    def on_websocket(ws: Any) -> None:
        def on_message(payload: Any) -> None:
            if isinstance(payload, (bytes, bytearray)):
                stream_frames[0] += 1

        if STREAM_PATH in ws.url:
            ws.on("framereceived", on_message)

    page.on("websocket", on_websocket)
    try:
        page.goto(f"{lab.url}lab/tree/e2e.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        _wait_idle(page, lab, "after opening the notebook")
        _run_cell(page, 0)
        view = _view(page, 0)
        view.wait_for(timeout=60_000)
        poll(lambda: view.get_attribute("data-mode") == "websocket", 30, "websocket mode")
        poll(lambda: _drawn(view) >= 10, 30, "10 frames drawn from the relayed stream")
        # The host serves the relay's one upstream connection.
        poll(lambda: [c for c in host_stats(host_port)["clients"] if c["format"] == "binary"], 10, "the upstream on the host")
        poll(lambda: _prompt(page, 0) == "[1]:", 30, "cell 0 to finish")
        _wait_idle(page, lab, "after cell 0")

        _run_cell(page, 1)
        out1 = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
        poll(lambda: out1.count() > 0 and "sleeping" in out1.first.inner_text(), 30, "the sleeping cell to start")
        drawn0, frames0 = _drawn(view), stream_frames[0]
        number0 = view.get_attribute("data-frame-number")
        poll(lambda: _drawn(view) >= drawn0 + 30, 5, "30 more frames drawn while the cell sleeps")
        assert _prompt(page, 1) == "[*]:" and "awake" not in out1.first.inner_text(), "the cell finished too early"
        assert view.get_attribute("data-frame-number") != number0
        assert stream_frames[0] >= frames0 + 30  # over the extension's stream socket, not the kernel's
        upstream = [c for c in host_stats(host_port)["clients"] if c["format"] == "binary"]
        assert len(upstream) == 1 and upstream[0]["frames_sent"] > 30
    finally:
        context.close()
