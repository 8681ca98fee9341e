"""``labcam serve`` / ``labcam info`` as a user runs them: subprocesses, signals, logs, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from tornado.websocket import websocket_connect

SMALL = ["--camera", "simulated", "--width", "320", "--height", "240", "--fps", "30"]


class Serve:
    """``python -m labcam serve ...`` on a free port; its log lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labcam", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(r"listening on (http://\S+)")
        self.url = re.search(r"listening on (http://\S+/)", line).group(1)  # type: ignore[union-attr]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        """The first (new) log line matching ``pattern``."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no log line like {pattern!r} in {timeout} s:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"labcam exited ({self.proc.wait()}) before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.stop_seconds = time.monotonic() - t0
        self.wait_for(r"stopped", timeout=2) if code == 0 else None
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve() -> Iterator[type[Serve]]:
    started: list[Serve] = []

    class Tracked(Serve):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for s in started:
        s.kill()


def run_labcam(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labcam", *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_flags() -> None:
    out = run_labcam("serve", "--help")
    assert out.returncode == 0
    for flag in ("--host", "--port", "--camera", "--serial", "--width", "--height", "--fps", "--bit-depth",
                 "--exposure-ms", "--quality", "--token", "--allow-origin", "--max-clients", "--open-browser"):
        assert flag in out.stdout, flag
    assert run_labcam("--help").returncode == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--quality", "0"], ["quality=0", "1 to 100"]),
        (["--bit-depth", "10"], ["bit-depth", "10"]),
        (["--port", "70000"], ["port=70000"]),
        (["--fps", "-3"], ["fps='-3'"]),
        (["--camera", "webcam"], ["webcam"]),
        (["--allow-origin", "localhost:5173"], ["origin=", "scheme"]),
        (["--camera", "simulated", "--exposure-ms", "5000"], ["exposure_ms=5000"]),
    ],
)
def test_bad_flags_exit_2_with_a_message(args: list[str], words: list[str]) -> None:
    out = run_labcam("serve", "--port", "0", *args)
    assert out.returncode == 2, out
    for word in words:
        assert word in out.stderr, out.stderr


def test_serve_streams_and_shuts_down_cleanly_on_sigterm(serve) -> None:
    s = serve(*SMALL)
    assert re.search(r"camera: simulated camera 'labcam simulated microscope' \(serial SIM-0001\) 320x240 mono8", s.output)
    assert f"test page:  {s.url}" in s.output
    assert "ws://127.0.0.1:" in s.output and "/ws/camera/stream" in s.output

    async def client() -> tuple[int | None, int | None]:
        ws_url = "ws" + s.url[4:] + "ws/camera/stream?format=binary"
        conns = [await websocket_connect(ws_url) for _ in range(2)]
        for conn in conns:
            assert json.loads(await asyncio.wait_for(conn.read_message(), 10))["type"] == "connected"
            while not isinstance(await asyncio.wait_for(conn.read_message(), 10), bytes):
                pass  # until the first frame
        code_holder: list[int] = []
        stopper = threading.Thread(target=lambda: code_holder.append(s.stop(signal.SIGTERM)))
        stopper.start()
        for conn in conns:
            while await asyncio.wait_for(conn.read_message(), 10) is not None:
                pass  # frames until the close
        await asyncio.to_thread(stopper.join, 15)
        return conns[0].close_code, code_holder[0] if code_holder else None

    close_code, exit_code = asyncio.run(client())
    assert close_code == 1001
    assert exit_code == 0, s.output
    assert s.stop_seconds < 5, f"shutdown took {s.stop_seconds:.1f} s"
    assert "shutting down" in s.output and "stopping the camera" in s.output


def test_sigint_stops_an_idle_server_with_exit_0(serve) -> None:
    s = serve(*SMALL)
    assert s.stop(signal.SIGINT) == 0
    assert s.stop_seconds < 5


def test_auto_says_why_it_serves_the_simulated_camera(serve) -> None:
    s = serve("--camera", "auto", "--width", "320", "--height", "240")
    line = s.wait_for(r"SIMULATED")
    assert "PixeLINK" in line, line  # the reason the PixeLINK camera could not be used
    assert s.stop() == 0


def test_binding_beyond_loopback_without_token_warns_loudly(serve) -> None:
    s = serve(*SMALL, "--host", "0.0.0.0")
    assert "WITHOUT a token" in s.output
    assert s.stop() == 0
    quiet = serve(*SMALL, "--host", "0.0.0.0", "--token", "T0k")
    assert "WITHOUT a token" not in quiet.output
    assert "?token=T0k" in quiet.output
    assert quiet.stop() == 0


def test_port_in_use_is_an_error_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "labcam", "serve", *SMALL, "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr and "Traceback" not in out.stderr


def test_info_says_which_camera_and_why() -> None:
    out = run_labcam("info", "--camera", "auto", "--width", "320", "--height", "240")
    assert out.returncode == 0, out.stderr
    assert "camera:   simulated camera" in out.stdout
    assert "why:      simulated because" in out.stdout and "PixeLINK" in out.stdout
    assert "exposure_ms" in out.stdout
