"""The local viewers of a relayed stream, and the ``StreamRelay`` that gives each one its upstream.

A viewer (``RelayStreamHandler``) speaks the stream protocol (docs/protocol.md) to its client as
the host would. Its frames come from its ``Upstream`` (one per distinct options, see
``labcam.relay.upstream``) through its own ``FrameWindow``: at most ``MAX_IN_FLIGHT`` frames in
flight, acknowledged by WebSocket pongs, a one-frame slot where a newer frame replaces a waiting
one. The upstream never waits for a viewer, so a slow viewer never slows the host or the others.

What a viewer asks:

- ``configure``: moves the viewer to the upstream of its new options (opened first, so the host
  validates them: its refusal is this viewer's ``error``, and the viewer stays where it was);
- ``pause``/``resume``: local; an upstream none of whose viewers wants frames pauses the host's
  stream for it;
- everything else (settings, snap, record, ping, and requests other issues add such as probe):
  forwarded to the host, whose reply comes back to this viewer only, with its ``request_id``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from tornado.websocket import WebSocketClosedError

from .. import wire
from ..flow import FrameWindow
from ..server.replies import FRAME_PING, RTT_PING, BoundedReplies
from ..wire import ProtocolError, StreamOptions
from .target import RelayTarget
from .upstream import Upstream, merged_query, stream_key

log = logging.getLogger("labcam.relay")

MAX_IN_FLIGHT = 2  # as the host's stream (labcam.server.stream)
PONG_FALLBACK_S = 2.0
STREAM_SNDBUF = 64 * 1024
# How long a viewer's configure waits for the host to accept the new options.
MOVE_TIMEOUT_S = 10.0
LOCAL_TYPES = ("configure", "pause", "resume")


def parse_request(message: str | bytes) -> dict[str, Any]:
    """A viewer's message: a JSON object with a string ``type`` and a valid ``request_id``.

    Types are not checked here (the host knows which it takes); anything else is refused with the
    protocol's own error (``ProtocolError``).
    """
    try:
        msg = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        wire.parse_control(message)  # raises the protocol's error for what is wrong
        raise ProtocolError("a message must be a JSON object with a 'type'")
    wire.parse_request_id(msg.get("request_id"), msg["type"])
    return msg


class StreamRelay:
    """Every relayed viewer of one host, and the upstreams they follow (one per distinct options)."""

    def __init__(self, target: RelayTarget, *, max_clients: int = 16) -> None:
        self.target = target
        self.max_clients = int(max_clients)
        self.upstreams: dict[Any, Upstream] = {}
        self.viewers: dict[str, RelayStreamHandler] = {}
        self.pipes: set[Any] = set()  # raw-frame connections (labcam.relay.proxy), closed with us
        self._ids = itertools.count(1)
        self.closed = False
        self.connections_total = 0
        self.connections_refused = 0

    # -- viewers ----------------------------------------------------------------------------------------
    def register(self, viewer: RelayStreamHandler) -> str | None:
        if self.closed or len(self.viewers) >= self.max_clients:
            self.connections_refused += 1
            return None
        viewer.client_id = f"r{next(self._ids)}"
        self.viewers[viewer.client_id] = viewer
        self.connections_total += 1
        return viewer.client_id

    def unregister(self, viewer: RelayStreamHandler) -> None:
        self.viewers.pop(viewer.client_id, None)
        upstream = viewer.upstream
        if upstream is not None:
            upstream.remove(viewer)
            viewer.upstream = None
            self.release(upstream)

    def upstream_for(self, path: str, query: Mapping[str, str]) -> Upstream:
        """The upstream of these options, opened if there is none yet."""
        key = stream_key(path, query)
        upstream = self.upstreams.get(key)
        if upstream is None:
            upstream = self.upstreams[key] = Upstream(self, key, path, query)
        return upstream

    def attach(self, viewer: RelayStreamHandler, path: str, query: Mapping[str, str]) -> Upstream:
        upstream = self.upstream_for(path, query)
        upstream.add(viewer)
        viewer.upstream = upstream
        return upstream

    async def move(self, viewer: RelayStreamHandler, changes: Mapping[str, Any]) -> Upstream:
        """Move ``viewer`` to the upstream of its options with ``changes``; ``ProtocolError`` (the
        host's refusal, or a field that is no stream option) leaves it where it was."""
        current = viewer.upstream
        assert current is not None
        query = merged_query(current.query, changes)
        target = self.upstream_for(current.path, query)
        try:
            connected = await asyncio.wait_for(asyncio.shield(target.first), MOVE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.release(target)
            raise ProtocolError(f"the camera host {self.target.url} did not take the new options in time") from None
        except ProtocolError:
            self.release(target)
            raise
        except asyncio.CancelledError:
            if not target.first.cancelled():
                raise  # this task's own cancellation (the viewer left)
            # The new upstream gave up before the host answered (it went away meanwhile).
            raise ProtocolError(f"the camera host {self.target.url} is not connected: the options stay as they were") from None
        options = [name for name in (connected.get("stream") or {}) if name not in ("format", "paused")]
        unknown = [name for name in changes if name not in options]
        if unknown:
            self.release(target)
            raise ProtocolError(f"{unknown[0]!r} is not a stream option: configure takes {', '.join(options)}")
        if viewer.upstream is not current or viewer.closed:  # it left (or moved) meanwhile
            self.release(target)
            return current
        if target is not current:
            current.remove(viewer, gone=False)
            viewer.upstream = target
            target.add(viewer)
            self.release(current)
        return target

    def release(self, upstream: Upstream) -> None:
        """Close an upstream nobody follows any more, once no request sent on it waits for its reply
        (it answers them first: ``Upstream`` calls this again when the last one came)."""
        if not upstream.viewers and not upstream.waiting and self.upstreams.get(upstream.key) is upstream:
            del self.upstreams[upstream.key]
            upstream.close()

    def drop(self, upstream: Upstream) -> None:
        """An upstream the host refused: forget it."""
        if self.upstreams.get(upstream.key) is upstream:
            del self.upstreams[upstream.key]

    # -- figures and life cycle ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The relay's part of ``api/camera/stats``: its upstreams and its viewers."""
        return {
            "relayed_from": self.target.url,
            "upstreams": [u.figures() for u in self.upstreams.values()],
            "clients": [v.client_stats() for v in self.viewers.values()],
            "connections_total": self.connections_total,
            "connections_refused": self.connections_refused,
        }

    async def aclose(self, timeout: float = 2.0) -> None:
        """Close every viewer (1001) and every upstream."""
        self.closed = True
        for viewer in list(self.viewers.values()):
            viewer.shutdown(1001, "server shutting down")
        for pipe in list(self.pipes):
            pipe.shutdown(1001, "server shutting down")
        for upstream in list(self.upstreams.values()):
            upstream.close()
        self.upstreams.clear()
        await asyncio.sleep(0)


class RelayStreamHandler(BoundedReplies):
    """One local viewer of a relayed stream. Hosts compose it with their auth (like
    ``labcam.server.stream.StreamHandler``); ``check_request`` is their hook to refuse a request.
    The first path argument, when there is one, is the stream's path on the host (a camera's own
    ``cameras/<id>/ws/camera/stream``); the default is ``ws/camera/stream``."""

    client_id: str = ""
    upstream: Upstream | None = None
    greeted = False
    paused = False
    closed = False

    def initialize(self, relay: StreamRelay, **kwargs: Any) -> None:
        self.relay = relay
        super().initialize(**kwargs)

    @property
    def max_message_size(self) -> int:
        return wire.MAX_MESSAGE_BYTES

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.stream_path = args[0] if args and isinstance(args[0], str) else "ws/camera/stream"
        self.query = {
            name: values[-1].decode("utf-8", "replace")
            for name, values in self.request.query_arguments.items()
            if values and name != "token"
        }
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> Awaitable[None] | None:
        self._window: FrameWindow[str | bytes] = FrameWindow(MAX_IN_FLIGHT, fallback_after=PONG_FALLBACK_S)
        self._rtt_ping_at: float | None = None
        self.rtt_ms: float | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self._fps = 0.0
        self._tick_at, self._tick_frames = time.monotonic(), 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._moving = asyncio.Lock()
        self.connected_at = time.time()
        if self.relay.register(self) is None:
            self.closed = True
            closing = self.relay.closed
            self.close(1001 if closing else 1013, "server shutting down" if closing else f"too many clients ({self.relay.max_clients})")
        else:
            self._tune_socket()
            upstream = self.relay.attach(self, self.stream_path, self.query)
            upstream.greet(self)
            log.info("relayed stream %s opened from %s (%s)", self.client_id, self.request.remote_ip, self.relay.target.url)
        return super().open(*args, **kwargs)

    def on_close(self) -> None:
        if not self.closed or self.client_id in self.relay.viewers:
            self.closed = True
            self.relay.unregister(self)
        for task in self._tasks:
            task.cancel()
        return super().on_close()

    def on_pong(self, data: bytes) -> None:
        self.record_pong(data)
        super().on_pong(data)

    def _tune_socket(self) -> None:
        try:
            self.set_nodelay(True)
            assert self.ws_connection is not None
            self.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)  # type: ignore[attr-defined]
        except (AttributeError, AssertionError, OSError):
            pass

    # -- frames (from the upstream) ---------------------------------------------------------------
    def offer(self, message: str | bytes) -> None:
        if self.closed or self.paused:
            return
        if self._window.offer(message, time.monotonic()) is not None:
            self._send_frame(message)

    def _send_frame(self, message: str | bytes) -> None:
        try:
            fut = self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            self._window.pending = None
            return
        seq = self._window.sent(time.monotonic(), writing=True)
        self.frames_sent += 1
        self.bytes_sent += len(message)
        fut.add_done_callback(self._frame_written)
        try:
            self.ping(FRAME_PING + str(seq).encode())
        except WebSocketClosedError:
            pass

    def _frame_written(self, fut: asyncio.Future[None]) -> None:
        self._window.write_done()
        if not fut.cancelled():
            fut.exception()
        self._send_pending()

    def _send_pending(self) -> None:
        if self.closed:
            return
        pending = self._window.take_pending(time.monotonic())
        if pending is not None:
            self._send_frame(pending)

    # -- control messages out ---------------------------------------------------------------------
    def send_stats(self, host_stats: Mapping[str, Any]) -> None:
        """The host's ``stats`` for the upstream, with this viewer's own figures instead of its."""
        now = time.monotonic()
        dt = max(now - self._tick_at, 1e-6)
        self._fps = (self.frames_sent - self._tick_frames) / dt
        self._tick_at, self._tick_frames = now, self.frames_sent
        if self._window.in_flight < MAX_IN_FLIGHT:
            self.send_control(wire.dumps({**host_stats, **self._figures()}))
        if self._rtt_ping_at is None or now - self._rtt_ping_at > 5.0:
            try:
                self.ping(RTT_PING)
                self._rtt_ping_at = now
            except WebSocketClosedError:
                pass

    def _figures(self) -> dict[str, Any]:
        return {
            "fps": round(self._fps, 2),
            "frames_sent": self.frames_sent,
            "frames_skipped": self._window.skipped,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "in_flight": self._window.in_flight,
            "delivery_ms": None if self._window.delivery_ms is None else round(self._window.delivery_ms, 2),
        }

    def client_stats(self) -> dict[str, Any]:
        upstream = self.upstream
        return {
            "id": self.client_id,
            "remote": self.request.remote_ip,
            "stream": dict(upstream.query) if upstream is not None else None,
            **self._figures(),
            "connected_s": round(time.time() - self.connected_at, 1),
        }

    def refuse(self, message: str) -> None:
        """The host refused this viewer's options: the protocol's error, then 4400."""
        self.send_control(wire.error_message(message, "connect"))
        self.shutdown(wire.CLOSE_BAD_OPTION, wire.close_reason(message))

    def shutdown(self, code: int, reason: str) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.close(code, reason)

    # -- control messages in -----------------------------------------------------------------------
    def check_request(self, msg: dict[str, Any]) -> None:
        """A host's hook: raise ``ProtocolError`` to refuse a request (e.g. not authorized)."""

    def on_message(self, message: str | bytes) -> None:
        kind: str | None = None
        request_id = None
        try:
            msg = parse_request(message)
            kind, request_id = msg["type"], msg.get("request_id")
            self.check_request(msg)
            if kind == "configure":
                self._configure(msg)
            elif kind in ("pause", "resume"):
                wire.only_fields(msg, ())
                self.paused = kind == "pause"
                self._window.pending = None
                if self.upstream is not None:
                    self.upstream.update_pause()
                self._configured(request_id)
            elif self.upstream is not None:
                self.upstream.forward(self, msg)
        except ProtocolError as exc:
            rid = exc.request_id if exc.request_id is not None else request_id
            self.send_control(wire.error_message(str(exc), exc.request or kind, rid))

    def _configured(self, request_id: Any) -> None:
        if self.upstream is not None:
            self.send_control(wire.configured_message(self.upstream.stream_for(self), request_id))

    def _configure(self, msg: dict[str, Any]) -> None:
        changes = {k: v for k, v in msg.items() if k not in ("type", "request_id")}
        current_format = self.query.get("format", "json")
        if "format" in changes:
            try:  # the host's rule, in the host's words: a stream keeps its format
                wire.apply_configure(StreamOptions(format=current_format), {"format": changes.pop("format")}, 16)
            except ProtocolError as exc:
                raise ProtocolError(str(exc), request="configure") from None
        request_id = msg.get("request_id")
        task = asyncio.ensure_future(self._move(changes, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _move(self, changes: dict[str, Any], request_id: Any) -> None:
        try:
            async with self._moving:  # one configure at a time: each applies to the options before it
                await self.relay.move(self, changes)
        except ProtocolError as exc:
            self.send_control(wire.error_message(str(exc), "configure", request_id))
            return
        self._window.pending = None  # a frame of the old options must not follow "configured"
        self._configured(request_id)


__all__ = ["RelayStreamHandler", "StreamRelay", "parse_request"]
