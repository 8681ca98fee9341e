"""Lossless raw frames over a WebSocket: ``ws/camera/frames``, what ``labcam.connect()`` reads.

The preview stream (``ws/camera/stream``) sends 8-bit JPEGs for eyes. Analysis code needs the
camera's own numbers at full bit depth, so this endpoint sends the frame's array bytes unchanged,
one binary message per frame::

    | N: uint32 big-endian | N bytes: UTF-8 JSON header | the array's bytes, C order |

The header says how to rebuild the array (``dtype`` as a numpy type string with its byte order,
``shape``) and carries the frame's metadata (``frame_number``, ``timestamp``, ``pixel_format``,
``bit_depth``, ``exposure_ms``, ``gain_db``, ``roi``, ``camera_serial``, ``dropped_before``: frame
numbers the camera skipped just before this frame), plus ``missed``: frames the camera delivered
since this connection's previous message that this connection did not get (skipped because latest
wins, or lost to a full buffer), and ``index``: the message's position on the connection.

Two modes, chosen by the ``mode`` query parameter:

- ``latest`` (default), pull: every ``{"type": "next"}`` text message from the client is answered
  by one frame, the newest this connection has not been sent yet (waiting for one if there is none).
  The first frame is the first captured after the connection opened. ``{"type": "next",
  "fresh": true}`` asks for a frame captured after the request arrived (time-lapse deadlines);
  ``"frames": k`` asks for k frames at once. A slow reader never gets a backlog: latest wins.
- ``all``, push: every frame, in order, from the first captured after the connection opened,
  through a bounded buffer (``buffer`` frames; default a budget of ``DEFAULT_BUFFER_BYTES``). A
  client that falls more than the buffer behind loses frames; the loss is reported in ``missed``
  and shows as a gap in ``frame_number``. ``count=N`` closes the connection (1000) after N frames:
  that is how ``acquire(n)`` reads.

This module holds the handler's *logic* only (no authentication, no host): each host composes it
with its own auth, like the stream's handlers (``routes.HandlerClasses.raw``). The format and the
query's parsing are the wire layer's (``labcam.wire.encode_raw_frame``/``decode_raw_frame``,
``parse_raw_options``), shared with the client so they live in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .. import wire
from ..errors import CameraError
from ..wire import MAX_BUFFER_FRAMES, RawOptions, bit_depth_of
from .throughput import Throughput

log = logging.getLogger("labcam.server")

# Default budget for a ``mode=all`` connection's buffer: frames are shared references, but a buffer
# keeps them alive, so its size is what a slow reader can cost the server in memory.
DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024
MIN_BUFFER_FRAMES = 4
# Client messages are small JSON requests; anything bigger is a broken or hostile client.
MAX_CLIENT_MESSAGE = 64 * 1024

# -- the buffer's budget ----------------------------------------------------------------------------
def default_buffer(frame_bytes: int, count: int | None) -> int:
    """Frames a ``mode=all`` connection may fall behind: a memory budget, never more than needed."""
    frames = DEFAULT_BUFFER_BYTES // max(frame_bytes, 1)
    frames = max(MIN_BUFFER_FRAMES, min(MAX_BUFFER_FRAMES, frames))
    return min(frames, count) if count else frames


def frame_nbytes(settings: Any) -> int:
    """Bytes of one frame at these settings (ROI × samples × bytes per sample)."""
    _, _, w, h = settings.roi
    fmt = settings.pixel_format
    samples = 3 if fmt.startswith("rgb") else 1
    itemsize = 1 if bit_depth_of(fmt, 8) <= 8 else 2
    return int(w) * int(h) * samples * itemsize


# -- the handler logic -----------------------------------------------------------------------------
class RawFramesHandler(WebSocketHandler):
    """Logic of ``ws/camera/frames``; hosts compose it with their auth, like the stream's handlers.

    Receives the shared service through ``initialize(service=...)`` (cooperatively, so host mixins
    such as Jupyter's ``ExtensionHandlerMixin`` can sit in front). The connection registers with
    the service like a stream client, so it counts against ``max_clients``, shows in
    ``api/camera/stats`` and is closed with 1001 when the server shuts down. The engine's waits are
    asyncio-aware (``Subscription.anext``), so no thread is tied up per connection; subscribing
    (which may start the camera) runs in a worker thread so the host's event loop never waits on it.
    """

    service: Any
    client_id: str = ""

    def initialize(self, service: Any, **kwargs: Any) -> None:
        self.service = service
        self._options = RawOptions()
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._registered = False
        self._wanted = 0
        self._fresh = False
        self._more = asyncio.Event()
        self.throughput = Throughput()
        self.frames_missed = 0
        self.connected_at = time.time()
        super().initialize(**kwargs)

    # -- Tornado hooks --------------------------------------------------------------------------
    @property
    def max_message_size(self) -> int:
        return MAX_CLIENT_MESSAGE

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # raw pixels barely compress and deflate would cost more than the network saves

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Validate the query before the upgrade, so a bad option is a plain HTTP 400."""
        query = {k: (v[-1].decode("utf-8", "replace") if v else None) for k, v in self.request.query_arguments.items()}
        try:
            self._options = wire.parse_raw_options(query)
        except ValueError as exc:
            self.set_status(400)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"error": str(exc)}))
            return
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        sup = super().open(*args, **kwargs)  # host mixins (Jupyter's keep-alive pings)
        if sup is not None:
            await sup
        self.service.bind_loop()
        if self.service.register(self) is None:
            closing = self.service.closed
            self.close(1001 if closing else 1013, "server shutting down" if closing else f"too many clients ({self.service.max_clients})")
            return
        self._registered = True
        self.set_nodelay(True)  # the small "next" requests and replies go out at once
        engine = self.service.engine
        opts = self._options
        buffer = 0
        if opts.mode == "all":
            buffer = opts.buffer or default_buffer(frame_nbytes(engine.settings), opts.count)
        try:
            # Subscribing may start the camera or wait for a settings change: off the loop.
            sub = await asyncio.to_thread(engine.subscribe, f"raw-{opts.mode}-{self.client_id}", buffer=buffer)
        except CameraError as exc:
            self.close(1011, f"camera unavailable: {exc}"[:120])
            return
        if self.ws_connection is None or self.ws_connection.is_closing():  # the client left meanwhile
            sub.close()
            return
        self._sub = sub
        self._task = asyncio.ensure_future(self._pump())
        log.info("raw frames %s opened from %s (mode=%s, count=%s, buffer=%s)", self.client_id,
                 self.request.remote_ip, opts.mode, opts.count, buffer or "-")

    def on_message(self, message: str | bytes) -> None:
        if self._options.mode != "latest":
            self._error("this connection pushes every frame (mode=all): send nothing")
            return
        try:
            k, fresh = wire.parse_next_request(message)
        except ValueError as exc:
            self._error(str(exc))
            return
        if fresh:
            self._fresh = True
        self._wanted = min(self._wanted + k, wire.MAX_REQUEST_FRAMES)
        self._more.set()

    def on_close(self) -> None:
        if self._sub is not None:
            self._sub.close()  # wakes the pump with an error, which ends it quietly
        if self._task is not None:
            self._task.cancel()
        if self._registered:
            self._registered = False
            self.service.unregister(self)
            log.info("raw frames %s closed (code %s): %d frames sent, %d missed", self.client_id,
                     self.close_code, self.throughput.frames, self.frames_missed)
        return super().on_close()

    # -- the service's view of a client (labcam.server.service.StreamClient) -----------------------
    def send_control(self, text: str) -> None:
        """Broadcasts (settings, status) are for the preview stream; raw connections carry frames only."""

    def tick(self, now: float, camera: Any) -> None:
        self.throughput.tick(now)

    def client_stats(self) -> dict[str, Any]:
        return {
            "id": self.client_id,
            "remote": self.request.remote_ip,
            "format": f"raw-{self._options.mode}",
            "fps": round(self.throughput.fps, 2),
            "frames_sent": self.throughput.frames,
            "frames_skipped": self.frames_missed,
            "bytes_per_s": int(self.throughput.bytes_per_s),
            "rtt_ms": None,
            "in_flight": 1 if self._task is not None and not self._task.done() else 0,
            "connected_s": round(time.time() - self.connected_at, 1),
        }

    def shutdown(self, code: int, reason: str) -> None:
        if self._sub is not None:
            self._sub.close()
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.close(code, reason)

    # -- internals ------------------------------------------------------------------------------
    def _error(self, message: str) -> None:
        try:
            self.write_message(wire.raw_error_message(message))
        except WebSocketClosedError:
            pass

    async def _pump(self) -> None:
        sub, opts = self._sub, self._options
        previous: int | None = None
        try:
            while opts.count is None or self.throughput.frames < opts.count:
                if opts.mode == "latest":
                    while self._wanted == 0:
                        self._more.clear()
                        await self._more.wait()
                    if self._fresh:
                        self._fresh = False
                        sub.poll()  # drop what is pending: the next frame is captured after the request
                frame = await sub.anext()
                if opts.mode == "latest":
                    self._wanted -= 1
                # Frames this connection did not get, counted from the frame numbers: exact and in
                # place (the subscription's own counter also counts frames after the last one sent).
                number = frame.meta.frame_number
                missed = 0
                if previous is not None:
                    missed = max(0, number - previous - 1 - frame.meta.dropped_before)
                previous = number
                self.frames_missed += missed
                message = wire.encode_raw_frame(frame, missed=missed, index=self.throughput.frames)
                # Awaiting the write is the flow control: one frame in flight per connection; in
                # mode=all the engine's bounded buffer absorbs what the network is behind.
                await self.write_message(message, binary=True)
                self.throughput.count(len(message))
            self.close(1000, "done")
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        except CameraError as exc:
            if not sub.closed:  # the engine closed under us, not our own on_close
                self.close(1011, f"camera error: {exc}"[:120])
        except Exception:  # never die silently: the client would only see its timeout
            log.exception("raw frames %s failed", self.client_id)
            self.close(1011, "server error")
        finally:
            sub.close()


__all__ = ["RawFramesHandler", "default_buffer", "frame_nbytes"]
