"""``LiveView``: the camera's live stream, inline in JupyterLab 4 and Notebook 7.

An anywidget (an ipywidgets ``DOMWidget`` whose browser side is the ES module ``liveview.js``,
shipped as a string: no JavaScript build). It has two ways of getting frames to the page, and its
status line says which one it uses:

``websocket``
    The browser opens the labcam stream (``{baseUrl}labcam/ws/camera/stream?format=binary`` of the
    Jupyter server hosting the page, or the ``url`` given) itself, with the shared JavaScript client
    ``labcam/web/labcam-client.js``. Frames never pass through the kernel, so the view keeps
    running while a cell is busy and the kernel spends no CPU on it.

``comm``
    For a camera that lives in the kernel (``labcam.open()``), or where the extension cannot be
    reached (VS Code): a background thread in the kernel encodes frames to JPEG and sends them as
    binary buffers through the widget's comm. The browser acknowledges every frame it draws; at most
    ``WINDOW`` frames are in flight and the newest frame always wins (as in jupyter_rfb), so a slow
    page never makes the kernel queue frames. The thread only runs while a view is visible.

Both modes have a record button: in ``websocket`` mode the page asks the stream server (the
``record`` message: the file lands in the server's recordings folder); in ``comm`` mode the kernel
calls ``camera.record`` (an in-process camera writes where the kernel runs; a ``labcam.connect()``
camera into its server's folder) and reports progress through the comm about once a second.

How the client gets into the page: anywidget loads ``_esm`` from a ``blob:`` URL, where relative
imports cannot resolve. The client's source is therefore read from the package at import time and
embedded in ``_esm`` as a string, which the widget imports through a second ``blob:`` URL. The client
module is used exactly as written (it has its own default export, so it is not concatenated into the
widget's module), it matches the Python package's version, and it works in JupyterLab, Notebook 7 and
VS Code alike without any URL to the extension.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import traitlets as t

import anywidget

from .. import wire
from ..errors import FrameTimeout
from ..flow import FrameWindow
from ..frame import PIXEL_FORMATS, Frame
from ..preview.display import DisplayMapper, auto_range, decimate
from ..preview.jpeg import encode_jpeg
from ..snapshots import encode_snapshot
from ..web import WEB_DIR

log = logging.getLogger("labcam.widget")

# How a view without a camera opens one for the comm fallback: ``labcam.connect``'s signature.
Connect = Callable[..., Any]

# -- flow control of the comm mode ---------------------------------------------------------------
# Frames sent and not yet acknowledged. 2 is jupyter_rfb's choice: with 1 the rate collapses to
# 1/RTT; with more, a slow page only sees older frames.
WINDOW = 2
# An unacknowledged frame older than this no longer counts as in flight (its ack was lost, or the
# kernel is busy and acks wait in the shell queue). While a cell runs, the view thus still gets
# WINDOW frames per ACK_TIMEOUT instead of freezing, and the window stays bounded.
ACK_TIMEOUT = 2.0
# Nothing heard from any view for this long while frames wait for acks: nobody is watching (page
# closed, output cleared), so the sender stops and releases the camera. Any message from a view
# brings it back.
IDLE_AFTER = 10.0
# How long the sender waits for a frame before it looks at its stop flag and the camera's state.
FRAME_WAIT = 0.5
DEFAULT_QUALITY = 80
# The encodings a view can ask the stream for: JPEG of the 8-bit mapping, or the raw counts (full
# bit depth, lossless; websocket mode only: the comm mode's frames are the kernel's JPEG).
VIEW_ENCODINGS = ("jpeg", "raw")
# The shared viewer's lookup tables (LUTS in labcam/web/labcam-viewer.js).
LUTS = ("grey", "inverted", "viridis", "hilo")
# Recording from the view (comm mode): how often the page hears of its progress, and how often the
# follower thread looks at a stop request or the end of the recording.
RECORD_NOTICE_S = 1.0
RECORD_STEP_S = 0.2

_CLIENT_PATH = WEB_DIR / "labcam-client.js"
_MODULES = ("labcam-raw.js", "labcam-viewer.js")  # beside the client: its raw decoder, the shared viewer


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def build_esm() -> str:
    """The widget's ES module: the shared JS client's source as a string constant, the sources of the
    modules beside it (the raw decoder it imports, the viewer) as an object, + liveview.js.

    ``json.dumps`` makes a valid JavaScript string literal (JSON is a subset of ECMAScript 2019).
    A missing client (a broken install) becomes ``null``: websocket mode then shows that error in the
    widget instead of failing to load.
    """
    widget_source = (WEB_DIR / "liveview.js").read_text(encoding="utf-8")
    client_source = _read_text(_CLIENT_PATH)
    # The modules the client and the viewer import, in the order liveview.js loads them.
    modules = {name: _read_text(WEB_DIR / name) for name in _MODULES}
    return (
        f"const LABCAM_CLIENT_SOURCE = {json.dumps(client_source)};\n"
        f"const LABCAM_MODULE_SOURCES = {json.dumps(modules)};\n{widget_source}"
    )


# -- preview encoding (comm mode) -------------------------------------------------------------------
class PreviewEncoder:
    """Camera frame -> 8-bit JPEG for the comm mode, plus what the page shows beside it.

    The mapping is the stream server's own (``labcam.preview``): decimate first, then map 12/16-bit
    counts to 8 bits with integer maths, auto range smoothed over frames so it does not flicker.
    On top of it, for 12/16-bit frames, a small histogram and this frame's own auto range (for the
    one-shot auto-contrast button), both from a sample of at most ``SAMPLE_PIXELS`` pixels.
    """

    HIST_BINS = 64
    SAMPLE_PIXELS = 65536

    def __init__(self) -> None:
        self._mapper = DisplayMapper()

    def encode(
        self,
        array: np.ndarray,
        pixel_format: str,
        *,
        quality: int = DEFAULT_QUALITY,
        max_width: int | None = None,
        display: str | Sequence[int] = "auto",
    ) -> tuple[bytes, dict[str, Any]]:
        bits = wire.bit_depth_of(pixel_format, 8 * array.dtype.itemsize)
        mapper = self._mapper
        mapper.max_width = max_width
        mapper.display = None if display == "auto" else (int(display[0]), int(display[1]))
        image, (lo, hi) = mapper.map(array, bits)
        jpeg = encode_jpeg(image, quality)  # before the next map() reuses the buffer
        meta: dict[str, Any] = {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "source_width": int(array.shape[1]),
            "source_height": int(array.shape[0]),
            "pixel_format": pixel_format,
            "bit_depth": bits,
            "display": [int(lo), int(hi)],
        }
        if bits > 8 and array.ndim == 2:
            view = decimate(array, max_width)
            stride = max(1, math.ceil(math.sqrt(view.size / self.SAMPLE_PIXELS)))
            sample = view[::stride, ::stride]
            shift = bits - int(math.log2(self.HIST_BINS))
            bins = np.bincount(np.minimum(sample.ravel() >> shift, self.HIST_BINS - 1), minlength=self.HIST_BINS)
            meta["histogram"] = [int(v) for v in bins]  # HIST_BINS counts over [0, 2**bits)
            meta["auto_range"] = [int(v) for v in auto_range(view, bits)]
        return jpeg, meta


def encode_snap(frame: Frame) -> tuple[bytes, str, str]:
    """A lossless PNG of a full frame (12/16-bit counts kept as 16-bit PNG): bytes, mime, filename
    (``labcam.wire.snapshot_file_name``, the name every labcam snapshot gets)."""
    m = frame.meta
    name = wire.snapshot_file_name(m.camera_serial, m.frame_number, m.timestamp, "png")
    return encode_snapshot(frame, "png"), wire.SNAP_FORMATS["png"], name


# -- option checks (the same rules and messages as the stream protocol) -----------------------------
class OptionError(t.TraitError, ValueError):
    """A live-view option out of range (a ``ValueError``, like every labcam input error)."""


def _check_number(name: str, value: Any, low: float, high: float, integer: bool) -> Any:
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        ok = math.isfinite(float(value)) and low <= float(value) <= high and (not integer or float(value) == int(value))
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise OptionError(f"{name}={value!r} is not allowed: {kind} from {low:g} to {high:g}, or None")
    return int(value) if integer else float(value)


_RAW_NEEDS_WEBSOCKET = (
    "encoding='raw' needs websocket mode (the browser reads the stream's raw frames itself); in comm "
    "mode the kernel sends JPEG frames"
)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise OptionError(f"{name}={value!r} is not allowed: one of {', '.join(map(repr, choices))}")
    return value


def _check_view(value: Any) -> str | list[int]:
    """``"full"``/None or ``(x, y, w, h)`` in sensor pixels, by the stream protocol's own rule."""
    if value is None or value == "full":
        return "full"
    try:
        rect = wire.parse_view(list(value) if isinstance(value, tuple) else value)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return "full" if rect is None else [int(v) for v in rect]


def _recording_status(rec: Any, rec_id: str) -> dict[str, Any]:
    """A recording handle's status for the page (in-process or remote), with an ``id`` and ``name``."""
    status = dict(rec.status())
    status.setdefault("id", rec_id)
    if not status.get("name"):
        status["name"] = Path(str(status.get("path", ""))).name
    return status


def _camera_url(camera: Any) -> tuple[str | None, str | None]:
    """The stream root and token of a remote camera (``labcam.connect()``), if it is one."""
    for attr in ("live_url", "url", "base_url"):
        url = getattr(camera, attr, None)
        if isinstance(url, str) and url:
            token = getattr(camera, "token", None)
            return url, token if isinstance(token, str) and token else None
    return None, None


class LiveView(anywidget.AnyWidget):
    """The live stream of a camera, inline in a notebook. ``cam.live()`` returns one.

    >>> cam = labcam.open("simulated")                      # doctest: +SKIP
    >>> cam.live(fps=15)            # in-process camera: frames through the widget's comm
    >>> labcam.connect().live()     # the Jupyter extension's camera: the page's own WebSocket
    >>> LiveView(url="http://127.0.0.1:8001/", token="T")   # a `labcam serve` elsewhere

    ``camera``: an in-process ``Camera`` (comm mode) or a remote one (websocket mode, to its URL).
    ``url``/``token``: a labcam stream root (``http://host:8001/``, ``http://host:8888/base/labcam/``)
    or the stream URL itself. Without camera and url, the view streams from the labcam extension of
    the Jupyter server that serves the page. ``mode``: "auto" (the default; websocket unless the
    camera lives in this kernel, and comm when the page cannot reach the stream and the kernel can),
    "websocket" or "comm". ``fps`` caps the frame rate, ``quality`` is the JPEG quality (1-100),
    ``max_width`` has frames downscaled to at most that width before they are sent. ``connect``
    (called as ``labcam.connect`` is: ``connect(url, token=token)`` or ``connect()``) opens the
    camera of an "auto" view without one that falls back to the comm; ``labcam.LiveView`` passes
    ``labcam.connect``. Without it such a view says in the page that it has no camera.

    Settable while it runs, from Python or its controls: ``fps``, ``quality``, ``max_width``,
    ``display_range`` ("auto" or (min, max) in camera counts, for 12/16-bit), ``paused``, and
    for the shared viewer: ``encoding`` ("jpeg", or "raw": the camera's counts at full bit depth,
    lossless, with readouts and histogram of the real counts; websocket mode only), ``lut``
    ("grey", "inverted", "viridis", "hilo": applied in the page, no server round trip) and ``view``
    ("full" or (x, y, w, h) in sensor pixels: the region the viewer zooms to; zoom and pan in the
    page move it on their own and do not write it back).
    """

    _esm = build_esm()
    _css = (WEB_DIR / "liveview.css").read_text(encoding="utf-8")

    # The mode in use: "websocket" | "comm". "auto" views may move from websocket to comm.
    mode = t.Unicode("websocket").tag(sync=True)
    requested_mode = t.Unicode("auto").tag(sync=True)
    # Stream root or URL for websocket mode; "" means {baseUrl}labcam/ of the page's Jupyter server.
    stream_url = t.Unicode("").tag(sync=True)
    # Synced so the page can authenticate to a server other than its own. Note: "Save widget state"
    # in the notebook would store it; the page's own server never needs it (cookie).
    token = t.Unicode("").tag(sync=True)
    fps = t.Float(None, allow_none=True).tag(sync=True)
    quality = t.Int(None, allow_none=True).tag(sync=True)
    max_width = t.Int(None, allow_none=True).tag(sync=True)
    display_range = t.Any("auto").tag(sync=True)
    paused = t.Bool(False).tag(sync=True)
    encoding = t.Unicode("jpeg").tag(sync=True)
    lut = t.Unicode("grey").tag(sync=True)
    view = t.Any("full").tag(sync=True)
    # The stream options' ranges ({"fps": [low, high], ...}, labcam.wire.OPTION_RANGES): the page's
    # controls and checks use them, as the Python validation below does.
    option_ranges = t.Dict({name: list(r) for name, r in wire.OPTION_RANGES.items()}).tag(sync=True)
    # Comm mode: what the page needs to build its controls (camera description, settings, specs).
    camera_info = t.Dict().tag(sync=True)
    # A problem the kernel wants shown in the view (e.g. no camera for the comm fallback).
    kernel_error = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        camera: Any = None,
        *,
        url: str | None = None,
        token: str | None = None,
        mode: str = "auto",
        fps: float | None = None,
        quality: int | None = None,
        max_width: int | None = None,
        encoding: str = "jpeg",
        lut: str = "grey",
        view: Any = "full",
        connect: Connect | None = None,
        **kwargs: Any,
    ) -> None:
        # Plain state first: trait observers (mode, paused) run during super().__init__, and
        # ipywidgets' __del__ calls close() even on an instance whose __init__ raised.
        self._camera: Any = None
        self._remote_args: tuple[str | None, str | None] = (None, None)
        self._connect = connect
        self._owns_camera = False  # True when the comm fallback opened a camera with _connect
        self._encoder = PreviewEncoder()
        # flow control and sender state, guarded by _cond
        self._cond = threading.Condition()
        self._window: FrameWindow[None] = FrameWindow(WINDOW, ack_timeout=ACK_TIMEOUT)
        self._views: dict[str, bool] = {}  # view id -> visible
        self._last_heard = time.monotonic()
        self._dormant = False
        self._sender: threading.Thread | None = None
        self._stop = threading.Event()
        self._stream: Any = None
        self._closed = False
        # figures (read by tests and shown in the page); the window keeps the others
        self.frames_sent = 0
        self._settings_hook: Any = None
        # the recording started from this view's button (comm mode), followed by its own thread
        self._recording: Any = None
        self._record_stop = threading.Event()
        self._record_ids = itertools.count(1)
        if mode not in ("auto", "websocket", "comm"):
            raise ValueError(f"mode={mode!r} is not allowed: 'auto', 'websocket' or 'comm'")
        in_process = camera is not None and hasattr(camera, "engine")
        if url is None and camera is not None and not in_process:
            url, camera_token = _camera_url(camera)
            token = token or camera_token
        if mode == "websocket" and in_process:
            raise ValueError(
                "mode='websocket' needs a stream server: this camera lives in the kernel, so its "
                "frames can only reach the page through the widget (mode='comm' or 'auto')"
            )
        resolved = "comm" if mode == "comm" or (mode == "auto" and in_process) else "websocket"
        _check_choice("encoding", encoding, VIEW_ENCODINGS)
        if encoding == "raw" and resolved == "comm":
            raise OptionError(_RAW_NEEDS_WEBSOCKET)
        self._camera = camera
        self._remote_args = (url, token)
        super().__init__(
            mode=resolved,
            requested_mode=mode,
            stream_url=url or "",
            token=token or "",
            fps=fps,
            quality=quality,
            max_width=max_width,
            encoding=encoding,
            lut=lut,
            view=view,
            **kwargs,
        )
        self.on_msg(self._on_custom_msg)
        if resolved == "comm":
            self._attach_camera()

    # -- public -------------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Comm mode: frames sent and not yet acknowledged (never more than ``WINDOW``)."""
        with self._cond:
            return self._window.in_flight

    @property
    def frames_acked(self) -> int:
        return self._window.acked

    @property
    def frames_lost(self) -> int:
        """Frames whose acknowledgement did not come within ``ACK_TIMEOUT``."""
        return self._window.lost

    @property
    def max_in_flight(self) -> int:
        return self._window.max_in_flight

    @property
    def rtt_ms(self) -> float | None:
        """The last acknowledged frame's send -> ack time."""
        return self._window.rtt_ms

    @property
    def recording(self) -> Any:
        """Comm mode: the handle of the last recording started with this view's button (``wait``,
        ``stop``, ``status()``...), or None. Closing the view does not stop it: recordings never
        depend on a viewer."""
        return self._recording

    @property
    def sender_running(self) -> bool:
        """Comm mode: whether the kernel thread that sends frames is alive."""
        sender = self._sender
        return sender is not None and sender.is_alive()

    def close(self) -> None:
        """Remove the view and stop sending (the camera is released; it keeps running for others)."""
        self._closed = True
        self._stop_sender()
        self._detach_camera()
        if self._owns_camera and self._camera is not None:
            try:
                self._camera.close()
            except Exception:  # closing a remote connection must not stop the widget closing
                log.debug("closing the fallback camera failed", exc_info=True)
        super().close()

    def __repr__(self) -> str:
        # Stable across runs (nbval compares it): no ids, addresses or timings.
        if self.mode == "comm":
            source = self._describe_camera()
        else:
            source = self.stream_url or "this Jupyter server's labcam extension"
        return (
            f"LiveView(mode={self.mode!r}, source={source!r}, fps={self.fps!r}, "
            f"quality={self.quality!r}, max_width={self.max_width!r})"
        )

    # -- validation ---------------------------------------------------------------------------------
    @t.validate("fps")
    def _valid_fps(self, proposal: Any) -> Any:
        return _check_number("fps", proposal["value"], *wire.FPS_RANGE, False)

    @t.validate("quality")
    def _valid_quality(self, proposal: Any) -> Any:
        return _check_number("quality", proposal["value"], *wire.QUALITY_RANGE, True)

    @t.validate("max_width")
    def _valid_max_width(self, proposal: Any) -> Any:
        return _check_number("max_width", proposal["value"], *wire.MAX_WIDTH_RANGE, True)

    @t.validate("encoding")
    def _valid_encoding(self, proposal: Any) -> Any:
        value = _check_choice("encoding", proposal["value"], VIEW_ENCODINGS)
        if value == "raw" and self.mode == "comm":
            raise OptionError(_RAW_NEEDS_WEBSOCKET)
        return value

    @t.validate("lut")
    def _valid_lut(self, proposal: Any) -> Any:
        return _check_choice("lut", proposal["value"], LUTS)

    @t.validate("view")
    def _valid_view(self, proposal: Any) -> Any:
        return _check_view(proposal["value"])

    @t.validate("display_range")
    def _valid_display(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is None or value == "auto":
            return "auto"
        if isinstance(value, str):
            value = value.split(",")
        try:
            lo, hi = (int(v) for v in value)
        except (TypeError, ValueError):
            raise OptionError(f"display_range={proposal['value']!r} is not allowed: 'auto' or (min, max)") from None
        if not 0 <= lo < hi:
            raise OptionError(f"display_range={proposal['value']!r} is not allowed: 0 <= min < max")
        return [lo, hi]

    @t.observe("paused", "mode")
    def _on_state_change(self, change: Any) -> None:
        self._update_sender()

    # -- camera (comm mode) -------------------------------------------------------------------------
    def _describe_camera(self) -> str:
        cam = self._camera
        if cam is None:
            return "no camera"
        try:
            d = cam.description
            return f"{d.driver} {d.serial}"
        except Exception:
            return type(cam).__name__

    def _attach_camera(self) -> None:
        """Publish the camera's description/settings/specs and follow its settings changes."""
        if self._camera is None:
            self._camera = self._open_fallback_camera()
            if self._camera is None:
                return
        self._refresh_camera_info()
        events = getattr(self._camera, "events", None)
        signal = getattr(events, "settings_changed", None)
        if signal is not None and self._settings_hook is None:
            self._settings_hook = signal
            signal.connect(self._on_camera_settings)

    def _detach_camera(self) -> None:
        if self._settings_hook is not None:
            try:
                self._settings_hook.disconnect(self._on_camera_settings)
            except Exception:
                pass
            self._settings_hook = None

    def _open_fallback_camera(self) -> Any:
        """Comm mode without a camera: reach the stream from the kernel with the ``connect`` given.

        The widget never makes cameras itself: ``labcam.LiveView`` hands it the package's
        ``labcam.connect``, and a camera's ``live()`` hands it the camera.
        """
        if self._connect is None:
            self.kernel_error = (
                "No camera for the comm mode: this view was given neither a camera nor a way to connect. "
                "Open one in the kernel with labcam.open() and call cam.live(), or use labcam.LiveView."
            )
            return None
        url, token = self._remote_args
        try:
            camera = self._connect(url, token=token) if url else self._connect()
        except Exception as exc:
            self.kernel_error = (
                f"No camera for the comm mode: the kernel could not reach the labcam stream ({exc}). "
                "Open one in the kernel with labcam.open() and call cam.live()."
            )
            return None
        self._owns_camera = True
        return camera

    def _refresh_camera_info(self, settings: Any = None) -> None:
        cam = self._camera
        try:
            info = {
                "camera": cam.description.to_dict(),
                "settings": (settings or cam.settings).to_dict(),
                "specs": cam.specs.to_dict(),
            }
        except Exception as exc:  # a remote camera that went away: say so in the view
            info = {"error": str(exc)}
        self.camera_info = info

    def _on_camera_settings(self, settings: Any) -> None:
        # Called on whichever thread changed the settings; a trait change is a thread-safe comm send.
        if not self._closed:
            self._refresh_camera_info(settings)

    # -- messages from the page -----------------------------------------------------------------------
    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        view = str(content.get("view", ""))
        now = time.monotonic()
        wake = False
        with self._cond:
            self._last_heard = now
            if self._dormant:
                self._dormant = False
                wake = True
            if kind == "ack":
                seq = content.get("seq")
                if isinstance(seq, int) and not isinstance(seq, bool):
                    self._window.ack(seq, now)  # cumulative: drawing frame n means every earlier one is done with too
                if view and view not in self._views:
                    self._views[view] = True  # a view that draws is there and visible
            elif kind in ("hello", "visible") and view:
                self._views[view] = bool(content.get("visible", True))
            elif kind == "closed" and view:
                self._views.pop(view, None)
            self._cond.notify_all()
        if kind == "settings":
            self._apply_settings(content.get("changes"))
        elif kind == "snap":
            self._send_snap()
        elif kind == "fallback":
            self._fall_back(str(content.get("reason", "")))
        elif kind == "record":
            self._record(content)
        if kind in ("ack", "hello", "visible", "closed") or wake:
            self._update_sender()

    def _apply_settings(self, changes: Any) -> None:
        if self.mode != "comm" or self._camera is None or not isinstance(changes, dict):
            return
        try:
            settings = self._camera.set(**changes)
        except Exception as exc:  # SettingError names the setting, value and range: show it
            self._send_json({"type": "error", "request": "settings", "message": str(exc)})
            return
        self._refresh_camera_info(settings)

    def _send_snap(self) -> None:
        if self._camera is None:
            self._send_json({"type": "error", "request": "snap", "message": "no camera in this kernel"})
            return
        try:
            frame = self._camera.snap(meta=True)
            data, mime, name = encode_snap(frame)
        except Exception as exc:
            self._send_json({"type": "error", "request": "snap", "message": f"snap failed: {exc}"})
            return
        self._send_json(
            {"type": "snap", "mime": mime, "filename": name, "frame_number": frame.meta.frame_number},
            [data],
        )

    # -- recording (comm mode) ---------------------------------------------------------------------
    def _record(self, content: dict[str, Any]) -> None:
        """The page's record button in comm mode: ``start`` calls ``camera.record`` here, ``stop``
        asks the follower thread to stop it (a remote stop may wait for the server: not on the
        kernel's shell thread)."""
        action = content.get("action")
        if action == "stop":
            self._record_stop.set()
            return
        if action != "start":
            self._send_json({"type": "error", "request": "record", "message": f"action={action!r} is not allowed: 'start' or 'stop'"})
            return
        cam = self._camera
        if self.mode != "comm" or cam is None or not hasattr(cam, "record"):
            self._send_json({"type": "error", "request": "record", "message": "no camera in this kernel to record from"})
            return
        running = self._recording
        if running is not None and not running.wait(0, raise_error=False):
            self._send_json({"type": "error", "request": "record", "message": "a recording from this view is running already: stop it first"})
            return
        options = {k: content[k] for k in ("frames", "duration") if content.get(k) is not None}
        if hasattr(cam, "engine"):
            options["progress"] = False  # the view shows progress; no tqdm bar in some other cell
        try:
            rec = cam.record(content.get("name"), **options)
        except Exception as exc:  # a bad name or option, an existing file: say why in the view
            self._send_json({"type": "error", "request": "record", "message": str(exc)})
            return
        rec_id = str(getattr(rec, "id", "") or f"w{next(self._record_ids)}")
        self._recording = rec
        self._record_stop = threading.Event()
        self._send_json({"type": "recording", "reply": "start", "event": "started", **_recording_status(rec, rec_id)})
        threading.Thread(
            target=self._follow_recording, args=(rec, rec_id, self._record_stop), name="labcam-liveview-record", daemon=True
        ).start()

    def _follow_recording(self, rec: Any, rec_id: str, stop: threading.Event) -> None:
        """Tell the page how the recording goes (about once a second, and when it ends)."""
        last = time.monotonic()
        stopped = False
        try:
            while True:
                if stop.is_set() and not stopped:
                    stopped = True
                    rec.stop(wait=False)
                done = rec.wait(RECORD_STEP_S, raise_error=False)  # returns early when it ends
                now = time.monotonic()
                if done or now - last >= RECORD_NOTICE_S:
                    last = now
                    event = "finished" if done else "progress"
                    self._send_json({"type": "recording", "event": event, **_recording_status(rec, rec_id)})
                if done:
                    return
        except Exception as exc:  # a remote server that went away: say so rather than go quiet
            log.warning("live view: lost track of recording %s: %s", rec_id, exc)
            self._send_json({"type": "error", "request": "record", "message": f"lost track of the recording: {exc}"})

    def _fall_back(self, reason: str) -> None:
        """The page could not reach the stream: in auto mode, send frames through the comm instead."""
        if self.requested_mode != "auto" or self.mode == "comm":
            return
        log.info("live view: the page cannot reach the stream (%s); using the comm", reason)
        self._attach_camera()
        if self._camera is not None:
            self.kernel_error = ""
            self.encoding = "jpeg"  # the comm carries the kernel's JPEG frames only
            self.mode = "comm"

    # -- the sender thread (comm mode) ----------------------------------------------------------------
    def _wanted(self) -> bool:
        return (
            not self._closed
            and self.mode == "comm"
            and self._camera is not None
            and not self.paused
            and not self._dormant
            and any(self._views.values())
        )

    def _update_sender(self) -> None:
        """Start the sender when a view wants frames and stop it when none does."""
        with self._cond:
            wanted = self._wanted()
            running = self._sender is not None and self._sender.is_alive()
            if wanted and not running:
                self._stop = threading.Event()
                self._window.clear()
                self._window.ack_timeout = ACK_TIMEOUT
                self._last_heard = time.monotonic()
                self._sender = threading.Thread(
                    target=self._send_loop, args=(self._stop,), name="labcam-liveview", daemon=True
                )
                self._sender.start()
                return
        if not wanted and running:
            self._stop_sender()

    def _stop_sender(self) -> None:
        with self._cond:
            sender, stream = self._sender, self._stream
            self._stop.set()
            self._cond.notify_all()
        if stream is not None:
            try:
                stream.close()  # wakes a sender blocked waiting for a frame
            except Exception:
                pass
        if sender is not None and sender is not threading.current_thread():
            sender.join(timeout=5.0)
        with self._cond:
            if self._sender is sender:
                self._sender = None
            self._window.clear()

    def _send_loop(self, stop: threading.Event) -> None:
        try:
            stream = self._camera.frames(timeout=FRAME_WAIT)
        except Exception as exc:
            self._send_json({"type": "status", "state": "error", "message": f"cannot stream: {exc}"})
            return
        with self._cond:
            self._stream = stream
        if stop.is_set():  # stopped before the stream existed: _stop_sender could not close it
            stream.close()
        self._send_json({"type": "status", "state": "streaming", "message": ""})
        skipped_base = stream.missed if hasattr(stream, "missed") else 0
        camera_dropped = 0
        waiting = False
        try:
            while not stop.is_set():
                with self._cond:
                    while not stop.is_set() and not self._window.is_open(time.monotonic()):
                        if self._window.in_flight and time.monotonic() - self._last_heard > IDLE_AFTER:
                            # Nobody acknowledges: no page is watching. Release the camera.
                            self._dormant = True
                            self._views.clear()
                            stop.set()
                            break
                        self._cond.wait(0.1)
                if stop.is_set():
                    break
                with self._cond:
                    self._window.cap.fps = self.fps
                    delay = self._window.cap.delay(time.monotonic())
                if delay > 0 and stop.wait(delay):  # pacing to the fps cap
                    break
                try:
                    frame = next(stream)
                except FrameTimeout:
                    if not waiting:
                        waiting = True
                        self._send_json({"type": "status", "state": "waiting", "message": self._camera_state()})
                    continue
                except StopIteration:
                    break
                if waiting:
                    waiting = False
                    self._send_json({"type": "status", "state": "streaming", "message": ""})
                camera_dropped += frame.meta.dropped_before
                t0 = time.perf_counter()
                jpeg, meta = self._encoder.encode(
                    frame.array,
                    frame.meta.pixel_format,
                    quality=self.quality or DEFAULT_QUALITY,
                    max_width=self.max_width,
                    display=self.display_range,
                )
                encode_ms = (time.perf_counter() - t0) * 1000.0
                with self._cond:
                    if stop.is_set():
                        break
                    now = time.monotonic()
                    seq = self._window.sent(now)
                    self._window.cap.take(now)
                meta.update(
                    type="frame",
                    seq=seq,
                    frame_number=frame.meta.frame_number,
                    timestamp=frame.meta.timestamp,
                    exposure_ms=frame.meta.exposure_ms,
                    gain_db=frame.meta.gain_db,
                    encoding="jpeg",
                    encode_ms=round(encode_ms, 2),
                    skipped=(stream.missed - skipped_base) if hasattr(stream, "missed") else 0,
                    camera_dropped=camera_dropped,
                    lost=self.frames_lost,
                    rtt_ms=None if self.rtt_ms is None else round(self.rtt_ms, 1),
                    sent_at=time.time(),
                )
                self._send_json(meta, [jpeg])
                self.frames_sent += 1
        except Exception as exc:  # the engine closed, the connection dropped...: say it in the view
            if not stop.is_set():
                log.warning("live view sender stopped: %s", exc)
                self._send_json({"type": "status", "state": "error", "message": str(exc)})
        finally:
            with self._cond:
                self._stream = None
            stream.close()
            if self._dormant:
                self._send_json({"type": "status", "state": "idle", "message": "no page acknowledged frames"})

    def _camera_state(self) -> str:
        status = getattr(self._camera, "status", None)
        state = getattr(status, "state", None)
        message = getattr(status, "message", "")
        return f"no frames from the camera ({state}{': ' + message if message else ''})" if state else "no frames"

    def _send_json(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        if self.comm is None or self._closed and content.get("type") == "frame":
            return
        try:
            self.send(content, buffers)
        except Exception:  # the comm closed under us (kernel shutting down): nothing to tell
            log.debug("live view: send failed", exc_info=True)


__all__ = ["LiveView", "OptionError", "PreviewEncoder", "WINDOW", "build_esm", "encode_snap"]
