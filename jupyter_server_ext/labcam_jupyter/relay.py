"""The relay's handlers (``labcam.relay``) with Jupyter's authentication and authorizer in front.

Same rules as the extension's own camera (``handlers``): every route needs Jupyter's login and
"read" on ``labcam``; changing settings and starting or stopping recordings need "write", on the
stream as over REST (PATCH/PUT/POST/DELETE map to "write" in ``@authorized``).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from labcam.relay import RawFramesPipe, RelayStreamHandler, RestProxyHandler, StreamRelay

from .handlers import AUTH_RESOURCE, ROUTE_PREFIX, _JupyterApi, _JupyterStream, _JupyterWebSocket, check_write

# Paths on the host, also a camera's own (cameras/<id>/...) where the host serves several.
_CAMERA = r"(?:cameras/[^/]+/)?"


class RelayedStreamHandler(_JupyterStream, RelayStreamHandler, JupyterHandler):  # type: ignore[misc]
    """``labcam/ws/camera/stream`` relayed: "read" to watch; settings and recordings need "write"."""

    def check_request(self, msg: dict[str, Any]) -> None:
        check_write(msg, self._may_write)


class RelayedFramesHandler(_JupyterWebSocket, RawFramesPipe, JupyterHandler):  # type: ignore[misc]
    """``labcam/ws/camera/frames`` relayed ("read")."""

    @ws_authenticated
    @authorized("read", resource=AUTH_RESOURCE)
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)


class RelayedApiHandler(_JupyterApi, RestProxyHandler, APIHandler):  # type: ignore[misc]
    """``labcam/api/...`` relayed: GET needs "read" (``_JupyterApi``), the others "write"."""

    @web.authenticated
    @authorized
    async def patch(self, path: str = "") -> None:
        await super().patch(path)

    @web.authenticated
    @authorized
    async def put(self, path: str = "") -> None:
        await super().put(path)

    @web.authenticated
    @authorized
    async def post(self, path: str = "") -> None:
        await super().post(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str = "") -> None:
        await super().delete(path)


class RelayedPageHandler(ExtensionHandlerMixin, RestProxyHandler, JupyterHandler):  # type: ignore[misc]
    """The host's test page and static files: Jupyter's login page first, then "read"; GET only."""

    auth_resource = AUTH_RESOURCE
    SUPPORTED_METHODS = ("GET",)  # type: ignore[assignment]

    @web.authenticated
    @authorized
    async def get(self, path: str = "") -> None:
        if path == "" and not self.request.path.endswith("/"):
            self.redirect(self.request.path + "/")  # the page loads static/... relative to itself
            return
        await super().get(path)


def build_relay_handlers(relay: StreamRelay) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The extension's routes when it relays a host, relative to the base URL."""
    kwargs = {"relay": relay}
    base = ROUTE_PREFIX
    return [
        (f"{base}({_CAMERA}ws/camera/stream)", RelayedStreamHandler, dict(kwargs)),
        (f"{base}({_CAMERA}ws/camera/frames)", RelayedFramesHandler, dict(kwargs)),
        (f"{base}({_CAMERA}api/.*)", RelayedApiHandler, dict(kwargs)),
        (f"{base}(static/.*)", RelayedPageHandler, dict(kwargs)),
        (f"{base.rstrip('/')}/?()", RelayedPageHandler, dict(kwargs)),
    ]


__all__ = ["build_relay_handlers"]
