"""Request ids on the stream (``request_id``, docs/protocol.md) and bad stream options told over an
accepted connection (``error`` with ``"request": "connect"``, close 4400), against a real server on
loopback with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

pytestmark = pytest.mark.anyio


async def settings_messages(client: Any, n: int) -> list[dict[str, Any]]:
    return [await client.message("settings") for _ in range(n)]


# -- request ids ---------------------------------------------------------------------------------------
async def test_a_settings_reply_carries_its_request_id_and_another_clients_change_does_not(server, ws_connect) -> None:
    a = await ws_connect(server)
    b = await ws_connect(server)
    old = await ws_connect(server)  # sends no request ids: sees plain broadcasts, as before
    a.send({"type": "settings", "changes": {"gain_db": 3}, "request_id": "a1"})
    b.send({"type": "settings", "changes": {"exposure_ms": 7.5}, "request_id": 41})
    got_a = await settings_messages(a, 2)
    got_b = await settings_messages(b, 2)
    got_old = await settings_messages(old, 2)
    # each client's own change comes back once, with its id; the other's change is a plain broadcast
    own_a = [m for m in got_a if "request_id" in m]
    own_b = [m for m in got_b if "request_id" in m]
    assert [m["request_id"] for m in own_a] == ["a1"] and own_a[0]["settings"]["gain_db"] == 3.0
    assert [m["request_id"] for m in own_b] == [41] and own_b[0]["settings"]["exposure_ms"] == 7.5
    assert [m for m in got_a if "request_id" not in m][0]["settings"]["exposure_ms"] == 7.5
    assert [m for m in got_b if "request_id" not in m][0]["settings"]["gain_db"] == 3.0
    assert all("request_id" not in m for m in got_old)
    assert {(m["settings"]["gain_db"], m["settings"]["exposure_ms"]) for m in got_old} >= {(3.0, 7.5)}
    # a change to the current values answers the sender alone, with its id
    a.send({"type": "settings", "changes": {"gain_db": 3}, "request_id": "a2"})
    reply = await a.message("settings")
    assert reply["request_id"] == "a2" and reply["settings"]["gain_db"] == 3.0
    # a change made elsewhere (REST, a notebook) is a plain broadcast to everyone
    await asyncio.to_thread(server.engine.update_settings, {"gain_db": 6})
    for c in (a, b, old):
        msg = await c.message("settings")
        assert msg["settings"]["gain_db"] == 6.0 and "request_id" not in msg
    for c in (a, b, old):
        c.close()


async def test_replies_and_errors_echo_the_request_id(server, ws_connect) -> None:
    c = await ws_connect(server)
    assert c.connected["request_ids"] is True  # clients send ids only to servers that say so
    c.send({"type": "configure", "fps": 10, "request_id": "cfg-1"})
    msg = await c.message("configured")
    assert msg["request_id"] == "cfg-1" and msg["stream"]["fps"] == 10.0
    c.send({"type": "pause", "request_id": 2})
    assert (await c.message("configured"))["request_id"] == 2
    c.send({"type": "resume", "request_id": 2.5})
    assert (await c.message("configured"))["request_id"] == 2.5
    c.send({"type": "snap", "format": "png", "request_id": "s"})
    assert (await c.message("snap"))["request_id"] == "s"
    c.send({"type": "ping", "id": 9, "request_id": "p"})
    pong = await c.message("pong")
    assert pong["id"] == 9 and pong["request_id"] == "p"
    # errors: validation, a camera refusal, an unknown type
    c.send({"type": "configure", "quality": 0, "request_id": "bad-q"})
    err = await c.message("error")
    assert err["request"] == "configure" and err["request_id"] == "bad-q" and "quality=0" in err["message"]
    c.send({"type": "settings", "changes": {"exposure_ms": 1e9}, "request_id": "bad-s"})
    err = await c.message("error")
    assert err["request"] == "settings" and err["request_id"] == "bad-s" and "exposure_ms" in err["message"]
    c.send({"type": "snap", "format": "gif", "request_id": 77})
    err = await c.message("error")
    assert err["request"] == "snap" and err["request_id"] == 77
    c.send({"type": "zoom", "request_id": "z"})
    err = await c.message("error")
    assert err["request"] == "zoom" and err["request_id"] == "z"
    c.close()


async def test_record_replies_and_errors_echo_the_request_id(make_server, ws_connect, tmp_path: Path) -> None:
    srv = make_server(fps=100.0, recordings_dir=tmp_path / "recordings")
    c = await ws_connect(srv)
    # "id" names the recording in record requests and replies; "request_id" is the request's
    c.send({"type": "record", "action": "start", "name": "r.ome.tif", "frames": 5, "request_id": "start-1"})
    started = await c.message("recording")
    while started.get("reply") != "start":
        started = await c.message("recording")
    assert started["request_id"] == "start-1" and started["id"] != "start-1"
    c.send({"type": "record", "action": "status", "id": started["id"], "request_id": "st"})
    status = await c.message("recording")
    while status.get("reply") != "status":
        status = await c.message("recording")
    assert status["request_id"] == "st" and status["id"] == started["id"]
    c.send({"type": "record", "action": "status", "request_id": 3})
    listed = await c.message("recordings")
    assert listed["request_id"] == 3 and listed["recordings"]
    c.send({"type": "record", "action": "stop", "id": "r999-nope", "request_id": "stop-x"})
    err = await c.message("error")
    assert err == {"type": "error", "message": err["message"], "request": "record", "action": "stop",
                   "request_id": "stop-x"}
    srv.service.recordings.wait(started["id"], 10)
    c.close()


async def test_without_request_ids_the_replies_are_unchanged(server, ws_connect) -> None:
    c = await ws_connect(server)
    c.send({"type": "configure", "fps": 10})
    assert set(await c.message("configured")) == {"type", "stream"}
    c.send({"type": "settings", "changes": {"gain_db": 0}})
    assert set(await c.message("settings")) == {"type", "settings"}
    c.send({"type": "configure", "quality": 0})
    assert set(await c.message("error")) == {"type", "message", "request"}
    c.send({"type": "snap"})
    assert "request_id" not in await c.message("snap")
    c.close()


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "configure", "fps": 5, "request_id": "' + "x" * 129 + '"}',
        '{"type": "configure", "fps": 5, "request_id": [1]}',
        '{"type": "configure", "fps": 5, "request_id": {"a": 1}}',
        '{"type": "configure", "fps": 5, "request_id": true}',
        '{"type": "configure", "fps": 5, "request_id": 9007199254740992}',
        '{"type": "configure", "fps": 5, "request_id": NaN}',
    ],
)
async def test_a_bad_request_id_is_an_error_and_the_stream_carries_on(server, ws_connect, raw: str) -> None:
    c = await ws_connect(server)
    await c.frame()
    c.send(raw)
    err = await c.message("error")
    assert err["request"] == "configure" and "request_id" in err["message"] and "128" in err["message"]
    assert "request_id" not in err  # nothing valid to echo
    assert len(err["message"]) < 300
    # nothing changed, and the stream carries on
    c.send({"type": "configure", "quality": 50, "request_id": 1})
    configured = await c.message("configured")
    assert configured["stream"]["fps"] is None and configured["request_id"] == 1
    await c.frames(3)
    c.close()


# -- bad stream options at connect ------------------------------------------------------------------------
async def test_a_bad_option_is_told_as_an_error_then_closed_4400_and_the_server_carries_on(server, ws_connect) -> None:
    watcher = await ws_connect(server)
    conn = await asyncio.wait_for(websocket_connect(server.ws_url + "?display=0,4095&format=binary"), 5)
    error = json.loads(await asyncio.wait_for(conn.read_message(), 5))
    assert error == {"type": "error", "request": "connect", "message": error["message"]}
    assert "display='0,4095'" in error["message"] and "255" in error["message"]
    assert await asyncio.wait_for(conn.read_message(), 5) is None
    assert conn.close_code == 4400 and "display" in conn.close_reason
    # a long message still fits a close frame (123 bytes)
    conn = await asyncio.wait_for(websocket_connect(server.ws_url + "?fps=" + "9" * 300), 5)
    error = json.loads(await asyncio.wait_for(conn.read_message(), 5))
    assert await asyncio.wait_for(conn.read_message(), 5) is None
    assert conn.close_code == 4400 and len(conn.close_reason.encode()) <= 123
    assert conn.close_reason.endswith("...") and len(error["message"]) > 123
    await watcher.frames(3)
    assert len(server.service.clients) == 1
    watcher.close()


async def test_auth_and_origin_refusals_stay_403_handshakes_even_with_bad_options(make_server) -> None:
    srv = make_server(token="sesame")
    with pytest.raises(HTTPClientError) as info:
        await asyncio.wait_for(websocket_connect(srv.ws_url + "?fps=0"), 5)
    assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await asyncio.wait_for(websocket_connect(srv.ws_url + "?fps=0&token=wrong"), 5)
    assert info.value.code == 403
    request = HTTPRequest(srv.ws_url + "?fps=0&token=sesame", headers={"Origin": "http://evil.example"})
    with pytest.raises(HTTPClientError) as info:
        await asyncio.wait_for(websocket_connect(request), 5)
    assert info.value.code == 403
    # with the token and no foreign origin, the bad option is told
    conn = await asyncio.wait_for(websocket_connect(srv.ws_url + "?fps=0&token=sesame"), 5)
    error = json.loads(await asyncio.wait_for(conn.read_message(), 5))
    assert error["request"] == "connect" and "fps='0'" in error["message"]
    assert await asyncio.wait_for(conn.read_message(), 5) is None and conn.close_code == 4400
