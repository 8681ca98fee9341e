"""The wire layer (labcam.wire) and the flow-control objects the server and the widget share.

Frame headers and snap names against a real server; the envelope, the name rule, ``FrameWindow``
and ``RequestQueue`` on their own; and that decoding a raw frame loads nothing of the server.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from http_helpers import fetch
from labcam import wire
from labcam.flow import FpsCap, FrameWindow
from labcam.frame import Frame, FrameMeta
from labcam.server.queues import RequestQueue

pytestmark = pytest.mark.anyio


# -- frame headers over a real stream ------------------------------------------------------------------
@pytest.mark.parametrize(("pixel_format", "bits"), [("mono8", 8), ("mono12", 12), ("mono16", 16)])
@pytest.mark.parametrize("fmt", ["json", "binary"])
async def test_preview_frames_and_snaps_say_their_bit_depth(make_server, ws_connect, pixel_format: str, bits: int, fmt: str) -> None:
    srv = make_server(width=160, height=120, pixel_format=pixel_format)
    client = await ws_connect(srv, f"format={fmt}")
    try:
        header, _ = await client.frame()
        assert header["bit_depth"] == bits and header["pixel_format"] == pixel_format
        client.send({"type": "snap", "format": "npy"})
        snap = await client.message("snap")
        assert snap["bit_depth"] == bits
    finally:
        client.close()


async def test_the_rest_snap_is_named_by_the_snapshot_rule(server) -> None:
    resp = await fetch(server.url + "api/camera/snap?format=tiff")
    assert resp.code == 200
    disposition = resp.headers["Content-Disposition"]
    name = re.fullmatch(r'attachment; filename="(.+)"', disposition)
    assert name is not None, disposition
    number, timestamp = int(resp.headers["X-Labcam-Frame-Number"]), float(resp.headers["X-Labcam-Timestamp"])
    assert name.group(1) == wire.snapshot_file_name("SIM-0001", number, timestamp, "tiff")
    assert re.fullmatch(rf"labcam_SIM-0001_\d{{8}}-\d{{6}}_{number}\.tif", name.group(1))


# -- the snapshot name rule ----------------------------------------------------------------------------
@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_snapshot_names_follow_the_documented_rule(utc: None) -> None:
    at = 1764062600.25  # 2025-11-25 09:23:20 UTC
    assert wire.snapshot_file_name("SIM 0001", 12, at, "tiff") == "labcam_SIM_0001_20251125-092320_12.tif"
    assert wire.snapshot_file_name(None, None, at, "npy") == "labcam_camera_20251125-092320_frame.npy"
    assert wire.snapshot_file_name("", 3, at, "jpeg") == "labcam_camera_20251125-092320_3.jpg"
    assert wire.snapshot_file_name("a/b\\c:d  é", 7, at, "png") == "labcam_a_b_c_d__20251125-092320_7.png"  # "  é" is one run
    assert re.fullmatch(r"labcam_X_\d{8}-\d{6}_1\.png", wire.snapshot_file_name("X", 1, None, "png"))


# -- the envelope -----------------------------------------------------------------------------------------
def test_the_envelope_round_trips_any_buffer_and_refuses_broken_messages() -> None:
    array = np.arange(12, dtype="<u2").reshape(3, 4)
    msg = wire.pack_binary({"type": "frame", "n": 1}, memoryview(array).cast("B"))
    header, payload = wire.unpack_binary(msg)
    assert header == {"type": "frame", "n": 1} and payload == array.tobytes()
    header, view, start = wire.split_binary(bytearray(msg))
    assert np.frombuffer(view, "<u2", offset=start).tolist() == list(range(12))
    with pytest.raises(ValueError, match="too short"):
        wire.unpack_binary(b"\x00\x00")
    with pytest.raises(ValueError, match="exceeds"):
        wire.unpack_binary(b"\x00\x00\x01\x00{}")
    with pytest.raises(ValueError, match="not a JSON object"):
        wire.unpack_binary(wire.pack_binary([1], b""))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a raw frame"):
        wire.decode_raw_frame(wire.pack_binary({"type": "snap"}, b""))


def test_decoding_a_raw_frame_loads_neither_the_server_nor_the_preview_encoder() -> None:
    probe = """
import sys
import numpy as np
from labcam.frame import Frame, FrameMeta
from labcam.wire import decode_raw_frame, encode_raw_frame
meta = FrameMeta(5, 1.5, 2.0, 0.0, (0, 0, 4, 3), "mono12", "S", 0)
frame, header = decode_raw_frame(encode_raw_frame(Frame(np.full((3, 4), 4095, np.uint16), meta), missed=2))
assert frame.array.max() == 4095 and header["bit_depth"] == 12 and header["missed"] == 2
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("simplejpeg", "tornado") or m.startswith(("labcam.server", "labcam.preview")))
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_preview_headers_come_from_the_frame() -> None:
    meta = FrameMeta(9, 2.5, 3.0, 1.0, (0, 0, 8, 6), "mono12", "S", 0)
    header = wire.preview_header(Frame(np.zeros((6, 8), np.uint16), meta), 4, 3, (10, 4000))
    assert header["bit_depth"] == 12 and header["display"] == [10, 4000]
    assert (header["width"], header["height"], header["source_width"], header["source_height"]) == (4, 3, 8, 6)


# -- FrameWindow and FpsCap ---------------------------------------------------------------------------------
def test_the_window_holds_size_frames_and_the_newest_waits_in_the_slot() -> None:
    window: FrameWindow[str] = FrameWindow(2)
    assert window.offer("a", 0.0) == "a" and window.sent(0.0) == 1
    assert window.offer("b", 0.1) == "b" and window.sent(0.1) == 2
    assert window.offer("c", 0.2) is None and window.offer("d", 0.3) is None  # full: d replaces c
    assert window.skipped == 1 and window.in_flight == 2 and window.take_pending(0.3) is None
    assert window.ack(1, 0.4) and window.in_flight == 1 and window.rtt_ms == pytest.approx(400.0)
    assert window.take_pending(0.4) == "d" and window.take_pending(0.4) is None
    window.sent(0.4)
    assert not window.ack(1, 0.5), "a stale ack"
    assert window.ack(3, 0.6) and window.acked == 3 and window.in_flight == 0  # cumulative
    assert not window.ack(9, 0.7), "not a frame of ours"
    assert window.max_in_flight == 2


def test_overdue_acks_are_given_up_and_counted_lost() -> None:
    window: FrameWindow[str] = FrameWindow(2, ack_timeout=1.0)
    window.sent(0.0)
    window.sent(0.5)
    assert not window.is_open(0.9)
    assert window.is_open(1.2) and window.lost == 1 and window.in_flight == 1
    assert not window.ack(1, 1.3)  # too late: already given up
    assert window.ack(2, 1.3) and window.acked == 1


def test_without_any_ack_the_window_falls_back_to_counting_writes() -> None:
    window: FrameWindow[str] = FrameWindow(2, fallback_after=2.0)
    window.sent(0.0, writing=True)
    window.sent(0.0, writing=True)
    window.write_done()
    window.write_done()
    assert not window.is_open(1.0), "still waiting for acknowledgements"
    assert window.is_open(2.5) and window.fallback and window.in_flight == 0
    window.sent(2.5, writing=True)
    assert window.in_flight == 1
    assert window.ack(3, 2.6) and not window.fallback and window.in_flight == 0  # acks are back


def test_the_fps_cap_keeps_the_average_and_does_not_burst_after_a_gap() -> None:
    cap = FpsCap(10.0)
    sent = []
    for i in range(100):  # frames every 33 ms with jitter: about 10 of each 30 may go
        now = i * 0.0333 + (0.004 if i % 2 else 0.0)
        if cap.delay(now) == 0:
            cap.take(now)
            sent.append(now)
    assert len(sent) == pytest.approx(33, abs=2)
    assert cap.delay(100.0) == 0  # after a gap
    cap.take(100.0)
    assert cap.delay(100.01) > 0.08  # re-anchored: the next one a period later, no burst
    cap.fps = None
    assert cap.delay(100.01) == 0


# -- RequestQueue ------------------------------------------------------------------------------------------------
async def test_requests_run_in_order_and_only_limit_may_wait() -> None:
    queue = RequestQueue("snap", 2, "snaps")
    order: list[int] = []
    release = asyncio.Event()

    async def job(i: int) -> None:
        async with queue.turn():
            await release.wait()
            order.append(i)

    queue.admit()
    queue.admit()
    with pytest.raises(wire.ProtocolError, match="2 snaps are already waiting; wait for their replies") as err:
        queue.admit()
    assert err.value.request == "snap"
    tasks = [asyncio.ensure_future(job(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [1, 2] and queue.waiting == 0
    queue.admit()  # room again


# -- the widget takes its ranges from the wire layer ---------------------------------------------------------------
def test_the_live_view_checks_and_sends_the_wire_layers_ranges() -> None:
    from labcam.widget import LiveView

    view = LiveView(url="http://127.0.0.1:1/")
    try:
        assert view.option_ranges == {name: list(r) for name, r in wire.OPTION_RANGES.items()}
        low, high = wire.QUALITY_RANGE
        view.quality = high
        with pytest.raises(ValueError, match=f"from {low} to {high}"):
            view.quality = high + 1
    finally:
        view.close()
