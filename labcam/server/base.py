"""The foundations every labcam handler stands on, whoever hosts it.

Handlers receive the ``LabcamService`` through ``initialize`` (cooperatively, so a host can mix in
its own auth classes) and answer errors as ``{"error": message}`` JSON.

Roles: ``VIEW`` (watch, read settings and status, snap, probe) and ``CONTROL`` (also change
settings, start and stop recordings). Before every change the logic asks the one hook
``may(CONTROL)``; the host answers it from the request's credentials (``labcam serve``: ``--token``
grants control, ``--view-token`` view only). The default grants everything, for hosts that
authorize in front of the logic in their own way (Jupyter's authorizer: ``read``/``write``).
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from .. import wire
from .service import LabcamService

VIEW = "view"
CONTROL = "control"


def role_refusal(role: str, doing: str) -> str:
    """The message of a request refused for its role: what it tried and the role it needs."""
    return f"{doing} needs the {role} role: these credentials only allow viewing (use the full token, not the view token)"


class ServiceHandlerMixin:
    """Receives the ``LabcamService`` through ``initialize`` and writes JSON errors."""

    service: LabcamService

    def initialize(self, service: LabcamService, **kwargs: Any) -> None:
        self.service = service
        super().initialize(**kwargs)  # type: ignore[misc]

    def may(self, role: str) -> bool:
        """Whether this request's credentials grant ``role`` (``VIEW`` or ``CONTROL``); hosts override."""
        return True

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

    def forbidden(self, role: str, doing: str) -> bool:
        """Answer 403 ``{"error", "role_needed"}`` and return True when the credentials lack ``role``."""
        if self.may(role):
            return False
        self.write_api_error(403, role_refusal(role, doing), role_needed=role)
        return True

    def camera_unavailable(self) -> bool:
        """Answer 503 and return True when the camera is lost."""
        status = self.service.engine.status
        if status.state == "lost":
            self.write_api_error(503, f"the camera is lost: {status.message}")
            return True
        return False
