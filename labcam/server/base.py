"""The foundations every labcam handler stands on, whoever hosts it.

Handlers receive the ``LabcamService`` through ``initialize`` (cooperatively, so a host can mix in
its own auth classes) and answer errors as ``{"error": message}`` JSON.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from .. import wire
from .service import LabcamService


class ServiceHandlerMixin:
    """Receives the ``LabcamService`` through ``initialize`` and writes JSON errors."""

    service: LabcamService

    def initialize(self, service: LabcamService, **kwargs: Any) -> None:
        self.service = service
        super().initialize(**kwargs)  # type: ignore[misc]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors (including the host's 403s) as ``{"error": message}``."""
        message = self._reason  # type: ignore[attr-defined]
        exc_info = kwargs.get("exc_info")
        if exc_info is not None:
            exc = exc_info[1]
            if isinstance(exc, web.HTTPError) and exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json; charset=UTF-8")  # type: ignore[attr-defined]
        self.finish(json.dumps({"error": message}))  # type: ignore[attr-defined]


class ApiHandler(ServiceHandlerMixin, web.RequestHandler):
    """JSON in, JSON out; errors are ``{"error": message}`` with the status the protocol names."""

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(wire.dumps(obj))

    def write_api_error(self, status: int, message: str, **extra: Any) -> None:
        self.write_json({"error": message, **extra}, status)

    def json_body(self) -> dict[str, Any] | None:
        """The request body as a JSON object, or None after answering 400."""
        try:
            body = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            self.write_api_error(400, f"the body must be a JSON object ({exc})")
            return None
        if not isinstance(body, dict):
            self.write_api_error(400, f"the body must be a JSON object of settings, not {type(body).__name__}")
            return None
        return body

    def camera_unavailable(self) -> bool:
        """Answer 503 and return True when the camera is lost."""
        status = self.service.engine.status
        if status.state == "lost":
            self.write_api_error(503, f"the camera is lost: {status.message}")
            return True
        return False
