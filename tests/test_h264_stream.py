"""``encoding=h264`` on ``ws/camera/stream``: a real server, a real Tornado client, PyAV decoding.

Every access unit a viewer gets must decode to its source frame (``SimulatedCamera.expected_frame``):
a viewer that joins, or is stalled and resumes, starts at a keyframe, so it never decodes a broken
picture. Bad H.264 options get an ``error`` and change nothing.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from tornado.websocket import websocket_connect

from labcam.preview.h264 import NAL_IDR, H264Decoder, luma, nal_types

pytestmark = pytest.mark.anyio


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def check_decodes_to_the_source(srv, frames: list[tuple[dict, bytes]]) -> list[float]:
    """Decode ``frames`` in order with one decoder; each picture's PSNR against its source frame."""
    decoder = H264Decoder()
    scores = []
    for header, unit in frames:
        pictures = decoder.decode(bytes(unit))
        assert len(pictures) == 1, f"frame {header['frame_number']}: {len(pictures)} pictures"
        source = srv.camera.expected_frame(header["frame_number"])[: header["height"], : header["width"]]
        scores.append(psnr(luma(pictures[0]), source))
    return scores


async def test_a_viewer_gets_keyframe_first_and_decodes_to_the_source(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240)
    c = await ws_connect(srv, "format=binary&encoding=h264")
    assert c.connected["stream"]["encoding"] == "h264"
    frames = [await c.frame() for _ in range(20)]
    first, unit = frames[0]
    assert first["keyframe"] is True and first["encoding"] == "h264" and first["codec"].startswith("avc1.")
    for header, data in frames:
        assert header["keyframe"] == (NAL_IDR in nal_types(bytes(data)))  # exactly the IDR units
    assert min(check_decodes_to_the_source(srv, frames)) > 35.0
    c.close()


async def test_a_stalled_viewer_resumes_at_a_keyframe_within_seconds(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240)
    fast = await ws_connect(srv, "format=binary&encoding=h264")  # keeps the variant encoding
    stalled = await ws_connect(srv, "format=binary&encoding=h264")
    before = [await stalled.frame() for _ in range(5)]
    # Stop reading while the other viewer gets 60 frames (2 s): the stalled one falls behind.
    for _ in range(60):
        await fast.frame()
    after = [await stalled.frame() for _ in range(40)]
    numbers = [h["frame_number"] for h, _ in before + after]
    assert max(b - a for a, b in zip(numbers, numbers[1:])) > 10, "it did fall behind"
    # One decoder over everything it got: whatever was skipped, it resumed at a keyframe.
    assert min(check_decodes_to_the_source(srv, before + after)) > 35.0
    resumed = next(i for i, (a, b) in enumerate(zip(numbers, numbers[1:])) if b - a > 10) + 1
    assert (before + after)[resumed][0]["keyframe"] is True
    stats = srv.call(srv.service.stats)
    assert any(cl["frames_skipped"] > 10 for cl in stats["clients"])
    fast.close()
    stalled.close()


async def test_a_viewer_joining_a_running_h264_variant_starts_at_a_keyframe(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240)
    first = await ws_connect(srv, "format=binary&encoding=h264&gop=600")  # keyframes only when asked
    for _ in range(30):
        await first.frame()
    late = await ws_connect(srv, "format=binary&encoding=h264&gop=600")
    header, _ = await late.frame()
    assert header["keyframe"] is True and header["frame_number"] > 20
    frames = [(header, _)] + [await late.frame() for _ in range(10)]
    assert min(check_decodes_to_the_source(srv, frames)) > 35.0
    first.close()
    late.close()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("format=binary&encoding=vp9", "encoding='vp9' is not allowed: one of jpeg, raw, h264"),
        ("format=binary&encoding=h264&bitrate=10", "bitrate='10' is not allowed"),
        ("format=binary&encoding=h264&gop=0", "gop='0' is not allowed"),
        ("format=binary&bitrate=1000000", "bitrate only go with encoding=h264"),
        ("format=json&encoding=h264", "encoding=h264 needs format=binary"),
        ("format=binary&encoding=h264&fps=10", "fps does not go with encoding=h264"),
    ],
)
async def test_bad_h264_options_are_refused_with_a_reason(server, query: str, says: str) -> None:
    conn = await asyncio.wait_for(websocket_connect(server.ws_url + "?" + query), 5)
    error = json.loads(await asyncio.wait_for(conn.read_message(), 5))
    assert error["type"] == "error" and error["request"] == "connect", error
    assert says in error["message"], error
    assert await asyncio.wait_for(conn.read_message(), 5) is None
    assert conn.close_code == 4400


async def test_a_bad_configure_changes_nothing(make_server, ws_connect) -> None:
    srv = make_server(width=320, height=240)
    c = await ws_connect(srv, "format=binary&encoding=h264")
    await c.frame()
    c.send({"type": "configure", "gop": 99999})
    err = await c.message("error")
    assert "gop=99999 is not allowed" in err["message"] and err["request"] == "configure"
    header, _ = await asyncio.wait_for(c.frame(), 10)
    assert header["encoding"] == "h264"
    c.send({"type": "configure", "encoding": "jpeg"})
    configured = await c.message("configured")
    assert configured["stream"].get("encoding", "jpeg") == "jpeg"
    while True:  # the h264 frames already in flight, then JPEG
        header, data = await c.frame()
        if header["encoding"] == "jpeg":
            assert bytes(data[:2]) == b"\xff\xd8"
            break
    c.close()
