"""The handler logic: WebSocket stream, REST and static, for any host.

These classes know nothing about who hosts them: no authentication, no origin policy, no CORS, no
application settings. A host makes concrete handlers by composing its own security/auth classes
with these and mounts them with ``route_table``:

- standalone (``labcam.server.app``): ``class StreamHandler(StandaloneSecurity, handlers.StreamHandler)``;
- Jupyter (``jupyter_server_ext/labcam_jupyter/handlers.py``):
  ``class StreamHandler(ExtensionHandlerMixin, WebSocketMixin, handlers.StreamHandler, JupyterHandler)``
  with an ``on_pong`` that calls ``self.record_pong(data)`` (``WebSocketMixin.on_pong`` does not chain),
  and ``class CameraHandler(ExtensionHandlerMixin, handlers.CameraHandler, APIHandler)`` for REST.

The contract with hosts:

- every handler takes the service through ``initialize(self, service, **kwargs)`` and passes the
  remaining keyword arguments on with ``super().initialize(**kwargs)`` (cooperative, so
  ``ExtensionHandlerMixin.initialize(name, ...)`` can sit in front);
- the logic defines no ``prepare``, ``check_origin``, ``get_current_user``, ``set_default_headers``
  or ``options``: those are the host's;
- ``StreamHandler.open``/``on_close``/``on_pong`` call ``super()`` so host mixins placed after the
  logic still run; a host mixin placed *before* it that defines ``on_pong`` without chaining (Jupyter's
  ``WebSocketMixin`` does) should call ``self.record_pong(data)`` from its own ``on_pong``: pongs are
  how the stream knows a frame reached the client (see ``StreamHandler``). Without them the stream
  still works, with the weaker "written to the socket" window;
- WebSocket keep-alive pings are the host's (``ping_interval``); the logic only sets
  ``max_message_size`` (64 KiB, close 1009 beyond).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import CameraError, FrameTimeout, SettingError
from ..frame import Frame
from ..snapshots import SNAP_EXTENSIONS, SNAP_FORMATS
from ..preview.variants import EncodedFrame, Variant
from . import protocol
from .base import ApiHandler, ServiceHandlerMixin
from .protocol import ProtocolError, StreamOptions
from .rawframes import RawFramesHandler
from .recordings import ID_PATTERN, RecordingHandler, RecordingsHandler, control_record
from .service import LabcamService, SettingsReply

log = logging.getLogger("labcam.server")

# Frames sent to a client and not yet known to have reached it. More than 1 so a round trip does
# not halve the frame rate; few, so a slow client's frames are fresh (latest frame wins).
MAX_IN_FLIGHT = 2
# Control replies (pong, configured, error, stats, broadcasts) a client may leave undrained before
# it counts as not reading and is closed (1008): keeps a flooding, never-reading client bounded.
MAX_REPLIES_IN_FLIGHT = 64
# Stream sockets' send buffer. Linux otherwise grows it to ~4 MB, i.e. seconds of frames in the
# kernel that the in-flight window cannot see (measured in docs/architecture: a 2 frame/s client
# saw 10 s old frames; with 64 KB about 2 s).
STREAM_SNDBUF = 64 * 1024
# Snap and settings requests one client may have waiting (each kind is answered in order).
MAX_SNAPS_WAITING = 4
MAX_SETTINGS_WAITING = 4
# An fps cap lets a frame through this early (seconds) so camera jitter does not halve the rate.
FPS_SLACK_S = 0.002
RTT_PING = b"labcam-rtt"
# Each frame is followed by a WebSocket ping carrying this prefix and the frame's sequence number.
FRAME_PING = b"f"
# A client that has never answered a frame ping this long after one was written is served with the
# "written to the socket" window instead (a host whose on_pong does not reach record_pong).
PONG_FALLBACK_S = 2.0


# ====================================================================================================
# The stream
# ====================================================================================================
class StreamHandler(ServiceHandlerMixin, WebSocketHandler):
    """One client's live stream (``ws/camera/stream``): frames, stats, control messages.

    Per client, latest frame wins: at most ``MAX_IN_FLIGHT`` frames are in flight; a frame arriving
    while the window is full waits in a one-frame slot, and a newer one replaces it (counted in
    ``frames_skipped``). Nothing is queued, so a stalled client holds at most two frames plus a
    one-frame slot, and never slows the others.

    "In flight" is measured end to end where it can be. Writing to the socket says little: the
    kernel buffers on both sides hold megabytes (Linux grows a slow reader's receive buffer to
    several MB: measured here, a client reading 4 frames/s of 33 KB frames saw them 3 s old). So
    each frame is followed by a WebSocket ping carrying its sequence number; every client must
    answer pings (RFC 6455), and it answers this one only once it has read the frame, so the pong
    acknowledges delivery without any protocol message (measured: the same client then sees frames
    0.8 s old, its own read pace times the window). If no frame ping is ever answered within
    ``PONG_FALLBACK_S`` (a host whose ``on_pong`` does not reach ``record_pong``), the window falls
    back to frames written and not yet drained into the kernel (``write_message`` futures), which
    the small ``SO_SNDBUF`` keeps meaningful on the server's side.
    """

    client_id: str = ""

    # -- Tornado hooks --------------------------------------------------------------------------
    @property
    def max_message_size(self) -> int:
        return protocol.MAX_MESSAGE_BYTES

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # JPEG does not compress; deflate would only cost CPU and latency

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Validate the query before the upgrade. A bad option does not refuse the handshake (a
        browser would only see close code 1006): ``open`` says why and closes with 4400. The host's
        auth and origin checks (``prepare``, ``check_origin``, decorators) still refuse with 403."""
        self._query_error: str | None = None
        try:
            self.options = protocol.parse_query(self.request.query_arguments, self.service.bit_depth)
        except ProtocolError as exc:
            self.options = StreamOptions()
            self._query_error = str(exc)
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> Awaitable[None] | None:
        self._init_state()
        self.service.bind_loop()
        if getattr(self, "_query_error", None) is not None:
            self._refuse_options(self._query_error or "")
            return super().open(*args, **kwargs)
        self._registered = self.service.register(self) is not None
        if not self._registered:
            self._closed = True
            reason = "server shutting down" if self.service.closed else f"too many clients ({self.service.max_clients})"
            self.close(1001 if self.service.closed else 1013, reason)
            log.warning("stream refused (%s) for %s", reason, self.request.remote_ip)
        else:
            self._tune_socket()
            log.info("stream %s opened from %s (%s)", self.client_id, self.request.remote_ip, self.options.format)
            info = self.service.camera_info()
            self.send_control(
                protocol.connected_message(
                    client_id=self.client_id,
                    camera=info["camera"],
                    settings=info["settings"],
                    specs=info["specs"],
                    stream=self._stream_dict(),
                    state=info["state"],
                )
            )
            self._follow()
        return super().open(*args, **kwargs)

    def _refuse_options(self, message: str) -> None:
        """A bad query parameter: an ``error`` (``"request": "connect"``), then close 4400."""
        self._closed = True
        log.info("stream refused for %s: %s", self.request.remote_ip, message)
        try:
            self.write_message(protocol.error_message(message, "connect"))
        except WebSocketClosedError:
            return
        self.close(protocol.CLOSE_BAD_OPTION, protocol.close_reason(message))

    def on_close(self) -> None:
        if not getattr(self, "_state_ready", False):
            return super().on_close()
        self._closed = True
        self._unfollow()
        self._pending = None
        if self._registered:
            self.service.unregister(self)
            log.info(
                "stream %s closed (code %s): %d frames sent, %d skipped",
                self.client_id, self.close_code, self.frames_sent, self.frames_skipped,
            )
        return super().on_close()

    def on_pong(self, data: bytes) -> None:
        self.record_pong(data)
        super().on_pong(data)

    def on_message(self, message: str | bytes) -> None:
        kind: str | None = None
        # The request's request_id (validated by parse_control), echoed in its reply or error. The
        # _control_* methods read it while they run (hosts override them with the msg-only signature)
        # and hand it to whatever answers later.
        self._request_id = None
        try:
            msg = protocol.parse_control(message)
            kind = msg["type"]
            self._request_id = msg.get("request_id")
            getattr(self, f"_control_{kind}")(msg)
        except ProtocolError as exc:
            rid = exc.request_id if exc.request_id is not None else self._request_id
            self.send_control(protocol.error_message(str(exc), exc.request or kind, rid))
        except Exception:  # a bug must cost one message, never the connection or the server
            log.exception("stream %s: handling %r failed", self.client_id, kind)
            self.send_control(protocol.error_message("internal error handling the message", kind, self._request_id))
        finally:
            self._request_id = None

    # -- state -------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        self._state_ready = True
        if not hasattr(self, "options"):
            self.options = StreamOptions()
        self._closed = False
        self._registered = False
        self._variant: Variant | None = None  # the variant followed, None while paused or closed
        self._writing = 0  # frames whose write_message future is not done
        self._seq_sent = 0  # frames sent on this connection (the frame pings' sequence numbers)
        self._seq_acked = 0  # highest frame sequence number acknowledged by a pong
        self._ever_ponged = False  # a frame ping was answered: pongs are reliable on this connection
        self._pong_fallback = False  # never answered in time: count written frames instead
        self._sent_at: dict[int, float] = {}  # seq -> send time of unacknowledged frames (bounded)
        self.delivery_ms: float | None = None  # send -> pong of recent frames (moving average)
        self._replies_in_flight = 0
        self._pending: EncodedFrame | None = None
        self._next_due = 0.0
        self.frames_sent = 0
        self.frames_skipped = 0
        self.bytes_sent = 0
        self.last_frame_number: int | None = None
        self.last_frame_timestamp: float | None = None
        self.connected_at = time.time()
        self.rtt_ms: float | None = None
        self._rtt_ping_at: float | None = None
        self._tick_at = time.monotonic()
        self._tick_frames = 0
        self._tick_bytes = 0
        self.fps = 0.0
        self.bytes_per_s = 0.0
        self._snap_lock = asyncio.Lock()
        self._snaps_waiting = 0
        self._settings_lock = asyncio.Lock()
        self._settings_waiting = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _tune_socket(self) -> None:
        """TCP_NODELAY (no Nagle delay on small messages) and a small send buffer, so that "in
        flight" means in flight and not seconds of frames parked in the kernel."""
        try:
            self.set_nodelay(True)
            assert self.ws_connection is not None
            sock = self.ws_connection.stream.socket  # type: ignore[attr-defined]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        except (AttributeError, AssertionError, OSError) as exc:
            log.debug("stream %s: could not tune the socket: %s", self.client_id, exc)

    def _stream_dict(self) -> dict[str, Any]:
        return self.options.to_dict(self.service.quality)

    def _follow(self) -> None:
        """Listen to the hub for the variant the options ask for (or nothing while paused)."""
        want = None if (self._closed or self.options.paused) else self.options.variant(self.service.quality)
        if want == self._variant:
            return
        self._unfollow()
        if want is not None:
            self.service.hub.add_listener(want, self._on_frame)
            self._variant = want

    def _unfollow(self) -> None:
        if self._variant is not None:
            self.service.hub.remove_listener(self._variant, self._on_frame)
            self._variant = None
            self._pending = None  # a frame of the old variant must not follow "configured"

    # -- frames ------------------------------------------------------------------------------------
    def _on_frame(self, encoded: EncodedFrame) -> None:
        """A new encoded frame of this client's variant (called by the hub on the loop)."""
        if self._closed:
            return
        fps = self.options.fps
        if fps is not None:
            now = time.monotonic()
            if now < self._next_due - FPS_SLACK_S:
                return  # above the client's fps cap: not "skipped", it asked for fewer
            period = 1.0 / fps
            if now - self._next_due > period:
                self._next_due = now + period  # first frame, or after a gap: re-anchor, no burst
            else:
                self._next_due += period  # keeps the average at the cap despite arrival jitter
        if self.in_flight >= MAX_IN_FLIGHT:
            self._check_pong_fallback()
            if self._pending is not None:
                self.frames_skipped += 1
            self._pending = encoded
            return
        self._send_frame(encoded)

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet acknowledged by a pong (in fallback: not yet written)."""
        if self._pong_fallback:
            return self._writing
        return self._seq_sent - self._seq_acked

    def _check_pong_fallback(self) -> None:
        if self._ever_ponged or self._pong_fallback or not self._sent_at or self._writing:
            return
        oldest = min(self._sent_at.values())
        if time.monotonic() - oldest > PONG_FALLBACK_S:
            self._pong_fallback = True
            self._sent_at.clear()
            log.info("stream %s: pings unanswered; flow control by socket writes", self.client_id)
            self._send_pending()

    def _send_frame(self, encoded: EncodedFrame) -> None:
        binary = self.options.format == "binary"
        message = encoded.binary_message if binary else encoded.json_message
        try:
            fut = self.write_message(message, binary=binary)
        except WebSocketClosedError:
            self._pending = None
            return
        self._writing += 1
        self._seq_sent += 1
        self.frames_sent += 1
        self.bytes_sent += len(message)  # JSON frames are ASCII: characters == bytes
        self.last_frame_number = encoded.frame_number
        self.last_frame_timestamp = encoded.timestamp
        fut.add_done_callback(self._frame_written)
        # The delivery acknowledgement: answered once the client has read everything before it.
        try:
            self.ping(FRAME_PING + str(self._seq_sent).encode())
        except WebSocketClosedError:
            return
        if not self._pong_fallback and len(self._sent_at) < 64:
            self._sent_at[self._seq_sent] = time.monotonic()

    def _frame_written(self, fut: asyncio.Future[None]) -> None:
        self._writing -= 1
        if not fut.cancelled():
            fut.exception()  # a closed stream is handled by on_close; mark the error as seen
        self._send_pending()

    def _send_pending(self) -> None:
        if self._closed:
            return
        pending = self._pending
        if pending is not None and self.in_flight < MAX_IN_FLIGHT:
            self._pending = None
            self._send_frame(pending)

    # -- control messages out ----------------------------------------------------------------------
    def send_control(self, text: str) -> None:
        """Send a small JSON message (reply, stats, broadcast) outside the frame window."""
        if self._closed or self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._replies_in_flight >= MAX_REPLIES_IN_FLIGHT:
            log.warning("stream %s: not reading its messages; closing", self.client_id)
            self.shutdown(1008, "not reading its messages")
            return
        try:
            fut = self.write_message(text)
        except WebSocketClosedError:
            return
        self._replies_in_flight += 1
        fut.add_done_callback(self._reply_written)

    def _send_binary(self, data: bytes) -> None:
        if self._closed or self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            fut = self.write_message(data, binary=True)
        except WebSocketClosedError:
            return
        self._replies_in_flight += 1
        fut.add_done_callback(self._reply_written)

    def _reply_written(self, fut: asyncio.Future[None]) -> None:
        self._replies_in_flight -= 1
        if not fut.cancelled():
            fut.exception()

    def shutdown(self, code: int, reason: str) -> None:
        """Close this stream (server shutdown: 1001)."""
        self._unfollow()
        self._closed = True
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.close(code, reason)

    # -- stats -------------------------------------------------------------------------------------
    def tick(self, now: float, camera: dict[str, Any]) -> None:
        """Called by the service about once a second: figures, a ``stats`` message, an RTT ping."""
        if self._closed:
            return
        dt = max(now - self._tick_at, 1e-6)
        self.fps = (self.frames_sent - self._tick_frames) / dt
        self.bytes_per_s = (self.bytes_sent - self._tick_bytes) / dt
        self._tick_at, self._tick_frames, self._tick_bytes = now, self.frames_sent, self.bytes_sent
        # A client that is behind gets no stats on top of its frames: its next one says it all.
        if self.in_flight < MAX_IN_FLIGHT:
            self.send_control(protocol.stats_message(self._stats_fields(camera)))
        if self._rtt_ping_at is None or now - self._rtt_ping_at > 5 * self.service.stats_interval:
            try:
                self.ping(RTT_PING)
                self._rtt_ping_at = now
            except WebSocketClosedError:
                pass

    def record_pong(self, data: bytes) -> None:
        """Handle a pong: a frame delivery acknowledgement or the stats tick's RTT probe.

        Hosts whose mixins shadow ``on_pong`` without chaining must call this from theirs.
        """
        if not getattr(self, "_state_ready", False):
            return
        now = time.monotonic()
        if data.startswith(FRAME_PING):
            try:
                seq = int(data[len(FRAME_PING):])
            except ValueError:
                return
            if seq <= self._seq_acked or seq > self._seq_sent:
                return  # stale (pongs may be coalesced to the latest ping) or not ours
            self._seq_acked = seq
            self._ever_ponged = True
            self._pong_fallback = False
            sent = self._sent_at.pop(seq, None)
            for old in [k for k in self._sent_at if k < seq]:
                del self._sent_at[old]
            if sent is not None:
                ms = (now - sent) * 1000.0
                self.delivery_ms = ms if self.delivery_ms is None else self.delivery_ms + 0.2 * (ms - self.delivery_ms)
            self._send_pending()
        elif data == RTT_PING and self._rtt_ping_at is not None:
            self.rtt_ms = (now - self._rtt_ping_at) * 1000.0
            self._rtt_ping_at = None

    def _stats_fields(self, camera: dict[str, Any]) -> dict[str, Any]:
        return {
            "fps": round(self.fps, 2),
            "frames_sent": self.frames_sent,
            "frames_skipped": self.frames_skipped,
            "bytes_per_s": int(self.bytes_per_s),
            "camera_fps": camera["fps"],
            "camera_frames": camera["frames"],
            "camera_dropped": camera["dropped"],
            "camera_state": camera["state"],
            "encode_ms": round(self.service.hub.encode_ms, 2),
            "in_flight": self.in_flight,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "delivery_ms": None if self.delivery_ms is None else round(self.delivery_ms, 2),
        }

    def client_stats(self) -> dict[str, Any]:
        """This client's line in ``GET api/camera/stats``."""
        age = None
        if self.last_frame_timestamp is not None:
            age = round((time.time() - self.last_frame_timestamp) * 1000.0, 1)
        return {
            "id": self.client_id,
            "remote": self.request.remote_ip,
            "format": self.options.format,
            "stream": self._stream_dict(),
            "fps": round(self.fps, 2),
            "frames_sent": self.frames_sent,
            "frames_skipped": self.frames_skipped,
            "bytes_per_s": int(self.bytes_per_s),
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "in_flight": self.in_flight,
            "acknowledged": self._ever_ponged,
            "delivery_ms": None if self.delivery_ms is None else round(self.delivery_ms, 2),
            "last_frame_number": self.last_frame_number,
            "last_frame_age_ms": age,
            "connected_s": round(time.time() - self.connected_at, 1),
        }

    # -- control messages in -------------------------------------------------------------------------
    def _control_configure(self, msg: dict[str, Any]) -> None:
        protocol.only_fields(msg, ("fps", "quality", "max_width", "display", "format"))
        changes = {k: v for k, v in msg.items() if k not in ("type", "request_id")}
        try:
            new = protocol.apply_configure(self.options, changes, self.service.bit_depth)
        except ProtocolError as exc:
            raise ProtocolError(str(exc), request="configure") from None
        self._set_options(new)

    def _control_pause(self, msg: dict[str, Any]) -> None:
        protocol.only_fields(msg, ())
        self._set_options(_replace(self.options, paused=True))

    def _control_resume(self, msg: dict[str, Any]) -> None:
        protocol.only_fields(msg, ())
        self._set_options(_replace(self.options, paused=False))

    def _set_options(self, new: StreamOptions) -> None:
        if new.fps != self.options.fps:
            self._next_due = 0.0
        self.options = new
        self._follow()
        self.send_control(protocol.configured_message(self._stream_dict(), getattr(self, "_request_id", None)))

    def _control_ping(self, msg: dict[str, Any]) -> None:
        protocol.only_fields(msg, ("id",))
        self.send_control(protocol.pong_message(protocol.parse_ping_id(msg), self._request_id))

    def _control_snap(self, msg: dict[str, Any]) -> None:
        try:
            protocol.only_fields(msg, ("format",))
            fmt = protocol.parse_snap_format(msg.get("format"))
        except ProtocolError as exc:
            raise ProtocolError(str(exc), request="snap") from None
        if self._snaps_waiting >= MAX_SNAPS_WAITING:
            raise ProtocolError(f"{MAX_SNAPS_WAITING} snaps are already waiting; wait for their replies", request="snap")
        self._snaps_waiting += 1
        self._spawn(self._snap(fmt, self._request_id))

    async def _snap(self, fmt: str, request_id: Any = None) -> None:
        try:
            async with self._snap_lock:  # replies go out in request order
                frame = await self.service.snap()
                data = await self.service.encode_snapshot(
                    frame, fmt, display=self.options.display
                )
            header = snap_header(frame)
            message = protocol.snap_message(self.options.format, fmt, data, header, request_id)
            if isinstance(message, bytes):
                self._send_binary(message)
            else:
                self.send_control(message)
        except (CameraError, FrameTimeout) as exc:
            self.send_control(protocol.error_message(f"no snap: {exc}", "snap", request_id))
        finally:
            self._snaps_waiting -= 1

    def _control_settings(self, msg: dict[str, Any]) -> None:
        protocol.only_fields(msg, ("changes",))
        changes = msg.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise ProtocolError(
                "settings needs 'changes': a JSON object of setting names and values, "
                'e.g. {"exposure_ms": 5}',
                request="settings",
            )
        if self._settings_waiting >= MAX_SETTINGS_WAITING:
            raise ProtocolError(
                f"{MAX_SETTINGS_WAITING} settings changes are already waiting; wait for their replies", request="settings"
            )
        self._settings_waiting += 1
        self._spawn(self._settings(changes, self._request_id))

    async def _settings(self, changes: dict[str, Any], request_id: Any = None) -> None:
        try:
            await self._apply_settings(changes, request_id)
        finally:
            self._settings_waiting -= 1

    async def _apply_settings(self, changes: dict[str, Any], request_id: Any = None) -> None:
        async with self._settings_lock:
            before = self.service.engine.settings
            # With a request_id, the broadcast of this change reaches this client as its reply
            # (the same settings message plus the request_id); everyone else gets the plain one.
            reply = SettingsReply(self, request_id) if request_id is not None else None
            try:
                after = await self.service.update_settings(changes, reply=reply)
            except SettingError as exc:
                self.send_control(protocol.error_message(str(exc), "settings", request_id))
                return
            except CameraError as exc:
                self.send_control(protocol.error_message(f"settings not applied: {exc}", "settings", request_id))
                return
            if reply is not None:
                if not reply.sent:  # nothing changed, so no broadcast came: answer the sender alone
                    self.send_control(protocol.settings_message(after.to_dict(), request_id))
            elif after == before:
                # Nothing changed, so no broadcast comes: answer the sender alone.
                self.send_control(protocol.settings_message(after.to_dict()))

    def _control_record(self, msg: dict[str, Any]) -> None:
        control_record(self, msg)  # start/stop/status of a recording: labcam.server.recordings

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stream %s: request failed", self.client_id, exc_info=task.exception())
            self.send_control(protocol.error_message("internal error handling the request"))


def _replace(opts: StreamOptions, **changes: Any) -> StreamOptions:
    from dataclasses import replace

    return replace(opts, **changes)


def snap_header(frame: Frame) -> dict[str, Any]:
    m = frame.meta
    return {
        "frame_number": m.frame_number,
        "timestamp": m.timestamp,
        "width": frame.width,
        "height": frame.height,
        "pixel_format": m.pixel_format,
        "bit_depth": m.bit_depth,
        "exposure_ms": m.exposure_ms,
        "gain_db": m.gain_db,
        "roi": list(m.roi),
        "camera_serial": m.camera_serial,
    }


# ====================================================================================================
# REST
# ====================================================================================================
class CameraHandler(ApiHandler):
    """``GET api/camera``: description, settings, specs and state."""

    def get(self) -> None:
        self.write_json(self.service.camera_info())


class SettingsHandler(ApiHandler):
    """``GET/PATCH/PUT api/camera/settings``: read or change settings (validated as a whole)."""

    def get(self) -> None:
        self.write_json(self.service.engine.settings.to_dict())

    async def patch(self) -> None:
        body = self.json_body()
        if body is None:
            return
        if not body:
            self.write_api_error(400, 'no settings given: send e.g. {"exposure_ms": 5}')
            return
        try:
            settings = await self.service.update_settings(body)
        except SettingError as exc:
            self.write_api_error(400, str(exc), setting=exc.name, allowed=exc.allowed)
            return
        except CameraError as exc:
            self.write_api_error(503 if self.service.engine.status.state == "lost" else 409, str(exc))
            return
        self.write_json(settings.to_dict())

    async def put(self) -> None:
        await self.patch()


class SnapHandler(ApiHandler):
    """``GET api/camera/snap?format=png|jpeg|tiff|npy``: the next full-resolution frame."""

    async def get(self) -> None:
        try:
            fmt = protocol.parse_snap_format(self.get_query_argument("format", None))
            display = None
            raw_display = self.get_query_argument("display", None)
            if raw_display not in (None, ""):
                display = protocol.parse_display(raw_display, self.service.bit_depth)
            raw_quality = self.get_query_argument("quality", None)
            quality = 95 if raw_quality in (None, "") else protocol.parse_quality(raw_quality)
        except ProtocolError as exc:
            self.write_api_error(400, str(exc))
            return
        if self.camera_unavailable():
            return
        try:
            frame = await self.service.snap()
        except (CameraError, FrameTimeout) as exc:
            self.write_api_error(503, f"no frame: {exc}")
            return
        data = await self.service.encode_snapshot(frame, fmt, quality=quality, display=display)
        m = frame.meta
        name = f"labcam-{m.camera_serial or 'camera'}-{m.frame_number}.{SNAP_EXTENSIONS[fmt]}"
        self.set_header("Content-Type", SNAP_FORMATS[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Labcam-Frame-Number", str(m.frame_number))
        self.set_header("X-Labcam-Timestamp", repr(m.timestamp))
        self.set_header("X-Labcam-Pixel-Format", m.pixel_format)
        self.set_header("X-Labcam-Exposure-Ms", repr(m.exposure_ms))
        self.set_header("X-Labcam-Gain-Db", repr(m.gain_db))
        self.finish(data)


class StatsHandler(ApiHandler):
    """``GET api/camera/stats``: camera, encoder and per-client figures."""

    def get(self) -> None:
        self.write_json(self.service.stats())


# ====================================================================================================
# Static files and the test page
# ====================================================================================================
class StaticHandler(ServiceHandlerMixin, web.StaticFileHandler):
    """``static/(.*)``: the JavaScript client and the test page's assets, from ``service.static_path``."""

    def initialize(self, service: LabcamService, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("path", str(service.static_path))
        super().initialize(service, **kwargs)

    def get_content_type(self) -> str:
        path = self.absolute_path or ""
        if path.endswith(".ts"):
            return "text/plain; charset=utf-8"  # TypeScript declarations (mimetypes says MPEG-TS)
        if path.endswith((".js", ".mjs")):
            return "text/javascript; charset=utf-8"  # ES modules must be served as JavaScript
        return super().get_content_type()

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")  # revalidate (ETag): a new version shows at once


class TestPageHandler(ServiceHandlerMixin, web.RequestHandler):
    """The test page (``static/index.html``) at the root of the labcam routes."""

    def get(self) -> None:
        if not self.request.path.endswith("/"):
            # The page loads "static/..." relative to itself: it must be addressed as a folder.
            self.redirect(self.request.path + "/" + (("?" + self.request.query) if self.request.query else ""))
            return
        page = self.service.static_path / "index.html"
        try:
            html = page.read_bytes()
        except OSError:
            self.set_status(404)
            self.finish({"error": f"the test page is missing ({page})"})
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(html)


# ====================================================================================================
# Routes
# ====================================================================================================
@dataclass(frozen=True)
class HandlerClasses:
    """The concrete classes a host mounts; ``static``/``page`` None to leave them out."""

    stream: type[web.RequestHandler] = StreamHandler
    camera: type[web.RequestHandler] = CameraHandler
    settings: type[web.RequestHandler] = SettingsHandler
    snap: type[web.RequestHandler] = SnapHandler
    stats: type[web.RequestHandler] = StatsHandler
    static: type[web.RequestHandler] | None = StaticHandler
    page: type[web.RequestHandler] | None = TestPageHandler
    raw: type[web.RequestHandler] | None = RawFramesHandler  # lossless frames for labcam.connect()
    recordings: type[web.RequestHandler] | None = RecordingsHandler  # list, start
    recording: type[web.RequestHandler] | None = RecordingHandler  # status, stop


ROUTES: tuple[tuple[str, str], ...] = (
    ("ws/camera/stream", "stream"),
    ("ws/camera/frames", "raw"),
    ("api/camera", "camera"),
    ("api/camera/settings", "settings"),
    ("api/camera/snap", "snap"),
    ("api/camera/stats", "stats"),
    ("api/recordings", "recordings"),
    (f"api/recordings/({ID_PATTERN})(/stop)?", "recording"),
    ("static/(.*)", "static"),
    ("", "page"),
)
"""Paths relative to the host's labcam root, and the ``HandlerClasses`` field serving each."""


def route_table(
    service: LabcamService,
    classes: HandlerClasses = HandlerClasses(),
    *,
    prefix: str = "/",
    **extra_kwargs: Any,
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Tornado rules for every labcam route under ``prefix`` (e.g. "/" or "/user/x/labcam/").

    Every handler gets ``service=service`` plus ``extra_kwargs`` (Jupyter: ``name="labcam"`` for
    ``ExtensionHandlerMixin``) in ``initialize``.
    """
    stripped = prefix.strip("/")
    base = "/" + stripped + "/" if stripped else "/"
    kwargs = {"service": service, **extra_kwargs}
    rules: list[tuple[str, type[web.RequestHandler], dict[str, Any]]] = []
    for rel, field_name in ROUTES:
        cls = getattr(classes, field_name)
        if cls is None:
            continue
        if rel == "":
            pattern = re.escape(base.rstrip("/")) + "/?"  # the page, with or without the slash
        else:
            pattern = re.escape(base) + rel
        rules.append((pattern, cls, dict(kwargs)))
    return rules


__all__ = [
    "MAX_IN_FLIGHT",
    "ROUTES",
    "STREAM_SNDBUF",
    "ApiHandler",
    "CameraHandler",
    "HandlerClasses",
    "ServiceHandlerMixin",
    "SettingsHandler",
    "SnapHandler",
    "StaticHandler",
    "StatsHandler",
    "StreamHandler",
    "TestPageHandler",
    "route_table",
]
