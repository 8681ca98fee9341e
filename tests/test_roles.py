"""Roles: ``labcam serve --token T --view-token V``. V may watch, read, snap and pull raw frames; changing
settings and starting or stopping recordings answer 403 (REST) or an ``error`` (stream) naming the role
needed, and change nothing. T may do everything. The Jupyter extension maps the same actions onto its
authorizer's ``read``/``write``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from http_helpers import TIMEOUT, fetch, json_body
from jupyter_fixtures import *  # noqa: F401,F403
from test_cli import SMALL, run_labcam, serve  # noqa: F401 (serve: the fixture)
from test_recording_network import _read_only_authorizer
from tornado.websocket import websocket_connect

import labcam
from labcam.wire import unpack_binary

FULL, VIEW = "FuLl-T0ken", "ViEw-T0ken"


async def next_text(conn: Any, kind: str, **match: Any) -> dict[str, Any]:
    """The next text message of type ``kind`` (and the given fields); frames and others are skipped."""
    while True:
        msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
        assert msg is not None, f"the stream closed while waiting for {kind}"
        if isinstance(msg, str):
            data = json.loads(msg)
            if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return data


async def next_frame(conn: Any) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
        assert msg is not None, "the stream closed while waiting for a frame"
        if isinstance(msg, bytes):
            header, _ = unpack_binary(msg)
            if header["type"] == "frame":
                return header


def test_a_view_token_watches_but_cannot_change_settings_or_record(serve, tmp_path: Path) -> None:  # noqa: F811
    rec_dir = tmp_path / "recordings"
    s = serve(*SMALL, "--token", FULL, "--view-token", VIEW, "--recordings-dir", str(rec_dir))
    view = {"Authorization": f"token {VIEW}"}
    full = {"Authorization": f"token {FULL}"}

    async def run() -> None:
        # reading: everything answers
        before = json_body(await fetch(s.url + "api/camera/settings", headers=view))
        for path in ("api/camera", "api/camera/stats", "api/recordings"):
            assert (await fetch(s.url + path, headers=view)).code == 200, path
        snap = await fetch(s.url + "api/camera/snap?format=npy", headers=view)
        assert snap.code == 200 and snap.headers["Content-Type"] == "application/octet-stream"
        # changing: 403 naming the role, nothing changed
        for method in ("PATCH", "PUT"):
            resp = await fetch(s.url + "api/camera/settings", method, {"exposure_ms": 2.5}, view)
            assert resp.code == 403, method
            body = json_body(resp)
            assert body["role_needed"] == "control" and "changing settings needs the control role" in body["error"]
        assert json_body(await fetch(s.url + "api/camera/settings", headers=view)) == before
        resp = await fetch(s.url + "api/recordings", "POST", {"name": "v.ome.tif", "frames": 3}, view)
        assert resp.code == 403 and "starting a recording needs the control role" in json_body(resp)["error"]
        assert not rec_dir.exists(), "a refused recording created its folder"
        # a wrong token is no role at all
        assert (await fetch(s.url + "api/camera", headers={"Authorization": "token nope"})).code == 403

        # the stream: frames come, changes are refused with an error, and the stream carries on
        conn = await websocket_connect(s.url.replace("http", "ws") + f"ws/camera/stream?format=binary&token={VIEW}")
        await next_text(conn, "connected")
        await next_frame(conn)
        conn.write_message(json.dumps({"type": "settings", "changes": {"exposure_ms": 2.5}, "request_id": 7}))
        error = await next_text(conn, "error", request="settings")
        assert error["request_id"] == 7 and "needs the control role" in error["message"]
        for action in ("start", "stop"):
            conn.write_message(json.dumps({"type": "record", "action": action, "name": "v.ome.tif", "id": "r1-x"}))
            error = await next_text(conn, "error", request="record")
            assert error["action"] == action and "needs the control role" in error["message"]
        conn.write_message(json.dumps({"type": "record", "action": "status"}))
        assert (await next_text(conn, "recordings"))["recordings"] == []
        conn.write_message(json.dumps({"type": "snap", "format": "png"}))
        while True:  # the snap reply: a binary message like a frame, of type snap
            msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
            assert msg is not None
            if isinstance(msg, bytes) and unpack_binary(msg)[0]["type"] == "snap":
                break
        await next_frame(conn)  # still streaming
        assert json_body(await fetch(s.url + "api/camera/settings", headers=view)) == before
        assert not rec_dir.exists()

        # raw frames are viewing
        raw = await websocket_connect(s.url.replace("http", "ws") + f"ws/camera/frames?token={VIEW}",
                                      max_message_size=64 * 1024 * 1024)
        raw.write_message(json.dumps({"type": "next"}))
        msg = await asyncio.wait_for(raw.read_message(), TIMEOUT)
        assert isinstance(msg, bytes)
        header, payload = unpack_binary(msg)
        assert np.frombuffer(payload, header["dtype"]).reshape(header["shape"]).shape == (240, 320)
        raw.close()

        # the full token changes settings (the view-token stream sees it) and records
        resp = await fetch(s.url + "api/camera/settings", "PATCH", {"exposure_ms": 2.5}, full)
        assert resp.code == 200 and json_body(resp)["exposure_ms"] == 2.5
        assert (await next_text(conn, "settings"))["settings"]["exposure_ms"] == 2.5
        resp = await fetch(s.url + "api/recordings", "POST", {"name": "f.ome.tif", "frames": 3}, full)
        assert resp.code == 201, resp.body
        rec_id = json_body(resp)["id"]
        # the view token still cannot stop it
        assert (await fetch(s.url + f"api/recordings/{rec_id}/stop", "POST", headers=view)).code == 403
        assert (await fetch(s.url + f"api/recordings/{rec_id}", "DELETE", headers=view)).code == 403
        while json_body(await fetch(s.url + f"api/recordings/{rec_id}", headers=view))["state"] != "done":
            await next_text(conn, "recording", event="finished")
        conn.close()

        full_conn = await websocket_connect(s.url.replace("http", "ws") + f"ws/camera/stream?format=binary&token={FULL}")
        await next_text(full_conn, "connected")
        full_conn.write_message(json.dumps({"type": "settings", "changes": {"exposure_ms": 3.0}}))
        assert (await next_text(full_conn, "settings"))["settings"]["exposure_ms"] == 3.0
        full_conn.close()

    asyncio.run(run())
    with tifffile.TiffFile(rec_dir / "f.ome.tif") as tif:
        assert len(tif.pages) == 3
    assert s.stop() == 0


def test_remote_camera_with_the_view_token_reads_and_is_refused_changes(serve) -> None:  # noqa: F811
    s = serve(*SMALL, "--token", FULL, "--view-token", VIEW)
    cam = labcam.connect(s.url, token=VIEW)
    try:
        assert cam.snap().shape == (240, 320)
        exposure = cam.settings.exposure_ms
        with pytest.raises(PermissionError, match="control role"):
            cam.set(exposure_ms=exposure * 2)
        assert cam.settings.exposure_ms == exposure
    finally:
        cam.close()
    assert s.stop() == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--view-token", VIEW], ["(--view-token) needs a full-control token (--token)"]),
        (["--token", FULL, "--view-token", FULL], ["must differ"]),
        (["--token", FULL, "--view-token", ""], ["must not be empty"]),
    ],
)
def test_a_view_token_without_a_distinct_full_token_is_refused_at_start(args: list[str], words: list[str]) -> None:
    out = run_labcam("serve", "--port", "0", *SMALL, *args)
    assert out.returncode == 2, out
    for word in words:
        assert word in out.stderr, out.stderr
    assert "listening" not in out.stdout + out.stderr


# -- the Jupyter extension: its authorizer's read/write, the same actions -------------------------------
@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The extension on a small simulated camera; ``indirect`` parametrization adds ServerApp settings."""
    return {
        "ServerApp": {"jpserver_extensions": {"labcam_jupyter": True}, **getattr(request, "param", {})},
        "LabcamApp": {"camera": "simulated", "width": 320, "height": 240, "fps": 100.0, "idle_grace": 0.2},
    }


@pytest.mark.parametrize("jp_server_config", [{"authorizer_class": _read_only_authorizer()}], indirect=True)
def test_jupyter_read_only_users_watch_and_snap_but_cannot_change_settings(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, jp_asyncio_loop: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    auth = {"Authorization": f"token {token}"}
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}labcam/"

    async def run() -> None:
        before = json_body(await fetch(base + "api/camera/settings", headers=auth))
        assert (await fetch(base + "api/camera/snap?format=png", headers=auth)).code == 200
        for method in ("PATCH", "PUT"):
            assert (await fetch(base + "api/camera/settings", method, {"exposure_ms": 2.5}, auth)).code == 403, method
        conn = await websocket_connect("ws" + base[4:] + f"ws/camera/stream?format=binary&token={token}")
        await next_text(conn, "connected")
        conn.write_message(json.dumps({"type": "settings", "changes": {"exposure_ms": 2.5}}))
        assert "not authorized to change camera settings" in (await next_text(conn, "error", request="settings"))["message"]
        await next_frame(conn)  # the stream carries on
        conn.close()
        assert json_body(await fetch(base + "api/camera/settings", headers=auth)) == before

    jp_asyncio_loop.run_until_complete(run())
