"""``GET api/webrtc``: what one viewer needs to watch through Janus, behind the host's auth.

The logic (``WebRTCInfoHandler``) knows nothing about authentication, like every labcam handler
(``labcam.server.routes``); ``labcam serve`` composes it with ``StandaloneSecurity``, so a request
without labcam's token is a 403 and gets no Janus token. The answer::

    {"janus_url": "http://127.0.0.1:40123/janus", "mountpoint": 1, "token": "…",
     "ice_servers": [], "codec": "avc1.42C01F"}

``token`` is new for each request, valid for Janus's streaming plugin only. 503 with
``{"error": …}`` while Janus is unreachable (labcam's WebSocket stream goes on).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlparse, urlunparse

from tornado import web

from .janus import JanusError
from .publisher import WebRTCPublisher

ROUTE = "api/webrtc"
UNSPECIFIED_HOSTS = ("0.0.0.0", "::", "")


class WebRTCInfoHandler(web.RequestHandler):
    def initialize(self, publisher: WebRTCPublisher, **kwargs: Any) -> None:
        self.publisher = publisher
        super().initialize(**kwargs)

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")  # a token: never cached
        try:
            # add_token is a blocking admin-API request: off the event loop.
            info = await asyncio.get_running_loop().run_in_executor(None, self.publisher.viewer_info)
        except JanusError as exc:
            self.set_status(503)
            self.finish({"error": str(exc)})
            return
        info["janus_url"] = self._reachable(info["janus_url"])
        self.finish(info)

    def _reachable(self, url: str) -> str:
        """Janus bound to all addresses (0.0.0.0): the viewer reaches it by the name it used for labcam."""
        parsed = urlparse(url)
        if parsed.hostname not in UNSPECIFIED_HOSTS:
            return url
        name = self.request.host_name
        host = f"[{name}]" if ":" in name else name
        return urlunparse(parsed._replace(netloc=f"{host}:{parsed.port}"))


def mount(app: web.Application, publisher: WebRTCPublisher, handler: type[web.RequestHandler], prefix: str = "/") -> None:
    """Add ``api/webrtc`` under ``prefix`` to a running application (labcam's other routes are
    left as they are)."""
    stripped = prefix.strip("/")
    base = "/" + stripped + "/" if stripped else "/"
    app.add_handlers(r".*", [(re.escape(base) + ROUTE, handler, {"publisher": publisher})])


__all__ = ["ROUTE", "WebRTCInfoHandler", "mount"]
