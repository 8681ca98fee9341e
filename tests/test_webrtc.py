"""labcam.webrtc: H.264 over RTP into a real Janus (Debian's, started by the tests), watched by real
Chromium viewers through janus-gateway (the bundle scripts/setup.sh builds).

Nothing is faked: the packets decode with FFmpeg, the Janus is the real server with the config
labcam generates, the viewers are WebRTC peer connections in headless Chromium.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_page import chromium_page
from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.h264 import H264Decoder, H264Encoder, luma
from labcam.webrtc.janus import JanusAccess, JanusClient, JanusError, JanusProcess, WebRTCChoice, free_port, parse_webrtc
from labcam.webrtc.publisher import PublishOptions, WebRTCPublisher
from labcam.webrtc.rtp import (
    H264Packetizer,
    PacedSender,
    RtpPacket,
    depacketize,
    keyframe_requests,
    read_frame_info,
    with_frame_info,
)
from labcam.webrtc.standalone import ice_servers_from, start_webrtc, stop_webrtc

BUNDLE = Path(__file__).resolve().parents[1] / "labcam" / "web" / "dist" / "labcam-webrtc.js"


def _need_janus() -> None:
    if shutil.which("janus") is None:  # part of the test environment, like chromium
        raise RuntimeError("janus is missing: scripts/setup.sh --test installs Debian's janus")


# ==================================================================================================
# RTP: packets, frame info, pacing, RTCP
# ==================================================================================================
def _units(n: int = 12, width: int = 320, height: int = 256) -> list[Any]:
    cam = SimulatedCamera(width=width, height=height, seed=5)
    enc = H264Encoder(width, height, gop=6)
    return [(enc.encode(cam.expected_frame(i)), cam.expected_frame(i)) for i in range(n)]


def test_packets_fit_the_mtu_mark_each_access_unit_and_decode_back() -> None:
    pack = H264Packetizer(ssrc=0x1234, mtu=500, first_sequence=65530)  # the sequence number wraps
    decoder = H264Decoder()
    for number, (unit, frame) in enumerate(_units()):
        nals = with_frame_info(unit.data, number, 1000.0 + number / 30)
        packets = [RtpPacket.parse(p) for p in pack.packetize(nals, 90_000 + 3000 * number)]
        assert all(len(p.payload) <= 500 for p in packets)
        assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
        assert {p.timestamp for p in packets} == {90_000 + 3000 * number} and {p.ssrc for p in packets} == {0x1234}
        got = depacketize(packets)
        assert got == nals  # single NAL units and FU-A fragments, back byte for byte
        infos = [read_frame_info(n) for n in got if read_frame_info(n)]
        assert infos == [(number, pytest.approx(1000.0 + number / 30))]
        pictures = decoder.decode(b"".join(b"\x00\x00\x00\x01" + n for n in got))
        assert len(pictures) == 1 and abs(luma(pictures[0]).astype(int) - frame).mean() < 4
    assert pack.sequence == (65530 + pack.packets) % 65536


def test_the_frame_info_survives_emulation_prevention() -> None:
    # A frame number and time whose bytes hold 00 00 0x: the SEI must escape them and read them back.
    nals = with_frame_info(_units(1)[0][0].data, 0x0000_0001_0000_0003, 0.0)
    sei = nals[[n[0] & 0x1F for n in nals].index(5) - 1]  # ours, just before the slice (x264 adds its own SEI too)
    assert b"\x00\x00\x00" not in sei and b"\x00\x00\x01" not in sei
    assert read_frame_info(sei) == (0x0000_0001_0000_0003, 0.0)


def test_pacing_spreads_a_keyframe_over_part_of_the_frame_interval() -> None:
    # The schedule, on a clock the test moves: 33 packets in groups of 4 over half of 1/30 s.
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        sender = PacedSender(tx, rx.getsockname(), fps=30, pace_fraction=0.5, burst=4, clock=lambda: now[0], sleep=sleep)
        sender.send([bytes([i]) * 100 for i in range(33)])
        assert sender.sent == 33
        assert len(waits) == 8  # 9 groups, the first at once
        assert sum(waits) == pytest.approx(0.5 / 30 * 8 / 9)
        rx.settimeout(2)
        assert [rx.recv(200)[0] for _ in range(33)] == list(range(33))  # in order, none lost


def test_pli_and_fir_are_found_in_compound_rtcp() -> None:
    receiver_report = bytes([0x80, 201, 0, 1]) + b"\x00\x00\x00\x01"
    pli = bytes([0x81, 206, 0, 2]) + b"\x00\x00\x00\x01\x00\x00\x00\x02"
    fir = bytes([0x84, 206, 0, 4]) + b"\x00" * 16
    remb = bytes([0x8F, 206, 0, 2]) + b"\x00" * 8  # fmt 15: not a keyframe request
    assert keyframe_requests(receiver_report + pli) == 1
    assert keyframe_requests(receiver_report + remb + fir + pli) == 2
    assert keyframe_requests(receiver_report + remb) == 0
    assert keyframe_requests(b"garbage") == 0


# ==================================================================================================
# Janus: the generated config, tokens, mountpoints, errors
# ==================================================================================================
@pytest.fixture
def janus() -> Iterator[JanusProcess]:
    _need_janus()
    process = JanusProcess()
    process.start()
    yield process
    process.stop()


def _janus_request(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps({"transaction": "t", **body}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        reply: dict[str, Any] = json.loads(response.read())
    return reply


def test_our_janus_refuses_requests_without_a_token_or_the_admin_secret(janus: JanusProcess) -> None:
    access = janus.access
    assert access is not None
    for body in ({"janus": "create"}, {"janus": "create", "token": "forged-by-a-page"}):
        reply = _janus_request(access.url, body)
        assert reply["janus"] == "error" and reply["error"]["code"] == 403, reply
    for secret in ("", "janusoverlord"):  # none, and the Debian config's default
        reply = _janus_request(access.admin_url, {"janus": "list_tokens", "admin_secret": secret})
        assert reply["janus"] == "error" and reply["error"]["code"] == 403, reply
    client = JanusClient(access)
    token = client.add_token()
    assert _janus_request(access.url, {"janus": "create", "token": token})["janus"] == "success"
    client.remove_token(token)
    assert _janus_request(access.url, {"janus": "create", "token": token})["janus"] == "error"


def test_our_janus_runs_the_streaming_plugin_and_http_only_on_loopback(janus: JanusProcess) -> None:
    assert janus.access is not None
    info = JanusClient(janus.access).info()
    assert set(info["plugins"]) == {"janus.plugin.streaming"}
    assert set(info["transports"]) == {"janus.transport.http", "janus.transport.websockets"}
    assert janus.access.viewer_url == f"ws://127.0.0.1:{janus.ws_port}/"
    assert janus.access.url.startswith("http://127.0.0.1:") and janus.access.admin_url.startswith("http://127.0.0.1:")
    assert janus.folder is not None
    config = (janus.folder / "janus.jcfg").read_text()
    assert 'ice_enforce_list = "lo"' in config and "stun_server" not in config and "janusoverlord" not in config


def test_viewer_tokens_cannot_create_mountpoints(janus: JanusProcess) -> None:
    """A viewer's token reaches the streaming plugin, but creating a mountpoint needs the admin_key."""
    assert janus.access is not None
    viewer = JanusClient(JanusAccess(janus.access.url, janus.access.admin_url, janus.access.admin_secret, "a-guess"))
    with pytest.raises(JanusError, match="Unauthorized|admin_key|403|refused"):
        viewer.create_mountpoint(77, rtp_port=free_port(kind=socket.SOCK_DGRAM), rtcp_port=free_port(kind=socket.SOCK_DGRAM))
    assert 77 not in JanusClient(janus.access).mountpoint_ids()


def test_a_mountpoint_id_already_taken_is_refused_and_changes_nothing(janus: JanusProcess) -> None:
    assert janus.access is not None
    client = JanusClient(janus.access)
    client.create_mountpoint(9, rtp_port=free_port(kind=socket.SOCK_DGRAM), rtcp_port=free_port(kind=socket.SOCK_DGRAM))
    cam = SimulatedCamera(width=64, height=48)
    cam.open()
    from labcam.engine import Engine

    engine = Engine(cam)
    try:
        publisher = WebRTCPublisher(engine, janus.access, mountpoint_id=9)
        with pytest.raises(JanusError, match="mountpoint id 9 is already taken"):
            publisher.start()
        assert client.mountpoint_ids() == [9]
        assert engine.status.consumers == 0  # nothing subscribed, nothing left running
    finally:
        engine.close()


def test_a_running_janus_given_by_url_is_used_and_left_running(janus: JanusProcess) -> None:
    """``--webrtc janus=URL``: labcam creates its mountpoint there and removes only that on close."""
    from labcam.engine import Engine
    from labcam.webrtc.standalone import external_access

    assert janus.access is not None
    env = {"LABCAM_JANUS_ADMIN_SECRET": janus.access.admin_secret, "LABCAM_JANUS_ADMIN_KEY": janus.access.streaming_admin_key,
           "LABCAM_JANUS_ADMIN_URL": janus.access.admin_url, "LABCAM_JANUS_WS_URL": janus.access.public_url}
    access = external_access(janus.access.url, env)
    with pytest.raises(JanusError, match="LABCAM_JANUS_ADMIN_SECRET"):
        external_access(janus.access.url, {})
    cam = SimulatedCamera(width=64, height=48)
    cam.open()
    engine = Engine(cam)
    try:
        publisher = WebRTCPublisher(engine, access, mountpoint_id=5).start()
        info = publisher.viewer_info()
        assert info["janus_url"] == janus.access.public_url and info["mountpoint"] == 5
        assert info["token"] in JanusClient(janus.access).list_tokens()
        publisher.close()
        assert janus.running and 5 not in JanusClient(janus.access).mountpoint_ids()
        assert info["token"] not in JanusClient(janus.access).list_tokens()  # labcam cleans up after itself
    finally:
        engine.close()


def test_janus_missing_unreachable_or_a_bad_url_say_so() -> None:
    with pytest.raises(JanusError, match="Janus is not installed .*apt-get install janus"):
        JanusProcess(executable="janus-is-not-installed-here").start()
    port = free_port()  # nothing listens there
    access = JanusAccess(f"http://127.0.0.1:{port}/janus", f"http://127.0.0.1:{port}/admin", "s", "k")
    with pytest.raises(JanusError, match=f"Janus is not reachable at http://127.0.0.1:{port}/janus"):
        JanusClient(access).info()
    for bad, why in [
        ("janus=ftp://127.0.0.1/janus", "must start with http"),
        ("janus=http:///janus", "no host"),
        ("janus=http://127.0.0.1:99999/janus", "port must be a number"),
        ("janus=http://127.0.0.1:8088/janus?x=1", "no query"),
        ("gstreamer", "use 'janus'"),
    ]:
        with pytest.raises(Exception, match=why):
            parse_webrtc(bad)
    for bad in ("not json", '{"urls": "turn:x"}', '[{"username": "no urls"}]'):
        with pytest.raises(JanusError, match="LABCAM_WEBRTC_ICE_SERVERS"):
            ice_servers_from({"LABCAM_WEBRTC_ICE_SERVERS": bad})
    assert ice_servers_from({}) == ()
    assert parse_webrtc("janus") == WebRTCChoice(None)
    assert parse_webrtc("janus=http://127.0.0.1:8088/janus/") == WebRTCChoice("http://127.0.0.1:8088/janus")


def test_labcam_serve_without_janus_says_so_and_serves_the_websocket_stream(tmp_path: Path) -> None:
    import subprocess
    import sys

    port = free_port()
    env = {"PATH": str(Path(sys.executable).parent), "LABCAM_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labcam", "serve", "--camera", "simulated", "--width", "64", "--height", "48",
         "--port", str(port), "--webrtc", "janus", "--recordings-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        text = "".join(lines)
        assert "WebRTC is off: Janus is not installed" in text and "Serving the WebSocket stream only" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/camera", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/webrtc", timeout=5)
        assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(10)


# ==================================================================================================
# Viewers in Chromium
# ==================================================================================================
@pytest.fixture
def webrtc_server(make_server: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``start(**make_server_options)``: a labcam server publishing to a Janus of its own."""
    _need_janus()
    if not BUNDLE.exists():
        raise RuntimeError(f"{BUNDLE} is missing: scripts/setup.sh --test builds it (cd webrtc && npm ci && npm run build)")
    started: list[tuple[Any, WebRTCPublisher]] = []

    def start(publish: PublishOptions = PublishOptions(), **options: Any) -> tuple[Any, WebRTCPublisher]:
        srv = make_server(**options)
        app = srv._running.http.request_callback
        publisher = srv.call(
            lambda: start_webrtc(app, srv.engine, WebRTCChoice(), host="127.0.0.1", options=publish), timeout=30
        )
        assert publisher is not None
        started.append((srv, publisher))
        return srv, publisher

    yield start
    for srv, publisher in started:
        srv.call(lambda p=publisher: stop_webrtc(p), timeout=30)


VIEWER_STATE = "window.viewerStats"  # the viewer page refreshes it twice a second


def _wait_all(page: Any, condition: str, timeout_s: float = 30) -> None:
    """Until every viewer ``s`` of the page (status, framesDecoded, frame, age_ms...) meets ``condition``."""
    page.wait_for_function(
        f"() => (window.viewerStats || []).length > 0 && window.viewerStats.every((s) => {condition})",
        timeout=timeout_s * 1000, polling=200,
    )


def test_five_viewers_decode_frames_through_janus_with_frame_numbers(webrtc_server: Callable[..., Any]) -> None:
    srv, publisher = webrtc_server(width=640, height=512)
    with chromium_page() as page:
        page.goto(srv.url + "static/webrtc-viewer.html?n=5")
        _wait_all(page, 's.status === "live" && s.framesDecoded > 10 && s.frame !== null')
        first = page.evaluate(VIEWER_STATE)
        _wait_all(page, "s.framesDecoded > 40")
        second = page.evaluate(VIEWER_STATE)
    assert len(first) == 5, first
    for a, b in zip(first, second):
        assert b["framesDecoded"] > a["framesDecoded"]
        assert b["frame"] > a["frame"]  # the camera's frame numbers, through Janus
        assert 0 < b["age_ms"] < 2000
    assert publisher.stats()["state"] == "publishing"
    assert publisher.plis >= 1  # Janus relays the viewers' keyframe requests to labcam


def test_a_viewer_without_labcams_token_gets_no_stream(webrtc_server: Callable[..., Any]) -> None:
    turn = {"urls": "turn:127.0.0.1:3478", "username": "lab", "credential": "pw"}
    srv, publisher = webrtc_server(token="s3cret", publish=PublishOptions(ice_servers=(turn,)))
    api = srv.url + "api/webrtc"
    for url in (api, api + "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 403
    with urllib.request.urlopen(api + "?token=s3cret", timeout=5) as r:
        info = json.loads(r.read())
        assert r.headers["Cache-Control"] == "no-store"
    assert info["mountpoint"] == publisher.mountpoint_id and info["token"] and info["ice_servers"] == [turn]
    # Each viewer gets its own token; a made-up one gets nothing from Janus.
    with urllib.request.urlopen(api + "?token=s3cret", timeout=5) as r:
        assert json.loads(r.read())["token"] != info["token"]
    assert info["janus_url"] == publisher.access.viewer_url and info["janus_url"].startswith("ws://127.0.0.1:")
    forged = _janus_request(publisher.access.url, {"janus": "create", "token": info["token"][:-2] + "xx"})
    assert forged["janus"] == "error" and forged["error"]["code"] == 403
    with chromium_page() as page:
        page.goto(srv.url + "static/webrtc-viewer.html?n=1")  # no token
        page.wait_for_function("window.viewers && window.viewers[0].status === 'refused'", timeout=15_000)
        assert page.evaluate("window.viewers[0].video.srcObject") is None


def _websocket_frames(ws_connect: Callable[..., Any], srv: Any, n: int) -> int:
    """Frames a WebSocket viewer of labcam gets, read on a thread of its own (Playwright's sync API
    holds this one's event loop)."""

    async def read() -> int:
        ws = await ws_connect(srv)
        try:
            return len(await ws.frames(n))
        finally:
            ws.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result(30)


def test_killing_janus_loses_the_viewers_keeps_the_websocket_and_a_restart_brings_them_back(
    webrtc_server: Callable[..., Any], ws_connect: Callable[..., Any]
) -> None:
    srv, publisher = webrtc_server(width=320, height=256)
    with chromium_page() as page:
        page.goto(srv.url + "static/webrtc-viewer.html?n=5")
        _wait_all(page, 's.status === "live" && s.framesDecoded > 5')
        own = publisher._own
        assert own is not None and own.process is not None
        first_pid = own.process.pid
        own.process.kill()  # Janus dies
        _wait_all(page, 's.status === "lost"')
        assert _websocket_frames(ws_connect, srv, 10) == 10  # labcam's own viewers never noticed
        # labcam's watchdog starts Janus again and makes the mountpoint again; the viewers reconnect.
        _wait_all(page, 's.status === "live" && s.framesDecoded > 10', timeout_s=60)
        assert own.process.pid != first_pid and publisher.state == "publishing"


# ==================================================================================================
# The test page through the shared client: transport=webrtc
# ==================================================================================================
TEST_PAGE = "window.labcamTestPage"


def test_the_test_page_plays_webrtc_and_changes_settings_over_the_websocket(webrtc_server: Callable[..., Any]) -> None:
    srv, _publisher = webrtc_server(width=320, height=256)
    with chromium_page() as page:
        page.goto(srv.url + "?transport=webrtc")
        page.wait_for_function(
            f"() => {TEST_PAGE}.client.webrtcStatus === 'live' && ({TEST_PAGE}.webrtcStats?.framesDecoded ?? 0) > 5",
            timeout=30_000, polling=200,
        )
        first = page.evaluate(f"{TEST_PAGE}.webrtcStats.framesDecoded")
        websocket_frames = page.evaluate(f"{TEST_PAGE}.client.stats.frames")
        assert page.is_visible("#video") and not page.is_visible("#view")
        assert "WebRTC via Janus: live" in page.inner_text("#status")
        # Settings go over labcam's WebSocket while the video plays; its frames stay paused.
        page.wait_for_selector("#exposure:not([disabled])", timeout=15_000)
        page.fill("#exposure", "3.5")
        page.dispatch_event("#exposure", "change")
        page.wait_for_function(f"() => {TEST_PAGE}.client.settings.exposure_ms === 3.5", timeout=15_000)
        assert srv.engine.settings.exposure_ms == 3.5
        page.wait_for_function(f"n => {TEST_PAGE}.webrtcStats.framesDecoded > n + 10", arg=first, timeout=15_000)
        # The WebSocket's frames are paused: none came while the video decoded 10 more.
        assert page.evaluate(f"{TEST_PAGE}.client.stats.frames") == websocket_frames
        assert page.evaluate(f"{TEST_PAGE}.framesDrawn") > 0  # requestVideoFrameCallback counted frames shown
        assert page.inner_text("#stat-painted") != "–"  # capture → shown from labcam's SEI


def test_the_test_page_without_a_valid_token_gets_no_webrtc_stream_and_says_refused(
    webrtc_server: Callable[..., Any],
) -> None:
    srv, _publisher = webrtc_server(token="s3cret")
    with chromium_page() as page:
        for query in ("?transport=webrtc", "?transport=webrtc&token=wrong"):
            page.goto(srv.url + query)
            page.wait_for_function("() => document.querySelector('#status').dataset.webrtc === 'refused'", timeout=15_000)
            assert page.inner_text("#status").startswith("refused")
            assert page.evaluate("document.querySelector('#video').srcObject") is None


def test_killing_janus_turns_the_test_pages_status_to_lost(webrtc_server: Callable[..., Any]) -> None:
    srv, publisher = webrtc_server(width=320, height=256)
    with chromium_page() as page:
        page.goto(srv.url + "?transport=webrtc")
        page.wait_for_function("() => document.querySelector('#status').dataset.webrtc === 'live'", timeout=30_000)
        own = publisher._own
        assert own is not None and own.process is not None
        own.process.kill()
        # Read in the same instant: labcam's watchdog restarts Janus within a second or two.
        lost = page.wait_for_function(
            f"""() => {{
                const badge = document.querySelector('#status');
                return badge.dataset.webrtc === 'lost' && [badge.textContent, {TEST_PAGE}.client.state];
            }}""",
            timeout=15_000, polling=50,
        ).json_value()
        assert "WebRTC via Janus: lost" in lost[0]
        assert lost[1] == "connected"  # the WebSocket carries on
        page.wait_for_function("() => document.querySelector('#status').dataset.webrtc === 'live'", timeout=60_000)
