"""The live stream (ws/camera/stream) against a real server on loopback, with real clients."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from typing import Any

import numpy as np
import pytest
import simplejpeg
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from labcam.server.stream import MAX_IN_FLIGHT, StreamHandler

pytestmark = pytest.mark.anyio


def decode(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="GRAY")[:, :, 0]


# -- connecting and frames -------------------------------------------------------------------------
async def test_connected_message_describes_camera_settings_and_stream(server, ws_connect) -> None:
    c = await ws_connect(server)
    m = c.connected
    assert m["protocol"] == 1 and m["client_id"].startswith("c")
    assert m["camera"]["driver"] == "simulated" and m["camera"]["sensor_width"] == 320
    assert m["settings"]["pixel_format"] == "mono8" and m["settings"]["fps"] == 30.0
    assert m["specs"]["exposure_ms"]["kind"] == "float"
    assert m["stream"] == {"format": "json", "fps": None, "quality": 80, "max_width": None, "display": "auto", "paused": False}
    assert m["state"] in ("idle", "streaming")
    c.close()


@pytest.mark.parametrize("fmt", ["json", "binary"])
async def test_frames_in_both_formats_are_jpegs_of_the_camera_frames(server, ws_connect, fmt: str) -> None:
    c = await ws_connect(server, f"format={fmt}")
    header, jpeg = await c.frame()
    assert header["type"] == "frame" and header["encoding"] == "jpeg"
    assert (header["width"], header["height"]) == (320, 240)
    assert (header["source_width"], header["source_height"]) == (320, 240)
    assert header["pixel_format"] == "mono8" and header["display"] == [0, 255]
    assert header["exposure_ms"] == 5.0 and header["gain_db"] == 0.0
    image = decode(jpeg)
    expected = server.camera.expected_frame(header["frame_number"])
    assert image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).mean() < 4, "the JPEG is not a picture of that frame"
    # consecutive frames, fresh: capture to receive well under a frame period on loopback
    headers = await c.frames(10)
    numbers = [h["frame_number"] for h in headers]
    assert numbers == sorted(numbers) and len(set(numbers)) == 10
    c.close()


async def test_frames_are_consecutive_at_the_camera_rate(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    headers = await c.frames(30)
    numbers = [h["frame_number"] for h in headers]
    span = numbers[-1] - numbers[0] + 1
    assert span <= 31, f"a fast client lost frames: {numbers}"
    elapsed = headers[-1]["timestamp"] - headers[0]["timestamp"]
    assert 29 / 30 * 0.9 < elapsed < 29 / 30 * 1.5
    c.close()


async def test_max_width_downscales_and_display_range_is_applied(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    c = await ws_connect(srv, "format=binary&max_width=200&display=0,4095")
    header, jpeg = await c.frame()
    # decimated by ceil(640/200) = 4: 160x120, full 12-bit range shown by a shift
    assert (header["width"], header["height"]) == (160, 120)
    assert (header["source_width"], header["source_height"]) == (640, 480)
    assert header["display"] == [0, 4095] and header["pixel_format"] == "mono12"
    expected = srv.camera.expected_frame(header["frame_number"])[::4, ::4] >> 4
    assert np.abs(decode(jpeg).astype(int) - expected).mean() < 4
    # auto range: percentiles of the frame, so the picture uses the 8-bit range
    c.send({"type": "configure", "display": "auto"})
    assert (await c.message("configured"))["stream"]["display"] == "auto"
    header, jpeg = await c.frame()
    while header["display"] == [0, 4095]:  # a frame of the old variant may still be in flight
        header, jpeg = await c.frame()
    lo, hi = header["display"]
    assert 0 <= lo < hi <= 4095 and hi - lo < 4095
    image = decode(jpeg)
    assert image.max() > 200 and image.min() < 60, "auto range should stretch the picture"
    c.close()


async def test_fps_cap_limits_frames_for_that_client_only(server, ws_connect) -> None:
    capped = await ws_connect(server, "format=binary&fps=10")
    free = await ws_connect(server, "format=binary")
    capped_headers, free_headers = await asyncio.gather(capped.frames(8), free.frames(24))
    stamps = [h["timestamp"] for h in capped_headers]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    # about 10 per second on average (arrival jitter may shift single frames by one camera period)
    assert 8 < rate < 11 and np.diff(stamps).min() > 0.05, np.diff(stamps)
    free_numbers = [h["frame_number"] for h in free_headers]
    assert free_numbers[-1] - free_numbers[0] <= 24, "the uncapped client must not be slowed"
    capped.close()
    free.close()


# -- many clients, one encode ------------------------------------------------------------------------
async def test_many_clients_share_one_encode_per_variant(server, ws_connect) -> None:
    clients = [await ws_connect(server, f"format={'binary' if i % 2 else 'json'}") for i in range(8)]
    small = await ws_connect(server, "format=binary&max_width=100")
    results = await asyncio.gather(*(c.frames(15) for c in clients))
    small_headers = await small.frames(5)
    assert all(h["width"] <= 100 for h in small_headers)
    for headers in results:
        numbers = [h["frame_number"] for h in headers]
        assert numbers[-1] - numbers[0] <= 16, f"a client fell behind: {numbers}"
    stats = server.call(server.service.stats)
    variants = {(v["max_width"], v["clients"]) for v in stats["encoder"]["variants"]}
    assert variants == {(None, 8), (100, 1)}
    # every variant encodes each frame once, whatever its number of clients
    frames_in = stats["encoder"]["frames_in"]
    for v in stats["encoder"]["variants"]:
        assert v["encoded"] <= frames_in
    assert len(stats["clients"]) == 9
    for c in [*clients, small]:
        c.close()


async def test_the_same_encoded_message_object_goes_to_every_client_of_a_variant(server, ws_connect) -> None:
    sent: list[tuple[str, int, int]] = []
    original = StreamHandler._send_frame

    def spy(self: StreamHandler, encoded: Any) -> None:
        message = encoded.binary_message if self.options.format == "binary" else encoded.json_message
        sent.append((self.client_id, encoded.frame_number, id(message)))
        original(self, encoded)

    StreamHandler._send_frame = spy  # type: ignore[method-assign]
    try:
        a = await ws_connect(server, "format=binary")
        b = await ws_connect(server, "format=binary")
        await asyncio.gather(a.frames(5), b.frames(5))
    finally:
        StreamHandler._send_frame = original  # type: ignore[method-assign]
    by_frame: dict[int, set[int]] = {}
    for _, number, ident in sent:
        by_frame.setdefault(number, set()).add(ident)
    shared = [n for n, ids in by_frame.items() if len({c for c, m, _ in sent if m == n}) == 2]
    assert shared, "no frame went to both clients"
    assert all(len(by_frame[n]) == 1 for n in shared), "a message was built per client"
    a.close()
    b.close()


# -- a stalled client ---------------------------------------------------------------------------------
def _stalled_socket(port: int) -> socket.socket:
    """A client that completes the WebSocket handshake and then never reads again."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
    s.connect(("127.0.0.1", port))
    s.sendall(
        b"GET /ws/camera/stream?format=binary HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % port
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = s.recv(1)  # one byte at a time: read the headers and not one byte of frames
        assert chunk, "the server closed the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return s


def _pending_bytes(handler: StreamHandler) -> int:
    stream = handler.ws_connection.stream  # type: ignore[union-attr]
    return len(stream._write_buffer)  # Tornado's user-space write buffer for this socket


async def test_stalled_clients_do_not_slow_others_and_memory_stays_bounded(make_server, ws_connect) -> None:
    # 15 fps: the fast clients (this test's own process) and the encoder must keep up with the
    # camera on a loaded 2-core machine, or frames go missing whether clients stall or not.
    fps = 15.0
    srv = make_server(width=640, height=480, fps=fps)
    stalled = [_stalled_socket(srv.port) for _ in range(2)]
    fast = [await ws_connect(srv, "format=binary") for _ in range(3)]
    try:
        await asyncio.gather(*(c.frames(5) for c in fast))  # warm up
        results = await asyncio.gather(*(c.frames(45, timeout=10) for c in fast))
        for headers in results:
            numbers = [h["frame_number"] for h in headers]
            got, span = len(set(numbers)), numbers[-1] - numbers[0] + 1
            assert got / span >= 0.95, f"a fast client got {got} of {span} frames next to stalled ones"
            elapsed = headers[-1]["timestamp"] - headers[0]["timestamp"]
            assert got / elapsed > fps * 5 / 6, f"fast client at {got / elapsed:.1f} fps"

        def stalled_figures() -> list[tuple[int, int, int, int]]:
            out = []
            for h in srv.service.clients:
                assert isinstance(h, StreamHandler)
                out.append((h.frames_sent, h.frames_skipped, h.in_flight, _pending_bytes(h)))
            return out

        figures = srv.call(stalled_figures)
        behind = [f for f in figures if f[1] > 0]
        assert len(behind) == 2, figures
        variants = srv.call(srv.service.hub.stats)["variants"]
        frame_bytes = max(v["jpeg_bytes"] for v in variants) + 1024  # a JPEG plus its header
        for sent, skipped, in_flight, pending in behind:
            assert in_flight <= MAX_IN_FLIGHT
            assert skipped > 20, "the stalled clients should be skipping frames"
            # at most the in-flight frames (and a little control traffic) wait in user space
            assert pending <= (MAX_IN_FLIGHT + 1) * frame_bytes
            assert sent < 20
    finally:
        for s in stalled:
            s.close()
        for c in fast:
            c.close()


async def test_a_slow_client_gets_fresh_frames_not_a_backlog(make_server, ws_connect) -> None:
    srv = make_server(width=640, height=480)
    slow = await ws_connect(srv, "format=binary")
    await slow.frame()
    # Read only 6 frames a second. Tornado's client reads into a one-message queue, so the server
    # sees a slow reader; kernel buffers alone would hold seconds of frames for it (measured: 3 s),
    # the acknowledged window keeps them about (window + queue) / pace old.
    numbers, ages = [], []
    for _ in range(12):
        await asyncio.sleep(1 / 6)  # the client's reading pace (what is tested), not synchronisation
        header, _ = await slow.frame()
        numbers.append(header["frame_number"])
        ages.append(__import__("time").time() - header["timestamp"])
    assert numbers[-1] - numbers[0] > 11 * 3, f"the slow client read a backlog: {numbers}"
    assert max(ages[4:]) < 1.0, f"frames reached the slow client too old: {ages}"
    stats = srv.call(srv.service.stats)
    client = stats["clients"][0]
    assert client["frames_skipped"] > 20 and client["acknowledged"] is True
    slow.close()


# -- control messages ----------------------------------------------------------------------------------
async def test_configure_changes_this_clients_stream(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frame()
    c.send({"type": "configure", "max_width": 80, "quality": 40, "fps": 15})
    configured = await c.message("configured")
    assert configured["stream"] == {
        "format": "binary", "fps": 15.0, "quality": 40, "max_width": 80, "display": "auto", "paused": False,
    }
    header, _ = await c.frame()
    assert header["width"] == 80  # no frame of the old variant follows "configured"
    c.send({"type": "configure", "max_width": None, "quality": None})
    configured = await c.message("configured")
    assert configured["stream"]["max_width"] is None and configured["stream"]["quality"] == 80
    c.close()


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"type": "configure", "quality": 0}, ["quality=0", "1 to 100"]),
        ({"type": "configure", "fps": -1}, ["fps=-1", "0.1"]),
        ({"type": "configure", "max_width": 8}, ["max_width=8", "16"]),
        ({"type": "configure", "display": [10, 5]}, ["display", "MIN < MAX"]),
        ({"type": "configure", "display": [0, 300]}, ["display", "255"]),
        ({"type": "configure", "format": "json"}, ["format", "reconnect"]),
        ({"type": "configure", "colour": "red"}, ["colour"]),
        ({"type": "ping", "id": {"a": 1}}, ["id="]),
        ({"type": "snap", "format": "gif"}, ["format='gif'", "png"]),
        ({"type": "settings", "changes": {"exposure_ms": -5}}, ["exposure_ms=-5", "0.01"]),
        ({"type": "settings", "changes": {"warp": 9}}, ["warp", "unknown setting"]),
        ({"type": "settings", "changes": []}, ["changes"]),
        ({"type": "launch"}, ["type='launch'", "configure"]),
        ({"no": "type"}, ["type=None"]),
        ("not json", ["not valid JSON"]),
        ("[1, 2]", ["JSON object"]),
    ],
)
async def test_invalid_messages_get_an_error_and_the_stream_carries_on(server, ws_connect, message, words) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frame()
    before = server.engine.settings
    c.send(message)
    error = await c.message("error")
    for word in words:
        assert word in error["message"], error
    if isinstance(message, dict) and message.get("type") in ("configure", "settings", "snap", "ping"):
        assert error["request"] == message["type"]
    assert server.engine.settings == before, "an invalid message changed the camera"
    await c.frames(3)  # still streaming
    c.send({"type": "ping", "id": 7})
    assert (await c.message("pong"))["id"] == 7
    c.close()


async def test_binary_messages_from_the_client_are_refused_politely(server, ws_connect) -> None:
    c = await ws_connect(server)
    c.conn.write_message(b"\x00\x01", binary=True)
    assert "binary messages are not accepted" in (await c.message("error"))["message"]
    await c.frame()
    c.close()


async def test_oversized_messages_close_with_1009(server, ws_connect) -> None:
    c = await ws_connect(server)
    c.send({"type": "ping", "id": "x" * 70_000})
    code, _ = await c.closed()
    assert code == 1009
    # the server is fine
    other = await ws_connect(server)
    await other.frame()
    other.close()


def _read_frames_until_close(s: socket.socket) -> int | None:
    """Read server frames from a raw socket until the close frame; its code."""
    buf = b""
    s.settimeout(20)

    def need(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    try:
        while True:
            b0, b1 = need(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(need(2), "big")
            elif n == 127:
                n = int.from_bytes(need(8), "big")
            payload = need(n)
            if b0 & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")
    except EOFError:
        return None


async def test_a_client_flooding_requests_without_reading_is_closed_1008(server, ws_connect) -> None:
    other = await ws_connect(server, "format=binary")
    flood = _stalled_socket(server.port)
    ping = json.dumps({"type": "ping", "id": 1}).encode()
    frame = bytes([0x81, 0x80 | len(ping)]) + b"\x00\x00\x00\x00" + ping  # masked with a zero key
    try:
        await asyncio.to_thread(flood.sendall, frame * 30000)
    except OSError:
        pass  # the server may close before it has read them all
    code = await asyncio.to_thread(_read_frames_until_close, flood)
    flood.close()
    assert code == 1008
    await other.frames(5)  # nobody else noticed
    other.close()


async def test_ping_pong_carries_id_and_server_time(server, ws_connect) -> None:
    import time

    c = await ws_connect(server)
    t0 = time.time()
    c.send({"type": "ping", "id": "abc"})
    pong = await c.message("pong")
    assert pong["id"] == "abc" and t0 - 1 < pong["server_time"] < time.time() + 1
    c.close()


async def test_pause_and_resume(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frame()
    c.send({"type": "pause"})
    assert (await c.message("configured"))["stream"]["paused"] is True
    # frames already in flight may still arrive; then none (the hub stops encoding for us)
    assert server.call(lambda: server.service.hub.active) is False
    c.send({"type": "ping", "id": 1})
    await c.message("pong")
    c.send({"type": "resume"})
    assert (await c.message("configured"))["stream"]["paused"] is False
    await c.frames(3)
    c.close()


@pytest.mark.parametrize("fmt", ["json", "binary"])
async def test_snap_over_the_stream_is_full_resolution_and_lossless(make_server, ws_connect, fmt: str) -> None:
    from PIL import Image

    srv = make_server(width=320, height=240, pixel_format="mono16")
    c = await ws_connect(srv, f"format={fmt}&max_width=64")
    await c.frame()
    c.send({"type": "snap", "format": "png"})
    snap = await c.message("snap")
    data = snap["payload"] if fmt == "binary" else __import__("base64").b64decode(snap["data"])
    assert snap["encoding"] == "png" and (snap["width"], snap["height"]) == (320, 240)
    array = np.asarray(Image.open(io.BytesIO(data)))
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, srv.camera.expected_frame(snap["frame_number"]))
    c.send({"type": "snap", "format": "npy"})
    snap = await c.message("snap")
    data = snap["payload"] if fmt == "binary" else __import__("base64").b64decode(snap["data"])
    np.testing.assert_array_equal(np.load(io.BytesIO(data)), srv.camera.expected_frame(snap["frame_number"]))
    await c.frame()  # the preview carried on
    c.close()


async def test_settings_changes_are_broadcast_to_every_client(server, ws_connect) -> None:
    a = await ws_connect(server)
    b = await ws_connect(server)
    a.send({"type": "settings", "changes": {"exposure_ms": 7.5, "gain_db": 3}})
    for c in (a, b):
        msg = await c.message("settings")
        assert msg["settings"]["exposure_ms"] == 7.5 and msg["settings"]["gain_db"] == 3.0
    assert server.engine.settings.exposure_ms == 7.5
    # frames follow the new settings
    header, _ = await a.frame()
    while header["exposure_ms"] != 7.5:
        header, _ = await a.frame()
    # a change made elsewhere (REST, a notebook) is broadcast too
    await asyncio.to_thread(server.engine.update_settings, {"gain_db": 6})
    assert (await b.message("settings"))["settings"]["gain_db"] == 6.0
    # a change to the current values still answers the sender
    a.send({"type": "settings", "changes": {"gain_db": 6}})
    assert (await a.message("settings"))["settings"]["gain_db"] == 6.0
    a.close()
    b.close()


async def test_status_messages_report_a_lost_camera_and_the_stream_resumes(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frame()
    server.camera.faults.disconnect(reconnect_after=3)
    lost = await c.message("status", timeout=10)
    while lost["state"] != "lost":
        lost = await c.message("status", timeout=10)
    back = await c.message("status", timeout=10)
    while back["state"] != "streaming":
        back = await c.message("status", timeout=10)
    await c.frames(3, timeout=10)  # same connection, frames again
    c.close()


async def test_stats_message_about_once_a_second(make_server, ws_connect) -> None:
    server = make_server(stats_interval=0.4)  # once a second by default; quicker here
    c = await ws_connect(server, "format=binary")
    stats = await c.message("stats", timeout=3)
    for key in ("fps", "frames_sent", "frames_skipped", "bytes_per_s", "camera_fps", "camera_frames",
                "camera_dropped", "encode_ms", "in_flight"):
        assert key in stats, key
    stats = await c.message("stats", timeout=3)
    assert 20 < stats["fps"] < 40 and stats["bytes_per_s"] > 0 and stats["camera_fps"] > 20
    assert stats["encode_ms"] > 0
    c.close()


# -- handshake refusals and limits ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("format=xml", ["format='xml'", "json"]),
        ("fps=0", ["fps='0'"]),
        ("fps=fast", ["fps='fast'"]),
        ("quality=101", ["quality='101'", "1 to 100"]),
        ("max_width=5", ["max_width='5'"]),
        ("display=5,3", ["display='5,3'"]),
        ("display=0,256", ["display", "255"]),
        ("display=bright", ["display='bright'"]),
    ],
)
async def test_bad_query_parameters_are_told_then_closed_with_4400(server, query: str, words: list[str]) -> None:
    # Accepted, told why (a browser sees a refused handshake only as 1006), closed with 4400.
    conn = await asyncio.wait_for(websocket_connect(server.ws_url + "?" + query), 5)
    first = await asyncio.wait_for(conn.read_message(), 5)
    assert isinstance(first, str)
    error = json.loads(first)
    assert error["type"] == "error" and error["request"] == "connect", error
    for word in words:
        assert word in error["message"], error
    assert await asyncio.wait_for(conn.read_message(), 5) is None
    assert conn.close_code == 4400
    assert conn.close_reason and len(conn.close_reason.encode()) <= 123
    assert error["message"].startswith(conn.close_reason.removesuffix("..."))
    assert server.service.connections_total == 0, "a refused stream is not a client"


async def test_clients_beyond_the_maximum_are_closed_with_1013(make_server, ws_connect) -> None:
    srv = make_server(max_clients=2)
    a = await ws_connect(srv)
    b = await ws_connect(srv)
    conn = await websocket_connect(srv.ws_url)
    assert await asyncio.wait_for(conn.read_message(), 5) is None
    assert conn.close_code == 1013 and conn.close_reason == "too many clients (2)"
    a.close()
    code, _ = await a.closed()
    # a place is free again
    c = await ws_connect(srv)
    await c.frame()
    for x in (b, c):
        x.close()


async def test_server_shutdown_closes_streams_with_1001(make_server, ws_connect) -> None:
    srv = make_server()
    clients = [await ws_connect(srv, f"format={f}") for f in ("json", "binary")]
    await clients[0].frame()
    stopping = asyncio.ensure_future(asyncio.to_thread(srv.stop))  # the clients keep reading meanwhile
    for c in clients:
        code, reason = await c.closed()
        assert code == 1001, (code, reason)
    await stopping
    assert srv.engine.status.state == "closed"


async def test_encoding_pauses_and_camera_stops_when_nobody_watches(server, ws_connect) -> None:
    c = await ws_connect(server, "format=binary")
    await c.frames(2)
    idle = threading.Event()
    server.engine.events.status_changed.connect(lambda s: idle.set() if s.state == "idle" else None)
    c.close()
    assert await asyncio.to_thread(idle.wait, 10), "the camera did not stop after the last client left"
    assert server.call(lambda: server.service.hub.active) is False
    assert server.call(lambda: server.service.hub.variants) == []
    # and a new client starts it again
    d = await ws_connect(server)
    await d.frame(timeout=10)
    d.close()


async def test_a_failing_client_handler_does_not_hurt_the_server(server, ws_connect) -> None:
    """Even an exception inside a frame listener (a bug) costs nothing but that delivery."""
    a = await ws_connect(server, "format=binary")
    b = await ws_connect(server, "format=binary")
    await asyncio.gather(a.frame(), b.frame())

    def break_a() -> None:
        handler = next(h for h in server.service.clients if h.client_id == a.connected["client_id"])
        handler._send_frame = None  # type: ignore[assignment]  # calling it raises TypeError

    server.call(break_a)
    await b.frames(10)
    c = await ws_connect(server)
    await c.frame()
    for x in (a, b, c):
        x.close()
