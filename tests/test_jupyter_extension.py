"""The Jupyter server extension: labcam inside a real Jupyter server (pytest-jupyter).

The server runs with pytest-jupyter's default base URL ``/a%40b/``, so every URL here also checks
that the routes are joined to the base URL correctly. The extension is configured through Jupyter's
own config (``LabcamApp`` section) like a user's ``jupyter_server_config.py`` would.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from labcam.wire import decode_raw_frame as decode_frame, unpack_binary

# pytest-jupyter's fixtures (imported, not a plugin: see jupyter_fixtures) and on_jupyter_loop.
from jupyter_fixtures import *  # noqa: E402,F401,F403

WIDTH, HEIGHT = 320, 240
LABCAM_CONFIG = {
    "camera": "simulated",
    "width": WIDTH,
    "height": HEIGHT,
    "bit_depth": 16,
    "fps": 200.0,
    "exposure_ms": 2.0,
    "quality": 70,
    "max_clients": 6,
    "idle_grace": 0.2,
}


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The extension enabled and configured; ``indirect`` parametrization changes LabcamApp traits."""
    return {
        "ServerApp": {"jpserver_extensions": {"labcam_jupyter": True}},
        "LabcamApp": {**LABCAM_CONFIG, **getattr(request, "param", {})},
    }


def labcam_app(serverapp: Any) -> Any:
    """The running ``LabcamApp`` (ExtensionApps register themselves in the web app's settings)."""
    from labcam_jupyter import LabcamApp

    app = serverapp.web_app.settings["labcam"]
    assert isinstance(app, LabcamApp)
    return app


# Tests that build their own URLs ask for ``http_server_client`` too: it is what makes the test
# server listen on ``jp_http_port`` (``jp_fetch`` asks for it).


def http_url(port: int, base_url: str, *parts: str) -> str:
    return f"http://127.0.0.1:{port}{base_url}" + "/".join(parts)


def ws_url(port: int, base_url: str, *parts: str) -> str:
    return "ws" + http_url(port, base_url, *parts)[4:]


async def fetch_status(url: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, response) without raising for error statuses."""
    response = await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False, **kwargs)
    return response.code, response


async def read_json(conn: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next text message of ``kind`` on a stream connection, skipping frames and others."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await asyncio.wait_for(conn.read_message(), max(deadline - loop.time(), 0.001))
        assert msg is not None, f"stream closed ({conn.close_code} {conn.close_reason}) waiting for {kind!r}"
        if isinstance(msg, str):
            data = json.loads(msg)
            if data.get("type") == kind:
                return data


# -- loading and configuration -------------------------------------------------------------------------
@on_jupyter_loop
async def test_extension_loads_with_the_camera_configured_from_jupyter_config(jp_serverapp: Any) -> None:
    app = labcam_app(jp_serverapp)
    assert app.fps == 200.0 and app.bit_depth == 16 and app.quality == 70
    engine = app.service.engine
    assert engine.description.driver == "simulated"
    s = engine.settings
    assert (s.roi, s.pixel_format, s.fps, s.exposure_ms) == ((0, 0, WIDTH, HEIGHT), "mono16", 200.0, 2.0)
    assert (app.service.quality, app.service.max_clients) == (70, 6)
    assert engine.idle_grace == 0.2
    # Nobody watches yet: the camera is open but does not stream until a consumer comes.
    assert engine.status.state == "idle"


@on_jupyter_loop
async def test_command_line_traits_override_config(jp_configurable_serverapp: Any) -> None:
    serverapp = jp_configurable_serverapp(argv=["--LabcamApp.fps=15", "--LabcamApp.bit_depth=12"])
    app = labcam_app(serverapp)
    assert app.fps == 15.0 and app.bit_depth == 12
    s = app.service.engine.settings
    assert (s.fps, s.pixel_format) == (15.0, "mono12")


@on_jupyter_loop
async def test_extension_is_listed_as_enabled_by_the_installed_config() -> None:
    """The shipped etc/jupyter/jupyter_server_config.d/labcam_jupyter.json enables it on install."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_server", "extension", "list",  # not `jupyter`: needs PATH
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_CONFIG")},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode())  # drop the colours
    assert re.search(r"labcam_jupyter\s+enabled", text), text
    assert re.search(r"labcam_jupyter\s+OK", text), text  # and it imports and validates


# -- routes under the base URL ----------------------------------------------------------------------
ROUTES = [
    ("labcam/api/camera", "application/json"),
    ("labcam/api/camera/settings", "application/json"),
    ("labcam/api/camera/stats", "application/json"),
    ("labcam/api/camera/snap?format=npy", "application/octet-stream"),
    ("labcam/static/labcam-client.js", "text/javascript"),
    ("labcam/", "text/html"),
]


@on_jupyter_loop
async def test_handlers_are_mounted_under_the_base_url(
    jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int
) -> None:
    assert jp_base_url == "/a%40b/"  # pytest-jupyter's default: it must be joined and quoted right
    for path, content_type in ROUTES:
        parts, _, query = path.partition("?")
        params = dict([query.split("=")]) if query else None
        response = await jp_fetch(parts, params=params)  # one part: keeps the page's trailing slash
        assert response.code == 200, path
        assert response.headers["Content-Type"].startswith(content_type), (path, response.headers["Content-Type"])
    info = json.loads((await jp_fetch("labcam", "api", "camera")).body)
    assert info["camera"]["sensor_width"] == WIDTH and info["settings"]["pixel_format"] == "mono16"
    # Only under the base URL: the same path at the server's root is not ours.
    token = jp_serverapp.identity_provider.token
    code, _ = await fetch_status(
        f"http://127.0.0.1:{jp_http_port}/labcam/api/camera", headers={"Authorization": f"token {token}"}
    )
    assert code == 404


# -- authentication ------------------------------------------------------------------------------------
@on_jupyter_loop
async def test_rest_needs_jupyter_authentication(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int
) -> None:
    for path in ("api/camera", "api/camera/settings", "api/camera/stats", "api/camera/snap"):
        url = http_url(jp_http_port, jp_base_url, "labcam", path)
        for headers in ({}, {"Authorization": "token wrong"}):
            code, response = await fetch_status(url, headers=headers)
            assert code == 403, (path, headers, code)
            assert "error" in json.loads(response.body)  # labcam's error body, from both hosts
    url = http_url(jp_http_port, jp_base_url, "labcam", "api", "camera", "settings")
    code, _ = await fetch_status(url, method="PATCH", body=json.dumps({"exposure_ms": 3}))
    assert code == 403
    assert app_settings(jp_serverapp).exposure_ms == 2.0  # nothing changed
    # Pages redirect a browser without a session to Jupyter's login page.
    code, response = await fetch_status(http_url(jp_http_port, jp_base_url, "labcam/"))
    assert code == 302 and "login" in response.headers["Location"]


def app_settings(serverapp: Any) -> Any:
    return labcam_app(serverapp).service.engine.settings


@pytest.mark.parametrize("path", ["ws/camera/stream", "ws/camera/frames"])
@on_jupyter_loop
async def test_websockets_refuse_unauthenticated_clients(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, path: str
) -> None:
    url = ws_url(jp_http_port, jp_base_url, "labcam", path)
    for headers in ({}, {"Authorization": "token wrong"}):
        with pytest.raises(HTTPClientError) as err:
            await websocket_connect(HTTPRequest(url, headers=headers))
        assert err.value.code == 403, headers
    # With the token in the query (what an external app like the Vue one does), it opens.
    token = jp_serverapp.identity_provider.token
    conn = await websocket_connect(url + f"?token={token}")
    conn.close()


@on_jupyter_loop
async def test_cookie_sessions_are_refused_from_other_origins(
    jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int
) -> None:
    """A page on another origin cannot ride on the user's login cookie (Jupyter's origin check);
    with the token it is an explicit client and may connect (the Vue app)."""
    response = await jp_fetch("labcam", "api", "camera")
    cookie = "; ".join(v.split(";", 1)[0] for v in response.headers.get_list("Set-Cookie"))
    assert cookie, "the token login should set Jupyter's session cookie"
    url = ws_url(jp_http_port, jp_base_url, "labcam", "ws", "camera", "stream")
    same_origin = f"http://127.0.0.1:{jp_http_port}"
    conn = await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, "Origin": same_origin}))
    conn.close()
    with pytest.raises(HTTPClientError) as err:
        await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, "Origin": "http://evil.example"}))
    assert err.value.code == 403
    token = jp_serverapp.identity_provider.token
    conn = await websocket_connect(HTTPRequest(url + f"?token={token}", headers={"Origin": "http://localhost:5173"}))
    conn.close()


# -- streaming ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "binary"])
@on_jupyter_loop
async def test_stream_sends_frames_to_authenticated_clients(jp_serverapp: Any, jp_ws_fetch: Any, fmt: str) -> None:
    conn = await jp_ws_fetch("labcam", "ws", "camera", "stream", params={"format": fmt})
    try:
        connected = json.loads(await asyncio.wait_for(conn.read_message(), 10))
        assert connected["type"] == "connected" and connected["stream"]["format"] == fmt
        assert connected["camera"]["driver"] == "simulated" and connected["settings"]["pixel_format"] == "mono16"
        numbers = []
        while len(numbers) < 3:
            msg = await asyncio.wait_for(conn.read_message(), 10)
            assert msg is not None
            if fmt == "binary":
                if not isinstance(msg, bytes):
                    continue
                header, jpeg = unpack_binary(msg)
            else:
                header = json.loads(msg)
                if header["type"] != "frame":
                    continue
                jpeg = base64.b64decode(header["data"])
            assert header["type"] == "frame" and jpeg[:2] == b"\xff\xd8"  # a JPEG
            assert (header["source_width"], header["source_height"]) == (WIDTH, HEIGHT)
            numbers.append(header["frame_number"])
        assert numbers == sorted(numbers) and len(set(numbers)) == 3
    finally:
        conn.close()


@on_jupyter_loop
async def test_settings_change_applies_and_is_broadcast(jp_serverapp: Any, jp_fetch: Any, jp_ws_fetch: Any) -> None:
    watcher = await jp_ws_fetch("labcam", "ws", "camera", "stream", params={"format": "binary"})
    try:
        await read_json(watcher, "connected")
        response = await jp_fetch(
            "labcam", "api", "camera", "settings", method="PATCH", body=json.dumps({"exposure_ms": 3.5, "gain_db": 6})
        )
        assert json.loads(response.body)["exposure_ms"] == 3.5
        broadcast = await read_json(watcher, "settings")
        assert (broadcast["settings"]["exposure_ms"], broadcast["settings"]["gain_db"]) == (3.5, 6.0)
        assert app_settings(jp_serverapp).exposure_ms == 3.5
        # Over the stream socket too (the widget's controls): applied and broadcast.
        watcher.write_message(json.dumps({"type": "settings", "changes": {"exposure_ms": 1.5}}))
        broadcast = await read_json(watcher, "settings")
        assert broadcast["settings"]["exposure_ms"] == 1.5
        # A bad value: 400 naming the setting and its range, nothing changed.
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("labcam", "api", "camera", "settings", method="PATCH", body=json.dumps({"exposure_ms": -1}))
        assert err.value.code == 400
        body = json.loads(err.value.response.body)
        assert body["error"].startswith("exposure_ms=-1 is not allowed: a number from")
        assert app_settings(jp_serverapp).exposure_ms == 1.5
    finally:
        watcher.close()


@on_jupyter_loop
async def test_snap_is_full_resolution_and_lossless(jp_serverapp: Any, jp_fetch: Any) -> None:
    camera = labcam_app(jp_serverapp).service.engine.driver
    response = await jp_fetch("labcam", "api", "camera", "snap", params={"format": "npy"})
    array = np.load(io.BytesIO(response.body))
    assert array.dtype == np.uint16 and array.shape == (HEIGHT, WIDTH) and array.max() > 255
    number = int(response.headers["X-Labcam-Frame-Number"])
    assert np.array_equal(array, camera.expected_frame(number))
    png = await jp_fetch("labcam", "api", "camera", "snap", params={"format": "png"})
    assert png.headers["Content-Type"] == "image/png" and png.body[:8] == b"\x89PNG\r\n\x1a\n"


@on_jupyter_loop
async def test_raw_frames_endpoint_streams_lossless_frames(jp_serverapp: Any, jp_ws_fetch: Any) -> None:
    camera = labcam_app(jp_serverapp).service.engine.driver
    conn = await jp_ws_fetch("labcam", "ws", "camera", "frames", params={"mode": "all", "count": "5"})
    frames = []
    while (msg := await asyncio.wait_for(conn.read_message(), 10)) is not None:
        frames.append(decode_frame(msg)[0])
    assert conn.close_code == 1000 and len(frames) == 5
    numbers = [f.meta.frame_number for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    for f in frames:
        assert np.array_equal(f.array, camera.expected_frame(f.meta.frame_number))


# -- life cycle ---------------------------------------------------------------------------------------
KERNEL_CODE = textwrap.dedent(
    """
    import labcam
    cam = labcam.connect()
    frame = cam.snap(meta=True)
    print("LABCAM", cam.url, frame.array.dtype, frame.array.shape, int(frame.array.max()), frame.meta.frame_number)
    """
)


async def run_in_kernel(serverapp: Any, kernel_id: str, code: str) -> str:
    """Execute ``code`` in a kernel the server started; its stdout (errors fail the test)."""
    km = serverapp.kernel_manager.get_kernel(kernel_id)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        out: list[str] = []
        errors: list[str] = []

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        reply = await client.execute_interactive(code, output_hook=on_output, timeout=60)
        assert reply["content"]["status"] == "ok", "".join(errors)
        return "".join(out)
    finally:
        client.stop_channels()


@on_jupyter_loop
async def test_kernels_connect_without_arguments_and_restarts_do_not_touch_the_camera(
    jp_serverapp: Any, jp_fetch: Any, jp_ws_fetch: Any, jp_base_url: str
) -> None:
    app = labcam_app(jp_serverapp)
    engine = app.service.engine
    watcher = await jp_ws_fetch("labcam", "ws", "camera", "stream", params={"format": "binary"})
    try:
        await read_json(watcher, "connected")
        response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
        kernel_id = json.loads(response.body)["id"]
        # The kernel finds this server by itself (its jpserver json, matched by parent pid).
        out = await run_in_kernel(jp_serverapp, kernel_id, KERNEL_CODE)
        line = next(ln for ln in out.splitlines() if ln.startswith("LABCAM"))
        _, url, dtype, *_, vmax, _ = line.split()
        assert url.endswith(f"{jp_base_url}labcam/") and dtype == "uint16" and int(vmax) > 255
        latest = engine.latest
        assert latest is not None
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
        # Same engine, still streaming to the watcher, which never noticed: frames newer than the
        # restart keep arriving on its connection (older ones may still be queued before them).
        assert app.service.engine is engine and engine.status.state == "streaming"
        while unpack_binary(await next_binary(watcher))[0]["frame_number"] <= latest.meta.frame_number:
            pass
        out = await run_in_kernel(jp_serverapp, kernel_id, KERNEL_CODE)
        assert "LABCAM" in out
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    finally:
        watcher.close()


async def next_binary(conn: Any, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await asyncio.wait_for(conn.read_message(), max(deadline - loop.time(), 0.001))
        assert msg is not None
        if isinstance(msg, bytes):
            return msg


@on_jupyter_loop
async def test_stopping_the_extension_closes_streams_and_the_camera(jp_serverapp: Any, jp_ws_fetch: Any) -> None:
    app = labcam_app(jp_serverapp)
    engine = app.service.engine
    conn = await jp_ws_fetch("labcam", "ws", "camera", "stream")
    await read_json(conn, "connected")
    await app.stop_extension()
    while await asyncio.wait_for(conn.read_message(), 10) is not None:
        pass
    assert conn.close_code == 1001
    assert engine.status.state == "closed"
    await app.stop_extension()  # the server's own cleanup calls it again: harmless


@pytest.mark.parametrize("jp_server_config", [{"width": 3}], indirect=True)
@on_jupyter_loop
async def test_a_camera_that_cannot_open_leaves_jupyter_up_and_says_why(
    jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int
) -> None:
    import labcam

    assert labcam_app(jp_serverapp).service is None
    assert (await jp_fetch("api", "status")).code == 200  # Jupyter itself is fine
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("labcam", "api", "camera")
    assert err.value.code == 503
    assert "could not be opened" in json.loads(err.value.response.body)["error"]
    token = jp_serverapp.identity_provider.token
    with pytest.raises(labcam.CameraUnavailable, match=r"could not be opened \(simulated\): width=3"):
        await asyncio.to_thread(labcam.connect, f"http://127.0.0.1:{jp_http_port}{jp_base_url}", token=token)
