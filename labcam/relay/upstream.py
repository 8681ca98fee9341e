"""One WebSocket to the host's stream per distinct set of stream options, shared by local viewers.

An ``Upstream`` is opened with the options (query parameters) of the viewers it serves and treats
them opaquely: the host validates and applies them, so options other issues add (views, encodings)
are relayed without the relay knowing them. What it reads:

- frames (binary, or ``json`` text starting with ``{"type": "frame"``): offered to every viewer of
  this upstream as the host sent them, bytes unchanged: the host encoded them once;
- replies to requests the viewers forwarded: each went up with a request id of the upstream's own
  (``u<n>``), so the reply finds its viewer and gets that viewer's id back (or none);
- ``stats``: each viewer's own figures with the camera's from the host;
- broadcasts (``settings``, ``status``, recording news): to every viewer; a ``status`` says it is
  relayed.

When the host goes away, the viewers get ``{"type": "status", "state": "lost", ...}`` (the engine's
status message), requests still waiting get an ``error``, and the upstream reconnects with back-off
(0.25 s doubling to 5 s), finding the host afresh each time (``RelayTarget``). When it is back, each
viewer gets ``status`` and ``settings`` and frames flow again on the same viewer socket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from .. import wire
from ..wire import CLOSE_BAD_OPTION, ProtocolError
from .target import RelayTarget

log = logging.getLogger("labcam.relay")

BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 5.0
# Keep-alive pings on the upstream: a host that vanished without closing (a cable) is noticed.
UPSTREAM_PING_S = 5.0
# Frames can be big (a raw-encoded full frame); the host bounds what it sends.
MAX_UPSTREAM_MESSAGE = 256 * 1024 * 1024
# Requests one viewer may have waiting for the host's answer (the host bounds each kind too).
MAX_PENDING_PER_VIEWER = 32
_JSON_FRAME = '{"type": "frame"'
_BINARY_FRAME = b'{"type":"frame"'

Key = tuple[str, tuple[tuple[str, str], ...]]


class Viewer(Protocol):
    """What an upstream needs of a local viewer (``labcam.relay.fanout.RelayStreamHandler``)."""

    client_id: str
    paused: bool
    greeted: bool

    def offer(self, message: str | bytes) -> None: ...

    def send_control(self, text: str | bytes) -> None: ...

    def send_stats(self, host_stats: Mapping[str, Any]) -> None: ...

    def refuse(self, message: str) -> None: ...


class Relay(Protocol):
    """What an upstream needs of its relay (``labcam.relay.fanout.StreamRelay``)."""

    target: RelayTarget

    def drop(self, upstream: Upstream) -> None: ...

    def release(self, upstream: Upstream) -> None: ...


# -- options as a key -----------------------------------------------------------------------------
def _canonical(value: str) -> str:
    """A query value in one spelling: numbers as numbers ("10.0" and "10" alike), words lower case."""
    parts = []
    for part in value.split(","):
        part = part.strip()
        try:
            number = float(part)
        except ValueError:
            parts.append(part.lower())
            continue
        if math.isfinite(number) and number == int(number):
            parts.append(str(int(number)))
        else:
            parts.append(repr(number))
    return ",".join(parts)


def stream_key(path: str, query: Mapping[str, str]) -> Key:
    """The key of a viewer's stream: its path on the host and its options in one spelling."""
    return path, tuple(sorted((name, _canonical(value)) for name, value in query.items() if value != ""))


def query_value(value: Any) -> str | None:
    """A ``configure`` field's value in query form (None: back to the default, no parameter)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def merged_query(query: Mapping[str, str], changes: Mapping[str, Any]) -> dict[str, str]:
    """``query`` with a ``configure`` message's ``changes`` applied."""
    merged = dict(query)
    for name, value in changes.items():
        text = query_value(value)
        if text is None:
            merged.pop(name, None)
        else:
            merged[name] = text
    return merged


def _with_request_id(msg: dict[str, Any], request_id: Any) -> dict[str, Any]:
    msg = dict(msg)
    msg.pop("request_id", None)
    return wire.with_request_id(msg, request_id)


# -- the upstream connection ------------------------------------------------------------------------
class Upstream:
    """One WebSocket to the host's stream with one set of options, and the viewers that follow it."""

    def __init__(self, relay: Relay, key: Key, path: str, query: Mapping[str, str]) -> None:
        self.relay = relay
        self.key = key
        self.path = path
        self.query = dict(query)
        self.viewers: set[Viewer] = set()
        self.connected: dict[str, Any] | None = None  # the host's last `connected`
        self._connected_at = 0.0
        self.settings: dict[str, Any] | None = None
        self.state = "connecting"
        self.state_message = ""
        self.up = False
        loop = asyncio.get_running_loop()
        self.first: asyncio.Future[dict[str, Any]] = loop.create_future()  # the first `connected`, or refused
        self.first.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        self._refusal: str | None = None
        self._pending: dict[str, tuple[Viewer, Any, str]] = {}
        self._ids = itertools.count(1)
        self._conn: WebSocketClientConnection | None = None
        self._gone: asyncio.Future[None] | None = None
        self._paused_upstream = False
        self._closed = False
        self.frames_in = 0
        self.connections = 0
        self._task = asyncio.ensure_future(self._run())

    # -- viewers ------------------------------------------------------------------------------------
    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        self.update_pause()

    def remove(self, viewer: Viewer, *, gone: bool = True) -> None:
        """``viewer`` leaves: ``gone`` (it closed) forgets its requests; a viewer that only moves to
        another upstream still gets the replies to what it asked here."""
        self.viewers.discard(viewer)
        if gone:
            for uid in [u for u, (v, _, _) in self._pending.items() if v is viewer]:
                del self._pending[uid]
        self.update_pause()

    def greet(self, viewer: Viewer) -> None:
        """What a viewer that just joined gets: ``connected`` when the host is known, else ``lost``."""
        if self.connected is not None:
            viewer.send_control(self.connected_for(viewer))
            viewer.greeted = True
            viewer.send_control(self._status_text())  # "relayed from <url>" (and whether it is lost)
        elif self.state == "lost":
            viewer.send_control(self._status_text())

    def connected_for(self, viewer: Viewer) -> str:
        """The host's ``connected``, as this viewer's: its id, the current settings, state and clock."""
        assert self.connected is not None
        msg = dict(self.connected)
        msg["client_id"] = viewer.client_id
        if isinstance(msg.get("server_time"), (int, float)):
            msg["server_time"] = msg["server_time"] + (time.time() - self._connected_at)
        msg["settings"] = self.settings
        msg["state"] = self.state
        msg["stream"] = self.stream_for(viewer)
        msg["relayed_from"] = self.relay.target.url
        return wire.dumps(msg)

    def stream_for(self, viewer: Viewer) -> dict[str, Any]:
        stream = dict((self.connected or {}).get("stream") or {})
        stream["paused"] = viewer.paused
        return stream

    def update_pause(self) -> None:
        """Pause the host's stream for this upstream while none of its viewers wants frames."""
        idle = not any(not v.paused for v in self.viewers)
        if self._conn is not None and idle != self._paused_upstream:
            self._paused_upstream = idle
            self._write({"type": "pause" if idle else "resume"})

    @property
    def waiting(self) -> int:
        """Requests sent on this upstream whose reply has not come yet."""
        return len(self._pending)

    # -- requests -------------------------------------------------------------------------------------
    def forward(self, viewer: Viewer, msg: dict[str, Any]) -> None:
        """Send a viewer's request to the host; its reply will come back to the viewer alone."""
        kind = msg.get("type")
        their_id = msg.get("request_id")
        if self._conn is None:
            raise ProtocolError(
                f"{kind} not carried out: the camera host {self.relay.target.url} is not connected"
                + (f" ({self.state_message})" if self.state_message else ""),
                request=kind, request_id=their_id,
            )
        if sum(1 for v, _, _ in self._pending.values() if v is viewer) >= MAX_PENDING_PER_VIEWER:
            raise ProtocolError(f"too many requests waiting ({MAX_PENDING_PER_VIEWER})", request=kind, request_id=their_id)
        uid = f"u{next(self._ids)}"
        self._pending[uid] = (viewer, their_id, str(kind))
        self._write({**msg, "request_id": uid})

    def _write(self, msg: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            fut = conn.write_message(wire.dumps(msg))
        except WebSocketClosedError:
            return  # it is closing: the run loop notices and reconnects
        fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)

    # -- the connection -----------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while not self._closed:
            address = self.relay.target.address()
            reason = "no labcam host is running"
            if address is not None:
                url = address.ws(self.path, urllib.parse.urlencode(self.query))
                request = HTTPRequest(url, headers=address.headers(), connect_timeout=CONNECT_TIMEOUT_S,
                                      request_timeout=CONNECT_TIMEOUT_S)
                try:
                    conn = await websocket_connect(
                        request, on_message_callback=self._on_message, ping_interval=UPSTREAM_PING_S,
                        ping_timeout=2 * UPSTREAM_PING_S, max_message_size=MAX_UPSTREAM_MESSAGE,
                    )
                except asyncio.CancelledError:
                    raise
                except HTTPClientError as exc:
                    if exc.code in (400, 404) and not self.first.done():
                        # Not a host that is away: it has no such stream (an unknown camera id).
                        self._refused(f"the camera host {address.url} has no {self.path} ({exc.code})")
                        return
                    reason = f"cannot reach {address.url} ({exc})"
                except Exception as exc:
                    reason = f"cannot reach {address.url} ({exc})"
                else:
                    self.connections += 1
                    self._gone = asyncio.get_running_loop().create_future()
                    self._conn = conn
                    self._paused_upstream = False
                    await self._gone
                    self._conn = None
                    if self.up:
                        delay = BACKOFF_MIN_S  # it was up: the first retry comes soon
                    if conn.close_code == CLOSE_BAD_OPTION:
                        self._refused(self._refusal or conn.close_reason or "the host refused these stream options")
                        return
                    why = " ".join(str(x) for x in (conn.close_code, conn.close_reason) if x)
                    reason = f"the camera host {address.url} closed the stream" + (f" ({why})" if why else "")
            if self._closed:
                return
            self._lost(reason)
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_MAX_S)

    def close(self) -> None:
        """End this upstream (its last viewer left)."""
        self._closed = True
        if self._conn is not None:
            self._conn.close(1000, "relay viewers gone")
        self._task.cancel()
        if not self.first.done():
            self.first.cancel()
        self._fail_pending("the stream closed before the camera host answered")

    def _refused(self, message: str) -> None:
        if not self.first.done():
            self.first.set_exception(ProtocolError(message))
        for viewer in list(self.viewers):
            viewer.refuse(message)
        self.relay.drop(self)

    def _lost(self, reason: str) -> None:
        self.up = False
        self._fail_pending("the camera host went away")
        if not self.viewers:
            self.relay.release(self)
            return
        if self.state != "lost":
            log.warning("relay: lost %s (%s); retrying", self.relay.target.url, reason)
            self.state, self.state_message = "lost", reason
            text = self._status_text()
            for viewer in list(self.viewers):
                viewer.send_control(text)

    def _fail_pending(self, why: str) -> None:
        """Answer every request still waiting with an ``error`` saying ``why``."""
        pending, self._pending = self._pending, {}
        for viewer, their_id, kind in pending.values():
            viewer.send_control(wire.error_message(f"{kind} not answered: {why}", kind, their_id))

    def _status_text(self) -> str:
        url = self.relay.target.url
        message = f"relayed from {url}" + (f": {self.state_message}" if self.state_message else "")
        return wire.status_message(self.state, message)

    # -- what the host sends -------------------------------------------------------------------------
    def _on_message(self, message: str | bytes | None) -> None:
        try:
            self._read(message)
        except Exception:  # a bug must cost one message, never the upstream
            log.exception("relay: handling a message from %s failed", self.relay.target.url)

    def _read(self, message: str | bytes | None) -> None:
        if message is None:
            if self._gone is not None and not self._gone.done():
                self._gone.set_result(None)
            return
        if isinstance(message, bytes):
            if message[4:19] == _BINARY_FRAME:
                self._frame(message)
                return
            try:
                header, view, start = wire.split_binary(message)
            except ValueError:
                return
            if header.get("type") == "frame":
                self._frame(message)
            else:  # a binary snap: the reply to one viewer
                self._reply(header, lambda rid: wire.pack_binary(_with_request_id(header, rid), view[start:]))
            return
        if message.startswith(_JSON_FRAME):
            self._frame(message)
            return
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get("type") == "frame":
            self._frame(message)
        elif not self._reply(msg, lambda rid: wire.dumps(_with_request_id(msg, rid))):
            self._news(msg, message)

    def _frame(self, message: str | bytes) -> None:
        self.frames_in += 1
        for viewer in list(self.viewers):
            viewer.offer(message)

    def _reply(self, msg: dict[str, Any], as_reply: Any) -> bool:
        """Route a reply to the viewer that asked; False when ``msg`` answers none of them."""
        uid = msg.get("request_id")
        entry = self._pending.pop(uid, None) if isinstance(uid, str) else None
        if entry is None:
            return False
        viewer, their_id, _ = entry
        viewer.send_control(as_reply(their_id))
        if not self.viewers and not self._pending:
            self.relay.release(self)  # kept open only for this reply: every viewer had moved on
        if msg.get("type") == "settings":
            # The host answered our connection with the id instead of its broadcast: the other
            # viewers of this upstream still get the broadcast.
            self.settings = msg.get("settings")
            plain = wire.settings_message(msg.get("settings") or {})
            for other in list(self.viewers):
                if other is not viewer:
                    other.send_control(plain)
        return True

    def _news(self, msg: dict[str, Any], text: str) -> None:
        kind = msg.get("type")
        if kind == "connected":
            self._on_connected(msg)
            return
        if kind == "configured":
            return  # the answer to our own pause/resume
        if kind == "error" and msg.get("request") == "connect":
            self._refusal = str(msg.get("message"))
            return
        if kind == "stats":
            for viewer in list(self.viewers):
                viewer.send_stats(msg)
            return
        if kind == "status":
            self.state, self.state_message = str(msg.get("state")), str(msg.get("message") or "")
            text = self._status_text()
        elif kind == "settings":
            self.settings = msg.get("settings")
        for viewer in list(self.viewers):
            viewer.send_control(text)

    def _on_connected(self, msg: dict[str, Any]) -> None:
        self.connected = msg
        self._connected_at = time.time()
        self.settings = msg.get("settings")
        was_lost = self.state == "lost"
        self.state, self.state_message = str(msg.get("state")), ""
        self.up = True
        if not self.first.done():
            self.first.set_result(msg)
        if was_lost:
            log.info("relay: %s is back", self.relay.target.url)
        self.update_pause()
        status = self._status_text()
        settings = wire.settings_message(self.settings or {})
        for viewer in list(self.viewers):
            if not viewer.greeted:
                self.greet(viewer)
            else:  # back after a loss: same socket, fresh state
                viewer.send_control(status)
                viewer.send_control(settings)

    def figures(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "options": dict(self.query),
            "viewers": len(self.viewers),
            "state": self.state,
            "up": self.up,
            "frames_in": self.frames_in,
            "connections": self.connections,
        }


__all__ = ["Upstream", "merged_query", "query_value", "stream_key"]
