"""labcam's handler logic with Jupyter's authentication and authorization in front.

The logic classes (``labcam.server.stream``, ``rest``, ``rawframes``, ``recording_handlers``) carry no security of
their own; here each one is composed with Jupyter's base classes, so every labcam route, the
WebSockets included, answers only to requests Jupyter authenticates (token, login cookie, or
whatever IdentityProvider the server uses) and its Authorizer allows on the ``labcam`` resource:

- WebSockets: ``ExtensionHandlerMixin, WebSocketMixin, <logic>, JupyterHandler`` with
  ``@ws_authenticated`` + ``@authorized`` on an async ``get`` (without ``ws_authenticated`` an
  unauthenticated client could open the socket). ``WebSocketMixin`` brings Jupyter's origin check
  (``allow_origin``/``allow_origin_pat``; token-authenticated requests skip it, so an external app
  can connect with ``?token=``) and keep-alive pings.
- REST: ``ExtensionHandlerMixin, <logic>, APIHandler`` with ``@web.authenticated`` + ``@authorized``:
  403 (not a login redirect) without credentials, Jupyter's CORS and XSRF rules (token-authenticated
  writes skip the XSRF check).
- The test page and static files: ``JupyterHandler`` pages that redirect to the login page.

The logic's ``write_error`` (``{"error": ...}`` JSON) sits before Jupyter's in the MRO, so clients
get the same error bodies from both hosts.
"""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from labcam.server import rawframes, recording_handlers, rest, routes, stream
from labcam.server.service import LabcamService
from labcam.wire import ProtocolError

AUTH_RESOURCE = "labcam"
"""The resource name Jupyter authorizers see for every labcam route (reads and writes)."""

ROUTE_PREFIX = "/labcam/"
"""Where the routes hang, relative to the server's base URL (the ExtensionApp prefixes base_url)."""


def check_write(msg: dict[str, Any], may_write: bool) -> None:
    """Refuse a stream request that needs "write" on labcam (settings; starting or stopping a
    recording writes files) from a user who may only read."""
    if may_write:
        return
    if msg.get("type") == "settings":
        raise ProtocolError("not authorized to change camera settings (write on labcam)", request="settings")
    if msg.get("type") == "record" and msg.get("action") != "status":
        raise ProtocolError("not authorized to start or stop recordings (write on labcam)", request="record")


async def may_write(handler: Any) -> bool:
    """Whether the user of ``handler`` may change settings, as a PATCH would require (authorizers may be async)."""
    return bool(await ensure_async(handler.authorizer.is_authorized(handler, handler.current_user, "write", AUTH_RESOURCE)))


class _JupyterWebSocket(ExtensionHandlerMixin, WebSocketMixin):
    """What every labcam WebSocket needs from Jupyter, in front of the logic."""

    auth_resource = AUTH_RESOURCE

    def set_default_headers(self) -> None:
        """JupyterHandler's page headers (CSP etc.) make no sense on a WebSocket upgrade."""

    def on_pong(self, data: bytes) -> None:
        # WebSocketMixin.on_pong does not chain: keep the logic's RTT measurement (see its docstring).
        record = getattr(self, "record_pong", None)
        if record is not None:
            record(data)
        super().on_pong(data)  # type: ignore[misc]


class _JupyterStream(_JupyterWebSocket):
    """A stream socket (the camera's own or a relayed one): connecting needs "read"; whether the
    user may also "write" is decided at the handshake (authorizers may be async), since settings
    and recordings travel on the socket too."""

    _may_write = False

    @ws_authenticated
    @authorized("read", resource=AUTH_RESOURCE)
    async def get(self, *args: Any, **kwargs: Any) -> None:
        self._may_write = await may_write(self)
        await super().get(*args, **kwargs)  # type: ignore[misc]


class StreamHandler(_JupyterStream, stream.StreamHandler, JupyterHandler):  # type: ignore[misc]
    """``labcam/ws/camera/stream``. Connecting needs "read"; settings messages also need "write"."""

    def _control_settings(self, msg: dict[str, Any]) -> None:
        check_write(msg, self._may_write)
        super()._control_settings(msg)

    def _control_record(self, msg: dict[str, Any]) -> None:
        check_write(msg, self._may_write)
        super()._control_record(msg)


class RawFramesHandler(_JupyterWebSocket, rawframes.RawFramesHandler, JupyterHandler):  # type: ignore[misc]
    """``labcam/ws/camera/frames``: lossless frames for ``labcam.connect()``."""

    @ws_authenticated
    @authorized("read", resource=AUTH_RESOURCE)
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)


class _AuthorizedGet(ExtensionHandlerMixin):
    """GET (and HEAD) on a labcam page or REST route: Jupyter's login, then "read" on labcam, then
    the logic's ``get`` (sync or async: ``authorized`` awaits what it returns)."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    def get(self, *args: Any, **kwargs: Any) -> Any:
        return super().get(*args, **kwargs)  # type: ignore[misc]


class _JupyterApi(_AuthorizedGet):
    """REST: Jupyter's ``APIHandler`` behind the logic (403 instead of a login redirect)."""

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # APIHandler.finish forces "application/json"; snaps are PNG/JPEG/TIFF/npy and say so.
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))  # type: ignore[attr-defined]
        return super().finish(*args, **kwargs)  # type: ignore[misc]


class CameraHandler(_JupyterApi, rest.CameraHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/camera`` (read)."""


class SettingsHandler(_JupyterApi, rest.SettingsHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/camera/settings``: read; change with PATCH or PUT (write)."""

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        await super().patch()

    @web.authenticated
    @authorized
    async def put(self) -> None:
        await super().put()


class SnapHandler(_JupyterApi, rest.SnapHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/camera/snap`` (read)."""


class StatsHandler(_JupyterApi, rest.StatsHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/camera/stats`` (read)."""


class RecordingsHandler(_JupyterApi, recording_handlers.RecordingsHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/recordings``: list (read), start (write; XSRF applies unless token-authenticated)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        await super().post()


class RecordingHandler(_JupyterApi, recording_handlers.RecordingHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/recordings/<id>``: status (read); stop with POST ``.../stop`` or DELETE (write)."""

    @web.authenticated
    @authorized
    async def post(self, rec_id: str, action: str | None = None) -> None:
        await super().post(rec_id, action)

    @web.authenticated
    @authorized
    async def delete(self, rec_id: str, action: str | None = None) -> None:
        await super().delete(rec_id, action)


class StaticHandler(_AuthorizedGet, rest.StaticHandler, JupyterHandler):  # type: ignore[misc]
    """``labcam/static/...``: the JavaScript client and the test page's assets (logged-in users;
    HEAD comes through ``get`` too)."""


class TestPageHandler(_AuthorizedGet, rest.TestPageHandler, JupyterHandler):  # type: ignore[misc]
    """``labcam/``: the test page (Jupyter's login page first, for a browser without a session)."""


UNAVAILABLE_PREFIX = "labcam: the camera could not be opened"


class UnavailableHandler(ExtensionHandlerMixin, APIHandler):  # type: ignore[misc]
    """Every labcam route when the configured camera could not be opened: 503 with the reason."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.message = message
        super().initialize(**kwargs)

    @web.authenticated
    @authorized("read", resource=AUTH_RESOURCE)
    def get(self, *args: Any) -> None:
        self.set_status(503)
        self.finish({"error": self.message})


JUPYTER_CLASSES = routes.HandlerClasses(
    stream=StreamHandler,
    camera=CameraHandler,
    settings=SettingsHandler,
    snap=SnapHandler,
    stats=StatsHandler,
    static=StaticHandler,
    page=TestPageHandler,
    raw=RawFramesHandler,
    recordings=RecordingsHandler,
    recording=RecordingHandler,
)


def build_handlers(service: LabcamService) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The extension's routes, relative to the base URL: ``/labcam/...`` for every labcam route."""
    return routes.route_table(service, JUPYTER_CLASSES, prefix=ROUTE_PREFIX)


__all__ = ["AUTH_RESOURCE", "JUPYTER_CLASSES", "UNAVAILABLE_PREFIX", "UnavailableHandler", "build_handlers"]
