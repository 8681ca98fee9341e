"""Control messages sent outside the frame window, bounded per client.

Replies, stats and broadcasts are small and go out as soon as they are made, but a client that
stops reading would let them pile up in its connection. ``BoundedReplies`` counts the messages
written and not yet flushed, and closes the client (1008) past ``MAX_REPLIES_IN_FLIGHT`` instead of
queueing more. Mixed into the stream handler and the relay's viewer handler, which share it.
"""

from __future__ import annotations

import asyncio
import logging

from tornado.websocket import WebSocketClosedError, WebSocketHandler

log = logging.getLogger("labcam.server")

MAX_REPLIES_IN_FLIGHT = 64


class BoundedReplies(WebSocketHandler):
    """``send_control`` for a WebSocket handler whose ``shutdown(code, reason)`` closes it."""

    _replies_in_flight = 0

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
