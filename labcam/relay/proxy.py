"""REST requests and raw frames, passed through to the relayed host with its token.

- ``RestProxyHandler``: any labcam HTTP route (``api/...``, the test page, ``static/...``) fetched
  from the host with tornado's ``AsyncHTTPClient``; status, body and the headers that matter come
  back unchanged. ``api/camera`` and ``api/camera/stats`` say that they are relayed (and the stats
  add the relay's own figures).
- ``RawFramesPipe``: ``ws/camera/frames`` (what ``labcam.connect()`` reads) as one upstream
  connection per local one: raw frames are not shared, since each connection has its own position
  (``latest``, ``fresh``, ``count``, ``all``). Each message is written locally before the next is
  read from the host, so TCP carries the local reader's pace back to the host, whose bounded buffer
  (``mode=all``) or latest-wins rule (``latest``) decides what a slow reader misses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import Any

from tornado import httpclient, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler, websocket_connect

from .. import wire
from .fanout import StreamRelay
from .upstream import CONNECT_TIMEOUT_S, MAX_UPSTREAM_MESSAGE

log = logging.getLogger("labcam.relay")

# Snaps and a recording's stop may take seconds on the host (it waits for a frame, or a file).
REQUEST_TIMEOUT_S = 30.0
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "If-None-Match", "If-Modified-Since")
FORWARDED_RESPONSE_HEADERS = (
    "Content-Type", "Content-Disposition", "Cache-Control", "ETag", "Last-Modified", "Location",
)
# Routes whose JSON answer says it is relayed: (path, what to add).
_RELAYED_INFO = ("api/camera", "api/camera/stats")


def _query_without_token(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return urllib.parse.urlencode([(k, v) for k, v in pairs if k != "token"])


class RestProxyHandler(web.RequestHandler):
    """Logic of every relayed HTTP route; the first path argument is the path on the host.

    Hosts put their auth in front of every method they mount, and narrow ``SUPPORTED_METHODS``
    where only reading makes sense (pages); HEAD is not relayed.
    """

    SUPPORTED_METHODS = ("GET", "PATCH", "PUT", "POST", "DELETE")  # type: ignore[assignment]

    def initialize(self, relay: StreamRelay, **kwargs: Any) -> None:
        self.relay = relay
        super().initialize(**kwargs)

    async def relay_request(self, path: str) -> None:
        address = self.relay.target.address()
        if address is None:
            self._error(503, "no labcam host is running to relay")
            return
        method = self.request.method or "GET"
        headers = {h: self.request.headers[h] for h in FORWARDED_REQUEST_HEADERS if h in self.request.headers}
        body = self.request.body if method in ("POST", "PUT", "PATCH") else None
        request = HTTPRequest(
            address.join(path, _query_without_token(self.request.query)), method=method,
            headers={**headers, **address.headers()}, body=body, allow_nonstandard_methods=True,
            follow_redirects=False, connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
            decompress_response=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            self._error(503, f"the camera host {address.url} cannot be reached: {exc}")
            return
        if response.code == 599:
            self._error(503, f"the camera host {address.url} cannot be reached: {response.error}")
            return
        data = response.body or b""
        if path in _RELAYED_INFO and response.code == 200:
            data = self._annotate(path, data)
        self.set_status(response.code, response.reason)
        for name in FORWARDED_RESPONSE_HEADERS:
            value = response.headers.get(name)
            if value is not None:
                self.set_header(name, self._local_location(address.url, path, value) if name == "Location" else value)
        for name, value in response.headers.get_all():
            if name.lower().startswith("x-labcam-"):
                self.set_header(name, value)
        if response.code == 304:
            self.finish()
        else:
            self.finish(data)

    def _local_location(self, host_url: str, path: str, location: str) -> str:
        """A host path in ``Location`` (a new recording's URL) as the same place under this relay."""
        host_root = urllib.parse.urlsplit(host_url).path
        local_root = self.request.path[: len(self.request.path) - len(path)] if self.request.path.endswith(path) else None
        if local_root is not None and location.startswith(host_root):
            return local_root + location[len(host_root):]
        return location

    def _annotate(self, path: str, data: bytes) -> bytes:
        try:
            doc = json.loads(data)
        except ValueError:
            return data
        if not isinstance(doc, dict):
            return data
        doc["relayed_from"] = self.relay.target.url
        if path == "api/camera/stats":
            doc["relay"] = self.relay.stats()
        return wire.dumps(doc).encode()

    def _error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": message}))

    async def get(self, path: str = "") -> None:
        await self.relay_request(path)

    async def patch(self, path: str = "") -> None:
        await self.relay_request(path)

    async def put(self, path: str = "") -> None:
        await self.relay_request(path)

    async def post(self, path: str = "") -> None:
        await self.relay_request(path)

    async def delete(self, path: str = "") -> None:
        await self.relay_request(path)


class RawFramesPipe(WebSocketHandler):
    """Logic of a relayed ``ws/camera/frames``: one upstream connection, messages passed both ways.

    The upstream is opened before the local handshake, so what the host refuses (a bad query: 400
    with its message; a full host: its close) reaches the client the same way as from the host.
    """

    client_id = ""

    def initialize(self, relay: StreamRelay, **kwargs: Any) -> None:
        self.relay = relay
        self._up: WebSocketClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        super().initialize(**kwargs)

    @property
    def max_message_size(self) -> int:
        return 64 * 1024

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        path = args[0] if args and isinstance(args[0], str) else "ws/camera/frames"
        address = self.relay.target.address()
        if address is None:
            self._refuse(503, "no labcam host is running to relay")
            return
        request = HTTPRequest(address.ws(path, _query_without_token(self.request.query)), headers=address.headers(),
                              connect_timeout=CONNECT_TIMEOUT_S, request_timeout=CONNECT_TIMEOUT_S)
        try:
            self._up = await websocket_connect(request, max_message_size=MAX_UPSTREAM_MESSAGE)
        except httpclient.HTTPClientError as exc:
            body = exc.response.body if exc.response is not None else None
            message = _error_of(body) or f"the camera host answered {exc.code}"
            self._refuse(exc.code if exc.code != 599 else 503, message)
            return
        except OSError as exc:
            self._refuse(503, f"the camera host {address.url} cannot be reached: {exc}")
            return
        await super().get(*args, **kwargs)

    def _refuse(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": message}))

    def open(self, *args: Any, **kwargs: Any) -> Any:
        self.relay.pipes.add(self)
        self.set_nodelay(True)
        self._task = asyncio.ensure_future(self._pump())
        return super().open(*args, **kwargs)

    async def _pump(self) -> None:
        up = self._up
        assert up is not None
        try:
            while True:
                message = await up.read_message()
                if message is None:
                    self.close(up.close_code or 1011, (up.close_reason or "the camera host closed the connection")[:120])
                    return
                await self.write_message(message, binary=isinstance(message, bytes))
        except (WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_message(self, message: str | bytes) -> None:
        if self._up is not None:
            fut = self._up.write_message(message, binary=isinstance(message, bytes))
            fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)

    def on_close(self) -> None:
        self.relay.pipes.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._up is not None:
            self._up.close(1000, "client gone")
        return super().on_close()

    def shutdown(self, code: int, reason: str) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.close(code, reason)


def _error_of(body: bytes | None) -> str | None:
    try:
        doc = json.loads(body or b"")
    except ValueError:
        return None
    return str(doc["error"]) if isinstance(doc, dict) and "error" in doc else None


__all__ = ["RawFramesPipe", "RestProxyHandler"]
