"""The shared live view (labcam-viewer.js, issue 11) on the test page, in real headless Chromium
against a real server.

Which tests need the view-aware server (the `view`/`size`/`encoding` stream options, raw frames and
`probe`, built on the server side of issue 11) is said in each test's docstring ("needs the server
side"); the rest hold against any server of protocol version 1.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page, WebSocket
from test_test_page import WAIT_MS, browser, page  # noqa: F401 - that module's fixtures, shared


class Sends:
    """The page's WebSocket messages to the server (pings aside), as parsed JSON."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.messages: list[dict[str, Any]] = []
        page.on("websocket", self._on_socket)

    def _on_socket(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", self._on_sent)

    def _on_sent(self, payload: str | bytes) -> None:
        msg = json.loads(payload)
        if msg.get("type") != "ping":  # the client's clock/latency pings run on their own timer
            self.messages.append(msg)


def wait_frames_beyond(page: Page, n: int) -> None:
    page.wait_for_function("n => window.labcamTestPage.framesDrawn > n", arg=n, timeout=WAIT_MS)


def drawn(page: Page) -> int:
    return int(page.evaluate("window.labcamTestPage.framesDrawn"))


def viewer_state(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => { const v = window.labcamTestPage.viewer; return {
            zoom: v.zoom, view: v.view, box: v.box, display: v.display, renderer: v.renderer.kind,
            canvas: [v.canvas.width, v.canvas.height], readout: v.readout } }"""
    )


def canvas_point(page: Page, fx: float, fy: float) -> tuple[float, float]:
    """The page coordinates of the point at fractions (fx, fy) of the view canvas."""
    r = page.eval_on_selector("#view", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height] }")
    return r[0] + r[2] * fx, r[1] + r[3] * fy


def test_the_view_asks_for_the_canvas_device_pixels(make_server, page: Page) -> None:
    """A 12 MP sensor: the stream is opened with size = the canvas's device-pixel box, view full."""
    server = make_server(width=4096, height=3000, pixel_format="mono12", fps=10)
    sends = Sends(page)
    page.goto(server.url)
    wait_frames_beyond(page, 2)
    width_px = page.eval_on_selector("#view", "c => Math.round(c.getBoundingClientRect().width * devicePixelRatio)")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(sends.urls[0]).query)
    assert query["view"] == ["full"]
    size = [int(v) for v in query["size"][0].split(",")]
    assert size[0] == width_px and 16 <= size[1] <= 16384


def test_frames_on_a_12_mp_sensor_are_no_larger_than_the_canvas(make_server, page: Page) -> None:
    """Needs the server side: the server reduces the full view to fit `size`."""
    server = make_server(width=4096, height=3000, pixel_format="mono12", fps=10)
    page.goto(server.url)
    page.wait_for_function(
        """() => { const m = window.labcamTestPage.lastFrameMeta, v = window.labcamTestPage.viewer;
                   return m && Array.isArray(m.view) && m.width <= v.box[0] && m.height <= v.box[1]
                       && m.view[2] === 4096 && m.view[3] === 3000 }""",
        timeout=WAIT_MS,
    )


def test_zoom_to_one_to_one_with_the_mouse(server, page: Page) -> None:
    """Wheel zoom keeps the sensor pixel under the cursor; 1:1 is one sensor pixel per device pixel."""
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    assert viewer_state(page)["view"] == "full"
    # on the centre line and near the middle: the zoomed view still lies on the sensor, so no
    # clamping moves it (the sensor is narrower than the canvas: its x stays centred)
    x, y = canvas_point(page, 0.5, 0.42)
    page.mouse.move(x, y)
    page.wait_for_function("() => window.labcamTestPage.viewer.readout !== null", timeout=WAIT_MS)
    before = viewer_state(page)
    for _ in range(3):
        page.mouse.wheel(0, -100)
    page.wait_for_function("z => window.labcamTestPage.viewer.zoom > z * 1.5", arg=before["zoom"], timeout=WAIT_MS)
    before = before["readout"]
    after = viewer_state(page)["readout"]
    assert after["at"] == pytest.approx(before["at"], abs=1e-6)  # zoomed about the cursor
    page.click("[data-testid=viewer-1to1]")
    page.wait_for_function("() => window.labcamTestPage.viewer.zoom === 1", timeout=WAIT_MS)
    state = viewer_state(page)
    # The 320x240 sensor is smaller than the canvas: at 1:1 it is all in view, drawn 320 device px wide.
    assert state["view"] == "full"
    n = drawn(page)
    wait_frames_beyond(page, n + 2)  # the last frame is drawn transformed, new ones keep coming
    page.click("[data-testid=viewer-fit]")
    page.wait_for_function("() => window.labcamTestPage.viewer.fitted", timeout=WAIT_MS)


def test_one_to_one_on_a_region_of_a_large_sensor(make_server, page: Page) -> None:
    """Needs the server side: at 1:1 the server sends the region at full resolution (view header)."""
    server = make_server(width=2448, height=2048, pixel_format="mono12", fps=10)
    page.goto(server.url)
    wait_frames_beyond(page, 2)
    x, y = canvas_point(page, 0.25, 0.25)
    page.mouse.dblclick(x, y)  # double click: 1:1 about the cursor
    page.wait_for_function("() => window.labcamTestPage.viewer.zoom === 1", timeout=WAIT_MS)
    view = viewer_state(page)["view"]
    assert view != "full"
    page.wait_for_function(
        """v => { const m = window.labcamTestPage.lastFrameMeta;
                  return m && JSON.stringify(m.view) === JSON.stringify(v) && m.width === v[2] && m.height === v[3] }""",
        arg=view, timeout=WAIT_MS,
    )


@pytest.mark.parametrize(("encoding", "renderer"), [("jpeg", "webgl2"), ("jpeg", "2d"), ("raw", "webgl2"), ("raw", "2d")])
def test_a_contrast_change_sends_no_message_to_the_server(make_server, page: Page, encoding: str, renderer: str) -> None:
    """Window/level, gamma and LUT repaint locally, on both renderers. The raw cases need the server
    side (raw frames)."""
    server = make_server(pixel_format="mono12")
    sends = Sends(page)
    page.goto(server.url + f"?encoding={encoding}&renderer={renderer}")
    if encoding == "raw":
        page.wait_for_function("() => window.labcamTestPage.lastFrameMeta && window.labcamTestPage.lastFrameMeta.encoding === 'raw'", timeout=WAIT_MS)
    wait_frames_beyond(page, 3)
    assert viewer_state(page)["renderer"] == renderer
    before = len(sends.messages)
    pixel_before = page.evaluate("() => window.labcamTestPage.viewer.readPixel(5, 5)")
    page.select_option("[data-testid=viewer-lut]", "inverted")
    page.fill("[data-testid=viewer-min]", "0")
    page.fill("[data-testid=viewer-max]", "4095")
    page.fill("[data-testid=viewer-gamma]", "0.5")
    page.wait_for_function(
        """() => { const d = window.labcamTestPage.viewer.display;
                   return d.lut === 'inverted' && d.min === 0 && d.max === 4095 && d.gamma === 0.5 && !d.auto }""",
        timeout=WAIT_MS,
    )
    n = drawn(page)
    wait_frames_beyond(page, n + 3)  # frames keep coming with the new mapping
    assert page.evaluate("() => window.labcamTestPage.viewer.readPixel(5, 5)") != pixel_before
    assert sends.messages[before:] == []


def test_raw_frames_at_one_to_one_hold_the_camera_counts(make_server, page: Page) -> None:
    """Needs the server side: raw frames of a 1:1 region equal the simulated camera's expected_frame(n)
    for that region, and the pixel readout shows the count under the cursor."""
    server = make_server(width=1280, height=1024, pixel_format="mono12", fps=10)
    page.goto(server.url + "?encoding=raw")
    wait_frames_beyond(page, 2)
    page.click("[data-testid=viewer-1to1]")
    page.wait_for_function("() => window.labcamTestPage.viewer.zoom === 1", timeout=WAIT_MS)
    view = viewer_state(page)["view"]
    page.wait_for_function(
        """v => { const f = window.labcamTestPage.viewer.frame;
                  return f && f.pixels && JSON.stringify(f.geometry.view) === JSON.stringify(v) && f.geometry.scale === 1 }""",
        arg=view, timeout=WAIT_MS,
    )
    got = page.evaluate(
        "() => { const f = window.labcamTestPage.viewer.frame; return {n: f.meta.frame_number, w: f.geometry.width, h: f.geometry.height, v: f.geometry.view, pixels: Array.from(f.pixels)} }"
    )
    x, y, w, h = got["v"]
    expected = server.camera.expected_frame(got["n"])[y : y + h, x : x + w]
    assert np.array_equal(np.array(got["pixels"], dtype=np.uint16).reshape(h, w), expected)
    # the readout under the cursor: the frame's own count at that sensor pixel
    px, py = canvas_point(page, 0.5, 0.5)
    page.mouse.move(px, py)
    page.wait_for_function("() => { const r = window.labcamTestPage.viewer.readout; return r && r.source === 'frame' }", timeout=WAIT_MS)
    r = page.evaluate(
        "() => { const v = window.labcamTestPage.viewer; return {...v.readout, n: v.frame.meta.frame_number, shown: document.querySelector('[data-testid=viewer-readout]').dataset.value} }"
    )
    assert r["value"] == int(server.camera.expected_frame(r["frameNumber"])[r["y"], r["x"]])
    assert r["shown"] == str(r["value"])


def test_the_jpeg_readout_probes_the_camera_counts(make_server, page: Page) -> None:
    """Needs the server side (`probe`): in JPEG mode the readout shows the count the server reads
    from its latest full-bit-depth frame."""
    server = make_server(pixel_format="mono12")
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    px, py = canvas_point(page, 0.5, 0.5)
    page.mouse.move(px, py)
    page.wait_for_function(
        "() => { const r = window.labcamTestPage.viewer.readout; return r && r.source === 'probe' && r.value !== null }",
        timeout=WAIT_MS,
    )
    r = page.evaluate("() => window.labcamTestPage.viewer.readout")
    assert r["value"] == int(server.camera.expected_frame(r["frameNumber"])[r["y"], r["x"]])


def test_without_webgl2_a_2d_canvas_draws_and_the_status_says_so(server, page: Page) -> None:
    page.goto(server.url + "?renderer=2d")
    wait_frames_beyond(page, 5)
    assert viewer_state(page)["renderer"] == "2d"
    assert "2D canvas" in (page.text_content("#stat-renderer") or "")
    assert page.is_visible("[data-testid=viewer-renderer]")
    # the 2D path maps counts too: another LUT paints another picture
    before = page.evaluate("() => window.labcamTestPage.viewer.readPixel(5, 5)")
    page.select_option("[data-testid=viewer-lut]", "inverted")
    page.wait_for_function("b => JSON.stringify(window.labcamTestPage.viewer.readPixel(5, 5)) !== JSON.stringify(b)", arg=before, timeout=WAIT_MS)


def test_the_hud_shows_histogram_saturation_and_scale_bar(make_server, page: Page) -> None:
    """Needs the server side for the histogram and the saturation count (frame header)."""
    server = make_server(pixel_format="mono12", exposure_ms=30.0)
    server.camera.update_settings({"gain_db": 24.0})  # bright enough that some pixels saturate
    page.goto(server.url)
    wait_frames_beyond(page, 3)
    page.wait_for_selector("[data-testid=viewer-histogram]:not([hidden])", timeout=WAIT_MS)
    page.wait_for_selector("[data-testid=viewer-saturated]:not([hidden])", timeout=WAIT_MS)
    assert page.is_visible("[data-testid=viewer-scalebar]")


@pytest.mark.parametrize("renderer", ["webgl2", "2d"])
def test_raw_counts_are_painted_through_the_window_and_luts(server, page: Page, renderer: str) -> None:
    """A raw frame (the client's decoded counts) is painted through window/level, gamma and the LUTs
    on both renderers; HiLo marks the top count red and zero blue. The frame is handed to a viewer
    on the page as the client hands it over, so this holds against any server."""
    page.goto(server.url + "?autoconnect=0")
    page.wait_for_function("() => window.labcamTestPage !== undefined", timeout=WAIT_MS)
    painted = page.evaluate(
        """async (renderer) => {
          const { LabcamViewer } = await import("./static/labcam-viewer.js");
          const { frameGeometry } = await import("./static/labcam-client.js");
          const wrap = document.createElement("div");
          wrap.style.width = "400px";
          const canvas = document.createElement("canvas");
          canvas.style.width = "100%";
          wrap.append(canvas);
          document.body.append(wrap);
          const v = new LabcamViewer(canvas, { renderer, contrast: [0, 4095] });
          const meta = { encoding: "raw", width: 4, height: 1, view: [0, 0, 4, 1], sensor: [4, 1], bit_depth: 12, dtype: "uint16", frame_number: 1 };
          v.setFrame({ meta, geometry: frameGeometry(meta), pixels: new Uint16Array([0, 1024, 2048, 4095]) });
          const paint = () => new Promise((r) => v.addEventListener("paint", r, { once: true }));
          const at = () => [0, 1, 2, 3].map((i) => v.readPixel(Math.floor((i + 0.5) * v.canvas.width / 4), Math.floor(v.canvas.height / 2)).slice(0, 3));
          await paint();
          const out = { kind: v.renderer.kind, grey: at() };
          v.setDisplay({ lut: "hilo" }); await paint(); out.hilo = at();
          v.setDisplay({ lut: "inverted", min: 1024, max: 2048 }); await paint(); out.inverted = at();
          v.setDisplay({ lut: "grey", min: 0, max: 4095, gamma: 0.5 }); await paint(); out.gamma = at();
          return out;
        }""",
        renderer,
    )
    assert painted["kind"] == renderer
    near = lambda a, b: all(abs(x - y) <= 2 for x, y in zip(a, b))  # noqa: E731
    assert [near(a, b) for a, b in zip(painted["grey"], [[0, 0, 0], [64, 64, 64], [128, 128, 128], [255, 255, 255]])] == [True] * 4
    assert painted["hilo"][0] == [0, 0, 255] and painted["hilo"][3] == [255, 0, 0]
    assert near(painted["hilo"][2], [128, 128, 128])
    assert [p[0] for p in painted["inverted"]] == [255, 255, 0, 0]
    assert near(painted["gamma"][1], [128, 128, 128])  # sqrt(0.25) = 0.5
