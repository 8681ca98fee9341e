"""The test page in a real headless browser (Debian chromium via Playwright) against a real server."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("LABCAM_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():  # the browser is part of the test environment (scripts/test.sh installs it)
    raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from chromium_args import CHROMIUM_ARGS  # noqa: E402

WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def frames_drawn(page: Page) -> int:
    return int(page.evaluate("window.labcamTestPage.framesDrawn"))


def wait_frames_beyond(page: Page, n: int) -> None:
    page.wait_for_function("n => window.labcamTestPage.framesDrawn > n", arg=n, timeout=WAIT_MS)


def stat_number(page: Page, element_id: str) -> float:
    text = page.text_content(f"#{element_id}") or ""
    digits = "".join(ch for ch in text if ch.isdigit() or ch == ".")
    return float(digits) if digits else float("nan")


def api(url: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_page_connects_draws_frames_and_shows_stats(server, page: Page) -> None:
    page.goto(server.url)
    page.wait_for_selector("#status[data-state='connected']", timeout=WAIT_MS)
    wait_frames_beyond(page, 10)
    first = frames_drawn(page)
    wait_frames_beyond(page, first + 15)  # still drawing
    assert page.eval_on_selector("#view", "c => [c.width, c.height]") == [320, 240]
    # the statistics move: fps climbs to about the camera rate, the frame count grows
    page.wait_for_function(
        "() => parseFloat(document.querySelector('#stat-fps').textContent) > 15", timeout=WAIT_MS
    )
    frames_before = stat_number(page, "stat-frames")
    page.wait_for_function(
        "n => parseFloat(document.querySelector('#stat-frames').textContent.replace(/,/g, '')) > n",
        arg=frames_before, timeout=WAIT_MS,
    )
    page.wait_for_function(
        "() => /\\d/.test(document.querySelector('#stat-latency').textContent)", timeout=WAIT_MS
    )
    log = page.text_content("#log") or ""
    assert "connected" in log.lower()
    # the server sees one binary client
    stats = api(server.url + "api/camera/stats")
    assert [c["format"] for c in stats["clients"]] == ["binary"]


def test_stream_controls_reach_the_server(server, page: Page) -> None:
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    page.fill("#quality", "30")
    page.dispatch_event("#quality", "change")
    page.fill("#max-width", "160")
    page.dispatch_event("#max-width", "change")
    page.wait_for_function(
        "() => window.labcamTestPage.lastFrameMeta && window.labcamTestPage.lastFrameMeta.width === 160",
        timeout=WAIT_MS,
    )
    stream = api(server.url + "api/camera/stats")["clients"][0]["stream"]
    assert stream["quality"] == 30 and stream["max_width"] == 160
    assert page.eval_on_selector("#view", "c => c.width") == 160


def test_a_settings_change_round_trips(server, page: Page) -> None:
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    page.wait_for_selector("#exposure:not([disabled])", timeout=WAIT_MS)
    # page -> camera
    page.fill("#exposure", "3.5")
    page.dispatch_event("#exposure", "change")
    page.wait_for_function(
        "() => window.labcamTestPage.lastFrameMeta && window.labcamTestPage.lastFrameMeta.exposure_ms === 3.5",
        timeout=WAIT_MS,
    )
    assert server.engine.settings.exposure_ms == 3.5
    # camera (changed by someone else, over REST) -> page
    api(server.url + "api/camera/settings", "PATCH", {"gain_db": 4})
    page.wait_for_function("() => parseFloat(document.querySelector('#gain').value) === 4", timeout=WAIT_MS)
    # a refused value is shown, and nothing changes
    page.fill("#gain", "99")
    page.dispatch_event("#gain", "change")
    page.wait_for_function(
        "() => /gain_db=99/.test(document.body.textContent)", timeout=WAIT_MS
    )
    assert server.engine.settings.gain_db == 4.0


def test_disconnect_connect_and_snap_download(server, page: Page) -> None:
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click("#snap")
    download = info.value
    path = download.path()
    assert path is not None and download.suggested_filename.endswith(".png")
    from PIL import Image

    with Image.open(path) as img:
        assert img.size == (320, 240)  # full resolution
    page.click("#disconnect")
    page.wait_for_selector("#status[data-state='closed']", timeout=WAIT_MS)
    page.click("#connect")
    page.wait_for_selector("#status[data-state='connected']", timeout=WAIT_MS)
    wait_frames_beyond(page, frames_drawn(page) + 5)


def test_page_survives_a_server_restart(make_server, page: Page) -> None:
    first = make_server()
    port = first.port
    page.goto(first.url)
    wait_frames_beyond(page, 3)
    first.stop()
    page.wait_for_selector("#status[data-state='reconnecting']", timeout=WAIT_MS)
    drawn = frames_drawn(page)
    # a new server on the same port, as when `labcam serve` is restarted
    second = make_server(port=port)
    page.wait_for_selector("#status[data-state='connected']", timeout=WAIT_MS)
    wait_frames_beyond(page, drawn + 5)
    assert second.call(lambda: len(second.service.clients)) == 1
