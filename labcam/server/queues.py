"""``RequestQueue``: one kind of request from one stream client, answered one after the other.

Snaps, settings changes and record requests each take a while (a frame to wait for, a capture to
restart, a file to create), and a client matches replies to requests in order. Each kind therefore
has its own queue per client: a lock so that they run, and answer, in request order, and a bound on
how many may wait, so a client cannot pile up work (beyond it, an ``error`` and nothing changes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..wire import ProtocolError


class RequestQueue:
    """At most ``limit`` requests of kind ``request`` waiting; they run one at a time, in order.

    ``admit()`` (when the request arrives) counts one in or raises ``ProtocolError`` naming
    ``what`` ("snaps", "settings changes"); the job then runs inside ``async with queue.turn():``,
    which waits for the earlier ones and counts it out when it ends, however it ends.
    """

    def __init__(self, request: str, limit: int, what: str) -> None:
        self.request = request
        self.limit = limit
        self.what = what
        self.waiting = 0
        self._lock = asyncio.Lock()

    def admit(self) -> None:
        if self.waiting >= self.limit:
            raise ProtocolError(f"{self.limit} {self.what} are already waiting; wait for their replies", request=self.request)
        self.waiting += 1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        try:
            async with self._lock:
                yield
        finally:
            self.waiting -= 1


__all__ = ["RequestQueue"]
