"""The view-aware stream (issue 11): view, size, encoding and compression against a real server.

Real Tornado server on loopback, real WebSocket clients (tests/conftest.py); frames are compared
with what the simulated camera rendered (``expected_frame``), raw ones exactly.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import simplejpeg
from tornado.websocket import websocket_connect

from labcam.preview.views import plan_view
from labcam.wire.rawcodec import decode_raw

pytestmark = pytest.mark.anyio


def gray(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="GRAY")[:, :, 0]


async def frame_where(client: Any, cond: Any, limit: int = 60) -> tuple[dict[str, Any], bytes]:
    """The first frame whose header satisfies ``cond`` (frames of older options may still be in
    flight right after a change)."""
    for _ in range(limit):
        header, payload = await client.frame()
        if cond(header):
            return header, payload
    raise AssertionError(f"no matching frame in {limit}")


# -- the plan, pure arithmetic ---------------------------------------------------------------------
def test_plan_fits_the_box_aligns_to_the_factor_and_never_upsamples() -> None:
    full = plan_view(None, (1280, 1024), None, 4096, 3000)
    assert (full.view, full.step, full.clamped, full.out_size) == ((0, 0, 4096, 3000), 4, False, (1024, 750))
    one = plan_view((1000, 800, 1280, 1024), (1280, 1024), None, 4096, 3000)
    assert (one.view, one.step, one.clamped) == ((1000, 800, 1280, 1024), 1, False)
    small = plan_view((10, 10, 20, 20), (1280, 1024), None, 4096, 3000)
    assert small.step == 1 and small.out_size == (20, 20)  # never upsampled
    # realigned to multiples of the factor, still inside the box, covering what was asked
    odd = plan_view((101, 51, 200, 100), (100, 100), None, 640, 480)
    x, y, w, h = odd.view
    assert odd.clamped and odd.out_size[0] <= 100 and odd.out_size[1] <= 100
    assert x % odd.step == 0 and y % odd.step == 0 and x <= 101 and y <= 51
    assert x + w >= 301 and y + h >= 151
    # past the edge: clamped to the frame
    edge = plan_view((600, 400, 200, 200), None, None, 640, 480)
    assert edge.view == (600, 400, 40, 80) and edge.clamped
    # legacy: max_width alone decimates the full frame exactly as before (ceil(width / step))
    legacy = plan_view(None, None, 200, 1001, 480)
    assert legacy.step == 6 and legacy.out_size == (167, 80) and not legacy.clamped


# -- options in the query and in configure --------------------------------------------------------
@pytest.mark.parametrize("fmt", ["binary", "json"])
async def test_a_view_in_the_query_sends_that_region_with_its_header(make_server, ws_connect, fmt: str) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, f"format={fmt}&view=100,50,200,120&display=0,4095")
    assert c.connected["stream"]["view"] == [100, 50, 200, 120] and c.connected["stream"]["encoding"] == "jpeg"
    header, jpeg = await c.frame()
    assert header["encoding"] == "jpeg" and header["view"] == [100, 50, 200, 120]
    assert (header["width"], header["height"]) == (200, 120) and header["sensor"] == [640, 480]
    assert header["bit_depth"] == 12 and "clamped" not in header
    hist = header["histogram"]
    assert hist["range"] == [0, 4096] and len(hist["bins"]) == 64 and sum(hist["bins"]) == 200 * 120
    assert isinstance(header["saturated"], int)
    expected = srv.camera.expected_frame(header["frame_number"])[50:170, 100:300] >> 4
    assert np.abs(gray(jpeg).astype(int) - expected).mean() < 4, "the JPEG is not that region"
    # the histogram is of the camera's counts of that region, not of the JPEG
    counts = srv.camera.expected_frame(header["frame_number"])[50:170, 100:300]
    assert hist["bins"] == np.bincount((counts >> 6).ravel(), minlength=64).tolist()
    c.close()


async def test_size_fits_the_full_sensor_into_the_box(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary&size=160,160&display=0,4095")
    header, jpeg = await c.frame()
    assert header["view"] == [0, 0, 640, 480] and (header["width"], header["height"]) == (160, 120)
    expected = srv.camera.expected_frame(header["frame_number"])[::4, ::4] >> 4  # decimated by 4
    assert np.abs(gray(jpeg).astype(int) - expected).mean() < 4
    c.close()


async def test_configure_changes_view_size_and_encoding_and_null_resets(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary")
    c.send({"type": "configure", "view": [320, 240, 64, 48], "encoding": "raw", "compression": "lz4", "request_id": 1})
    stream = (await c.message("configured"))["stream"]
    assert stream["view"] == [320, 240, 64, 48] and stream["encoding"] == "raw" and stream["compression"] == "lz4"
    header, payload = await frame_where(c, lambda h: h["encoding"] == "raw")
    assert header["compression"] == "lz4" and header["view"] == [320, 240, 64, 48]
    pixels = decode_raw(header, payload)
    assert np.array_equal(pixels, srv.camera.expected_frame(header["frame_number"])[240:288, 320:384])
    c.send({"type": "configure", "view": None, "size": [320, 320], "encoding": None, "compression": None})
    stream = (await c.message("configured"))["stream"]
    assert stream["view"] == "full" and stream["size"] == [320, 320] and stream["encoding"] == "jpeg"
    header, _ = await frame_where(c, lambda h: h["encoding"] == "jpeg")
    assert header["view"] == [0, 0, 640, 480] and (header["width"], header["height"]) == (320, 240)
    c.close()


async def test_legacy_clients_get_todays_stream_with_the_new_fields_alongside(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=json&max_width=200")
    assert set(c.connected["stream"]) == {"format", "fps", "quality", "max_width", "display", "paused"}
    header, _ = await c.frame()
    assert (header["width"], header["height"]) == (160, 120) and header["view"] == [0, 0, 640, 480]
    assert header["encoding"] == "jpeg" and "clamped" not in header and "dtype" not in header
    c.close()


# -- raw mode ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["binary", "json"])
async def test_raw_at_one_to_one_is_exactly_the_cameras_counts(make_server, ws_connect, fmt: str) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12", seed=7)
    c = await ws_connect(srv, f"format={fmt}&encoding=raw&view=130,70,256,200&size=1280,1024")
    for _ in range(3):
        header, payload = await c.frame()
        assert header["encoding"] == "raw" and header["dtype"] == "uint16" and header["shuffle"] is True
        assert header["compression"] == "deflate" and header["channels"] == 1 and header["bit_depth"] == 12
        assert header["view"] == [130, 70, 256, 200] and (header["width"], header["height"]) == (256, 200)
        pixels = decode_raw(header, payload)
        expected = srv.camera.expected_frame(header["frame_number"])[70:270, 130:386]
        assert np.array_equal(pixels, expected)
        assert header["saturated"] == int(np.count_nonzero(expected == 4095))
    c.close()


@pytest.mark.parametrize("compression", ["zstd", "none"])
async def test_raw_compressions_and_reduced_raw_views_decode_exactly(make_server, ws_connect, compression: str) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono16")
    c = await ws_connect(srv, f"format=binary&encoding=raw&compression={compression}&size=320,240")
    header, payload = await c.frame()
    assert header["compression"] == compression and (header["width"], header["height"]) == (320, 240)
    pixels = decode_raw(header, payload)
    assert np.array_equal(pixels, srv.camera.expected_frame(header["frame_number"])[::2, ::2])  # decimated
    c.close()


async def test_raw_rgb_frames_carry_three_channels(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240, pixel_format="rgb8")
    c = await ws_connect(srv, "format=binary&encoding=raw&view=10,20,100,50")
    header, payload = await c.frame()
    assert header["dtype"] == "uint8" and header["channels"] == 3 and header["shuffle"] is False
    pixels = decode_raw(header, payload)
    assert np.array_equal(pixels, srv.camera.expected_frame(header["frame_number"])[20:70, 10:110])
    c.close()


# -- a big sensor, clamping ---------------------------------------------------------------------------
async def test_the_default_view_of_a_12_mp_sensor_fits_the_canvas(make_server, ws_connect) -> None:
    srv = make_server(width=4096, height=3000, pixel_format="mono12", fps=10.0)
    c = await ws_connect(srv, "format=binary&size=1280,1024")
    for header in await c.frames(3, timeout=20):
        assert header["width"] <= 1280 and header["height"] <= 1024
        assert header["view"] == [0, 0, 4096, 3000] and header["sensor"] == [4096, 3000]
    c.close()


async def test_a_roi_change_under_a_view_clamps_it_and_the_header_says_so(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary&view=200,100,400,300")
    header, _ = await c.frame()
    assert header["view"] == [200, 100, 400, 300] and "clamped" not in header
    c.send({"type": "settings", "changes": {"roi": [0, 0, 320, 240]}})
    header, _ = await frame_where(c, lambda h: h["sensor"] == [320, 240])
    assert header["view"] == [200, 100, 120, 140] and header["clamped"] is True
    assert (header["width"], header["height"]) == (120, 140)
    # a view now wholly outside the sensor is refused; the clamped stream carries on
    c.send({"type": "configure", "view": [400, 300, 10, 10]})
    err = await c.message("error")
    assert err["request"] == "configure" and "view=" in err["message"] and "320x240" in err["message"]
    header, _ = await c.frame()
    assert header["view"] == [200, 100, 120, 140]
    c.close()


# -- bad input: an error naming the field, nothing changes, the stream carries on ----------------------
BAD_CONFIGURES = [
    ({"view": [0, 0, 0, 10]}, "view="),
    ({"view": [0, 0, -5, 10]}, "view="),
    ({"view": [-1, 0, 5, 10]}, "view="),
    ({"view": [0, 0, 1.5, 10]}, "view="),
    ({"view": [0, 0, 10]}, "view="),
    ({"view": "middle"}, "view="),
    ({"view": [0, 0, 10**9, 10]}, "view="),
    ({"view": [0, 0, 65537, 10]}, "view="),
    ({"size": [8, 8]}, "size="),
    ({"size": [20000, 100]}, "size="),
    ({"size": "big"}, "size="),
    ({"encoding": "png"}, "encoding="),
    ({"compression": "brotli"}, "compression="),
    ({"view": [0, 0, 10, 10], "size": [1, 1]}, "size="),  # validated as a whole: the view does not apply
]


async def test_bad_options_get_an_error_naming_the_field_and_change_nothing(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary&view=10,10,100,80")
    before = c.connected["stream"]
    for changes, named in BAD_CONFIGURES:
        c.send({"type": "configure", **changes, "request_id": named})
        err = await c.message("error")
        assert err["request"] == "configure" and err["request_id"] == named
        assert named in err["message"] and "allowed" in err["message"], err
    # NaN is not JSON, but Python's and some clients' encoders write it
    c.send('{"type": "configure", "view": [0, 0, NaN, 10]}')
    assert "view=" in (await c.message("error"))["message"]
    c.send({"type": "configure"})
    assert (await c.message("configured"))["stream"] == before
    header, _ = await c.frame()
    assert header["view"] == [10, 10, 100, 80]
    c.close()


@pytest.mark.parametrize(
    "query, named",
    [("view=0,0,0,5", "view="), ("view=a,b,c,d", "view="), ("view=0,0,nan,5", "view="),
     ("size=5,5", "size="), ("size=100", "size="), ("encoding=webp", "encoding="), ("compression=gzip", "compression=")],
)
async def test_bad_query_options_refuse_the_stream_with_4400(server, query: str, named: str) -> None:
    conn = await websocket_connect(server.ws_url + "?" + query)
    msg = json.loads(await conn.read_message())
    assert msg["type"] == "error" and msg["request"] == "connect" and named in msg["message"]
    assert await conn.read_message() is None and conn.close_code == 4400


# -- sharing ---------------------------------------------------------------------------------------------
async def test_equal_views_share_one_variant_and_equal_plans_share_one_encode(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    a = await ws_connect(srv, "format=binary&view=0,0,320,240")
    b = await ws_connect(srv, "format=json&view=0,0,320,240")
    # asked differently, the same pixels: the full sensor at half size, said two ways
    c = await ws_connect(srv, "format=binary&size=320,240")
    d = await ws_connect(srv, "format=binary&view=0,0,640,480&size=320,240")
    for client in (a, b, c, d):
        await client.frames(10)
    stats = srv.call(srv.service.stats)["encoder"]
    by_view = {(tuple(v["view"]) if v["view"] != "full" else "full", tuple(v["size"] or ())): v for v in stats["variants"]}
    assert by_view[((0, 0, 320, 240), ())]["clients"] == 2  # equal options: one variant
    full, explicit = by_view[("full", (320, 240))], by_view[((0, 0, 640, 480), (320, 240))]
    assert full["shared"] + explicit["shared"] >= 8, stats  # one of the two rode on the other's encode
    # two distinct encodes per frame (the corner and the half-size sensor), not three
    assert stats["encodes"] < 2.5 * stats["frames_in"], stats
    for client in (a, b, c, d):
        client.close()
