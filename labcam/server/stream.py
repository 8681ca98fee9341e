"""``StreamHandler``: one viewer of ``ws/camera/stream``: frames, stats and control messages.

A thin handler over small objects: the wire layer (``labcam.wire``) parses what the client sends and
builds what it gets; a ``FrameWindow`` (``labcam.flow``) decides which frames go; one
``RequestQueue`` per kind of request (snap, settings, record) answers them in order; the shared
``LabcamService`` holds the camera, the preview hub and the recordings.

Per client, latest frame wins: at most a window of frames are in flight; a frame arriving
while the window is full waits in a one-frame slot, and a newer one replaces it (counted in
``frames_skipped``). The window starts at ``MAX_IN_FLIGHT`` and a ``WindowSizer`` sizes it from the
acknowledgements (delivered rate × base round trip + 1, see ``labcam.flow``), so a long round trip
does not cap the frame rate. Nothing is queued, so a stalled client (never acknowledging) holds at
most two frames plus a one-frame slot, and never slows the others.

"In flight" is measured end to end where it can be. Writing to the socket says little: the kernel
buffers on both sides hold megabytes (Linux grows a slow reader's receive buffer to several MB:
measured here, a client reading 4 frames/s of 33 KB frames saw them 3 s old). So each frame is
followed by a WebSocket ping carrying its sequence number; every client must answer pings (RFC 6455),
and it answers this one only once it has read the frame, so the pong acknowledges delivery without
any protocol message (measured: the same client then sees frames 0.8 s old, its own read pace times
the window). If no frame ping is ever answered within ``PONG_FALLBACK_S`` (a host whose ``on_pong``
does not reach ``record_pong``), the window falls back to frames written and not yet drained into
the kernel (``write_message`` futures), which the small ``SO_SNDBUF`` keeps meaningful on the
server's side.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from tornado.websocket import WebSocketClosedError

from .. import wire
from ..flow import FrameWindow, WindowSizer
from ..preview.h264_variant import h264_available
from ..preview.variants import EncodedFrame, Variant
from ..wire import ProtocolError, StreamOptions
from ..wire.options import AUTO
from .adapt import AutoQuality, Measurement
from .base import CONTROL, ServiceHandlerMixin, role_refusal
from .queues import RequestQueue
from .replies import FRAME_PING, RTT_PING, BoundedReplies
from .recordings import MAX_RECORD_WAITING, answer_record
from .throughput import Throughput

log = logging.getLogger("labcam.server")

# H.264 access units that may wait for a full window (each depends on the one before, so they
# queue instead of replacing each other); beyond, the viewer waits for a keyframe. About 0.5 s.
H264_QUEUE_FRAMES = 16
# Weight of the newest frame in an auto viewer's moving average of frame bytes.
FRAME_BYTES_WEIGHT = 0.2
# Frames sent to a client and not yet known to have reached it, until its acknowledgements say how
# many its link needs (WindowSizer; never fewer). More than 1 so a round trip does not halve the
# frame rate; few, so a slow client's frames are fresh (latest frame wins).
MAX_IN_FLIGHT = 2
# Control replies (pong, configured, error, stats, broadcasts) a client may leave undrained before
# it counts as not reading and is closed (1008): keeps a flooding, never-reading client bounded.
# Stream sockets' send buffer. Linux otherwise grows it to ~4 MB, i.e. seconds of frames in the
# kernel that the in-flight window cannot see (measured in docs/architecture: a 2 frame/s client
# saw 10 s old frames; with 64 KB about 2 s).
STREAM_SNDBUF = 64 * 1024
# Snap, settings and probe requests one client may have waiting (each kind is answered in order).
MAX_SNAPS_WAITING = 4
MAX_SETTINGS_WAITING = 4
MAX_PROBES_WAITING = 4
# A client that has never answered a frame ping this long after one was written is served with the
# "written to the socket" window instead (a host whose on_pong does not reach record_pong).
PONG_FALLBACK_S = 2.0
# The record actions that need the control role (they write files), and what each does.
RECORD_CHANGES = {"start": "starting a recording", "stop": "stopping a recording"}


def variant_of(options: StreamOptions, default_quality: int) -> Variant:
    """The preview variant a client's stream options ask for."""
    quality = options.quality if isinstance(options.quality, int) else default_quality
    encoding = options.encoding or "jpeg"
    if encoding == "h264":
        return Variant(quality=quality, max_width=options.max_width, display=options.display,
                       encoding="h264", bitrate=options.bitrate, gop=options.gop)
    return Variant(
        quality=quality, max_width=options.max_width, display=options.display, view=options.view,
        size=options.size, encoding=encoding,
        compression=(options.compression or "deflate") if encoding == "raw" else None,
    )


def check_encoding_available(options: StreamOptions, request: str) -> None:
    """encoding=h264 of a server without PyAV/libx264: a ``ProtocolError`` saying so."""
    if options.encoding == "h264":
        why = h264_available()
        if why is not None:
            raise ProtocolError(why, request=request)


class StreamHandler(ServiceHandlerMixin, BoundedReplies):
    """One client's live stream (``ws/camera/stream``); see the module docstring for the flow control.

    Control messages go to ``_control_<type>`` methods (hosts override them to add authorization and
    call ``super()``). Hosts whose mixins shadow ``on_pong`` without chaining call ``record_pong``.
    """

    client_id: str = ""

    # -- Tornado hooks --------------------------------------------------------------------------
    @property
    def max_message_size(self) -> int:
        return wire.MAX_MESSAGE_BYTES

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # JPEG does not compress; deflate would only cost CPU and latency

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Validate the query before the upgrade. A bad option does not refuse the handshake (a
        browser would only see close code 1006): ``open`` says why and closes with 4400. The host's
        auth and origin checks (``prepare``, ``check_origin``, decorators) still refuse with 403."""
        self._query_error: str | None = None
        try:
            self.options = wire.parse_query(
                self.request.query_arguments, self.service.bit_depth, self.service.sensor_size
            )
            check_encoding_available(self.options, "connect")
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
            self._configure_auto()
            log.info("stream %s opened from %s (%s)", self.client_id, self.request.remote_ip, self.options.format)
            info = self.service.camera_info()
            self.send_control(
                wire.connected_message(
                    client_id=self.client_id, camera=info["camera"], settings=info["settings"],
                    specs=info["specs"], stream=self._stream_dict(), state=info["state"],
                )
            )
            self._follow()
        return super().open(*args, **kwargs)

    def _refuse_options(self, message: str) -> None:
        """A bad query parameter: an ``error`` (``"request": "connect"``), then close 4400."""
        self._closed = True
        log.info("stream refused for %s: %s", self.request.remote_ip, message)
        try:
            self.write_message(wire.error_message(message, "connect"))
        except WebSocketClosedError:
            return
        self.close(wire.CLOSE_BAD_OPTION, wire.close_reason(message))

    def on_close(self) -> None:
        if not getattr(self, "_state_ready", False):
            return super().on_close()
        self._closed = True
        self._unfollow()
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
            msg = wire.parse_control(message)
            kind = msg["type"]
            self._request_id = msg.get("request_id")
            getattr(self, f"_control_{kind}")(msg)
        except ProtocolError as exc:
            rid = exc.request_id if exc.request_id is not None else self._request_id
            self.send_control(wire.error_message(str(exc), exc.request or kind, rid))
        except Exception:  # a bug must cost one message, never the connection or the server
            log.exception("stream %s: handling %r failed", self.client_id, kind)
            self.send_control(wire.error_message("internal error handling the message", kind, self._request_id))
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
        self._window: FrameWindow[EncodedFrame] = FrameWindow(
            MAX_IN_FLIGHT, fallback_after=PONG_FALLBACK_S, fps=self.options.fps,
            sizer=WindowSizer(minimum=MAX_IN_FLIGHT),
        )
        self._need_keyframe = True  # H.264: the next frame sent must be a keyframe
        self._h264_queue: deque[EncodedFrame] = deque()  # H.264 frames waiting for the window
        self._auto: AutoQuality | None = None  # quality=auto: what it chose (labcam.server.adapt)
        self._auto_marks = (0, 0)  # frames sent and skipped at its last update
        self._frame_bytes: float | None = None  # moving average of the frames sent (auto viewers)
        self._source_width: int | None = None
        self.throughput = Throughput()
        self.last_frame_number: int | None = None
        self.last_frame_timestamp: float | None = None
        self.connected_at = time.time()
        self.rtt_ms: float | None = None
        self._rtt_ping_at: float | None = None
        self._snaps = RequestQueue("snap", MAX_SNAPS_WAITING, "snaps")
        self._settings_queue = RequestQueue("settings", MAX_SETTINGS_WAITING, "settings changes")
        self._records = RequestQueue("record", MAX_RECORD_WAITING, "record requests")
        self._probes = RequestQueue("probe", MAX_PROBES_WAITING, "probes")
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet acknowledged by a pong (in fallback: not yet written)."""
        return self._window.in_flight

    @property
    def frames_sent(self) -> int:
        return self.throughput.frames

    @property
    def frames_skipped(self) -> int:
        return self._window.skipped

    @property
    def delivery_ms(self) -> float | None:
        """Send -> pong of recent frames (moving average)."""
        return self._window.delivery_ms

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
        want = None if (self._closed or self.options.paused) else self._wanted_variant()
        if want == self._variant:
            return
        self._unfollow()
        if want is not None:
            self.service.hub.add_listener(want, self._on_frame)
            self._variant = want
            if want.encoding == "h264":  # a new viewer of the stream starts at a keyframe
                self._lose_h264_chain()

    def _wanted_variant(self) -> Variant:
        """The options' variant, or for quality=auto the rung the controller chose (shared with every
        auto viewer on that rung: the width comes from the camera frame, not from this viewer)."""
        if self._auto is None:
            return variant_of(self.options, self.service.quality)
        choice = self._auto.choice
        width = self.options.max_width
        if width is None and choice.scale > 1 and self._source_width:
            width = max(16, self._source_width // choice.scale)
        return Variant(quality=choice.quality, max_width=width, display=self.options.display)

    def _configure_auto(self) -> None:
        """Start (or stop) the quality=auto controller for the options in force; a pinned
        ``max_width`` leaves it quality (and fps) only."""
        if self.options.quality != AUTO or (self.options.encoding or "jpeg") != "jpeg":
            self._auto = None  # (H.264 keeps its bitrate or constant quality)
        else:
            scales = (1,) if self.options.max_width else (1, 2, 4)
            if self._auto is None or self._auto.scales != scales:
                self._auto = AutoQuality(scales=scales)
                self._frame_bytes = None
        self._window.cap.fps = self._fps_cap()

    def _fps_cap(self) -> float | None:
        """The viewer's own fps option, or the auto controller's cap when lower."""
        caps = [f for f in (self.options.fps, self._auto.choice.fps if self._auto else None) if f]
        return min(caps) if caps else None

    def _adapt(self, now: float, camera: dict[str, Any]) -> None:
        """quality=auto: feed the controller this second's figures and follow its choice."""
        if self._auto is None or self.options.paused or self._variant is None:
            return
        sent, skipped = self.frames_sent, self.frames_skipped
        marks, self._auto_marks = self._auto_marks, (sent, skipped)
        sizer = self._window.sizer
        assert sizer is not None
        rate = camera.get("fps") or sizer.fps or 30.0
        before = self._auto.choice
        choice = self._auto.update(now, Measurement(
            frames_sent=sent - marks[0], frames_skipped=skipped - marks[1],
            delivered_bytes_per_s=sizer.bytes_per_s, delivery_ms=self.delivery_ms,
            base_rtt_ms=None if sizer.base_s is None else sizer.base_s * 1000.0,
            frame_bytes=self._frame_bytes, camera_fps=min(rate, self.options.fps or rate),
        ))
        if (choice.quality, choice.scale, choice.fps) != (before.quality, before.scale, before.fps):
            self._frame_bytes = None  # measure the new rung afresh
            self._window.cap.fps = self._fps_cap()
            self._follow()

    def _unfollow(self) -> None:
        if self._variant is not None:
            self.service.hub.remove_listener(self._variant, self._on_frame)
            self._variant = None
            self._window.pending = None  # a frame of the old variant must not follow "configured"
            self._h264_queue.clear()

    # -- frames ------------------------------------------------------------------------------------
    def _on_frame(self, encoded: EncodedFrame) -> None:
        """A new encoded frame of this client's variant (called by the hub on the loop)."""
        if self._closed:
            return
        if self._variant is not None and self._variant.encoding == "h264":
            self._on_h264_frame(encoded)
        elif self._window.offer(encoded, time.monotonic()) is not None:
            self._send_frame(encoded)

    def _on_h264_frame(self, unit: EncodedFrame) -> None:
        """H.264: every access unit depends on the one before, so none may be replaced in a slot.
        While the window is full they wait in a short queue (``H264_QUEUE_FRAMES``: a keyframe is
        several times a P-frame and takes a few frame times on a slow link); when it overflows, or
        the viewer just joined, the viewer drops everything and waits for a keyframe, asked of the
        encoder (rate-limited there). Skipping therefore happens only at keyframe boundaries: the
        viewer never decodes a broken picture."""
        if self._need_keyframe and not unit.keyframe:
            self._window.skipped += 1
            return
        if unit.keyframe:
            self._window.skipped += len(self._h264_queue)  # a fresh start makes the waiting ones moot
            self._h264_queue.clear()
        self._need_keyframe = False
        self._h264_queue.append(unit)
        if len(self._h264_queue) > H264_QUEUE_FRAMES:
            self._window.skipped += len(self._h264_queue)
            self._h264_queue.clear()
            self._lose_h264_chain()
            return
        self._send_h264_queue()

    def _send_h264_queue(self) -> None:
        while self._h264_queue and self._window.is_open(time.monotonic()):
            self._send_frame(self._h264_queue.popleft())

    def _lose_h264_chain(self) -> None:
        self._need_keyframe = True
        if self._variant is not None:
            self.service.hub.request_keyframe(self._variant)

    def _send_frame(self, encoded: EncodedFrame) -> None:
        binary = self.options.format == "binary"
        message = encoded.binary_message if binary else encoded.json_message
        try:
            fut = self.write_message(message, binary=binary)
        except WebSocketClosedError:
            self._window.pending = None
            return
        seq = self._window.sent(time.monotonic(), writing=True, nbytes=len(message))
        self.throughput.count(len(message))  # JSON frames are ASCII: characters == bytes
        if self._auto is not None:
            n = len(message)
            self._frame_bytes = n if self._frame_bytes is None else self._frame_bytes + FRAME_BYTES_WEIGHT * (n - self._frame_bytes)
            self._source_width = int(encoded.header["source_width"])  # the ROI may change
        self.last_frame_number = encoded.frame_number
        self.last_frame_timestamp = encoded.timestamp
        fut.add_done_callback(self._frame_written)
        # The delivery acknowledgement: answered once the client has read everything before it.
        try:
            self.ping(FRAME_PING + str(seq).encode())
        except WebSocketClosedError:
            pass

    def _frame_written(self, fut: asyncio.Future[None]) -> None:
        self._window.write_done()
        if not fut.cancelled():
            fut.exception()  # a closed stream is handled by on_close; mark the error as seen
        self._send_pending()

    def _send_pending(self) -> None:
        if self._closed:
            return
        if self._h264_queue:
            self._send_h264_queue()
            return
        pending = self._window.take_pending(time.monotonic())
        if pending is not None:
            self._send_frame(pending)

    # -- control messages out ----------------------------------------------------------------------
    def _accepting_replies(self) -> bool:
        return not self._closed and super()._accepting_replies()

    def _pongs_ready(self) -> bool:
        return getattr(self, "_state_ready", False)

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
        self.throughput.tick(now)
        self._adapt(now, camera)
        # A client that is behind gets no stats on top of its frames: its next one says it all.
        if self.in_flight < self._window.size:
            self.send_control(wire.stats_message(self._stats_fields(camera)))
        if self._rtt_ping_at is None or now - self._rtt_ping_at > 5 * self.service.stats_interval:
            try:
                self.ping(RTT_PING)
                self._rtt_ping_at = now
            except WebSocketClosedError:
                pass

    def _figures(self) -> dict[str, Any]:
        """What the ``stats`` message and the ``api/camera/stats`` document both say of this client."""
        return {
            "fps": round(self.throughput.fps, 2),
            "frames_sent": self.throughput.frames,
            "frames_skipped": self.frames_skipped,
            "bytes_per_s": int(self.throughput.bytes_per_s),
            "rtt_ms": _round(self.rtt_ms),
            "in_flight": self.in_flight,
            "delivery_ms": _round(self.delivery_ms),
            **self._window_figures(),
            "auto": None if self._auto is None else {
                "quality": self._auto.choice.quality, "max_width": self._variant.max_width if self._variant else None,
                "fps": self._auto.choice.fps, "reason": self._auto.choice.reason,
            },
        }

    def _window_figures(self) -> dict[str, Any]:
        """The flow-control window and what sized it (``WindowSizer``)."""
        sizer = self._window.sizer
        assert sizer is not None
        base = sizer.base_s
        return {
            "window": self._window.size,
            "delivered_bytes_per_s": None if sizer.bytes_per_s is None else int(sizer.bytes_per_s),
            "delivered_fps": None if sizer.fps is None else round(sizer.fps, 2),
            "base_rtt_ms": None if base is None else round(base * 1000.0, 2),
        }

    def _stats_fields(self, camera: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._figures(),
            "camera_fps": camera["fps"],
            "camera_frames": camera["frames"],
            "camera_dropped": camera["dropped"],
            "camera_state": camera["state"],
            "encode_ms": round(self.service.hub.encode_ms, 2),
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
            **self._figures(),
            "acknowledged": self._window.ever_acked,
            "last_frame_number": self.last_frame_number,
            "last_frame_age_ms": age,
            "connected_s": round(time.time() - self.connected_at, 1),
        }

    # -- control messages in -------------------------------------------------------------------------
    def _control_configure(self, msg: dict[str, Any]) -> None:
        wire.only_fields(msg, (*wire.CONFIGURABLE, "format"))
        changes = {k: v for k, v in msg.items() if k not in ("type", "request_id")}
        try:
            new = wire.apply_configure(self.options, changes, self.service.bit_depth, self.service.sensor_size)
            check_encoding_available(new, "configure")
        except ProtocolError as exc:
            raise ProtocolError(str(exc), request="configure") from None
        self._set_options(new)

    def _control_pause(self, msg: dict[str, Any]) -> None:
        wire.only_fields(msg, ())
        self._set_options(replace(self.options, paused=True))

    def _control_resume(self, msg: dict[str, Any]) -> None:
        wire.only_fields(msg, ())
        self._set_options(replace(self.options, paused=False))

    def _set_options(self, new: StreamOptions) -> None:
        self.options = new
        self._configure_auto()
        self._follow()
        self.send_control(wire.configured_message(self._stream_dict(), getattr(self, "_request_id", None)))

    def _control_ping(self, msg: dict[str, Any]) -> None:
        wire.only_fields(msg, ("id",))
        self.send_control(wire.pong_message(wire.parse_ping_id(msg), self._request_id))

    def _control_snap(self, msg: dict[str, Any]) -> None:
        try:
            wire.only_fields(msg, ("format",))
            fmt = wire.parse_snap_format(msg.get("format"))
        except ProtocolError as exc:
            raise ProtocolError(str(exc), request="snap") from None
        rid = self._request_id
        self._answer_in_order(
            self._snaps,
            lambda: self.service.snap_request(fmt, wire_format=self.options.format, display=self.options.display, request_id=rid),
        )

    def _control_settings(self, msg: dict[str, Any]) -> None:
        wire.only_fields(msg, ("changes",))
        changes = msg.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise ProtocolError(
                "settings needs 'changes': a JSON object of setting names and values, "
                'e.g. {"exposure_ms": 5}',
                request="settings",
            )
        rid = self._request_id
        if not self.may(CONTROL):  # refused in its turn, so replies keep the order of the requests
            refusal = wire.error_message(role_refusal(CONTROL, "changing settings"), "settings", rid)
            self._answer_in_order(self._settings_queue, lambda: _ready(refusal))
            return
        self._answer_in_order(self._settings_queue, lambda: self.service.settings_request(self, changes, rid))

    def _control_probe(self, msg: dict[str, Any]) -> None:
        """``{"type": "probe", "x", "y", "w", "h"}``: the counts of that region of the latest frame,
        answered in request order (``probe``, or an ``error`` naming the field)."""
        region = wire.parse_probe(msg)
        rid = self._request_id
        self._answer_in_order(self._probes, lambda: self.service.probe_request(region, rid))

    def _control_record(self, msg: dict[str, Any]) -> None:
        """``{"type": "record", "action": "start" | "stop" | "status", ...}``: answered in request
        order with a ``recording``/``recordings`` message or an ``error`` (``"request": "record"``).
        Starts and ends are also broadcast to every client by the service's recording manager."""
        rid = self._request_id
        action = msg.get("action")
        if action in RECORD_CHANGES and not self.may(CONTROL):
            refusal = wire.record_error_message(role_refusal(CONTROL, RECORD_CHANGES[action]), action, rid)
            self._answer_in_order(self._records, lambda: _ready(refusal))
            return
        self._answer_in_order(self._records, lambda: answer_record(self.service.recordings, msg, rid))

    def _answer_in_order(self, queue: RequestQueue, answer: Callable[[], Awaitable[str | bytes | None]]) -> None:
        """Queue a request (``ProtocolError`` when too many wait); its answer goes out in its turn."""
        queue.admit()
        task = asyncio.ensure_future(self._answer(queue, answer))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _answer(self, queue: RequestQueue, answer: Callable[[], Awaitable[str | bytes | None]]) -> None:
        async with queue.turn():
            reply = await answer()
            if reply is not None:
                self.send_control(reply)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stream %s: request failed", self.client_id, exc_info=task.exception())
            self.send_control(wire.error_message("internal error handling the request"))


async def _ready(reply: str) -> str:
    return reply


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 2)


__all__ = ["MAX_IN_FLIGHT", "STREAM_SNDBUF", "StreamHandler", "variant_of"]
