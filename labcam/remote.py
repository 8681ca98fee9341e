"""``labcam.connect()``: the scripted camera API over the network, for kernels and other processes.

The camera lives in one server process (a Jupyter server with the labcam extension, or
``labcam serve``); any number of kernels and scripts reach it through ``RemoteCamera``, which has
the same methods as the in-process ``labcam.Camera``: ``snap``, ``acquire``, ``frames``,
``timelapse``, ``settings``/``set`` and the setting properties, ``description``, ``status``,
``live``, ``close``, and ``record`` (into the server's recordings folder). A kernel restart only
drops its connections; the camera keeps streaming, and recordings keep running, for everybody else.

Transport, chosen for speed and exactness:

- frames come over the lossless raw WebSocket ``ws/camera/frames`` (``labcam.server.rawframes``):
  the camera's own numbers at full bit depth, one binary message per frame, no encoding;
  ``acquire(n)`` reads every frame in order (``mode=all``), ``snap``/``frames`` pull the newest;
- settings and descriptions go over REST (``api/camera...``), and so do recordings
  (``api/recordings``: the server writes the file; ``RemoteRecording`` follows it by polling).

WebSockets run on one private asyncio loop in a daemon thread (tornado's client), so the sync API
works inside Jupyter kernels whose own loop is already running, and ``async for`` works from any
loop.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future as ConcurrentFuture
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np

from .camera_api import CameraAPI, FrameStreamBase, Stack, positive_int, progress_bar
from .cameras.base import CameraDescription
from .engine import EngineStatus
from .errors import CameraDisconnected, CameraError, CameraUnavailable, FrameTimeout, LabcamError, SettingError
from .frame import Frame, FrameMeta
from .settings import Settings, SettingSpec, SettingSpecs

if TYPE_CHECKING:
    from .recording import RecordingError, RecordingProgress

log = logging.getLogger("labcam.remote")

T = TypeVar("T")

# Frames can be large (4096x3000 mono16 is 24 MB); tornado's client refuses messages above 10 MiB
# by default.
MAX_FRAME_MESSAGE = 1024 * 1024 * 1024
# Extra time allowed for the network on top of a frame timeout (the first frame of a connection
# also pays for the handshake and possibly the camera starting).
NETWORK_SLACK_S = 2.0
# How often a waiting acquisition updates its progress bar.
PROGRESS_INTERVAL_S = 0.1
# How often RemoteRecording.wait asks the server for the recording's state: often at first (short
# recordings end quickly), then every half second (a long one costs a request or two per second).
RECORDING_POLL_MIN_S = 0.02
RECORDING_POLL_MAX_S = 0.5
_SETTING_FIELDS = ("exposure_ms", "gain_db", "fps", "roi", "pixel_format", "trigger_mode")


class AuthenticationError(LabcamError, PermissionError):
    """The server refused the request: no token, or a wrong one (HTTP 403)."""


# -- the private IO loop -----------------------------------------------------------------------------
class _IOThread:
    """One asyncio loop in a daemon thread, shared by every ``RemoteCamera`` of this process."""

    _lock = threading.Lock()
    _instance: _IOThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="labcam-remote-io", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> _IOThread:
        with cls._lock:
            if cls._instance is None or not cls._instance._thread.is_alive():
                cls._instance = _IOThread()
            return cls._instance

    def submit(self, coro: Awaitable[T]) -> ConcurrentFuture[T]:
        return asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self.loop)

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the IO loop and wait for its result in this thread."""
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()  # e.g. KeyboardInterrupt in a notebook: do not leave the read running
            raise

    async def run_async(self, coro: Awaitable[T]) -> T:
        """Await ``coro`` (run on the IO loop) from another event loop."""
        return await asyncio.wrap_future(self.submit(coro))


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw


# -- HTTP ---------------------------------------------------------------------------------------------
def _error_message(body: bytes) -> str:
    """The message of an error response: labcam's ``{"error"}``, Jupyter's ``{"message"}`` or text."""
    try:
        data = json.loads(body)
    except ValueError:
        text = re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace"))
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        for key in ("error", "message", "reason"):
            if data.get(key):
                return str(data[key])
    return str(data)[:300]


_SETTING_ERROR = re.compile(r"^(?P<name>\w+)=(?P<value>.*?) is not allowed: (?P<allowed>.*)$", re.S)


def _setting_error(message: str, data: Any = None) -> SettingError | None:
    """Rebuild the server's ``SettingError`` from a 400 answer (structured fields or its message)."""
    m = _SETTING_ERROR.match(message.strip())
    if m:
        try:
            value: Any = ast.literal_eval(m["value"])
        except (ValueError, SyntaxError):
            value = m["value"]  # a repr literal_eval cannot read: keep its text
        name, allowed = m["name"], m["allowed"]
        if isinstance(data, dict) and {"setting", "allowed"} <= data.keys():
            name, allowed = str(data["setting"]), str(data["allowed"])
        return SettingError(name, value, allowed)
    if isinstance(data, dict) and {"setting", "allowed"} <= data.keys():
        return SettingError(str(data["setting"]), data.get("value"), str(data["allowed"]))
    return None


def _reach_error(url: str, exc: BaseException) -> CameraUnavailable:
    reason: Any = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, (socket.timeout, TimeoutError)):
        why = "timed out"
    elif isinstance(reason, socket.gaierror):
        why = f"unknown host ({reason.strerror})"
    else:
        why = str(reason) or type(reason).__name__
    return CameraUnavailable(f"cannot reach labcam at {url}: {why}")


# No proxies: the WebSocket client (tornado) never uses them, and an http_proxy meant for the
# internet must not swallow requests to a camera server on the lab network or loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Http:
    """Small synchronous JSON-over-HTTP client with labcam's error mapping."""

    def __init__(self, root: str, token: str | None, timeout: float) -> None:
        self.root = root
        self.token = token
        self.timeout = timeout

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def request(
        self, method: str, path: str, body: Any = None, *,
        errors: Mapping[int, Callable[[str, Any], Exception]] | None = None,
    ) -> Any:
        """JSON in and out. ``errors``: statuses this call maps itself, ``(message, body) -> exception``."""
        url = urllib.parse.urljoin(self.root, path)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **self.headers()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if errors and exc.code in errors:
                try:
                    data = json.loads(payload)
                except ValueError:
                    data = None
                raise errors[exc.code](_error_message(payload), data) from None
            raise self._http_error(url, exc.code, payload) from None
        except (urllib.error.URLError, OSError) as exc:
            raise _reach_error(self.root, exc) from None
        return json.loads(payload) if payload else None

    def _http_error(self, url: str, code: int, body: bytes) -> Exception:
        message = _error_message(body)
        if code == 403:
            how = "the token was refused" if self.token else "it needs a token: labcam.connect(url, token=...)"
            return AuthenticationError(f"{url}: 403 Forbidden ({how}): {message}")
        if code == 400:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            return _setting_error(message, data) or ValueError(f"{url}: {message}")
        if code == 404:
            return CameraUnavailable(f"{url}: 404 Not Found (is this a labcam server?)")
        if code == 503:
            if message.startswith("labcam: the camera could not be opened"):  # the Jupyter extension's
                return CameraUnavailable(message)
            return CameraDisconnected(f"{url}: {message}")
        return CameraError(f"{url}: HTTP {code}: {message}")


# -- raw frame connections ------------------------------------------------------------------------
class _RawSocket:
    """One ``ws/camera/frames`` connection, used from one caller thread (sync) or loop (async)."""

    def __init__(self, camera: RemoteCamera, conn: Any, url: str) -> None:
        self._camera = camera
        self._conn = conn
        self._url = url
        self._outstanding = 0  # frames asked for (mode=latest) and not yet received

    @classmethod
    async def open(cls, camera: RemoteCamera, query: dict[str, Any]) -> _RawSocket:
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.websocket import websocket_connect

        http_url = urllib.parse.urljoin(camera.url, "ws/camera/frames") + "?" + urllib.parse.urlencode(query)
        ws_url = "ws" + http_url[len("http") :]  # http→ws, https→wss
        request = HTTPRequest(
            ws_url, headers=camera._http.headers(), connect_timeout=camera.timeout, request_timeout=camera.timeout
        )
        try:
            conn = await websocket_connect(request, max_message_size=MAX_FRAME_MESSAGE)
        except HTTPClientError as exc:
            body = exc.response.body if exc.response is not None and exc.response.body else b""
            reason = _error_message(body) if body else (exc.message or "")
            raise camera._http._http_error(http_url, exc.code, reason.encode()) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise _reach_error(camera.url, exc) from None
        try:  # the small "next" requests must not wait for Nagle
            conn.protocol.stream.set_nodelay(True)
        except AttributeError:
            pass
        return cls(camera, conn, http_url)

    async def request(self, frames: int = 1, fresh: bool = False) -> None:
        msg: dict[str, Any] = {"type": "next"}
        if frames != 1:
            msg["frames"] = frames
        if fresh:
            msg["fresh"] = True
        await self._conn.write_message(json.dumps(msg))
        self._outstanding += frames

    async def receive(self, timeout: float | None) -> tuple[Frame, dict[str, Any]]:
        """The next frame message; ``FrameTimeout`` if none within ``timeout`` seconds."""
        from .server.rawframes import decode_frame

        while True:
            try:
                message = await asyncio.wait_for(self._conn.read_message(), timeout)
            except asyncio.TimeoutError:
                raise FrameTimeout(f"no frame from {self._camera.url} within {timeout:g} s") from None
            if message is None:
                code, reason = self._conn.close_code, self._conn.close_reason
                if code == 1000:
                    raise CameraError(f"the server ended the frame stream early ({reason or 'done'})")
                raise CameraDisconnected(
                    f"the frame stream from {self._camera.url} closed ({code}: {reason or 'connection lost'})"
                )
            if isinstance(message, str):  # an error answer to a request of ours: a bug, say it
                raise CameraError(f"labcam server: {_error_message(message.encode())}")
            if self._outstanding:
                self._outstanding -= 1
            return decode_frame(message)

    async def next_latest(self, timeout: float | None, fresh: bool = False) -> Frame:
        """Pull one frame (mode=latest): ask only when no earlier request is still outstanding."""
        if self._outstanding == 0 or fresh:
            await self.request(fresh=fresh)
        frame, _ = await self.receive(timeout)
        return frame

    def close(self) -> None:
        self._conn.close()


class RemoteFrameStream(FrameStreamBase):
    """Frames as they arrive from a remote camera, for ``for`` and ``async for`` loops.

    Like ``labcam.FrameStream``: latest frame wins (a slow loop skips frames, counted in
    ``missed``), iteration ends after ``limit`` frames, a gap longer than ``timeout`` raises
    ``FrameTimeout``. Close it (or leave the ``with`` block) to release the connection.
    """

    def __init__(self, camera: RemoteCamera, timeout: float | None, limit: int | None) -> None:
        super().__init__(timeout, limit)
        self._camera = camera
        self._sock: _RawSocket | None = None
        self._closed = False
        self.missed = 0

    async def _receive(self) -> Frame:
        if self._closed:
            raise CameraError("this frame stream is closed")
        if self._sock is None:
            self._sock = await _RawSocket.open(self._camera, {"mode": "latest"})
        if self._sock._outstanding == 0:
            await self._sock.request()
        frame, header = await self._sock.receive(self._timeout)
        self.missed += int(header.get("missed", 0))
        return frame

    def _next_frame(self) -> Frame:
        return self._camera._io.run(self._receive(), None)

    async def _anext_frame(self) -> Frame:
        return await self._camera._io.run_async(self._receive())

    def close(self) -> None:
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            self._camera._io.loop.call_soon_threadsafe(sock.close)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the loop may be gone already
            pass


# -- the camera ---------------------------------------------------------------------------------------
class RemoteCamera(CameraAPI):
    """A camera served by another process, with the API of ``labcam.Camera``. Create with
    ``labcam.connect()``.

    >>> cam = labcam.connect()                        # doctest: +SKIP
    >>> img = cam.snap()                              # full bit depth numpy array
    >>> stack = cam.acquire(100)                      # every frame, in order, with metadata
    >>> cam.exposure_ms = 5                           # SettingError names the allowed range

    ``url`` is the labcam root (``.../labcam/`` inside Jupyter); ``token`` the one used.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout = timeout
        self._http = _Http(self.url, token, timeout)
        self._io = _IOThread.get()
        self._description: CameraDescription | None = None
        self._specs: SettingSpecs | None = None
        self._live: _RawSocket | None = None
        self._closed = False

    # -- what it is ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``GET api/camera``: description, settings, specs and state in one answer."""
        return dict(self._http.request("GET", "api/camera"))

    @property
    def description(self) -> CameraDescription:
        if self._description is None:  # never changes while the camera is open
            self._description = _description_from_dict(self.info()["camera"])
        return self._description

    @property
    def status(self) -> EngineStatus:
        """The server's engine status (state, frames, dropped, measured fps)."""
        stats = self._http.request("GET", "api/camera/stats")
        cam = dict(stats.get("camera", {}))
        return EngineStatus(
            state=str(cam.get("state", "unknown")),
            frames=int(cam.get("frames", 0)),
            dropped=int(cam.get("dropped", 0)),
            timeouts=int(cam.get("timeouts", 0)),
            fps=float(cam.get("fps", 0.0)),
            consumers=int(cam.get("consumers", 0)),
            message=str(cam.get("message", "")),
        )

    # -- settings -------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return _settings_from_dict(self._http.request("GET", "api/camera/settings"))

    @property
    def specs(self) -> SettingSpecs:
        """What each setting allows (ranges, choices)."""
        if self._specs is None:
            self._specs = _specs_from_dict(self.info().get("specs", {}))
        return self._specs

    def set(self, **changes: Any) -> Settings:
        """Change several settings at once; all are validated (by the server) before any is applied.

        Raises ``SettingError`` naming the setting, the value and the allowed range.
        """
        if "roi" in changes and changes["roi"] is not None and not isinstance(changes["roi"], str):
            try:
                changes["roi"] = [int(v) if isinstance(v, (int, np.integer)) else v for v in changes["roi"]]
            except TypeError:
                pass  # not a sequence: let the server say what is allowed
        return _settings_from_dict(self._http.request("PATCH", "api/camera/settings", _jsonable(changes)))

    # -- acquisition ----------------------------------------------------------------------------
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[True]) -> Frame: ...

    def snap(self, *, timeout: float = 5.0, meta: bool = False) -> np.ndarray | Frame:
        """The next full-resolution frame captured after this call, at full bit depth.

        Works while live views stream, without disturbing them. The array is read-only, like an
        in-process snap: ``.copy()`` it to modify.
        """
        self._check_open()

        async def one() -> Frame:
            sock = await _RawSocket.open(self, {"mode": "latest", "count": 1})
            try:
                return await sock.next_latest(timeout)
            finally:
                sock.close()

        frame = self._io.run(one(), timeout + self.timeout + NETWORK_SLACK_S)
        return frame if meta else frame.array

    def frames(self, *, timeout: float | None = 5.0, limit: int | None = None) -> RemoteFrameStream:
        """Iterate over frames as they arrive (newest first when the loop is slow), sync or async.

        >>> for frame in cam.frames(limit=100):            # doctest: +SKIP
        ...     process(frame.array)
        """
        self._check_open()
        if limit is not None:
            limit = positive_int("limit", limit)
        return RemoteFrameStream(self, timeout, limit)

    def acquire(self, n: int, *, timeout: float = 5.0, progress: bool | None = None) -> Stack:
        """``n`` consecutive frames as a ``Stack`` (every frame the camera delivers, in order).

        Frames the camera skipped, or that the server could not buffer for this connection, are
        counted in ``Stack.dropped``, never hidden. Raises ``FrameTimeout`` if no frame comes for
        ``timeout`` seconds.
        """
        self._check_open()
        n = positive_int("n", n)
        done = [0]  # frames in the stack so far, for the progress bar
        # The whole acquisition runs on the IO thread: receiving and copying into the stack in one
        # place avoids a thread hand-off (and GIL ping-pong) per frame, which halved the rate.
        fut = self._io.submit(self._acquire(n, timeout, done))
        try:
            with progress_bar(n, progress, "acquire") as bar:
                shown = 0
                while True:
                    finished, _ = concurrent.futures.wait([fut], timeout=PROGRESS_INTERVAL_S)
                    if done[0] > shown:
                        bar.update(done[0] - shown)
                        shown = done[0]
                    if finished:
                        return fut.result()
        except BaseException:
            fut.cancel()  # Ctrl-C in a notebook: stop reading, which closes the connection
            raise

    async def _acquire(self, n: int, timeout: float, done: list[int]) -> Stack:
        sock = await _RawSocket.open(self, {"mode": "all", "count": n})
        try:
            # The first frame may wait for the camera to start; later ones come at the camera's rate.
            first, header = await sock.receive(timeout + NETWORK_SLACK_S)
            stack = np.empty((n, *first.array.shape), dtype=first.array.dtype)
            metas: list[FrameMeta] = []
            dropped = 0
            frame = first
            for i in range(n):
                if i:
                    frame, header = await sock.receive(timeout)
                    dropped += frame.meta.dropped_before + int(header.get("missed", 0))
                if frame.array.shape != stack.shape[1:] or frame.array.dtype != stack.dtype:
                    raise CameraError(
                        "the frame size or pixel format changed during the acquisition "
                        f"({stack.shape[1:]} {stack.dtype} -> {frame.array.shape} {frame.array.dtype})"
                    )
                stack[i] = frame.array
                metas.append(frame.meta)
                done[0] = i + 1
        finally:
            sock.close()
        return Stack(stack, metas, dropped)

    def timelapse(
        self, n: int, interval_s: float, *, timeout: float = 5.0, progress: bool | None = None
    ) -> Stack:
        """``n`` frames, one every ``interval_s`` seconds (the first now), paced by absolute deadlines.

        Each is the first frame captured after its deadline. One connection stays open for the whole
        time-lapse, which keeps the camera streaming in between (other views stay live).
        """
        self._check_open()
        n = positive_int("n", n)
        if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r} is not allowed: a number of seconds > 0")
        io = self._io
        sock = io.run(_RawSocket.open(self, {"mode": "latest"}), self.timeout + NETWORK_SLACK_S)
        frames: list[Frame] = []
        try:
            start = time.monotonic()
            with progress_bar(n, progress if progress is not None else n >= 10, "time-lapse") as bar:
                for i in range(n):
                    delay = start + i * interval_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing the time-lapse itself, not synchronisation
                    frames.append(io.run(sock.next_latest(timeout, fresh=True)))
                    bar.update(1)
        finally:
            io.loop.call_soon_threadsafe(sock.close)
        array = np.stack([f.array for f in frames])
        return Stack(array, [f.meta for f in frames], dropped=0)

    # -- recording ------------------------------------------------------------------------------
    def record(
        self,
        path: str | os.PathLike[str],
        *,
        frames: int | None = None,
        duration: float | None = None,
        format: str | None = None,
        overwrite: bool = False,
    ) -> RemoteRecording:
        """Record every frame to an OME-TIFF or OME-Zarr file **on the server**; returns at once.

        ``path`` is a name inside the server's recordings folder (``labcam serve --recordings-dir``,
        ``LabcamApp.recordings_dir``), such as ``"run1.ome.tif"`` or ``"day1/run1.ome.zarr"``
        (sub-folders are created): the server writes the file, at the camera's full rate, whatever
        this connection does. Absolute paths, ``..``, names that lead out of the folder and existing
        files (unless ``overwrite=True``) are refused with a ``ValueError`` saying why. The format
        follows the suffix, or ``format`` ("ome-tiff", "ome-zarr") adds it to a bare name. Stops
        after ``frames`` frames, ``duration`` seconds, or ``rec.stop()``.

        The handle has ``wait(timeout)``, ``stop()``, ``progress``, ``status()`` and ``error`` like
        ``Camera.record``'s (it asks the server over REST). ``RecordingError`` when the server cannot
        record now (too many recordings running, folder not writable, camera lost).

        >>> rec = cam.record("run1.ome.tif", frames=500)   # doctest: +SKIP
        >>> rec.wait()                                     # doctest: +SKIP
        >>> rec.status()["frames_written"]                 # doctest: +SKIP
        500
        """
        from .recording import RecordingError

        self._check_open()
        name = PurePath(path).as_posix() if isinstance(path, os.PathLike) else path
        body: dict[str, Any] = {"name": name, "overwrite": overwrite}
        for key, value in (("frames", frames), ("duration", duration), ("format", format)):
            if value is not None:
                body[key] = _jsonable(value)
        status = self._http.request(
            "POST", "api/recordings", body,
            errors={
                400: lambda message, data: ValueError(message),
                409: lambda message, data: RecordingError(message, "busy"),
                503: lambda message, data: RecordingError(message, _reason(data, "camera")),
            },
        )
        return RemoteRecording(self, status)

    # -- live -----------------------------------------------------------------------------------
    def live(self, **options: Any) -> Any:
        """The live view of this camera in a notebook: the browser opens the server's stream itself,
        so frames never pass through the kernel (when the page cannot reach the stream, the view
        falls back to frames through this connection)."""
        try:
            from .widget import LiveView
        except ImportError as exc:
            raise LabcamError(f"the live view needs labcam.widget and the [jupyter] extra: {exc}") from exc
        return LiveView(self, **options)

    def start_live(self) -> None:
        """Keep the camera streaming (a connection that asks for nothing). ``stop_live`` undoes it."""
        self._check_open()
        if self._live is None:
            self._live = self._io.run(_RawSocket.open(self, {"mode": "latest"}), self.timeout + NETWORK_SLACK_S)

    def stop_live(self) -> None:
        sock, self._live = self._live, None
        if sock is not None:
            self._io.loop.call_soon_threadsafe(sock.close)

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Drop this process's hold on the camera; the server and its other clients carry on."""
        self.stop_live()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise CameraError("this RemoteCamera is closed")

    def __repr__(self) -> str:
        try:
            d, s = self.description, self.settings
        except LabcamError as exc:
            return f"<labcam.RemoteCamera {self.url} (unreachable: {exc})>"
        x, y, w, h = s.roi
        return (
            f"<labcam.RemoteCamera {self.url} {d.driver} {d.model!r} serial={d.serial} {w}x{h} "
            f"{s.pixel_format} exposure={s.exposure_ms:g} ms gain={s.gain_db:g} dB fps={s.fps:g}>"
        )


class RemoteRecording:
    """A recording the server runs, started by ``RemoteCamera.record``: the same handle as
    ``Camera.record``'s, following it over REST (``api/recordings/<id>``).

    ``id`` and ``name`` (inside the server's recordings folder) identify it. The recording does not
    depend on this object: dropping it, or this process ending, does not stop it (``stop()`` or
    ``with cam.record(...) as rec:`` does).
    """

    def __init__(self, camera: RemoteCamera, status: Mapping[str, Any]) -> None:
        self._camera = camera
        self._status: dict[str, Any] = dict(status)
        self.id = str(status["id"])
        self.name = str(status["name"])

    def status(self) -> dict[str, Any]:
        """The server's status now: ``state`` ("recording", "finishing", "done", "failed"),
        ``frames_written``, ``mb_per_s``, ``dropped``, ``error``, ...; the last one known once the
        recording has finished."""
        if self._status.get("state") not in ("done", "failed"):
            self._status = dict(self._camera._http.request("GET", f"api/recordings/{self.id}"))
        return dict(self._status)

    @property
    def progress(self) -> RecordingProgress:
        """``status()`` as a ``labcam.recording.RecordingProgress`` (``path`` is the name on the server)."""
        from .recording import RecordingProgress

        return _progress_from_status(RecordingProgress, self.status())

    @property
    def state(self) -> str:
        return str(self.status()["state"])

    @property
    def done(self) -> bool:
        """True once the server has closed the file (whether the recording succeeded or not)."""
        return self.status()["state"] in ("done", "failed")

    @property
    def error(self) -> RecordingError | None:
        """Why the recording failed (as the server said), or None."""
        from .recording import RecordingError

        st = self._status if self._status.get("state") in ("done", "failed") else self.status()
        if st.get("state") != "failed" and not st.get("error"):
            return None
        return RecordingError(str(st.get("error") or "the recording failed"), str(st.get("stop_reason") or "error"))

    def wait(self, timeout: float | None = None, *, raise_error: bool = True) -> bool:
        """Block until the server has finished the recording and closed its file.

        Returns False if ``timeout`` seconds passed first. If it failed, raises its
        ``RecordingError`` (``raise_error=False``: returns True and leaves it in ``error``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = RECORDING_POLL_MIN_S
        while not self.done:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # REST has no push: ask again after a short pause (growing, so a long recording costs
            # about two requests a second).
            time.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 1.5, RECORDING_POLL_MAX_S)
        error = self.error
        if raise_error and error is not None:
            raise error
        return True

    def stop(self, *, wait: bool = True, timeout: float | None = None) -> RecordingProgress:
        """End the recording: the server still writes the frames it queued, then closes the file.

        Returns the progress (final when ``wait`` is true and it finished within ``timeout``).
        Never raises for a failed recording: look at ``error``.
        """
        from .recording import RecordingProgress

        if self._status.get("state") not in ("done", "failed"):
            # The server answers once the file is closed, or after a few seconds with the state reached.
            self._status = dict(self._camera._http.request("POST", f"api/recordings/{self.id}/stop"))
        if wait:
            self.wait(timeout, raise_error=False)
        return _progress_from_status(RecordingProgress, self._status)

    def __enter__(self) -> RemoteRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        st = self._status
        target = f"/{st['frames_target']}" if st.get("frames_target") else ""
        return (
            f"<RemoteRecording {self.id} {self.name!r} on {self._camera.url} {st.get('state')} "
            f"{st.get('frames_written', 0)}{target} frames, dropped={st.get('dropped', 0)}>"
        )


def _progress_from_status(cls: Any, status: Mapping[str, Any]) -> Any:
    """A ``RecordingProgress`` from a status dict of the server (unknown fields ignored)."""
    from dataclasses import fields

    values = {f.name: status.get(f.name) for f in fields(cls)}
    values["path"] = str(status.get("name", ""))
    for name in ("frames_written", "bytes_written", "dropped_camera", "dropped_overflow", "buffered",
                 "buffer_capacity", "interruptions"):
        values[name] = int(values[name] or 0)
    for name in ("elapsed_s", "mb_per_s", "write_mb_per_s", "fps"):
        values[name] = float(values[name] or 0.0)
    return cls(**values)


def _reason(data: Any, default: str) -> str:
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) and reason else default


# -- conversions ---------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _settings_from_dict(d: dict[str, Any]) -> Settings:
    values = {k: d[k] for k in _SETTING_FIELDS if k in d}
    if "roi" in values:
        values["roi"] = tuple(int(v) for v in values["roi"])
    # A camera without a feature leaves its setting out (Settings.absent): hold a neutral value.
    neutral = {"gain_db": 0.0, "fps": 1000.0 / float(values.get("exposure_ms") or 1000.0),
               "roi": (0, 0, 0, 0), "trigger_mode": "free_running"}
    absent = frozenset(k for k in neutral if k not in values)
    return Settings(**{**{k: neutral[k] for k in absent}, **values}, absent=absent)


def _description_from_dict(d: dict[str, Any]) -> CameraDescription:
    known = {
        "driver", "model", "serial", "sensor_width", "sensor_height", "pixel_formats", "max_bit_depth",
        "firmware", "pixel_size_um",
    }
    values = {k: d[k] for k in known if k in d}
    values["pixel_formats"] = tuple(values.get("pixel_formats", ()))
    extra = {k: str(v) for k, v in d.items() if k not in known}
    return CameraDescription(**values, extra=extra)


def _specs_from_dict(d: dict[str, Any]) -> SettingSpecs:
    specs = {}
    for name, s in d.items():
        specs[name] = SettingSpec(
            name=name,
            kind=s["kind"],
            unit=s.get("unit", ""),
            minimum=s.get("minimum"),
            maximum=s.get("maximum"),
            choices=tuple(s.get("choices", ())),
            sensor=tuple(s.get("sensor", (0, 0))),  # type: ignore[arg-type]
            step=int(s.get("step", 1)),
            settable_while_streaming=bool(s.get("settable_while_streaming", True)),
        )
    return SettingSpecs(specs)


# -- finding the server -----------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def runtime_dir() -> Path:
    """Jupyter's runtime directory (``JUPYTER_RUNTIME_DIR``, else jupyter_core's default)."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:  # no Jupyter here: look where jupyter_core would on Linux/macOS
        return Path.home() / ".local" / "share" / "jupyter" / "runtime"
    return Path(jupyter_runtime_dir())


def running_jupyter_servers(directory: Path | None = None) -> list[dict[str, Any]]:
    """The Jupyter servers of this machine: their ``jpserver-*.json`` files whose process is alive."""
    directory = runtime_dir() if directory is None else directory
    servers = []
    for path in sorted(directory.glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written or removed right now
        if not isinstance(info, dict) or "pid" not in info:
            continue
        if _pid_alive(int(info["pid"])):
            info["_file"] = str(path)
            servers.append(info)
    return servers


def _server_url(info: dict[str, Any]) -> str:
    if info.get("sock"):
        raise CameraUnavailable(
            f"the Jupyter server in {info.get('_file')} listens on a unix socket ({info['sock']}), "
            "which labcam.connect() does not support: pass a http URL"
        )
    url = str(info.get("url") or "")
    if not url:
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://{info.get('hostname') or 'localhost'}:{info['port']}{info.get('base_url', '/')}"
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in ("0.0.0.0", "::", ""):  # a wildcard bind: talk to it on loopback
        port = f":{parts.port}" if parts.port else ""
        url = urllib.parse.urlunsplit((parts.scheme, f"127.0.0.1{port}", parts.path, "", ""))
    return url if url.endswith("/") else url + "/"


def _describe(servers: list[dict[str, Any]]) -> str:
    return "; ".join(f"{_server_url(s)} (root {s.get('root_dir')}, pid {s.get('pid')})" for s in servers)


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def discover_jupyter_server(directory: Path | None = None) -> tuple[str, str | None]:
    """(url, token) of the Jupyter server this kernel belongs to. See ``connect`` for the rules."""
    directory = runtime_dir() if directory is None else directory
    servers = running_jupyter_servers(directory)
    if not servers:
        raise CameraUnavailable(
            f"labcam.connect(): no running Jupyter server found (no live jpserver-*.json in {directory}). "
            "Outside a Jupyter server (a plain script, nbval) pass its address: "
            "labcam.connect('http://host:port/', token=...), or use labcam.open() for a camera in this process"
        )

    def pick(chosen: dict[str, Any]) -> tuple[str, str | None]:
        return _server_url(chosen), (chosen.get("token") or None)

    # 1. The server that started this kernel: jupyter_client tells a kernel its parent's pid.
    parents = {os.getppid()}
    if os.environ.get("JPY_PARENT_PID", "").isdigit():
        parents.add(int(os.environ["JPY_PARENT_PID"]))
    by_pid = [s for s in servers if int(s["pid"]) in parents]
    if len(by_pid) == 1:
        return pick(by_pid[0])
    # 2. The server whose root holds this notebook (JPY_SESSION_NAME, else the kernel's cwd);
    #    nested roots: the innermost one.
    session = os.environ.get("JPY_SESSION_NAME", "")
    where = Path(session) if session and os.path.isabs(session) else Path.cwd()
    holding = [s for s in servers if s.get("root_dir") and _within(where, Path(s["root_dir"]))]
    if holding:
        depth = max(len(Path(s["root_dir"]).resolve().parts) for s in holding)
        innermost = [s for s in holding if len(Path(s["root_dir"]).resolve().parts) == depth]
        if len(innermost) == 1:
            return pick(innermost[0])
        servers = innermost
    # 3. The only server running.
    if len(servers) == 1:
        return pick(servers[0])
    raise CameraUnavailable(
        f"labcam.connect(): {len(servers)} Jupyter servers could be this kernel's and none is its parent: "
        f"{_describe(servers)}. Choose one: labcam.connect(url, token=...)"
    )


def connect(url: str | None = None, *, token: str | None = None, timeout: float = 10.0) -> RemoteCamera:
    """A ``RemoteCamera`` for the camera of a labcam server: the same API as ``labcam.open()``.

    With a ``url``: any Jupyter server with the labcam extension (``http://host:8888/base/``; the
    camera is under ``labcam/``) or a ``labcam serve`` server (``http://host:8001/``); which one is
    found out by asking ``labcam/api/camera``, then ``api/camera``. ``token`` is the server's token
    (Jupyter's, or ``labcam serve --token``); a URL copied from Jupyter's log with ``?token=...``
    works as it is.

    Without a ``url``, in this order:

    1. ``LABCAM_URL`` (and ``LABCAM_TOKEN``) from the environment, if set;
    2. the Jupyter server that started this kernel: the live ``jpserver-<pid>.json`` files in Jupyter's
       runtime directory (``JUPYTER_RUNTIME_DIR`` or jupyter_core's default; files of dead processes
       are ignored) are matched against the kernel's parent process (``JPY_PARENT_PID``, set by
       jupyter_client, or the OS parent pid);
    3. else the server whose ``root_dir`` holds this notebook (``JPY_SESSION_NAME``, else the current
       directory), the innermost if roots are nested;
    4. else the only server running.

    The token comes from that server's json file. No server, or several that fit equally: a
    ``CameraUnavailable`` that lists what was found and says to pass ``url``/``token``.

    Errors: ``CameraUnavailable`` when nothing answers ("cannot reach labcam at http://…: connection
    refused") or no labcam is there; ``AuthenticationError`` (a ``PermissionError``) for a missing or
    wrong token; later, ``SettingError`` for invalid settings, as in-process.
    """
    if url is None and os.environ.get("LABCAM_URL"):
        url = os.environ["LABCAM_URL"]
        token = token if token is not None else os.environ.get("LABCAM_TOKEN") or None
    if url is None:
        url, found_token = discover_jupyter_server()
        token = token if token is not None else found_token
    if not re.match(r"^https?://", url):
        raise ValueError(f"url={url!r} is not allowed: an http:// or https:// address")
    # A URL pasted from Jupyter's log carries its token: take it from there.
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        query_token = urllib.parse.parse_qs(parts.query).get("token", [None])[-1]
        token = token if token is not None else query_token
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    base = url if url.endswith("/") else url + "/"
    # A Jupyter server serves the camera under labcam/; labcam serve at its root. A URL that already
    # ends in labcam/ answers on the second probe.
    tried = []
    for root in (urllib.parse.urljoin(base, "labcam/"), base):
        http = _Http(root, token, timeout)
        try:
            http.request("GET", "api/camera")
        except CameraUnavailable as exc:
            if "404" not in str(exc):
                raise  # unreachable: the same for both probes
            tried.append(urllib.parse.urljoin(root, "api/camera"))
            continue
        return RemoteCamera(root, token=token, timeout=timeout)
    raise CameraUnavailable(
        f"no labcam at {base}: {' and '.join(tried)} answered 404 "
        "(for Jupyter: is the labcam_jupyter server extension enabled? `jupyter server extension list`)"
    )


__all__ = [
    "AuthenticationError",
    "RemoteCamera",
    "RemoteFrameStream",
    "RemoteRecording",
    "connect",
    "discover_jupyter_server",
    "running_jupyter_servers",
]
