"""The live-view widget, Python side: which mode it picks, and the comm mode's flow control.

The browser is played by this test: it sends the widget the same custom comm messages that
liveview.js sends (hello, visible, ack, settings, snap, fallback) through ipywidgets' own message
handler, and reads what the kernel sends back by recording the widget's comm. Frames come from a
small in-test camera driver at a high, steady rate, so the window is what limits the sender.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("anywidget")

import labcam.widget.liveview as lvmod
from labcam.camera import Camera
from labcam.camera_info import CameraDescription
from labcam.cameras.base import CameraDriver
from labcam.engine import Engine
from labcam.errors import StreamStopped
from labcam.frame import Frame, FrameMeta
from labcam.settings import Settings, SettingSpec, SettingSpecs
from labcam.widget import LiveView
from test_test_page import browser, page  # noqa: F401 - that module's fixtures (real Chromium), shared


# -- a camera that just counts ---------------------------------------------------------------------
class CountingDriver(CameraDriver):
    """Frames whose pixels hold their frame number, at ``fps`` (deadline-paced), any pixel format."""

    def __init__(self, width: int = 64, height: int = 48, pixel_format: str = "mono8", fps: float = 200.0) -> None:
        super().__init__()
        self._description = CameraDescription(
            "counting", "counting test camera", "CNT-1", width, height, ("mono8", "mono12", "mono16"), 16
        )
        self._settings = Settings(1.0, 0.0, fps, (0, 0, width, height), pixel_format)
        self._specs = SettingSpecs(
            {
                "exposure_ms": SettingSpec("exposure_ms", "float", "ms", 0.01, 1000.0),
                "gain_db": SettingSpec("gain_db", "float", "dB", 0.0, 24.0),
                "fps": SettingSpec("fps", "float", "frames/s", 0.1, 1000.0),
                "roi": SettingSpec("roi", "roi", minimum=8, sensor=(width, height), settable_while_streaming=False),
                "pixel_format": SettingSpec(
                    "pixel_format", "choice", choices=("mono8", "mono12", "mono16"), settable_while_streaming=False
                ),
                "trigger_mode": SettingSpec("trigger_mode", "choice", choices=("free_running",)),
            }
        )
        self._stop = threading.Event()
        self._streaming = False
        self._n = 0
        self._deadline = 0.0

    description = property(lambda self: self._description)
    settings = property(lambda self: self._settings)
    specs = property(lambda self: self._specs)
    streaming = property(lambda self: self._streaming)

    def open(self) -> None:
        pass

    def close(self) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self._streaming = True
        self._deadline = time.monotonic()

    def stop(self) -> None:
        self._streaming = False
        self._stop.set()

    def reconnect(self) -> bool:
        return True

    def _apply_settings(self, new: Settings, changed: frozenset[str]) -> Settings:
        self._settings = new
        return new

    def read_frame(self, timeout: float) -> Frame:
        self._deadline += 1.0 / self._settings.fps
        delay = self._deadline - time.monotonic()
        if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
            raise StreamStopped("stopped")
        self._n += 1
        s = self._settings
        _, _, w, h = s.roi
        if s.pixel_format == "mono8":
            array = np.full((h, w), self._n % 256, np.uint8)
        else:
            top = 4096 if s.pixel_format == "mono12" else 65536
            array = ((np.arange(h * w, dtype=np.uint32) * 37 + self._n) % top).astype(np.uint16).reshape(h, w)
        meta = FrameMeta(self._n, time.time(), s.exposure_ms, s.gain_db, s.roi, s.pixel_format, "CNT-1")
        return Frame(array, meta)


class Page:
    """Plays the browser side of one widget: records what the kernel sends, sends what JS sends."""

    def __init__(self, widget: LiveView, view: str = "view-1") -> None:
        self.widget = widget
        self.view = view
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self._lock = threading.Lock()
        comm = widget.comm
        assert comm is not None

        def record(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            assert data["method"] in ("custom", "update", "echo_update")
            if data["method"] == "custom":
                with self._lock:
                    self.sent.append((data["content"], [bytes(b) for b in (buffers or [])]))

        comm.send = record  # the widget's own Widget.send path, minus the kernel

    def tell(self, content: dict[str, Any]) -> None:
        """A custom message from the page, through ipywidgets' comm message handler."""
        content = {"view": self.view, **content}
        self.widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    def messages(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self._lock:
            return [(c, b) for c, b in self.sent if c.get("type") == kind]

    def frames(self) -> list[dict[str, Any]]:
        return [c for c, _ in self.messages("frame")]

    def ack(self, frame: dict[str, Any]) -> None:
        self.tell({"type": "ack", "seq": frame["seq"]})


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy (the test's only way to wait for threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def camera() -> Iterator[Camera]:
    cam = Camera(Engine(CountingDriver(), idle_grace=0))
    yield cam
    cam.close()


@pytest.fixture
def make_view() -> Iterator[Callable[..., LiveView]]:
    views: list[LiveView] = []

    def make(*args: Any, **kwargs: Any) -> LiveView:
        view = LiveView(*args, **kwargs)
        views.append(view)
        return view

    yield make
    for view in views:
        view.close()


# -- modes --------------------------------------------------------------------------------------------
def test_in_process_camera_uses_the_comm(camera: Camera, make_view: Callable[..., LiveView]) -> None:
    view = camera.live(fps=10, quality=70, max_width=32)
    try:
        assert isinstance(view, LiveView)
        assert (view.mode, view.requested_mode) == ("comm", "auto")
        assert (view.fps, view.quality, view.max_width) == (10.0, 70, 32)
        # What the page builds its controls from: the camera, its settings and their bounds.
        info = view.camera_info
        assert info["camera"]["serial"] == "CNT-1"
        assert info["settings"]["pixel_format"] == "mono8"
        assert info["specs"]["exposure_ms"]["maximum"] == 1000.0
        # A stable text repr: nbval compares it.
        assert repr(view) == (
            "LiveView(mode='comm', source='counting CNT-1', fps=10.0, quality=70, max_width=32)"
        )
    finally:
        view.close()


def test_no_camera_streams_from_this_jupyter_servers_extension(make_view: Callable[..., LiveView]) -> None:
    view = make_view()
    assert view.mode == "websocket"
    assert view.stream_url == ""  # the page resolves {baseUrl}labcam/ itself
    assert "this Jupyter server" in repr(view)


def test_url_and_token_select_websocket(make_view: Callable[..., LiveView]) -> None:
    view = make_view(url="http://127.0.0.1:8001/", token="secret")
    assert (view.mode, view.stream_url, view.token) == ("websocket", "http://127.0.0.1:8001/", "secret")


def test_remote_camera_object_selects_websocket_to_its_url(make_view: Callable[..., LiveView]) -> None:
    class Remote:  # what labcam.connect() returns, as far as the widget cares
        url = "http://127.0.0.1:8888/labcam/"
        token = "tok"

    view = make_view(Remote())
    assert (view.mode, view.stream_url, view.token) == ("websocket", "http://127.0.0.1:8888/labcam/", "tok")


def test_forced_modes_and_bad_options(camera: Camera, make_view: Callable[..., LiveView]) -> None:
    assert make_view(camera, mode="comm").mode == "comm"
    with pytest.raises(ValueError, match="mode='websocket' needs a stream server"):
        LiveView(camera, mode="websocket")
    with pytest.raises(ValueError, match="mode='fast' is not allowed"):
        LiveView(camera, mode="fast")
    with pytest.raises(ValueError, match=r"quality=0 is not allowed: a whole number from 1 to 100"):
        LiveView(camera, quality=0)
    with pytest.raises(ValueError, match=r"fps=0(\.0)? is not allowed: a number from 0.1 to 1000"):
        LiveView(camera, fps=0)
    view = make_view(camera)
    with pytest.raises(ValueError, match=r"max_width=8 is not allowed"):
        view.max_width = 8
    view.display_range = (100, 900)
    assert view.display_range == [100, 900]
    view.display_range = "auto"
    with pytest.raises(ValueError, match="0 <= min < max"):
        view.display_range = (900, 100)


def test_esm_embeds_the_shared_client_and_is_valid_javascript(tmp_path: Any) -> None:
    esm = LiveView._esm
    assert esm.startswith("const LABCAM_CLIENT_SOURCE = ")
    first_line = esm.split("\n", 1)[0]
    client_source = json.loads(first_line[len("const LABCAM_CLIENT_SOURCE = ") : -1])
    assert "export class LabcamClient" in client_source
    assert "export default" in esm  # the widget module's render
    node = shutil.which("node")
    if node is None:  # pragma: no cover - node is part of the dev environment
        pytest.skip("node is not installed")
    module = tmp_path / "liveview.mjs"
    module.write_text(esm, encoding="utf-8")
    client = tmp_path / "client.mjs"
    client.write_text(client_source, encoding="utf-8")
    for path in (module, client):
        result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


# -- comm mode: flow control ---------------------------------------------------------------------------
def test_no_page_no_sender(camera: Camera, make_view: Callable[..., LiveView]) -> None:
    """nbval, exported notebooks: the widget is displayed but no view ever says hello."""
    view = make_view(camera)
    Page(view)
    assert not view.sender_running
    assert camera.status.consumers == 0


def test_in_flight_never_exceeds_the_window_without_acks(
    camera: Camera, make_view: Callable[..., LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lvmod, "ACK_TIMEOUT", 60.0)  # no ack ever expires during this test
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: len(page.frames()) == lvmod.WINDOW, what="the window to fill")
    # The camera runs at 200 fps: 0.3 s is 60 frames the sender could have sent. It sends none.
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        assert view.in_flight <= lvmod.WINDOW
        time.sleep(0.01)
    assert len(page.frames()) == lvmod.WINDOW
    assert view.max_in_flight == lvmod.WINDOW
    assert view.sender_running


def test_acks_advance_the_window_and_the_newest_frame_wins(
    camera: Camera, make_view: Callable[..., LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lvmod, "ACK_TIMEOUT", 60.0)
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: len(page.frames()) == 2, what="two frames")
    first, second = page.frames()
    assert (first["seq"], second["seq"]) == (1, 2)

    page.ack(first)  # one slot frees: exactly one more frame goes
    wait_for(lambda: len(page.frames()) == 3, what="a third frame")
    time.sleep(0.05)
    assert len(page.frames()) == 3 and view.in_flight == 2

    # The page is slow: the camera moves on 10 frames before the next ack.
    captured = camera.status.frames
    wait_for(lambda: camera.status.frames >= captured + 10, what="10 more camera frames")
    page.ack(page.frames()[-1])  # cumulative: acks 2 and 3
    wait_for(lambda: len(page.frames()) == 5, what="two more frames")
    fourth = page.frames()[3]
    assert fourth["frame_number"] - page.frames()[2]["frame_number"] >= 10  # skipped to the newest
    assert view.frames_acked == 3
    assert view.rtt_ms is not None

    # Acking as fast as frames come: frames flow at the camera's rate, never more than 2 out.
    start = len(page.frames())
    deadline = time.monotonic() + 0.5
    acked = 0
    while time.monotonic() < deadline:
        frames = page.frames()
        if frames[-1]["seq"] > acked:
            acked = frames[-1]["seq"]
            page.ack(frames[-1])
        assert view.in_flight <= lvmod.WINDOW
        time.sleep(0.002)
    assert len(page.frames()) - start > 10
    assert view.max_in_flight <= lvmod.WINDOW
    numbers = [f["frame_number"] for f in page.frames()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_frame_messages_carry_a_jpeg_and_what_the_status_line_needs(
    camera: Camera, make_view: Callable[..., LiveView]
) -> None:
    view = make_view(camera, quality=60, max_width=32)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: page.messages("frame"), what="a frame")
    header, buffers = page.messages("frame")[0]
    assert buffers[0][:2] == b"\xff\xd8"  # JPEG
    from PIL import Image

    image = Image.open(io.BytesIO(buffers[0]))
    assert image.size == (32, 24)  # 64x48 decimated by 2 to fit max_width
    assert (header["width"], header["height"], header["source_width"], header["source_height"]) == (32, 24, 64, 48)
    assert header["pixel_format"] == "mono8" and header["display"] == [0, 255]
    for key in ("seq", "frame_number", "timestamp", "encode_ms", "skipped", "camera_dropped", "lost", "sent_at"):
        assert key in header
    json.dumps(header)  # it must travel as JSON


def test_expired_acks_free_the_window_but_keep_it_bounded(
    camera: Camera, make_view: Callable[..., LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy kernel holds acks in its shell queue: the view then gets WINDOW frames per ACK_TIMEOUT."""
    monkeypatch.setattr(lvmod, "ACK_TIMEOUT", 0.1)
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: len(page.frames()) >= 6, what="frames after expired acks")
    assert view.frames_lost >= 4
    assert view.max_in_flight <= lvmod.WINDOW
    assert len(page.frames()) < 40  # 200 fps camera, ~0.3 s: far fewer than the camera made


def test_hidden_paused_and_closed_views_stop_the_sender(
    camera: Camera, make_view: Callable[..., LiveView]
) -> None:
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: view.sender_running and page.frames(), what="the sender")

    page.tell({"type": "visible", "visible": False})  # scrolled away or tab hidden
    wait_for(lambda: not view.sender_running, what="the sender to stop when hidden")
    wait_for(lambda: camera.status.consumers == 0, what="the camera to be released")

    page.tell({"type": "visible", "visible": True})
    wait_for(lambda: view.sender_running, what="the sender to restart")
    view.paused = True  # the play/pause button
    wait_for(lambda: not view.sender_running, what="the sender to stop when paused")
    view.paused = False
    wait_for(lambda: view.sender_running, what="the sender to resume")

    # Two views: one hiding does not stop the other's frames.
    other = Page(view, view="view-2")
    other.tell({"type": "hello", "visible": True})
    page.tell({"type": "visible", "visible": False})
    time.sleep(0.05)
    assert view.sender_running
    other.tell({"type": "closed"})
    wait_for(lambda: not view.sender_running, what="the sender to stop when the last view closed")

    page.tell({"type": "visible", "visible": True})
    wait_for(lambda: view.sender_running, what="the sender again")
    sender = view._sender
    view.close()
    assert sender is not None and not sender.is_alive()
    assert not view.sender_running
    wait_for(lambda: camera.status.consumers == 0, what="the camera released after close")


def test_a_page_that_went_away_lets_the_sender_sleep_until_a_view_speaks(
    camera: Camera, make_view: Callable[..., LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lvmod, "ACK_TIMEOUT", 60.0)
    monkeypatch.setattr(lvmod, "IDLE_AFTER", 0.2)
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: len(page.frames()) == 2, what="the window to fill")
    wait_for(lambda: not view.sender_running, what="the sender to give up on a silent page")
    assert page.messages("status")[-1][0]["state"] == "idle"
    wait_for(lambda: camera.status.consumers == 0, what="the camera to be released")
    page.ack(page.frames()[-1])  # e.g. the kernel was busy and the acks arrive now
    wait_for(lambda: view.sender_running and len(page.frames()) > 2, what="the sender to wake up")


# -- comm mode: controls -----------------------------------------------------------------------------
def test_settings_from_the_page_are_validated_by_the_camera(
    camera: Camera, make_view: Callable[..., LiveView]
) -> None:
    view = make_view(camera)
    page = Page(view)
    page.tell({"type": "settings", "changes": {"exposure_ms": 2.5, "gain_db": 6}})
    assert (camera.exposure_ms, camera.gain_db) == (2.5, 6.0)
    assert view.camera_info["settings"]["exposure_ms"] == 2.5  # the page's controls follow
    page.tell({"type": "settings", "changes": {"gain_db": 99}})
    error = page.messages("error")[-1][0]
    assert error["request"] == "settings"
    assert "gain_db=99 is not allowed: a number from 0 to 24 dB" in error["message"]
    assert camera.gain_db == 6.0
    camera.exposure_ms = 4  # changed from Python: the page hears of it too
    assert view.camera_info["settings"]["exposure_ms"] == 4.0


def test_snap_sends_a_lossless_full_frame(make_view: Callable[..., LiveView]) -> None:
    from PIL import Image

    cam = Camera(Engine(CountingDriver(pixel_format="mono12"), idle_grace=0))
    try:
        view = make_view(cam, max_width=16)
        page = Page(view)
        page.tell({"type": "snap", "format": "png"})
        header, buffers = page.messages("snap")[-1]
        assert header["mime"] == "image/png" and header["filename"].endswith(".png")
        image = np.asarray(Image.open(io.BytesIO(buffers[0])))
        assert image.shape == (48, 64)  # full resolution, whatever the preview size
        assert image.max() > 255  # 12-bit counts kept
    finally:
        cam.close()


def test_high_bit_depth_frames_carry_display_range_and_histogram(make_view: Callable[..., LiveView]) -> None:
    cam = Camera(Engine(CountingDriver(pixel_format="mono12"), idle_grace=0))
    try:
        view = make_view(cam)
        page = Page(view)
        page.tell({"type": "hello", "visible": True})
        header = wait_for(lambda: page.frames(), what="a frame")[0]
        assert header["bit_depth"] == 12
        lo, hi = header["display"]
        assert 0 <= lo < hi <= 4095
        assert len(header["histogram"]) == lvmod.PreviewEncoder.HIST_BINS and sum(header["histogram"]) > 0
        assert header["auto_range"][0] < header["auto_range"][1]
        view.display_range = (100, 3000)
        page.ack(page.frames()[-1])
        wait_for(lambda: page.frames()[-1]["display"] == [100, 3000], what="the manual display range")
    finally:
        cam.close()


def test_preview_encoder_maps_the_display_window() -> None:
    encoder = lvmod.PreviewEncoder()
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (8, 1))  # 8 x 256
    jpeg, meta = encoder.encode(ramp, "mono12", quality=95, display=(1024, 2048))
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
    assert meta["display"] == [1024, 2048]
    assert image[:, :60].max() <= 3  # below the window: black
    assert image[:, 140:].min() >= 252  # above it: white
    assert 100 < image[4, 96] < 155  # the middle of the window: mid grey


# -- auto mode: falling back to the comm ----------------------------------------------------------------
def test_page_that_cannot_reach_the_stream_falls_back_to_the_comm(
    camera: Camera, make_view: Callable[..., LiveView]
) -> None:
    calls: list[tuple[Any, Any]] = []

    def fake_connect(url: Any = None, *, token: Any = None) -> Camera:
        calls.append((url, token))
        return camera  # the kernel can reach the camera even though the page cannot

    # What labcam.LiveView hands the widget: a way to connect (here to the in-process camera).
    view = make_view(url="http://127.0.0.1:8888/labcam/", token="tok", connect=fake_connect)
    page = Page(view)
    assert view.mode == "websocket"
    page.tell({"type": "fallback", "reason": "the connection failed or dropped"})
    assert view.mode == "comm" and calls == [("http://127.0.0.1:8888/labcam/", "tok")]
    page.tell({"type": "hello", "visible": True})
    wait_for(lambda: page.frames(), what="frames through the comm after the fallback")


def test_forced_websocket_never_falls_back(make_view: Callable[..., LiveView]) -> None:
    view = make_view(url="http://127.0.0.1:8001/", mode="websocket")
    Page(view).tell({"type": "fallback", "reason": "refused"})
    assert view.mode == "websocket"


def test_fallback_without_any_camera_says_why(make_view: Callable[..., LiveView]) -> None:
    import labcam

    def no_server(url: Any = None, *, token: Any = None) -> Any:
        raise labcam.CameraUnavailable("no Jupyter server with labcam found")

    view = make_view(connect=no_server)
    Page(view).tell({"type": "fallback", "reason": "no jupyter-config-data"})
    assert view.mode == "websocket"
    assert "no Jupyter server with labcam found" in view.kernel_error
    assert "labcam.open()" in view.kernel_error


def test_a_view_given_no_way_to_connect_says_so(make_view: Callable[..., LiveView]) -> None:
    view = make_view(url="http://127.0.0.1:8888/labcam/")
    Page(view).tell({"type": "fallback", "reason": "the connection failed or dropped"})
    assert view.mode == "websocket"
    assert "neither a camera nor a way to connect" in view.kernel_error


def test_the_package_live_view_falls_back_through_labcam_connect(
    camera: Camera, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``labcam.LiveView`` hands the widget the package's connect(), looked up when it is called."""
    import labcam

    calls: list[tuple[Any, Any]] = []

    def fake_connect(url: Any = None, *, token: Any = None, timeout: float = 10.0) -> Camera:
        calls.append((url, token))
        return camera

    view = labcam.LiveView(url="http://127.0.0.1:8888/labcam/", token="tok")
    try:
        assert isinstance(view, LiveView)
        monkeypatch.setattr(labcam, "connect", fake_connect)  # after the view was made: still used
        Page(view).tell({"type": "fallback", "reason": "the connection failed or dropped"})
        assert view.mode == "comm" and calls == [("http://127.0.0.1:8888/labcam/", "tok")]
    finally:
        view.close()


# -- the browser module, run in node with a minimal DOM ------------------------------------------------
FAKE_DOM = r"""
class El {
  constructor(tag) {
    this.tagName = tag; this.children = []; this.attrs = {}; this.dataset = {}; this.style = {};
    this.textContent = ""; this.hidden = false; this.options = []; this.value = ""; this.className = "";
    this.classList = { add() {}, remove() {} };
  }
  setAttribute(k, v) { this.attrs[k] = v; }
  append(...c) { this.children.push(...c); if (this.tagName === "select") this.options.push(...c); }
  replaceChildren(...c) { this.children = c; }
  addEventListener() {}
  removeEventListener() {}
  getContext() { return { drawImage() {}, clearRect() {}, fillRect() {}, drawn: 0 }; }
  get width() { return this._w || 0; } set width(v) { this._w = v; }
  get height() { return this._h || 0; } set height(v) { this._h = v; }
}
globalThis.document = {
  createElement: (t) => new El(t), getElementById: () => null, addEventListener() {},
  removeEventListener() {}, visibilityState: "visible", activeElement: null, body: new El("body"),
};
function makeModel(values, { failOn } = {}) {
  const handlers = {};
  return {
    sent: [],
    get(name) { if (name === failOn) throw new Error(`boom reading ${name}`); return values[name]; },
    set(name, v) { values[name] = v; }, save_changes() {},
    on(name, fn) { (handlers[name] ||= []).push(fn); }, off() {},
    send(content) { this.sent.push(content); },
    emit(name, ...args) { for (const fn of handlers[name] || []) fn(...args); },
  };
}
const values = { mode: "comm", requested_mode: "auto", stream_url: "", token: "", fps: null, quality: null,
  max_width: null, display_range: "auto", paused: false, camera_info: {}, kernel_error: "" };
"""

WIDGET_SCRIPT = r"""
const { default: widget } = await import(process.argv[2]);
const out = {};

// A render that throws shows the error instead of an empty output.
const broken = new (document.createElement("x").constructor)("div");
widget.render({ model: makeModel({ ...values }, { failOn: "paused" }), el: broken });
out.fatal = broken.children.length === 1 ? broken.children[0].textContent : null;

// Comm mode: hello on render, frames drawn, every drawn frame acknowledged, cleanup says goodbye.
const host = new (document.createElement("x").constructor)("div");
const model = makeModel({ ...values });
const cleanup = widget.render({ model, el: host });
const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xd9]);
const header = (seq) => ({ type: "frame", seq, frame_number: 100 + seq, width: 4, height: 2, source_width: 8,
  source_height: 4, pixel_format: "mono8", display: [0, 255], timestamp: Date.now() / 1000 });
model.emit("msg:custom", header(1), [new DataView(jpeg.buffer)]);
model.emit("msg:custom", header(2), [new DataView(jpeg.buffer)]);
await new Promise((r) => setTimeout(r, 50));
const root = host.children[0];
out.drawn = root.dataset.framesDrawn;
out.frameNumber = root.dataset.frameNumber;
out.mode = root.dataset.mode;
out.state = root.dataset.state;
out.sent = model.sent.map((m) => [m.type, m.seq ?? m.visible ?? null]);
cleanup();
out.last = model.sent[model.sent.length - 1].type;
console.log(JSON.stringify(out));
"""


def test_browser_module_acks_frames_and_shows_render_errors(tmp_path: Any) -> None:
    node = shutil.which("node")
    if node is None:  # pragma: no cover - node is part of the dev environment
        pytest.skip("node is not installed")
    module = tmp_path / "liveview.mjs"
    module.write_text(LiveView._esm, encoding="utf-8")
    script = tmp_path / "run.mjs"
    script.write_text(FAKE_DOM + WIDGET_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [node, str(script), module.as_uri()], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "live view failed to start" in out["fatal"] and "boom reading paused" in out["fatal"]
    assert (out["drawn"], out["frameNumber"], out["mode"], out["state"]) == ("2", "102", "comm", "streaming")
    assert out["sent"] == [["hello", True], ["ack", 1], ["ack", 2]]
    assert out["last"] == "closed"


# -- the shared viewer's options: encoding, lut, view ----------------------------------------------
def test_viewer_options_are_checked_and_a_bad_value_changes_nothing(
    camera: Camera, make_view: Callable[..., LiveView]
) -> None:
    view = make_view(url="http://127.0.0.1:8001/", encoding="raw", lut="viridis", view=(10, 20, 300, 200))
    assert (view.encoding, view.lut, view.view) == ("raw", "viridis", [10, 20, 300, 200])
    with pytest.raises(ValueError, match=r"encoding='png' is not allowed: one of 'jpeg', 'raw'"):
        view.encoding = "png"
    with pytest.raises(ValueError, match=r"lut='jet' is not allowed: one of 'grey', 'inverted', 'viridis', 'hilo'"):
        view.lut = "jet"
    with pytest.raises(ValueError, match=r"view=\[10, 20, 0, 200\] is not allowed"):
        view.view = (10, 20, 0, 200)
    with pytest.raises(ValueError, match="view='middle' is not allowed"):
        view.view = "middle"
    assert (view.encoding, view.lut, view.view) == ("raw", "viridis", [10, 20, 300, 200])
    view.view = "full"
    view.encoding = "jpeg"
    assert (view.encoding, view.view) == ("jpeg", "full")
    # The comm carries the kernel's JPEG: raw frames need the page's own WebSocket.
    with pytest.raises(ValueError, match="encoding='raw' needs websocket mode"):
        LiveView(camera, encoding="raw")
    comm = make_view(camera, lut="hilo")
    with pytest.raises(ValueError, match="encoding='raw' needs websocket mode"):
        comm.encoding = "raw"
    assert (comm.encoding, comm.lut) == ("jpeg", "hilo")


def _frame_header(payload: bytes) -> dict[str, Any]:
    """The JSON header of a binary stream frame (docs/protocol.md: uint32 big-endian length first)."""
    n = int.from_bytes(payload[:4], "big")
    return json.loads(payload[4 : 4 + n])


RENDER_WIDGET = """async ({ esm, css, state }) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const mod = await import(URL.createObjectURL(new Blob([esm], { type: "text/javascript" })));
  // anywidget's model interface, over the widget's own synced state
  const handlers = {};
  const model = {
    get: (name) => state[name], set: (name, v) => { state[name] = v; }, save_changes() {}, send() {},
    on: (name, fn) => { (handlers[name] ||= []).push(fn); }, off() {},
    change(name, v) { state[name] = v; for (const fn of handlers[`change:${name}`] || []) fn(); },
  };
  const host = document.createElement("div");
  host.style.width = "640px";
  document.body.append(host);
  mod.default.render({ model, el: host });
  window.widget = { model, host };
}"""


def test_websocket_mode_streams_raw_frames_with_the_lut_and_view_from_python(make_server: Any, page: Any) -> None:
    """The widget's own module in Chromium, on a real labcam server: encoding="raw" in Python gives
    raw frames (full bit depth) on the page's WebSocket, drawn by the shared viewer with the LUT
    asked for, zoomed to the region asked for; switching back to JPEG needs no reconnect."""
    server = make_server(width=1280, height=1024, pixel_format="mono12", fps=15)
    region = [640, 512, 320, 256]
    widget = LiveView(url=server.url, mode="websocket", encoding="raw", lut="viridis", view=region)
    state = json.loads(json.dumps(widget.get_state(), default=lambda _v: None))
    urls: list[str] = []
    headers: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        urls.append(ws.url)
        ws.on("framereceived", lambda p: headers.append(_frame_header(p)) if isinstance(p, bytes) else None)
        ws.on("framesent", lambda p: sent.append(json.loads(p)))

    page.on("websocket", on_socket)
    page.goto(server.url + "no-such-page")  # an empty page of the server's own origin
    page.evaluate(RENDER_WIDGET, {"esm": widget._esm, "css": widget._css, "state": state})
    drawn = "n => Number(window.widget.host.querySelector('[data-frames-drawn]')?.dataset.framesDrawn || 0) > n"
    page.wait_for_function(drawn, arg=2, timeout=15_000)
    assert page.evaluate("() => window.widget.host.querySelector('[data-encoding]').dataset.encoding") == "raw"
    assert "encoding=raw" in urls[0]
    raw = [h for h in headers if h.get("encoding") == "raw"]
    assert raw and raw[-1]["bit_depth"] == 12
    # The viewer shows the region asked for: the server is asked for a view inside it, at 1:2 or finer.
    asked = [m["view"] for m in sent if m.get("type") == "configure" and isinstance(m.get("view"), list)]
    assert asked, sent
    x, y, w, h = asked[-1]
    assert region[0] <= x + w / 2 <= region[0] + region[2] and region[1] <= y + h / 2 <= region[1] + region[3]
    assert w <= 2 * region[2] and h <= 2 * region[3]
    assert page.eval_on_selector("[data-testid=viewer-lut]", "s => s.value") == "viridis"
    # Python changes the traits; the page follows.
    page.evaluate("() => { window.widget.model.change('lut', 'hilo'); window.widget.model.change('encoding', 'jpeg') }")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=viewer-lut]').value === 'hilo'", timeout=15_000
    )
    page.wait_for_function(
        "() => window.widget.host.querySelector('[data-encoding]')?.dataset.encoding === 'jpeg'", timeout=15_000
    )
    assert len(urls) == 1  # one connection throughout
    assert any(m.get("type") == "configure" and m.get("encoding") == "jpeg" for m in sent)
