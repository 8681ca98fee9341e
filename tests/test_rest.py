"""The REST API (api/camera...) and the standalone host's security, against a real server."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import numpy as np
import pytest
import simplejpeg
import tifffile
from PIL import Image
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

from http_helpers import fetch
from http_helpers import json_body as body
from labcam.preview.display import to_display

pytestmark = pytest.mark.anyio


# -- camera and settings -------------------------------------------------------------------------------
async def test_camera_description_settings_specs_and_state(server) -> None:
    resp = await fetch(server.url + "api/camera")
    assert resp.code == 200
    info = body(resp)
    assert info["camera"]["driver"] == "simulated" and info["camera"]["serial"] == "SIM-0001"
    assert info["settings"] == server.engine.settings.to_dict()
    assert info["specs"]["gain_db"]["minimum"] == 0.0 and "allowed" in info["specs"]["gain_db"]
    assert info["state"] in ("idle", "streaming")
    resp = await fetch(server.url + "api/camera/settings")
    assert body(resp) == server.engine.settings.to_dict()


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_settings_change(server, method: str) -> None:
    resp = await fetch(server.url + "api/camera/settings", method, {"exposure_ms": 4, "gain_db": 2.5})
    assert resp.code == 200, resp.body
    assert body(resp)["exposure_ms"] == 4.0 and body(resp)["gain_db"] == 2.5
    assert server.engine.settings.exposure_ms == 4.0 and server.engine.settings.gain_db == 2.5


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"exposure_ms": 5000}, ["exposure_ms=5000", "0.01", "2000", "ms"]),
        ({"gain_db": -3}, ["gain_db=-3", "0 to 24"]),
        ({"gain_db": "high"}, ["gain_db='high'"]),
        ({"fps": 0}, ["fps=0"]),
        ({"exposure_ms": 100}, ["exposure", "frame period"]),  # does not fit in 1/30 s
        ({"pixel_format": "mono10"}, ["pixel_format='mono10'", "mono12"]),
        ({"roi": [0, 0, 5000, 10]}, ["roi=", "sensor"]),
        ({"shutter": 1}, ["shutter", "unknown setting"]),
        # one good and one bad change: neither is applied
        ({"gain_db": 6, "exposure_ms": -1}, ["exposure_ms=-1"]),
    ],
)
async def test_bad_settings_are_400_naming_setting_value_and_range_and_change_nothing(
    server, changes: dict[str, Any], words: list[str]
) -> None:
    before = server.engine.settings
    resp = await fetch(server.url + "api/camera/settings", "PATCH", changes)
    assert resp.code == 400
    error = body(resp)
    for word in words:
        assert word in error["error"], error
    assert error["setting"] in changes
    assert server.engine.settings == before


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"{not json", ["JSON object"]), (b"[1, 2]", ["JSON object", "list"]), (b"{}", ["no settings"]), (b"", ["JSON object"])],
)
async def test_malformed_settings_bodies_are_400(server, raw: bytes, words: list[str]) -> None:
    before = server.engine.settings
    resp = await fetch(server.url + "api/camera/settings", "PATCH", raw_body=raw)
    assert resp.code == 400
    for word in words:
        assert word in body(resp)["error"]
    assert server.engine.settings == before


async def test_a_settings_change_that_restarts_the_capture(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frame()
    resp = await fetch(server.url + "api/camera/settings", "PATCH", {"roi": [0, 0, 160, 120]})
    assert resp.code == 200 and body(resp)["roi"] == [0, 0, 160, 120]
    assert (await c.message("settings"))["settings"]["roi"] == [0, 0, 160, 120]
    header, _ = await c.frame()
    while header["source_width"] != 160:
        header, _ = await c.frame()
    assert (header["width"], header["height"]) == (160, 120)
    c.close()


# -- snaps ---------------------------------------------------------------------------------------------
def _check_snap_headers(resp: HTTPResponse, content_type: str) -> int:
    assert resp.code == 200, resp.body[:200]
    assert resp.headers["Content-Type"] == content_type
    number = int(resp.headers["X-Labcam-Frame-Number"])
    assert float(resp.headers["X-Labcam-Timestamp"]) > 1e9
    assert "attachment" in resp.headers["Content-Disposition"]
    return number


@pytest.mark.parametrize("pixel_format", ["mono8", "mono12", "mono16"])
async def test_snaps_in_every_format_are_the_camera_frames(make_server, pixel_format: str) -> None:
    srv = make_server(width=320, height=240, pixel_format=pixel_format)
    expected_dtype = np.uint8 if pixel_format == "mono8" else np.uint16

    resp = await fetch(srv.url + "api/camera/snap?format=png")
    n = _check_snap_headers(resp, "image/png")
    png = np.asarray(Image.open(io.BytesIO(resp.body)))
    assert png.dtype == expected_dtype, "PNG must keep 16 bits"
    np.testing.assert_array_equal(png, srv.camera.expected_frame(n))

    resp = await fetch(srv.url + "api/camera/snap?format=tiff")
    n = _check_snap_headers(resp, "image/tiff")
    with tifffile.TiffFile(io.BytesIO(resp.body)) as tif:
        array = tif.asarray()
        meta = json.loads(tif.pages[0].description)
    np.testing.assert_array_equal(array, srv.camera.expected_frame(n))
    assert meta["frame_number"] == n and meta["pixel_format"] == pixel_format

    resp = await fetch(srv.url + "api/camera/snap?format=npy")
    n = _check_snap_headers(resp, "application/octet-stream")
    array = np.load(io.BytesIO(resp.body))
    assert array.dtype == expected_dtype
    np.testing.assert_array_equal(array, srv.camera.expected_frame(n))

    resp = await fetch(srv.url + "api/camera/snap?format=jpeg&quality=95")
    n = _check_snap_headers(resp, "image/jpeg")
    image = simplejpeg.decode_jpeg(resp.body, colorspace="GRAY")[:, :, 0]
    reference, _ = to_display(srv.camera.expected_frame(n), {"mono8": 8, "mono12": 12, "mono16": 16}[pixel_format])
    assert image.shape == (240, 320)
    assert np.abs(image.astype(int) - reference).mean() < 3


async def test_snap_while_streaming_is_full_resolution(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary&max_width=64")
    header, _ = await c.frame()
    assert header["width"] == 64
    resp = await fetch(server.url + "api/camera/snap?format=npy")
    n = _check_snap_headers(resp, "application/octet-stream")
    assert np.load(io.BytesIO(resp.body)).shape == (240, 320)
    assert n >= header["frame_number"]
    await c.frames(3)  # the stream carried on
    c.close()


async def test_rgb_snaps_keep_colour(make_server) -> None:
    srv = make_server(pixel_format="rgb8")
    resp = await fetch(srv.url + "api/camera/snap?format=png")
    n = _check_snap_headers(resp, "image/png")
    png = np.asarray(Image.open(io.BytesIO(resp.body)))
    assert png.shape == (240, 320, 3)
    np.testing.assert_array_equal(png, srv.camera.expected_frame(n))


@pytest.mark.parametrize(
    ("query", "word"), [("format=gif", "format='gif'"), ("format=jpeg&quality=0", "quality"), ("format=jpeg&display=9,2", "display")]
)
async def test_bad_snap_parameters_are_400(server, query: str, word: str) -> None:
    resp = await fetch(server.url + "api/camera/snap?" + query)
    assert resp.code == 400 and word in body(resp)["error"]


async def test_snap_of_a_lost_camera_is_503(server) -> None:
    resp = await fetch(server.url + "api/camera/snap?format=npy")  # the camera runs
    assert resp.code == 200
    lost = asyncio.Event()
    loop = asyncio.get_running_loop()
    server.engine.events.camera_lost.connect(lambda why: loop.call_soon_threadsafe(lost.set))
    c_holder = server.engine.subscribe("keep-running")  # keep the capture thread alive to see the loss
    try:
        server.camera.faults.disconnect()
        await asyncio.wait_for(lost.wait(), 10)
        resp = await fetch(server.url + "api/camera/snap?format=png")
        assert resp.code == 503 and "lost" in body(resp)["error"]
    finally:
        server.camera.faults.replug()
        c_holder.close()


# -- stats ---------------------------------------------------------------------------------------------
async def test_stats_per_client_and_camera(make_server, ws_connect) -> None:
    srv = make_server(stats_interval=0.2)
    a = await ws_connect(srv, "format=binary")
    b = await ws_connect(srv, "format=json&fps=5")
    await a.message("stats")
    await a.message("stats")  # two ticks: rates measured over a full interval
    stats = body(await fetch(srv.url + "api/camera/stats"))
    assert stats["camera"]["state"] == "streaming" and stats["camera"]["fps"] > 20
    assert stats["camera"]["frames"] > 0 and stats["camera"]["dropped"] == 0
    assert stats["encoder"]["encode_ms"] > 0 and len(stats["encoder"]["variants"]) == 1
    clients = {c["id"]: c for c in stats["clients"]}
    ca, cb = clients[a.connected["client_id"]], clients[b.connected["client_id"]]
    assert ca["format"] == "binary" and cb["format"] == "json"
    assert ca["fps"] > 15 and 2 < cb["fps"] < 8
    assert ca["frames_sent"] > cb["frames_sent"] > 0 and ca["bytes_per_s"] > 0
    for key in ("frames_skipped", "rtt_ms", "in_flight"):
        assert key in ca
    a.close()
    b.close()


# -- security (standalone host) ------------------------------------------------------------------------
async def test_token_is_required_for_api_and_stream_but_not_for_the_page(make_server) -> None:
    srv = make_server(token="s3cret")
    for path in ("api/camera", "api/camera/settings", "api/camera/stats", "api/camera/snap?format=npy"):
        resp = await fetch(srv.url + path)
        assert resp.code == 403, path
        assert "token" in body(resp)["error"]
        assert (await fetch(srv.url + path + ("&" if "?" in path else "?") + "token=wrong")).code == 403
    assert (await fetch(srv.url + "api/camera?token=s3cret")).code == 200
    assert (await fetch(srv.url + "api/camera", headers={"Authorization": "token s3cret"})).code == 200
    assert (await fetch(srv.url + "api/camera", headers={"Authorization": "Bearer s3cret"})).code == 200
    assert (await fetch(srv.url + "api/camera", headers={"Authorization": "Bearer nope"})).code == 403
    resp = await fetch(srv.url + "api/camera/settings", "PATCH", {"gain_db": 1})
    assert resp.code == 403 and srv.engine.settings.gain_db == 0.0
    # the stream
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(srv.ws_url)
    assert info.value.code == 403
    conn = await websocket_connect(srv.ws_url + "?token=s3cret")
    assert json.loads(await conn.read_message())["type"] == "connected"
    conn.close()
    conn = await websocket_connect(HTTPRequest(srv.ws_url, headers={"Authorization": "Bearer s3cret"}))
    assert json.loads(await conn.read_message())["type"] == "connected"
    conn.close()
    # the page and the client code are public: they hold no data
    page = await fetch(srv.url)
    assert page.code in (200, 404)  # 404 only while the test page is not written yet
    js = await fetch(srv.url + "static/labcam-client.js")
    assert js.code == 200 and js.headers["Content-Type"].startswith("text/javascript")


async def test_cross_origin_streams_are_refused_unless_allowed(make_server) -> None:
    srv = make_server(allowed_origins=("http://localhost:5173",))
    host = f"127.0.0.1:{srv.port}"
    for origin, ok in [
        (f"http://{host}", True),  # same origin: the test page
        ("http://localhost:5173", True),  # allowed: the Vue dev server
        ("http://evil.example", False),
        ("http://localhost:5174", False),
    ]:
        req = HTTPRequest(srv.ws_url, headers={"Origin": origin})
        if ok:
            conn = await websocket_connect(req)
            assert json.loads(await conn.read_message())["type"] == "connected"
            conn.close()
        else:
            with pytest.raises(HTTPClientError) as info:
                await websocket_connect(req)
            assert info.value.code == 403, origin


async def test_cors_lets_an_allowed_origin_use_the_api(make_server) -> None:
    srv = make_server(allowed_origins=("http://localhost:5173",))
    pre = await fetch(
        srv.url + "api/camera/settings", "OPTIONS",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "content-type"},
    )
    assert pre.code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "PATCH" in pre.headers["Access-Control-Allow-Methods"]
    assert "content-type" in pre.headers["Access-Control-Allow-Headers"].lower()
    resp = await fetch(srv.url + "api/camera/settings", "PATCH", {"gain_db": 1}, headers={"Origin": "http://localhost:5173"})
    assert resp.code == 200 and resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    # errors carry the CORS headers too, so the app can show the message
    resp = await fetch(srv.url + "api/camera/settings", "PATCH", {"gain_db": 99}, headers={"Origin": "http://localhost:5173"})
    assert resp.code == 400 and resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    snap = await fetch(srv.url + "api/camera/snap?format=npy", headers={"Origin": "http://localhost:5173"})
    assert "X-Labcam-Frame-Number" in snap.headers["Access-Control-Expose-Headers"]
    # another origin gets no CORS headers and is refused
    resp = await fetch(srv.url + "api/camera", headers={"Origin": "http://evil.example"})
    assert resp.code == 403 and "Access-Control-Allow-Origin" not in resp.headers
    assert srv.engine.settings.gain_db == 1.0


async def test_host_allow_list_blocks_dns_rebinding(make_server) -> None:
    srv = make_server(allowed_hosts=("127.0.0.1", "localhost"))
    assert (await fetch(srv.url + "api/camera")).code == 200
    resp = await fetch(srv.url + "api/camera", headers={"Host": "attacker.example"})
    assert resp.code == 403 and "attacker.example" in body(resp)["error"]
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(HTTPRequest(srv.ws_url, headers={"Host": "attacker.example"}))
    assert info.value.code == 403


async def test_unknown_paths_and_methods(server) -> None:
    assert (await fetch(server.url + "api/nothing")).code == 404
    resp = await fetch(server.url + "api/camera", "PATCH", {"x": 1})
    assert resp.code == 405
    assert "error" in body(resp)
    # the stream path without a WebSocket upgrade is a 400, not a crash
    assert (await fetch(server.url + "ws/camera/stream")).code == 400


async def test_static_files_and_page_routes(server) -> None:
    js = await fetch(server.url + "static/labcam-client.js")
    assert js.code == 200 and b"LabcamClient" in js.body
    dts = await fetch(server.url + "static/labcam-client.d.ts")
    assert dts.code in (200, 404) and not dts.headers.get("Content-Type", "").startswith("video")
    assert (await fetch(server.url + "static/nope.js")).code == 404
    assert (await fetch(server.url + "static/../service.py")).code in (403, 404)
