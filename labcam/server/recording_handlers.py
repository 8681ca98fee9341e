"""The REST logic of ``api/recordings`` over the service's ``RecordingManager``.

``api/recordings`` (GET list, POST start) and ``api/recordings/<id>`` (GET status, DELETE or POST
``.../stop``). Host-agnostic like the other handlers (``labcam.server.routes``): hosts put their
security in front.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tornado import web

from ..errors import CameraError
from ..recording import RecordingError
from .base import CONTROL, ApiHandler
from .recordings import RecordingConflict, RecordingManager, StartRequest


class RecordingApiBase(ApiHandler):
    """The REST handlers of ``api/recordings``: ``ApiHandler`` plus the service's recordings."""

    @property
    def recordings(self) -> RecordingManager:
        return self.service.recordings  # type: ignore[no-any-return]

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking manager call off the loop (file creation, waiting for a file to close)."""
        loop = self.service.bind_loop()
        return await loop.run_in_executor(None, fn, *args)


class RecordingsHandler(RecordingApiBase):
    """``GET api/recordings``: every recording; ``POST api/recordings``: start one (201)."""

    def get(self) -> None:
        m = self.recordings
        self.write_json({"recordings": m.list(), "active": m.active_count, "max_active": m.max_active, "folder": str(m.root)})

    async def post(self) -> None:
        if self.forbidden(CONTROL, "starting a recording"):
            return
        try:
            body = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            self.write_api_error(400, f"the body must be a JSON object such as {{\"name\": \"run1.ome.tif\", \"frames\": 100}} ({exc})")
            return
        if not isinstance(body, dict):
            self.write_api_error(400, f"the body must be a JSON object, not {type(body).__name__}")
            return
        try:
            request = StartRequest.parse(body)
            status = await self.run_blocking(self.recordings.start, request)
        except ValueError as exc:  # a bad or refused name or option: nothing was created
            self.write_api_error(400, str(exc))
            return
        except RecordingConflict as exc:
            self.write_api_error(409, str(exc), reason="busy")
            return
        except (RecordingError, CameraError) as exc:  # folder not writable, camera lost
            self.write_api_error(503, str(exc), reason=getattr(exc, "reason", "camera"))
            return
        self.set_header("Location", self.request.path.rstrip("/") + "/" + status["id"])
        self.write_json(status, 201)


class RecordingHandler(RecordingApiBase):
    """``GET api/recordings/<id>``: its status; ``POST api/recordings/<id>/stop`` or ``DELETE
    api/recordings/<id>``: stop it (answers once its file is closed, or after 5 s with the state
    reached). Stopping a finished recording answers with its final status."""

    def get(self, rec_id: str, action: str | None = None) -> None:
        if action:
            raise web.HTTPError(405, "GET %s: use POST to stop a recording", self.request.path)
        try:
            self.write_json(self.recordings.status(rec_id))
        except KeyError:
            self.write_api_error(404, f"no recording {rec_id!r} (ids come from POST api/recordings; finished ones are kept for a while)")

    async def post(self, rec_id: str, action: str | None = None) -> None:
        if action != "/stop":
            raise web.HTTPError(405, "POST %s: POST api/recordings starts one, POST api/recordings/<id>/stop stops one", self.request.path)
        await self._stop(rec_id)

    async def delete(self, rec_id: str, action: str | None = None) -> None:
        if action:
            raise web.HTTPError(405, "DELETE %s: DELETE api/recordings/<id> stops a recording", self.request.path)
        await self._stop(rec_id)

    async def _stop(self, rec_id: str) -> None:
        if self.forbidden(CONTROL, "stopping a recording"):
            return
        try:
            status = await self.run_blocking(self.recordings.stop, rec_id)
        except KeyError:
            self.write_api_error(404, f"no recording {rec_id!r}")
            return
        self.write_json(status)


__all__ = ["RecordingApiBase", "RecordingHandler", "RecordingsHandler"]
