"""How ``labcam.connect()`` talks to a server: JSON over HTTP, and frames over the raw WebSocket.

- ``HttpClient``: small synchronous JSON-over-HTTP client (``urllib``, no proxies) that turns the
  server's error answers into labcam's errors (``SettingError``, ``CameraUnavailable``, ...).
- ``FrameSocket``: one ``ws/camera/frames`` connection (tornado's client): the camera's own numbers
  at full bit depth, one binary message per frame, no encoding.
- ``IOThread``: the one private asyncio loop in a daemon thread that runs every WebSocket of this
  process, so the sync API works inside Jupyter kernels whose own loop is already running, and
  ``async for`` works from any loop.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from ..errors import CameraDisconnected, CameraError, CameraUnavailable, FrameTimeout, LabcamError, SettingError
from ..frame import Frame
from ..wire import decode_raw_frame

T = TypeVar("T")

# Frames can be large (4096x3000 mono16 is 24 MB); tornado's client refuses messages above 10 MiB
# by default.
MAX_FRAME_MESSAGE = 1024 * 1024 * 1024
# Extra time allowed for the network on top of a frame timeout (the first frame of a connection
# also pays for the handshake and possibly the camera starting).
NETWORK_SLACK_S = 2.0


class AuthenticationError(LabcamError, PermissionError):
    """The server refused the request: no token, or a wrong one (HTTP 403)."""


# -- the private IO loop -----------------------------------------------------------------------------
class IOThread:
    """One asyncio loop in a daemon thread, shared by every ``RemoteCamera`` of this process."""

    _lock = threading.Lock()
    _instance: IOThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="labcam-remote-io", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> IOThread:
        with cls._lock:
            if cls._instance is None or not cls._instance._thread.is_alive():
                cls._instance = IOThread()
            return cls._instance

    def submit(self, coro: Awaitable[T]) -> Future[T]:
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
def error_message(body: bytes) -> str:
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


def _numpy_scalar(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy numbers (``np.int64(5)``, ``np.float32``) as Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# No proxies: the WebSocket client (tornado) never uses them, and an http_proxy meant for the
# internet must not swallow requests to a camera server on the lab network or loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpClient:
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
        data = None if body is None else json.dumps(body, default=_numpy_scalar).encode()
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
                raise errors[exc.code](error_message(payload), data) from None
            raise self.http_error(url, exc.code, payload) from None
        except (urllib.error.URLError, OSError) as exc:
            raise _reach_error(self.root, exc) from None
        return json.loads(payload) if payload else None

    def http_error(self, url: str, code: int, body: bytes) -> Exception:
        message = error_message(body)
        if code == 403:
            how = "the token was refused" if self.token else "it needs a token: labcam.connect(url, token=...)"
            if b'"role_needed"' in body:  # a valid token of a role that may not do this
                how = "the token's role may not do this"
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
class FrameSocket:
    """One ``ws/camera/frames`` connection, used from one caller thread (sync) or loop (async)."""

    def __init__(self, conn: Any, root: str) -> None:
        self._conn = conn
        self._root = root
        self.outstanding = 0  # frames asked for (mode=latest) and not yet received

    @classmethod
    async def open(cls, http: HttpClient, query: dict[str, Any]) -> FrameSocket:
        http_url = urllib.parse.urljoin(http.root, "ws/camera/frames") + "?" + urllib.parse.urlencode(query)
        ws_url = "ws" + http_url[len("http") :]  # http→ws, https→wss
        request = HTTPRequest(ws_url, headers=http.headers(), connect_timeout=http.timeout, request_timeout=http.timeout)
        try:
            conn = await websocket_connect(request, max_message_size=MAX_FRAME_MESSAGE)
        except HTTPClientError as exc:
            body = exc.response.body if exc.response is not None and exc.response.body else b""
            reason = error_message(body) if body else (exc.message or "")
            raise http.http_error(http_url, exc.code, reason.encode()) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise _reach_error(http.root, exc) from None
        try:  # the small "next" requests must not wait for Nagle
            conn.protocol.stream.set_nodelay(True)
        except AttributeError:
            pass
        return cls(conn, http.root)

    async def request(self, frames: int = 1, fresh: bool = False) -> None:
        msg: dict[str, Any] = {"type": "next"}
        if frames != 1:
            msg["frames"] = frames
        if fresh:
            msg["fresh"] = True
        await self._conn.write_message(json.dumps(msg))
        self.outstanding += frames

    async def receive(self, timeout: float | None) -> tuple[Frame, dict[str, Any]]:
        """The next frame message; ``FrameTimeout`` if none within ``timeout`` seconds."""
        try:
            message = await asyncio.wait_for(self._conn.read_message(), timeout)
        except asyncio.TimeoutError:
            raise FrameTimeout(f"no frame from {self._root} within {timeout:g} s") from None
        if message is None:
            code, reason = self._conn.close_code, self._conn.close_reason
            if code == 1000:
                raise CameraError(f"the server ended the frame stream early ({reason or 'done'})")
            raise CameraDisconnected(
                f"the frame stream from {self._root} closed ({code}: {reason or 'connection lost'})"
            )
        if isinstance(message, str):  # an error answer to a request of ours: a bug, say it
            raise CameraError(f"labcam server: {error_message(message.encode())}")
        if self.outstanding:
            self.outstanding -= 1
        return decode_raw_frame(message)

    async def next_latest(self, timeout: float | None, fresh: bool = False) -> Frame:
        """Pull one frame (mode=latest): ask only when no earlier request is still outstanding."""
        if self.outstanding == 0 or fresh:
            await self.request(fresh=fresh)
        frame, _ = await self.receive(timeout)
        return frame

    def close(self) -> None:
        self._conn.close()


__all__ = ["AuthenticationError", "FrameSocket", "HttpClient", "IOThread", "NETWORK_SLACK_S"]
