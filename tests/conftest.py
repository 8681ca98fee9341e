"""Shared fixtures: a real labcam server on a free loopback port, and a WebSocket client helper.

- ``make_server(**options)`` starts a standalone server (``labcam.server.app.BackgroundServer``) with a
  simulated camera on its own thread and loop, on 127.0.0.1 and a free port; every server started
  is stopped after the test. ``server`` is one with the defaults (320x240 mono8 at 30 fps).
  ``srv.url``, ``srv.ws_url``, ``srv.service``, ``srv.engine``, ``srv.camera`` (the
  ``SimulatedCamera``, for ``expected_frame``), ``srv.call(fn)`` (run on the server's loop).
- ``ws_connect(srv_or_url, query="", headers=None)`` (async) opens a real Tornado WebSocket client
  and returns a ``WsClient`` that has already read the ``connected`` message.
- Async tests run with the anyio plugin on asyncio: mark them ``@pytest.mark.anyio``.
- Every labcam process the tests start announces itself in a temporary runtime folder
  (``LABCAM_RUNTIME_DIR``), never in the user's own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from labcam.cameras.simulated import SimulatedCamera
from labcam.engine import Engine
from labcam.wire import unpack_binary
from labcam.server.app import BackgroundServer


@pytest.fixture(autouse=True, scope="session")
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["LABCAM_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("labcam-runtime"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class LabcamTestServer(BackgroundServer):
    """A ``BackgroundServer`` that also exposes its simulated camera."""

    camera: SimulatedCamera


@pytest.fixture
def make_server() -> Iterator[Callable[..., LabcamTestServer]]:
    """Start servers: ``make_server(width=, height=, pixel_format=, fps=, seed=, idle_grace=,
    token=, allowed_origins=, allowed_hosts=, port=0 (a free one), **service_kwargs)``."""
    started: list[LabcamTestServer] = []

    def start(
        *,
        width: int = 320,
        height: int = 240,
        pixel_format: str = "mono8",
        fps: float = 30.0,
        exposure_ms: float = 5.0,
        seed: int = 1,
        idle_grace: float = 0.2,
        token: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] | None = None,
        port: int = 0,
        **service_kwargs: Any,
    ) -> LabcamTestServer:
        camera = SimulatedCamera(
            width=width, height=height, pixel_format=pixel_format, fps=fps, exposure_ms=exposure_ms, seed=seed
        )

        def factory() -> Engine:
            camera.open()
            return Engine(camera, idle_grace=idle_grace)

        srv = LabcamTestServer(
            factory,
            port=port,
            service_kwargs=service_kwargs,
            token=token,
            allowed_origins=allowed_origins,
            allowed_hosts=allowed_hosts,
        )
        srv.camera = camera
        started.append(srv)
        return srv.start()  # type: ignore[return-value]

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def server(make_server: Callable[..., LabcamTestServer]) -> LabcamTestServer:
    return make_server()


class WsClient:
    """A real WebSocket client of ``ws/camera/stream`` with helpers that skip what a test ignores.

    Text messages that are not what a helper looks for are kept in ``seen`` (bounded by the test's
    length), so a test can look at stats or broadcasts it skipped over.
    """

    def __init__(self, conn: WebSocketClientConnection, connected: dict[str, Any]) -> None:
        self.conn = conn
        self.connected = connected
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls, target: Any, query: str = "", headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> WsClient:
        url = target if isinstance(target, str) else target.ws_url
        if query:
            url += ("&" if "?" in url else "?") + query
        conn = await asyncio.wait_for(websocket_connect(HTTPRequest(url, headers=headers or {})), timeout)
        first = await asyncio.wait_for(conn.read_message(), timeout)
        assert isinstance(first, str), f"expected the connected message, got {first!r:.80}"
        msg = json.loads(first)
        assert msg["type"] == "connected", msg
        return cls(conn, msg)

    async def recv(self, timeout: float = 5.0) -> str | bytes | None:
        """The next message (None when the connection closed)."""
        try:
            return await asyncio.wait_for(self.conn.read_message(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no message within {timeout} s") from None

    async def frame(self, timeout: float = 5.0) -> tuple[dict[str, Any], bytes]:
        """The next frame as (header, jpeg bytes), from either format."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(deadline - loop.time(), 0.001))
            assert msg is not None, f"closed ({self.conn.close_code} {self.conn.close_reason}) while waiting for a frame"
            if isinstance(msg, bytes):
                header, payload = unpack_binary(msg)
                if header.get("type") == "frame":
                    return header, payload
                self.seen.append(header)
                continue
            data = json.loads(msg)
            if data.get("type") == "frame":
                jpeg = base64.b64decode(data.pop("data"))
                return data, jpeg
            self.seen.append(data)

    async def frames(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Headers of the next ``n`` frames."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        return [(await self.frame(max(deadline - loop.time(), 0.001)))[0] for _ in range(n)]

    async def message(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next text (or binary snap) message of ``kind``, skipping frames and others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(deadline - loop.time(), 0.001))
            assert msg is not None, f"closed ({self.conn.close_code} {self.conn.close_reason}) while waiting for {kind!r}"
            if isinstance(msg, bytes):
                header, payload = unpack_binary(msg)
                if header.get("type") == kind:
                    header["payload"] = payload
                    return header
                continue
            data = json.loads(msg)
            if data.get("type") == kind:
                return data
            if data.get("type") != "frame":
                self.seen.append(data)

    def send(self, msg: dict[str, Any] | str) -> None:
        self.conn.write_message(msg if isinstance(msg, str) else json.dumps(msg))

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes the connection; its (code, reason)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(deadline - loop.time(), 0.001))
            if msg is None:
                return self.conn.close_code, self.conn.close_reason

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def ws_connect() -> Callable[..., Any]:
    """``await ws_connect(server_or_ws_url, query="", headers=None)`` → ``WsClient``."""
    return WsClient.open
