"""The standalone host (``labcam serve``): the handler logic plus token, origin and host checks.

Security model (docs/protocol.md, Authentication):

- ``token``: every API request and stream needs it, as ``?token=T`` or ``Authorization: token T``
  (or ``Bearer T``); a missing or wrong one is a 403. ``view_token`` (only beside a ``token``) is
  accepted the same way but grants the view role only: changes answer 403 (REST) or an ``error``
  (stream) naming the control role (``labcam.server.base``). The test page and static files are public
  (they hold no data), so ``http://host:8001/?token=T`` works: the page passes the token on.
- Origins: a WebSocket handshake whose ``Origin`` is neither the server itself (Origin host ==
  Host) nor in ``allowed_origins`` gets a 403; so does an API request from such an origin. Allowed
  origins get CORS headers (and preflight answers), so a dev server on another port (the Vue app on
  ``http://localhost:5173``) can read frames and PATCH settings.
- ``allowed_hosts``: when given, requests whose ``Host`` is not one of them get a 403. ``labcam
  serve`` sets it to the loopback names when it binds to loopback without a token, which shuts the
  DNS-rebinding door (a web page that makes its own host name resolve to 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tornado import httpserver, netutil, web

from ..camera_info import DEFAULT_CAMERA_ID
from ..engine import Engine
from . import rawframes, recording_handlers, rest, routes, stream
from .base import CONTROL, VIEW
from .service import LabcamService

log = logging.getLogger("labcam.server")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": (
        "Content-Disposition, X-Labcam-Frame-Number, X-Labcam-Timestamp, X-Labcam-Pixel-Format, "
        "X-Labcam-Exposure-Ms, X-Labcam-Gain-Db"
    ),
    "Access-Control-Max-Age": "600",
}


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash or path."""
    parsed = urlparse(origin.strip().lower())
    if not parsed.scheme or not parsed.netloc:
        raise ValueError(f"origin={origin!r} is not allowed: a scheme and host, e.g. http://localhost:5173")
    return f"{parsed.scheme}://{parsed.netloc}"


class StandaloneSecurity:
    """Token, origin and host checks plus CORS, from the application settings
    ``labcam_token``, ``labcam_allowed_origins`` and ``labcam_allowed_hosts``."""

    request: Any
    settings: dict[str, Any]
    require_token = True  # the test page and static files set this to False

    # -- CORS ------------------------------------------------------------------------------------
    def set_default_headers(self) -> None:
        super().set_default_headers()  # type: ignore[misc]
        origin = self.request.headers.get("Origin")
        if origin and self._origin_allowed_cross(origin):
            self.set_header("Access-Control-Allow-Origin", origin)  # type: ignore[attr-defined]
            self.set_header("Vary", "Origin")  # type: ignore[attr-defined]
            for name, value in CORS_HEADERS.items():
                self.set_header(name, value)  # type: ignore[attr-defined]

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight: allowed origins get 204 (headers from ``set_default_headers``)."""
        self.set_status(204)  # type: ignore[attr-defined]
        self.finish()  # type: ignore[attr-defined]

    # -- checks ------------------------------------------------------------------------------------
    def prepare(self) -> Any:
        allowed_hosts = self.settings.get("labcam_allowed_hosts")
        if allowed_hosts and self.request.host_name.lower() not in allowed_hosts:
            raise web.HTTPError(
                403,
                "Host %r is not allowed: this server only answers to %s (start it with --token to serve other names)",
                self.request.host_name,
                ", ".join(sorted(allowed_hosts)),
            )
        origin = self.request.headers.get("Origin")
        if origin and not self._origin_allowed(origin):
            raise web.HTTPError(
                403, "cross-origin request from %s refused: start the server with --allow-origin %s", origin, origin
            )
        if self.request.method == "OPTIONS":
            return super().prepare()  # type: ignore[misc]  # preflights carry no credentials
        token = self.settings.get("labcam_token")
        if token and self.require_token:
            self._labcam_role = self._role_of(self._given_token(), token, self.settings.get("labcam_view_token"))
            if self._labcam_role is None:
                raise web.HTTPError(
                    403, "a valid token is required: add ?token=... or the header 'Authorization: token ...'"
                )
        return super().prepare()  # type: ignore[misc]

    def may(self, role: str) -> bool:
        """The full token (or no token configured) grants ``CONTROL``; the view token ``VIEW`` only."""
        return role == VIEW or getattr(self, "_labcam_role", CONTROL) == CONTROL

    def check_origin(self, origin: str) -> bool:
        """WebSocket handshakes: same origin, or an allowed one (Tornado answers 403 otherwise)."""
        allowed = self._origin_allowed(origin)
        if not allowed:
            log.warning("refused a cross-origin stream from %s (allow it with --allow-origin)", origin)
        return allowed

    def _origin_allowed(self, origin: str) -> bool:
        host = self.request.headers.get("Host", "").lower()
        if urlparse(origin.lower()).netloc == host and host:
            return True
        return self._origin_allowed_cross(origin)

    def _origin_allowed_cross(self, origin: str) -> bool:
        allowed: frozenset[str] = self.settings.get("labcam_allowed_origins", frozenset())
        if "*" in allowed:
            return True
        try:
            return normalise_origin(origin) in allowed
        except ValueError:
            return False

    def _given_token(self) -> str | None:
        given = self.get_query_argument("token", None)  # type: ignore[attr-defined]
        if given is None:
            auth = self.request.headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("token", "bearer"):
                given = value.strip()
        return given

    @staticmethod
    def _role_of(given: str | None, token: str, view_token: str | None) -> str | None:
        """The role ``given`` grants, None for no or a wrong token. Both tokens are always compared,
        in constant time, so the answer's timing tells nothing about either."""
        if given is None:
            return None
        full = hmac.compare_digest(given.encode(), token.encode())
        view = hmac.compare_digest(given.encode(), (view_token or "").encode()) and bool(view_token)
        return CONTROL if full else VIEW if view else None


class StandaloneWebSocket(StandaloneSecurity):
    """The checks plus keep-alive pings at the service's ``ping_interval``/``ping_timeout``."""

    service: LabcamService

    @property
    def ping_interval(self) -> float:
        return self.service.ping_interval

    @property
    def ping_timeout(self) -> float:
        return self.service.ping_timeout


# Concrete standalone handlers: security first, then the logic.
class StreamHandler(StandaloneWebSocket, stream.StreamHandler):
    pass


class RawFramesHandler(StandaloneWebSocket, rawframes.RawFramesHandler):
    pass


class CameraHandler(StandaloneSecurity, rest.CameraHandler):
    pass


class SettingsHandler(StandaloneSecurity, rest.SettingsHandler):
    pass


class SnapHandler(StandaloneSecurity, rest.SnapHandler):
    pass


class StatsHandler(StandaloneSecurity, rest.StatsHandler):
    pass


class RecordingsHandler(StandaloneSecurity, recording_handlers.RecordingsHandler):
    pass


class RecordingHandler(StandaloneSecurity, recording_handlers.RecordingHandler):
    pass


class CamerasHandler(StandaloneSecurity, rest.CamerasHandler):
    pass


class UnknownCameraHandler(StandaloneSecurity, rest.UnknownCameraHandler):
    pass


class StaticHandler(StandaloneSecurity, rest.StaticHandler):
    require_token = False


class TestPageHandler(StandaloneSecurity, rest.TestPageHandler):
    require_token = False


STANDALONE_CLASSES = routes.HandlerClasses(
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
    cameras=CamerasHandler,
    unknown_camera=UnknownCameraHandler,
)


def view_token_problem(token: str | None, view_token: str | None) -> str:
    """Why this view token cannot be used beside this token ("" when it can)."""
    if view_token is None:
        return ""
    if not view_token:
        return "the view token (--view-token) must not be empty"
    if not token:
        # Without a token everyone let in has full control, so a view token would restrict nobody.
        return ("the view token (--view-token) needs a full-control token (--token) beside it: without one "
                "everyone the server lets in may change settings and record, so a view token would restrict nobody")
    if view_token == token:
        return "the view token (--view-token) must differ from the token (--token)"
    return ""


def make_app(
    cameras: LabcamService | Mapping[str, LabcamService],
    *,
    token: str | None = None,
    view_token: str | None = None,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] | None = None,
    prefix: str = "/",
    **settings: Any,
) -> web.Application:
    """The standalone Tornado application serving ``cameras`` (one service, or ``id -> service``,
    the first also at the legacy paths) under ``prefix``. ``view_token`` needs a ``token`` beside it
    and must differ from it (``ValueError``): without a full token the server is open to everyone it
    lets in, so a view token would restrict nobody."""
    problem = view_token_problem(token, view_token)
    if problem:
        raise ValueError(problem)
    if isinstance(cameras, LabcamService):
        cameras = {DEFAULT_CAMERA_ID: cameras}
    origins = frozenset("*" if o.strip() == "*" else normalise_origin(o) for o in allowed_origins)
    hosts = frozenset(h.lower() for h in allowed_hosts) if allowed_hosts else None
    return web.Application(
        routes.host_route_table(cameras, STANDALONE_CLASSES, prefix=prefix),
        labcam_token=token or None,
        labcam_view_token=view_token or None,
        labcam_allowed_origins=origins,
        labcam_allowed_hosts=hosts,
        **settings,
    )


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or address to bind) only reaches this machine."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


@dataclass(eq=False)
class RunningServer:
    """A standalone server listening: its cameras' services (``id -> service``, the first at the
    legacy paths too), its HTTP server and the port it got."""

    services: dict[str, LabcamService]
    http: httpserver.HTTPServer
    port: int

    @property
    def service(self) -> LabcamService:
        """The first camera's service (the one at ``ws/camera/stream``, ``api/camera``, ...)."""
        return next(iter(self.services.values()))

    async def aclose(self, grace: float = 2.0) -> None:
        """Stop listening, close the streams (1001) and the cameras, then drop the connections that
        are still open after ``grace`` seconds."""
        self.http.stop()
        await asyncio.gather(*(service.aclose(grace) for service in self.services.values()))
        try:
            await asyncio.wait_for(self.http.close_all_connections(), grace)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time; dropping them")


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The server's TLS context for ``--certfile``/``--keyfile`` (PEM; the key may be in the
    certificate file). ``ValueError`` saying what is wrong: a file missing or unreadable, not a
    certificate or key, or a key that does not belong to the certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except OSError as exc:  # FileNotFoundError, PermissionError (ssl.SSLError is an OSError too)
        if isinstance(exc, ssl.SSLError):
            why = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else (
                f"not a PEM certificate and key ({exc.reason or exc})")
        else:
            why = f"{exc.strerror or exc}: {exc.filename or certfile}"
        raise ValueError(f"--certfile {certfile}{f' --keyfile {keyfile}' if keyfile else ''}: {why}") from None
    return context


def start_standalone(
    engines: Engine | Mapping[str, Engine], *, host: str, port: int, service_kwargs: dict[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None, **app_kwargs: Any,
) -> RunningServer:
    """Serve one engine, or several (``id -> engine``: ``cameras/<id>/...``), on ``host``:``port``
    (0: a free port), on the running loop.

    The start-up of ``labcam serve`` and ``BackgroundServer``: each camera gets its own service (its
    own preview hub, clients and recordings), which owns its engine (closed with it);
    ``service_kwargs`` go to every ``LabcamService``, except that with several cameras each records
    into its own sub-folder ``<recordings_dir>/<id>/``. ``app_kwargs`` go to ``make_app``;
    ``ssl_context`` (``tls_context``) serves https/wss. Raises
    ``OSError`` when the address cannot be bound, ``ValueError`` for bad options (the services and
    engines are closed then).
    """
    if isinstance(engines, Engine):
        engines = {DEFAULT_CAMERA_ID: engines}
    kwargs = dict(service_kwargs or {})
    folder = Path(kwargs.pop("recordings_dir", "recordings"))
    services: dict[str, LabcamService] = {}
    try:
        for camera_id, engine in engines.items():
            own = folder / camera_id if len(engines) > 1 else folder
            services[camera_id] = LabcamService(engine, owns_engine=True, recordings_dir=own, **kwargs)
        app = make_app(services, **app_kwargs)
        sockets = netutil.bind_sockets(port, host)
    except BaseException:
        for service in services.values():
            service.close()
        for camera_id, engine in engines.items():
            if camera_id not in services:
                engine.close()
        raise
    http = httpserver.HTTPServer(app, ssl_options=ssl_context)
    http.add_sockets(sockets)
    return RunningServer(services, http, sockets[0].getsockname()[1])


class BackgroundServer:
    """A standalone server on its own thread and event loop (tests, benchmarks, notebooks).

    >>> from labcam.cameras.simulated import SimulatedCamera        # doctest: +SKIP
    >>> srv = BackgroundServer(lambda: Engine(opened_driver)).start()  # doctest: +SKIP
    >>> srv.url                                                     # doctest: +SKIP
    'http://127.0.0.1:40123/'
    >>> srv.stop()                                                  # doctest: +SKIP

    ``engine_factory`` is called on the server thread and returns an engine, or ``id -> engine``
    for several cameras (``start_standalone``); the engines are closed on ``stop``.
    ``service_kwargs`` go to ``LabcamService``, ``app_kwargs`` to ``make_app``.
    """

    def __init__(
        self,
        engine_factory: Callable[[], Engine | Mapping[str, Engine]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        service_kwargs: dict[str, Any] | None = None,
        **app_kwargs: Any,
    ) -> None:
        self._engine_factory = engine_factory
        self.host = host
        self.port = port
        self._service_kwargs = dict(service_kwargs or {})
        self._app_kwargs = app_kwargs
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.service: LabcamService | None = None  # the first camera's
        self.services: dict[str, LabcamService] = {}
        self._running: RunningServer | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:] + "ws/camera/stream"

    @property
    def engine(self) -> Engine:
        assert self.service is not None
        return self.service.engine

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread = threading.Thread(target=self._run, name="labcam-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the labcam server did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the labcam server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        try:
            self._stopped = asyncio.Event()
            running = start_standalone(
                self._engine_factory(), host=self.host, port=self.port,
                service_kwargs=self._service_kwargs, **self._app_kwargs,
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._running, self.service, self.port = running, running.service, running.port
        self.services = running.services
        self._ready.set()
        await self._stopped.wait()
        await running.aclose()

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn()`` on the server's loop (awaiting it if it returns an awaitable); its result."""
        assert self.loop is not None

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the streams (1001), stop the server and the camera. Safe to call twice."""
        if self.loop is None or self._thread is None or self._stopped is None:
            return
        stopped = self._stopped
        try:
            self.loop.call_soon_threadsafe(stopped.set)
        except RuntimeError:
            pass  # the loop is already closed
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "STANDALONE_CLASSES",
    "BackgroundServer",
    "RunningServer",
    "StandaloneSecurity",
    "is_loopback",
    "make_app",
    "normalise_origin",
    "start_standalone",
    "view_token_problem",
    "tls_context",
]
