"""The Jupyter extension relays a ``labcam serve`` that holds the camera (issue 13, items 2 and 3).

Real processes: the host is a ``labcam serve`` subprocess on the fake PixeLINK SDK
(tests/fake_pixelink, on its PYTHONPATH), the Jupyter server is pytest-jupyter's, in this process,
with the same fake camera plugged in. ``LABCAM_FAKE_PIXELINK_LOCKS`` makes the fake camera one that
only one process can open at a time, as a real USB camera: the fight the relay ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

import labcam
from labcam import hosts
from labcam.cameras.selection import CameraHeldByHost
from labcam.wire import decode_raw_frame, split_binary
from test_cli import Serve
from test_jupyter_extension import fetch_status, http_url, read_json, ws_url

from jupyter_fixtures import *  # noqa: F401,F403

pytest_plugins = ["fixtures_pixelink"]

FAKE_ROOT = Path(__file__).parent / "fake_pixelink"
SERIAL = 771_000_555
LOCK_ENV = "LABCAM_FAKE_PIXELINK_LOCKS"
# The host process: the fake SDK with our camera plugged in, then the labcam command.
LAUNCH = (
    "import sys\n"
    "from pixelinkWrapper.fake import FAKE\n"
    f"FAKE.add_camera({SERIAL})\n"
    "from labcam.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
HOST_ARGS = ["--camera", "pixelink", "--serial", str(SERIAL), "--fps", "30", "--exposure-ms", "2",
             "--bit-depth", "16", "--idle-grace", "0.2", "--log-level", "INFO"]


class Host(Serve):
    """``labcam serve`` on the fake PixeLINK camera, in its own process, on ``port``."""

    def __init__(self, port: int, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), *HOST_ARGS, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(r"listening on (http://\S+)")
        self.url = re.search(r"listening on (http://\S+/)", line).group(1)  # type: ignore[union-attr]
        # labcam serve writes its runtime file just after saying "listening on": wait for it.
        deadline = time.monotonic() + 30
        while not any(h.url == self.url for h in hosts.running_hosts()):
            assert time.monotonic() < deadline and self.proc.poll() is None, "the host never announced itself"
            time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cross-process camera locks for the fake, for this process and the host alike."""
    folder = tmp_path / "pixelink-locks"
    folder.mkdir()
    monkeypatch.setenv(LOCK_ENV, str(folder))
    return folder


@pytest.fixture
def camera_here(fake_sdk: Any, lock_dir: Path) -> Any:
    """The same fake camera, as this process's SDK sees it."""
    return fake_sdk.add_camera(SERIAL)


@pytest.fixture
def host(camera_here: Any, request: pytest.FixtureRequest) -> Iterator[Host]:
    extra = getattr(request, "param", ())
    h = Host(free_port(), *extra)
    yield h
    h.kill()


@pytest.fixture
def jp_server_config(host: Host, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The extension on "auto"; a parametrized case (see ``CAMERA_URL_CASES``) names a camera_url."""
    param = getattr(request, "param", {})
    if isinstance(param, str):
        url = request.getfixturevalue("not_labcam") if param == "not labcam" else host.url
        param = {"camera_url": url, **({"camera_token": CAMERA_URL_CASES[param]} if CAMERA_URL_CASES[param] else {})}
    return {
        "ServerApp": {"jpserver_extensions": {"labcam_jupyter": True}},
        "LabcamApp": {"camera": "auto", "max_clients": 12, **param},
    }


CAMERA_URL_CASES = {"no token": None, "wrong token": "guess", "not labcam": None, "right token": "sesame"}
"""camera_url cases against a host started with ``--token sesame``: the camera_token each gives."""


def auth(serverapp: Any) -> dict[str, str]:
    return {"Authorization": f"token {serverapp.identity_provider.token}"}


async def open_relayed(serverapp: Any, port: int, base_url: str, query: str = "") -> Any:
    url = ws_url(port, base_url, "labcam", "ws", "camera", "stream") + (f"?{query}" if query else "")
    return await websocket_connect(HTTPRequest(url, headers=auth(serverapp)), max_message_size=64 << 20)


async def next_frame(conn: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The header of the next frame on a stream, in either format."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await asyncio.wait_for(conn.read_message(), max(deadline - loop.time(), 0.001))
        assert msg is not None, f"stream closed ({conn.close_code} {conn.close_reason})"
        if isinstance(msg, bytes):
            header, _, _ = split_binary(msg)
            if header.get("type") == "frame":
                return header
        else:
            data = json.loads(msg)
            if data.get("type") == "frame":
                return data


async def host_stats(host: Host) -> dict[str, Any]:
    response = await AsyncHTTPClient().fetch(host.url + "api/camera/stats")
    return json.loads(response.body)


async def wait_until(condition: Any, timeout: float = 10.0) -> Any:
    """Poll an async ``condition`` until it returns something true (the host is another process)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# -- the fight, and its end ----------------------------------------------------------------------------
def test_a_camera_labcam_serve_holds_is_busy_for_another_process_and_names_the_host(host: Host) -> None:
    with pytest.raises(CameraHeldByHost) as err:
        labcam.open("pixelink", serial=SERIAL)
    assert host.url in str(err.value) and err.value.host.url == host.url
    # "auto" does not fall back to the simulator either.
    with pytest.raises(CameraHeldByHost):
        labcam.open("auto")


def test_a_second_labcam_serve_with_auto_refuses_naming_the_first(host: Host) -> None:
    second = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--port", "0", "--camera", "auto"],
        env={**os.environ, "PYTHONPATH": str(FAKE_ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert second.returncode != 0
    assert f"in use by labcam serve at {host.url}" in second.stderr, second.stderr


# -- relaying ----------------------------------------------------------------------------------------
@on_jupyter_loop
async def test_the_extension_relays_the_host_in_both_formats_with_one_upstream_per_options(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host
) -> None:
    app = jp_serverapp.web_app.settings["labcam"]
    assert app.relay is not None and app.service is None  # it did not open the camera
    viewers = [await open_relayed(jp_serverapp, jp_http_port, jp_base_url, q)
               for q in ("", "", "", "format=binary", "format=binary", "format=binary&quality=80")]
    for conn in viewers:
        connected = await read_json(conn, "connected")
        assert connected["relayed_from"] == host.url
        assert connected["camera"]["serial"] == str(SERIAL)
        status = await read_json(conn, "status")
        assert status["message"].startswith(f"relayed from {host.url}")
    for conn in viewers:
        header = await next_frame(conn)
        assert (header["source_width"], header["source_height"]) == (640, 480)
    stats = await host_stats(host)
    streams = [c for c in stats["clients"] if c["format"] in ("json", "binary")]
    # Three sets of options, so three upstreams for six viewers; quality=80 is the host's default
    # spelled out, so all three share the host's one encode per frame.
    assert len(streams) == 3, streams
    assert len(stats["encoder"]["variants"]) == 1
    relayed = json.loads((await AsyncHTTPClient().fetch(
        http_url(jp_http_port, jp_base_url, "labcam", "api", "camera", "stats"), headers=auth(jp_serverapp))).body)
    assert relayed["relayed_from"] == host.url
    assert len(relayed["relay"]["clients"]) == 6 and len(relayed["relay"]["upstreams"]) == 3
    for conn in viewers:
        conn.close()


@on_jupyter_loop
async def test_settings_changed_through_jupyter_reach_the_host_and_the_reverse(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host
) -> None:
    mine = await open_relayed(jp_serverapp, jp_http_port, jp_base_url)
    other = await open_relayed(jp_serverapp, jp_http_port, jp_base_url)
    direct = await websocket_connect(host.url.replace("http", "ws", 1) + "ws/camera/stream")
    for conn in (mine, other, direct):
        await read_json(conn, "connected")
    mine.write_message(json.dumps({"type": "settings", "changes": {"exposure_ms": 3.0}, "request_id": "x1"}))
    reply = await read_json(mine, "settings")
    assert reply["request_id"] == "x1" and reply["settings"]["exposure_ms"] == 3.0
    for conn in (other, direct):
        news = await read_json(conn, "settings")
        assert news["settings"]["exposure_ms"] == 3.0 and "request_id" not in news
    # The reverse: a change made on the host directly reaches the relayed viewers.
    await AsyncHTTPClient().fetch(host.url + "api/camera/settings", method="PATCH", body=json.dumps({"exposure_ms": 4.0}))
    for conn in (mine, other, direct):
        assert (await read_json(conn, "settings"))["settings"]["exposure_ms"] == 4.0
    # And REST through Jupyter.
    code, response = await fetch_status(
        http_url(jp_http_port, jp_base_url, "labcam", "api", "camera", "settings"), method="PATCH",
        body=json.dumps({"exposure_ms": 5.0}), headers=auth(jp_serverapp))
    assert code == 200 and json.loads(response.body)["exposure_ms"] == 5.0
    assert (await read_json(direct, "settings"))["settings"]["exposure_ms"] == 5.0
    # A bad value: the host's error, in its words, and nothing changed.
    code, response = await fetch_status(
        http_url(jp_http_port, jp_base_url, "labcam", "api", "camera", "settings"), method="PATCH",
        body=json.dumps({"exposure_ms": -1}), headers=auth(jp_serverapp))
    assert code == 400 and json.loads(response.body)["setting"] == "exposure_ms"
    for conn in (mine, other, direct):
        conn.close()


@on_jupyter_loop
async def test_requests_are_answered_to_the_viewer_that_asked(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host
) -> None:
    a = await open_relayed(jp_serverapp, jp_http_port, jp_base_url, "format=binary")
    b = await open_relayed(jp_serverapp, jp_http_port, jp_base_url, "format=binary")
    for conn in (a, b):
        await read_json(conn, "connected")
    a.write_message(json.dumps({"type": "snap", "format": "npy", "request_id": 7}))
    b.write_message(json.dumps({"type": "ping", "id": "p", "request_id": "b-ping"}))
    pong = await read_json(b, "pong")
    assert pong["id"] == "p" and pong["request_id"] == "b-ping"
    while True:  # a binary snap, its header carrying a's own request id
        msg = await asyncio.wait_for(a.read_message(), 10)
        assert isinstance(msg, bytes | str) and msg is not None
        if isinstance(msg, bytes):
            header, _, _ = split_binary(msg)
            if header["type"] == "snap":
                break
    assert header["request_id"] == 7 and header["encoding"] == "npy"
    # Options: a configure moves the viewer to another upstream; a bad one is refused, in the host's words.
    a.write_message(json.dumps({"type": "configure", "quality": 500, "request_id": "c1"}))
    error = await read_json(a, "error")
    assert error["request"] == "configure" and "quality" in error["message"] and error["request_id"] == "c1"
    a.write_message(json.dumps({"type": "configure", "quality": 40, "request_id": "c2"}))
    configured = await read_json(a, "configured")
    assert configured["stream"]["quality"] == 40 and configured["request_id"] == "c2"
    assert (await next_frame(a))["type"] == "frame"
    stats = await host_stats(host)
    qualities = sorted(c["stream"]["quality"] for c in stats["clients"] if c["format"] == "binary")
    assert qualities == [40, 80]
    # A request in flight while the viewer moves to another upstream still gets its reply.
    b.write_message(json.dumps({"type": "snap", "format": "npy", "request_id": "b-snap"}))
    b.write_message(json.dumps({"type": "configure", "quality": 30, "request_id": "b-conf"}))
    got: dict[str, Any] = {}
    while len(got) < 2:
        msg = await asyncio.wait_for(b.read_message(), 10)
        assert msg is not None
        header = split_binary(msg)[0] if isinstance(msg, bytes) else json.loads(msg)
        if header.get("request_id") in ("b-snap", "b-conf"):
            got[header["request_id"]] = header
    assert got["b-snap"]["type"] == "snap" and got["b-conf"]["type"] == "configured"
    a.write_message(json.dumps({"type": "configure", "bogus": 1}))
    assert "'bogus' is not a stream option" in (await read_json(a, "error"))["message"]
    for conn in (a, b):
        conn.close()


@on_jupyter_loop
async def test_viewers_see_lost_when_the_host_dies_and_resume_on_the_same_socket(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host
) -> None:
    conn = await open_relayed(jp_serverapp, jp_http_port, jp_base_url, "format=binary")
    await read_json(conn, "connected")
    first = await next_frame(conn)
    port = int(host.url.rsplit(":", 1)[1].strip("/"))
    host.kill()  # SIGKILL: no goodbye, its runtime file stays behind (stale)
    lost = await read_json(conn, "status", timeout=20)
    assert lost["state"] == "lost" and lost["message"].startswith(f"relayed from {host.url}")
    again = Host(port)
    try:
        back = await read_json(conn, "status", timeout=30)
        assert back["state"] != "lost" and back["message"] == f"relayed from {again.url}"
        header = await next_frame(conn, timeout=20)
        assert header["source_width"] == 640 and conn.close_code is None
        assert header["timestamp"] > first["timestamp"]
    finally:
        conn.close()
        again.kill()


@on_jupyter_loop
async def test_labcam_connect_through_jupyter_gets_raw_frames_relayed(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host, camera_here: Any
) -> None:
    url = http_url(jp_http_port, jp_base_url)
    token = jp_serverapp.identity_provider.token

    def snap_and_acquire() -> tuple[Any, Any]:
        cam = labcam.connect(url, token=token)
        try:
            return cam.snap(meta=True), cam.acquire(3)
        finally:
            cam.close()

    frame, stack = await asyncio.to_thread(snap_and_acquire)
    assert frame.meta.camera_serial == str(SERIAL)
    assert frame.array.dtype.itemsize == 2  # 12-bit, lossless, as the host captured it
    assert len(stack) == 3
    numbers = list(stack.frame_numbers)
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    # A bad raw-frame option: the host's 400 and message, through the relay.
    code, response = await fetch_status(
        http_url(jp_http_port, jp_base_url, "labcam", "ws", "camera", "frames") + "?mode=sideways",
        headers={**auth(jp_serverapp), "Connection": "Upgrade", "Upgrade": "websocket",
                 "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert code == 400 and "mode" in json.loads(response.body)["error"]


# -- bad input -----------------------------------------------------------------------------------------
@pytest.fixture
def bad_runtime_files(host: Host) -> list[Path]:
    folder = hosts.runtime_dir()
    garbled = folder / "labcam-host-424242-9.json"
    garbled.write_text("{not json")
    garbled.chmod(0o600)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale_info = hosts.HostInfo(url="http://127.0.0.1:9/", driver="pixelink", model="gone", serial=str(SERIAL),
                                pid=int(dead.stdout), started=hosts.running_hosts()[0].started.replace(year=2000))
    stale = hosts.announce(stale_info)
    yield [garbled, stale]
    garbled.unlink(missing_ok=True)


@on_jupyter_loop
async def test_stale_and_garbled_runtime_files_are_ignored_by_the_extension(
    bad_runtime_files: list[Path], jp_serverapp: Any, http_server_client: Any, jp_base_url: str,
    jp_http_port: int, host: Host,
) -> None:
    garbled, stale = bad_runtime_files
    app = jp_serverapp.web_app.settings["labcam"]
    assert app.relay is not None and app.relay.target.url == host.url  # not the stale, older one
    assert not stale.exists() and garbled.exists()  # the dead host's file cleaned up, the odd one left
    conn = await open_relayed(jp_serverapp, jp_http_port, jp_base_url)
    assert (await read_json(conn, "connected"))["relayed_from"] == host.url
    conn.close()


class _NotLabcam(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        body = b"<html>a web server, not labcam</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_labcam() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotLabcam)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", [("--token", "sesame")], indirect=True)
@pytest.mark.parametrize("jp_server_config", list(CAMERA_URL_CASES), indirect=True)
@on_jupyter_loop
async def test_a_camera_url_that_refuses_or_is_not_labcam_is_a_clear_error(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host,
    request: pytest.FixtureRequest,
) -> None:
    case = request.node.callspec.params["jp_server_config"]
    app = jp_serverapp.web_app.settings["labcam"]
    code, response = await fetch_status(http_url(jp_http_port, jp_base_url, "labcam", "api", "camera"), headers=auth(jp_serverapp))
    body = json.loads(response.body)
    if case == "right token":
        assert code == 200 and body["relayed_from"] == host.url
        return
    assert app.relay is None and code == 503  # Jupyter runs; labcam says why it cannot
    expected = {"no token": "refused the relay (403): the camera_token is missing",
                "wrong token": "refused the relay (403): the camera_token is wrong",
                "not labcam": "is not a labcam host"}[case]
    assert expected in body["error"] and expected in app.unavailable, body


@pytest.mark.parametrize("path", ["api/camera", "api/camera/stats", "", "static/labcam-client.js"])
@on_jupyter_loop
async def test_relayed_routes_need_jupyter_authentication(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host, path: str
) -> None:
    url = http_url(jp_http_port, jp_base_url, "labcam", path)
    code, response = await fetch_status(url, headers={"Authorization": "token wrong"})
    assert code in (302, 403), code  # pages send a browser to the login page, the API says 403
    code, _ = await fetch_status(url, method="PATCH", body="{}", headers={"Authorization": "token wrong"})
    assert code in (403, 405)
    if path.startswith("static") or path == "":
        code, _ = await fetch_status(url, method="POST", body="{}", headers=auth(jp_serverapp))
        assert code == 405  # pages are only read
    stats = await host_stats(host)
    assert stats["server"]["connections_total"] == 0  # nothing reached the host's stream
    for ws_path in ("ws/camera/stream", "ws/camera/frames"):
        with pytest.raises(HTTPClientError) as err:
            await websocket_connect(HTTPRequest(ws_url(jp_http_port, jp_base_url, "labcam", ws_path)))
        assert err.value.code == 403


@on_jupyter_loop
async def test_an_unknown_camera_id_is_a_clear_error_through_the_relay(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, host: Host
) -> None:
    code, response = await fetch_status(
        http_url(jp_http_port, jp_base_url, "labcam", "cameras", "nope", "api", "camera"), headers=auth(jp_serverapp))
    assert code == 404  # the host's answer, passed through
    url = ws_url(jp_http_port, jp_base_url, "labcam", "cameras", "nope", "ws", "camera", "stream")
    conn = await websocket_connect(HTTPRequest(url, headers=auth(jp_serverapp)))
    error = await read_json(conn, "error")
    assert error["request"] == "connect" and "has no cameras/nope/ws/camera/stream (404)" in error["message"]
    assert await asyncio.wait_for(conn.read_message(), 10) is None and conn.close_code == 4400
    stats = json.loads((await AsyncHTTPClient().fetch(
        http_url(jp_http_port, jp_base_url, "labcam", "api", "camera", "stats"), headers=auth(jp_serverapp))).body)
    assert stats["relay"]["upstreams"] == []  # nothing left retrying
