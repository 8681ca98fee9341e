"""``labcam serve --certfile/--keyfile``: https and wss with a certificate made here (the openssl
CLI), refused clearly when the files are wrong, and a secure context for a browser that reaches the
server by a LAN name (Chromium inside the link emulator's network namespace, needs root).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from labcam.wire import unpack_binary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium_args import CHROMIUM_ARGS  # noqa: E402

SMALL = ["--camera", "simulated", "--width", "320", "--height", "240", "--fps", "30"]
LAN_NAME = "labcam-lab.test"  # what a lab PC's name looks like to the browser: not loopback
TOKEN = "s3cret-token"


def make_certificate(folder: Path, name: str = "lab") -> tuple[Path, Path]:
    """A self-signed certificate for LAN_NAME, localhost and 127.0.0.1, as docs/setup.md makes one."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", f"/CN={LAN_NAME}", "-keyout", str(key), "-out", str(cert),
         "-addext", f"subjectAltName=DNS:{LAN_NAME},DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


class Serve:
    """``labcam serve`` on a free port until its "listening on" line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labcam", "serve", "--port", "0", *SMALL, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # the log comes line by line; the process ends it on failure
            self.lines.append(line)
            m = re.search(r"listening on (\w+)://[^:]+:(\d+)/", line)
            if m:
                self.scheme, self.port = m.group(1), int(m.group(2))
                # Keep reading its log: a full pipe would block the server's next log line.
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise AssertionError(f"labcam serve exited ({self.proc.wait()}):\n{''.join(self.lines)}")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture
def serve() -> Iterator:
    started: list[Serve] = []

    def start(*args: str) -> Serve:
        started.append(Serve(*args))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _run_serve_expecting_failure(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labcam", "serve", "--port", "0", *SMALL, *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("case", ["missing", "directory", "not pem", "mismatched", "key without cert"])
def test_bad_certificate_files_are_refused_at_start(case: str, certificate, tmp_path: Path) -> None:
    cert, key = certificate
    other_cert, other_key = make_certificate(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    args, expected = {
        "missing": (["--certfile", str(tmp_path / "nope.crt"), "--keyfile", str(key)], "No such file"),
        "directory": (["--certfile", str(tmp_path), "--keyfile", str(key)], "directory"),
        "not pem": (["--certfile", str(garbage), "--keyfile", str(key)], "not a PEM certificate"),
        "mismatched": (["--certfile", str(cert), "--keyfile", str(other_key)], "the key does not match the certificate"),
        "key without cert": (["--keyfile", str(key)], "--keyfile needs --certfile"),
    }[case]
    out = _run_serve_expecting_failure(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in out.stderr, out.stderr
    assert "listening on" not in out.stdout + out.stderr


@pytest.mark.anyio
async def test_https_and_wss_with_the_certificate_as_ca(serve, certificate) -> None:
    cert, key = certificate
    srv = serve("--certfile", str(cert), "--keyfile", str(key))
    assert srv.scheme == "https"
    trusting = ssl.create_default_context(cafile=str(cert))
    client = AsyncHTTPClient()
    reply = await client.fetch(HTTPRequest(f"https://127.0.0.1:{srv.port}/api/camera", ssl_options=trusting))
    assert json.loads(reply.body)["camera"]["driver"] == "simulated"
    # A client that does not trust the certificate is refused by its own TLS check.
    with pytest.raises(ssl.SSLError):
        await client.fetch(f"https://127.0.0.1:{srv.port}/api/camera")
    # Plain http on the https port gets no answer it could use.
    with pytest.raises((HTTPClientError, OSError)):
        await client.fetch(f"http://127.0.0.1:{srv.port}/api/camera", request_timeout=5)
    conn = await websocket_connect(
        HTTPRequest(f"wss://127.0.0.1:{srv.port}/ws/camera/stream?format=binary", ssl_options=trusting)
    )
    try:
        assert json.loads(await asyncio.wait_for(conn.read_message(), 10))["type"] == "connected"
        while True:
            msg = await asyncio.wait_for(conn.read_message(), 10)
            if isinstance(msg, bytes):
                header, jpeg = unpack_binary(msg)
                assert header["width"] == 320 and jpeg[:2] == b"\xff\xd8"
                break
    finally:
        conn.close()


def test_a_browser_on_the_lan_gets_a_secure_context_only_over_https(serve, certificate) -> None:
    from playwright.sync_api import sync_playwright

    spec = importlib.util.spec_from_file_location("labcam_link_emulator", ROOT / "benchmarks" / "link.py")
    assert spec and spec.loader
    link = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = link
    spec.loader.exec_module(link)

    cert, key = certificate
    secure = serve("--certfile", str(cert), "--keyfile", str(key), "--token", TOKEN)
    plain = serve("--token", TOKEN)  # a LAN name needs a token (or the Host check refuses it)
    with link.Link(rate="100mbit", rtt_ms=2) as lk, sync_playwright() as pw:
        # The browser runs in the namespace and reaches the server by a name, as on a lab LAN.
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1"]
        browser = pw.chromium.launch(executable_path=lk.wrap_executable("chromium"), args=args)
        try:
            context = browser.new_context(ignore_https_errors=True)  # a self-signed certificate
            page = context.new_page()
            page.goto(f"https://{LAN_NAME}:{lk.expose(secure.port)}/?token={TOKEN}")
            page.wait_for_selector("#status[data-state='connected']", timeout=20_000)
            assert page.evaluate("[isSecureContext, typeof VideoDecoder]") == [True, "function"]
            badge = page.locator("#status")
            assert badge.get_attribute("data-secure") == "true" and "not secure" not in badge.inner_text()

            page = context.new_page()
            page.goto(f"http://{LAN_NAME}:{lk.expose(plain.port)}/?token={TOKEN}")
            page.wait_for_selector("#status[data-state='connected']", timeout=20_000)
            assert page.evaluate("[isSecureContext, typeof VideoDecoder]") == [False, "undefined"]
            badge = page.locator("#status")
            assert badge.get_attribute("data-secure") == "false"
            assert "not secure" in badge.inner_text()
            assert "no WebCodecs, so no H.264" in (badge.get_attribute("title") or "")
        finally:
            browser.close()
