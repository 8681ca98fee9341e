"""The stream's ``probe`` request (issue 11): the camera's counts under the cursor, from the latest
full-bit-depth frame, against a real server on loopback."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.anyio


async def test_a_probe_answers_the_counts_of_the_latest_frame(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12", seed=3)
    c = await ws_connect(srv, "format=binary&size=320,240")
    await c.frame()  # the camera runs
    c.send({"type": "probe", "x": 300, "y": 200, "w": 4, "h": 3, "request_id": "p1"})
    reply = await c.message("probe")
    assert reply["request_id"] == "p1" and reply["bit_depth"] == 12
    assert (reply["x"], reply["y"], reply["w"], reply["h"]) == (300, 200, 4, 3)
    expected = srv.camera.expected_frame(reply["frame_number"])[200:203, 300:304]
    assert reply["values"] == expected.ravel().tolist()
    c.send({"type": "probe", "x": 0, "y": 0})  # one pixel by default
    one = await c.message("probe")
    assert one["values"] == [int(srv.camera.expected_frame(one["frame_number"])[0, 0])]
    c.close()


async def test_an_rgb_probe_answers_one_triple_per_pixel(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240, pixel_format="rgb8")
    c = await ws_connect(srv, "format=binary")
    await c.frame()
    c.send({"type": "probe", "x": 5, "y": 6, "w": 2, "h": 1})
    reply = await c.message("probe")
    expected = srv.camera.expected_frame(reply["frame_number"])[6, 5:7]
    assert reply["values"] == expected.tolist() and np.asarray(reply["values"]).shape == (2, 3)
    c.close()


@pytest.mark.parametrize(
    "probe, named",
    [
        ({"x": 640, "y": 0}, "x="),  # outside the frame
        ({"x": 638, "y": 0, "w": 4}, "x="),  # reaches past its edge
        ({"x": 0, "y": 479, "h": 2}, "y="),
        ({"x": 0, "y": 0, "w": 65}, "w="),
        ({"x": 0, "y": 0, "h": 0}, "h="),
        ({"x": -1, "y": 0}, "x="),
        ({"x": 1.5, "y": 0}, "x="),
        ({"y": 0}, "x="),
        ({"x": 0, "y": 0, "z": 1}, "'z'"),
    ],
)
async def test_a_bad_probe_gets_an_error_naming_the_field_and_the_stream_carries_on(
    make_server, ws_connect, probe: dict, named: str
) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary&size=160,160")
    await c.frame()
    c.send({"type": "probe", **probe, "request_id": 9})
    err = await c.message("error")
    assert err["request"] == "probe" and err["request_id"] == 9 and named in err["message"], err
    header, _ = await c.frame()
    assert header["width"] == 160
    c.send({"type": "probe", "x": 1, "y": 1})
    assert (await c.message("probe"))["w"] == 1
    c.close()
