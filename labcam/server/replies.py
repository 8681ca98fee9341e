"""What a viewer's socket carries besides frames: bounded control messages, and the pongs that
acknowledge frames.

Replies, stats and broadcasts are small and go out as soon as they are made, but a client that
stops reading would let them pile up in its connection. ``BoundedReplies`` counts the messages
written and not yet flushed, and closes the client (1008) past ``MAX_REPLIES_IN_FLIGHT`` instead of
queueing more. Its ``record_pong`` reads the pongs: a frame's acknowledgement for the handler's
``FrameWindow``, or the answer to the stats tick's RTT probe. Mixed into the stream handler and the
relay's viewer handler, which share both.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tornado.websocket import WebSocketClosedError, WebSocketHandler

log = logging.getLogger("labcam.server")

MAX_REPLIES_IN_FLIGHT = 64
# Each frame is followed by a WebSocket ping carrying this prefix and the frame's sequence number.
FRAME_PING = b"f"
# The stats tick's round-trip probe.
RTT_PING = b"labcam-rtt"


class BoundedReplies(WebSocketHandler):
    """``send_control`` for a WebSocket handler whose ``shutdown(code, reason)`` closes it."""

    _replies_in_flight = 0
    _rtt_ping_at: float | None = None  # when the RTT probe now unanswered was sent
    rtt_ms: float | None = None

    def _accepting_replies(self) -> bool:
        return self.ws_connection is not None and not self.ws_connection.is_closing()

    def send_control(self, message: str | bytes) -> None:
        """Send a small message (reply, stats, broadcast) now, or close a client that is not reading."""
        if not self._accepting_replies():
            return
        if self._replies_in_flight >= MAX_REPLIES_IN_FLIGHT:
            log.warning("stream %s: not reading its messages; closing", getattr(self, "client_id", "?"))
            self.shutdown(1008, "not reading its messages")
            return
        try:
            fut = self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            return
        self._replies_in_flight += 1
        fut.add_done_callback(self._reply_written)

    def _reply_written(self, fut: asyncio.Future[None]) -> None:
        self._replies_in_flight -= 1
        if not fut.cancelled():
            fut.exception()  # a closed connection: retrieved, so asyncio does not log it

    # -- pongs ---------------------------------------------------------------------------------
    def _pongs_ready(self) -> bool:
        """True once the handler has its ``_window`` (a pong may arrive before ``open`` ends)."""
        return hasattr(self, "_window")

    def _send_pending(self) -> None:  # the handler's: send the frame its window kept waiting
        raise NotImplementedError

    def record_pong(self, data: bytes) -> None:
        """A pong: a frame's acknowledgement or the RTT probe's answer.

        Hosts whose mixins shadow ``on_pong`` without chaining must call this from theirs.
        """
        if not self._pongs_ready():
            return
        now = time.monotonic()
        if data.startswith(FRAME_PING):
            try:
                seq = int(data[len(FRAME_PING):])
            except ValueError:
                return
            if self._window.ack(seq, now):  # type: ignore[attr-defined]
                self._send_pending()
        elif data == RTT_PING and self._rtt_ping_at is not None:
            self.rtt_ms = (now - self._rtt_ping_at) * 1000.0
            self._rtt_ping_at = None
