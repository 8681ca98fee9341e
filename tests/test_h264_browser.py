"""H.264 in real headless Chromium (Debian chromium via Playwright) from a real server on
http://127.0.0.1 (a secure context): the shared client decodes with WebCodecs and the shared viewer
draws the VideoFrames; the picture on the canvas is the source frame; without WebCodecs the client
falls back to JPEG by itself and the status says why."""

from __future__ import annotations

from typing import Any

import numpy as np
from playwright.sync_api import Browser, Page
from test_test_page import WAIT_MS, browser, page  # noqa: F401 - that module's fixtures, shared

from labcam.preview.display import to_display

# The next newly painted frame: its header and the 2D canvas's red channel (mono: R = G = B), read in
# the paint event, before anything else can draw.
READ_PAINTED = """() => new Promise((resolve) => {
  const viewer = window.labcamTestPage.viewer;
  const onPaint = (ev) => {
    if (!ev.detail.newFrame) return;
    viewer.removeEventListener("paint", onPaint);
    const c = viewer.canvas;
    const rgba = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const red = new Array(c.width * c.height);
    for (let i = 0; i < red.length; i++) red[i] = rgba[4 * i];
    const f = ev.detail.frame;
    resolve({ meta: f.meta, width: c.width, height: c.height, red, videoFrame: f.bitmap instanceof VideoFrame });
  };
  viewer.addEventListener("paint", onPaint);
})"""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def painted_psnr(server: Any, page: Page) -> tuple[dict[str, Any], float]:
    """The PSNR of the next painted frame against its source frame, mapped to 8 bit as its header says."""
    got = page.evaluate(READ_PAINTED)
    meta = got["meta"]
    assert meta["encoding"] == "h264" and got["videoFrame"], meta
    assert (got["width"], got["height"]) == (meta["width"], meta["height"]), "drawn 1:1 on the canvas"
    shown = np.array(got["red"], dtype=np.uint8).reshape(got["height"], got["width"])
    source = server.camera.expected_frame(meta["frame_number"])
    expected, _ = to_display(source, meta["bit_depth"], max_width=meta["width"], display=tuple(meta["display"]))
    return meta, psnr(shown, expected)


def drawn(page: Page) -> int:
    return int(page.evaluate("window.labcamTestPage.framesDrawn"))


def test_the_test_page_draws_h264_decoded_by_webcodecs(server, page: Page) -> None:
    page.goto(server.url + "?encoding=h264&renderer=2d")
    page.wait_for_function("() => window.labcamTestPage.framesDrawn > 10", timeout=WAIT_MS)
    first = drawn(page)
    page.wait_for_function("n => window.labcamTestPage.framesDrawn > n + 15", arg=first, timeout=WAIT_MS)
    stats = page.evaluate("() => window.labcamTestPage.client.stats")
    assert stats["encoding"] == "h264" and stats["fallbackReason"] is None, stats
    assert page.get_attribute("#status", "data-fallback-reason") == ""
    for _ in range(3):
        meta, score = painted_psnr(server, page)
        assert score > 30.0, f"frame {meta['frame_number']}: {score:.1f} dB"


def test_a_viewer_joining_late_draws_a_correct_picture(server, browser: Browser, page: Page) -> None:  # noqa: F811
    page.goto(server.url + "?encoding=h264&renderer=2d")
    page.wait_for_function("() => window.labcamTestPage.framesDrawn > 60", timeout=WAIT_MS)  # 2 s: past a GOP
    late_context = browser.new_context()
    try:
        late = late_context.new_page()
        errors: list[str] = []
        late.on("pageerror", lambda exc: errors.append(str(exc)))
        late.goto(server.url + "?encoding=h264&renderer=2d")
        for _ in range(3):  # the pictures after the keyframe it started at
            meta, score = painted_psnr(server, late)
            assert score > 30.0, f"frame {meta['frame_number']}: {score:.1f} dB"
        assert late.evaluate("() => window.labcamTestPage.client.stats.encoding") == "h264"
        assert not errors, errors
    finally:
        late_context.close()
    assert drawn(page) > 60  # the first viewer carried on


def test_without_webcodecs_the_client_falls_back_to_jpeg_and_says_why(server, page: Page) -> None:
    page.add_init_script("delete window.VideoDecoder")
    page.goto(server.url + "?encoding=h264")
    page.wait_for_function("() => window.labcamTestPage.framesDrawn > 5", timeout=WAIT_MS)
    stats = page.evaluate("() => window.labcamTestPage.client.stats")
    assert stats["encoding"] == "jpeg", stats
    assert "no WebCodecs VideoDecoder" in stats["fallbackReason"]
    assert page.evaluate("() => window.labcamTestPage.lastFrameMeta.encoding") == "jpeg"
    status = page.locator("#status")
    assert "JPEG, not H.264" in (status.text_content() or "")
    assert "no WebCodecs VideoDecoder" in (status.get_attribute("data-fallback-reason") or "")
