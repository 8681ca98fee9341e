"""The link emulator (benchmarks/link.py) does what it says: rate, round trip, order, cleanup.

Real TCP servers on this machine's loopback, real network namespaces, veth pairs and tbf (needs
root, as CI runs; without it the tests fail with the emulator's own message). The bands are wide
enough for a loaded 2-core machine and narrow enough to catch a link that is not limited, not
delayed, or limited at the wrong rate.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK_PY = ROOT / "benchmarks" / "link.py"
_spec = importlib.util.spec_from_file_location("labcam_link_emulator", LINK_PY)
assert _spec and _spec.loader
link = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = link
_spec.loader.exec_module(link)


@pytest.fixture
def far_side():
    server = link._FarSide()
    yield server
    server.close()


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}


@pytest.mark.parametrize(("rate", "rtt_ms"), [("20mbit", 10), ("5mbit", 80)])
def test_throughput_both_ways_is_the_rate(far_side, rate: str, rtt_ms: float) -> None:
    with link.Link(rate=rate, rtt_ms=rtt_ms) as lk:
        down = link.measure_download_bps(lk, far_side.port, seconds=2.0)
        up = link.measure_upload_bps(lk, far_side.port, seconds=2.0)
    asked = link.parse_rate(rate)
    assert 0.7 * asked <= down <= 1.1 * asked, f"download {down / 1e6:.2f} Mbit/s on a {rate} link"
    assert 0.7 * asked <= up <= 1.1 * asked, f"upload {up / 1e6:.2f} Mbit/s on a {rate} link"


def test_round_trip_is_at_least_the_asked_one(far_side) -> None:
    with link.Link(rate="20mbit", rtt_ms=40) as lk:
        rtts = link.measure_rtt_ms(lk, far_side.port, pings=15)
    assert min(rtts) >= 40.0, rtts
    # And not much more on an idle link (a relay that queued, or slept too long, would show here).
    assert statistics.median(rtts) <= 40.0 + 60.0, rtts


def test_a_full_link_queues_no_more_than_its_tbf_queue(far_side) -> None:
    with link.Link(rate="20mbit", rtt_ms=20) as lk:
        loaded = link.measure_loaded_rtt_ms(lk, far_side.port, seconds=3.0)
        bound = lk.rtt_ms + link.queue_ms(lk)
    assert len(loaded) >= 10
    # The median, not the max: a ping the full drop-tail queue drops waits out TCP's 200 ms timeout.
    assert 20.0 <= statistics.median(loaded) <= bound + 30.0, (bound, sorted(loaded))


def test_bytes_arrive_complete_and_in_order(far_side) -> None:
    payload = os.urandom(3 * 2**20)
    with link.Link(rate="100mbit", rtt_ms=20) as lk, lk.connect(far_side.port, timeout=30) as sock:
        sock.sendall(b"e")
        got = bytearray()
        view = memoryview(payload)
        for i in range(0, len(payload), 256 * 1024):
            sock.sendall(view[i : i + 256 * 1024])
            while len(got) < min(i + 256 * 1024, len(payload)) - 512 * 1024:
                got += sock.recv(1 << 16)
        sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(1 << 16):
            got += data
    assert bytes(got) == payload


def test_url_and_ports_are_inside_the_namespace(far_side) -> None:
    with link.Link(rate="20mbit", rtt_ms=10, ports={far_side.port: 18123}) as lk:
        assert lk.url_for(far_side.port) == "http://127.0.0.1:18123"
        code = (
            "import socket; s = socket.create_connection(('127.0.0.1', 18123)); s.sendall(b'ehi');"
            "print(s.recv(2).decode())"
        )
        inside = lk.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert inside.stdout.strip() == "hi", inside.stderr
        # The namespace reaches nothing but the link: this machine's loopback server is not there.
        direct = f"import socket; socket.create_connection(('127.0.0.1', {far_side.port}), timeout=2)"
        assert lk.run([sys.executable, "-c", direct], capture_output=True, timeout=30).returncode != 0
        name = lk.netns
        assert name in _namespaces()
    assert name not in _namespaces()


def test_command_line_runs_the_command_across_the_link_and_cleans_up(far_side) -> None:
    code = (
        "import socket, time; s = socket.create_connection(('127.0.0.1', 18124)); s.sendall(b'e');"
        "t = time.perf_counter(); s.sendall(b'x'); s.recv(1); print(round((time.perf_counter() - t) * 1000))"
    )
    before = _namespaces()
    proc = subprocess.run(
        [sys.executable, str(LINK_PY), "--rate", "20mbit", "--rtt", "30ms", "--port-map", f"{far_side.port}:18124",
         "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 30
    assert _namespaces() == before


def test_sigterm_removes_the_namespace(far_side) -> None:
    before = _namespaces()
    proc = subprocess.Popen(
        [sys.executable, str(LINK_PY), "--port-map", str(far_side.port), "--",
         sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert len(_namespaces() - before) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _namespaces() == before


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"rate": "fast"}, "rate"), ({"rate": "1bit"}, "rate"), ({"rtt_ms": "-3ms"}, "rtt")]
)
def test_bad_settings_are_refused_before_anything_is_created(kwargs: dict, field: str) -> None:
    before = _namespaces()
    with pytest.raises(ValueError, match=field):
        link.Link(**kwargs).start()
    assert _namespaces() == before


def test_the_tbf_queue_is_one_round_trip_of_the_rate() -> None:
    # 20 Mbit/s = 2.5 MB/s: 40 ms of queue is 100 kB, the bucket 2 packets (1 ms would be 2.5 kB).
    p = link.tbf_params(20e6, 40.0)
    assert p["burst"] == 2 * link.PACKET_BYTES
    assert p["limit"] == p["burst"] + 100_000
    # A 2 ms link still queues 20 ms, so TCP's bursts are not dropped.
    assert link.tbf_params(20e6, 2.0)["limit"] == 2 * link.PACKET_BYTES + 50_000


def test_chromium_in_the_namespace_gets_a_secure_context_across_the_link() -> None:
    # Why the namespace end is 127.0.0.1: WebCodecs (H.264 decoding) exists only in a secure context.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from chromium_args import CHROMIUM_ARGS

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>far side</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with link.Link(rate="20mbit", rtt_ms=40) as lk, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=lk.wrap_executable("chromium"), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(lk.url_for(server.server_port))
                assert page.title() == "far side"
                assert page.evaluate("[isSecureContext, typeof VideoDecoder]") == [True, "function"]
                # The page's own round trip crosses the link: a fetch takes at least the RTT.
                ms = page.evaluate("(async () => { const t = performance.now(); await fetch('/x'); "
                                   "return performance.now() - t; })()")
                assert ms >= 40.0
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
