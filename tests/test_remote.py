"""``labcam.connect()``: the scripted API against real servers, a standalone one and a Jupyter one.

Frames are checked against the simulated camera's own rendering (``expected_frame``), so "lossless"
means bit-for-bit. The standalone server runs on its own thread (``make_server`` in conftest), so
those tests call the blocking API directly; the Jupyter server runs on the test's event loop, so
those tests call it from a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

import labcam
from labcam.camera import Camera
from labcam.errors import CameraUnavailable, SettingError
from labcam.remote import AuthenticationError, RemoteCamera, discover_jupyter_server
from labcam.wire import decode_raw_frame as decode_frame, encode_raw_frame as encode_frame

# pytest-jupyter's fixtures (imported, not a plugin: see jupyter_fixtures) and on_jupyter_loop.
from jupyter_fixtures import *  # noqa: E402,F401,F403

WIDTH, HEIGHT = 320, 240
FPS = 300.0
SERVER16 = dict(width=WIDTH, height=HEIGHT, pixel_format="mono16", fps=FPS, exposure_ms=1.0)


@pytest.fixture
def server16(make_server: Any) -> Any:
    return make_server(**SERVER16)


@pytest.fixture
def cam(server16: Any) -> RemoteCamera:
    return labcam.connect(server16.url)


def assert_lossless(frame: labcam.Frame, simulated: Any) -> None:
    expected = simulated.expected_frame(frame.meta.frame_number)
    assert frame.array.dtype == expected.dtype and np.array_equal(frame.array, expected), "pixels differ"


# -- the wire format --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000,
        np.arange(24, dtype=np.uint8).reshape(2, 4, 3),
        np.arange(6, dtype=">u2").reshape(2, 3),  # a big-endian array keeps its numbers
    ],
)
def test_raw_frame_codec_roundtrip(array: np.ndarray) -> None:
    meta = labcam.FrameMeta(7, 1.5, 2.0, 3.0, (0, 0, array.shape[1], array.shape[0]), "mono16", "S1", dropped_before=2)
    frame, header = decode_frame(encode_frame(labcam.Frame(array, meta), missed=4, index=9))
    assert np.array_equal(frame.array, array) and frame.array.dtype == array.dtype
    assert frame.meta == meta and (header["missed"], header["index"]) == (4, 9)
    assert not frame.array.flags.writeable
    with pytest.raises(ValueError, match="payload"):
        decode_frame(encode_frame(labcam.Frame(array, meta))[:-1])


def test_remote_camera_offers_the_in_process_api() -> None:
    """Same names, and the same parameters for the methods: code written for one runs on the other."""
    public = {n for n in dir(Camera) if not n.startswith("_")}
    missing = public - set(dir(RemoteCamera)) - {"engine", "events", "record"}
    assert not missing, f"RemoteCamera lacks {sorted(missing)}"
    for name in sorted(public - missing - {"engine", "events", "record"}):
        local, remote = getattr(Camera, name), getattr(RemoteCamera, name)
        if callable(local) and not isinstance(local, property):
            assert list(inspect.signature(local).parameters) == list(inspect.signature(remote).parameters), name


# -- against a standalone server (labcam serve) ---------------------------------------------------------
def test_snap_is_lossless_at_full_bit_depth(cam: RemoteCamera, server16: Any) -> None:
    frame = cam.snap(meta=True)
    assert frame.array.shape == (HEIGHT, WIDTH) and frame.array.dtype == np.uint16
    assert frame.array.max() > 255  # 16-bit values survive
    assert_lossless(frame, server16.camera)
    assert frame.meta.pixel_format == "mono16" and frame.meta.exposure_ms == 1.0
    img = cam.snap()
    assert isinstance(img, np.ndarray) and img.shape == (HEIGHT, WIDTH)


def test_acquire_returns_consecutive_frames_with_metadata(cam: RemoteCamera, server16: Any) -> None:
    stack = cam.acquire(100, progress=False)
    assert stack.shape == (100, HEIGHT, WIDTH) and stack.dtype == np.uint16 and len(stack) == 100
    numbers = stack.frame_numbers
    assert np.array_equal(numbers, np.arange(numbers[0], numbers[0] + 100)), "not consecutive"
    assert stack.dropped == 0
    assert np.all(np.diff(stack.timestamps) > 0)
    for i in range(100):
        assert_lossless(stack[i], server16.camera)
    assert {m.pixel_format for m in stack.meta} == {"mono16"}


def test_frames_iterate_sync_and_async(cam: RemoteCamera) -> None:
    frames = list(cam.frames(limit=5))
    numbers = [f.meta.frame_number for f in frames]
    assert len(frames) == 5 and numbers == sorted(set(numbers))

    async def collect() -> list[labcam.Frame]:
        out = []
        async for frame in cam.frames(limit=3, timeout=5):
            out.append(frame)
        return out

    later = asyncio.run(collect())
    assert len(later) == 3 and later[0].meta.frame_number > numbers[-1]


def test_timelapse_takes_frames_after_each_deadline(cam: RemoteCamera) -> None:
    interval = 0.1
    start = time.time()
    stack = cam.timelapse(3, interval, progress=False)
    assert stack.shape == (3, HEIGHT, WIDTH)
    # Frame i is the first captured after start + i * interval (same machine, same clock). The
    # tolerance covers a frame published just after its timestamp (one period) and rendering.
    deadlines = start + interval * np.arange(3)
    assert np.all(stack.timestamps >= deadlines - 1.0 / FPS - 0.02), stack.timestamps - deadlines


def test_settings_apply_and_bad_values_raise_setting_error(cam: RemoteCamera, server16: Any) -> None:
    cam.exposure_ms = 2.5
    cam.gain_db = 3
    assert (cam.exposure_ms, cam.gain_db) == (2.5, 3.0)
    assert server16.engine.settings.exposure_ms == 2.5
    new = cam.set(exposure_ms=1.5, gain_db=0)
    assert (new.exposure_ms, new.gain_db) == (1.5, 0.0)
    before = cam.settings
    with pytest.raises(SettingError) as err:
        cam.exposure_ms = -1
    # The same error as in-process: the setting, the value and the allowed range.
    assert (err.value.name, err.value.value) == ("exposure_ms", -1)
    assert str(err.value) == "exposure_ms=-1 is not allowed: a number from 0.01 to 2000 ms"
    assert isinstance(err.value, ValueError)
    with pytest.raises(SettingError, match="unknown setting"):
        cam.set(shutter="fast")
    with pytest.raises(SettingError, match="roi"):
        cam.roi = (0, 0, 10_000, 10)
    assert cam.settings == before  # nothing changed
    cam.roi = (0, 0, 160, 120)
    assert cam.snap().shape == (120, 160)
    specs = cam.specs
    assert specs["exposure_ms"].maximum == 2000.0 and specs["roi"].sensor == (WIDTH, HEIGHT)


def test_description_status_and_repr(cam: RemoteCamera) -> None:
    d = cam.description
    assert (d.driver, d.sensor_width, d.sensor_height) == ("simulated", WIDTH, HEIGHT)
    cam.snap()
    assert cam.status.state in ("streaming", "idle")
    assert "RemoteCamera" in repr(cam) and "mono16" in repr(cam)
    with cam:
        pass
    with pytest.raises(labcam.CameraError, match="closed"):
        cam.snap()


def test_token_is_required_and_checked(make_server: Any) -> None:
    srv = make_server(**SERVER16, token="s3cret")
    with pytest.raises(AuthenticationError, match="needs a token") as err:
        labcam.connect(srv.url)
    assert isinstance(err.value, PermissionError)
    with pytest.raises(AuthenticationError, match="token was refused"):
        labcam.connect(srv.url, token="wrong")
    cam = labcam.connect(srv.url, token="s3cret")
    assert_lossless(cam.snap(meta=True), srv.camera)  # the WebSocket carries the token too
    pasted = labcam.connect(srv.url + "?token=s3cret")  # a URL copied from the server's log
    assert (pasted.url, pasted.token) == (srv.url, "s3cret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there any more
    with pytest.raises(CameraUnavailable, match=rf"cannot reach labcam at http://127.0.0.1:{port}/.*connection refused"):
        labcam.connect(f"http://127.0.0.1:{port}/", timeout=5)
    with pytest.raises(ValueError, match="http"):
        labcam.connect("127.0.0.1:8001")


def test_a_server_without_labcam_is_a_clear_error(server16: Any) -> None:
    with pytest.raises(CameraUnavailable, match="no labcam at"):
        labcam.connect(server16.url + "elsewhere/")


def test_connect_accepts_the_labcam_root_itself(server16: Any) -> None:
    assert labcam.connect(server16.url).url == server16.url


def test_bad_raw_query_is_refused_with_400(server16: Any) -> None:
    async def attempt(query: str) -> int:
        try:
            conn = await websocket_connect("ws" + server16.url[4:] + "ws/camera/frames?" + query)
        except HTTPClientError as exc:
            return exc.code
        conn.close()
        return 101

    for query in ("mode=sometimes", "mode=all&count=0", "mode=all&buffer=x", "buffer=4"):
        assert asyncio.run(attempt(query)) == 400, query


def test_a_reader_that_falls_behind_gets_told_what_it_missed(server16: Any) -> None:
    """mode=all with a tiny buffer and a reader that waits: frames are lost, never hidden."""

    async def run() -> tuple[list[int], list[int]]:
        url = "ws" + server16.url[4:] + f"ws/camera/frames?mode=all&count={COUNT}&buffer=1"
        conn = await websocket_connect(url, max_message_size=1 << 30)
        # Let the camera run far ahead while we read nothing. The socket buffers on both sides
        # hold ~10 MB (~70 frames of 150 KB), so both COUNT (30 MB) and the 400 frames waited
        # for are far beyond them: frames must be lost. Waiting on frames, not on a clock.
        with server16.engine.subscribe("pacer") as pacer:
            for _ in range(400):
                await asyncio.to_thread(pacer.next, 5)
        numbers, missed = [], []
        while (msg := await conn.read_message()) is not None:
            frame, header = decode_frame(msg)
            numbers.append(frame.meta.frame_number)
            missed.append(header["missed"])
        return numbers, missed

    COUNT = 200
    numbers, missed = asyncio.run(run())
    assert len(numbers) == COUNT
    gaps = [b - a - 1 for a, b in zip(numbers, numbers[1:])]
    assert sum(missed) > 0 and missed[1:] == gaps  # every loss reported where it happened


# -- discovery ------------------------------------------------------------------------------------------
def write_server_file(directory: Path, pid: int, url: str, token: str = "", root_dir: str = "/") -> None:
    """A jpserver-<pid>.json like the ones Jupyter servers write (test data, pointing at a real server)."""
    info = {
        "base_url": "/", "hostname": "localhost", "password": False, "pid": pid, "port": 0, "root_dir": root_dir,
        "secure": False, "sock": "", "token": token, "url": url, "version": "2.21.1",
    }
    (directory / f"jpserver-{pid}.json").write_text(json.dumps(info))


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    directory.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(directory))
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("LABCAM_URL", raising=False)
    return directory


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_discovery_without_servers_says_where_it_looked(runtime: Path) -> None:
    write_server_file(runtime, dead_pid(), "http://127.0.0.1:1/")  # a stale file of a dead server
    with pytest.raises(CameraUnavailable, match="no running Jupyter server found") as err:
        labcam.connect()
    assert str(runtime) in str(err.value) and "labcam.open()" in str(err.value)


def test_discovery_uses_the_only_server_and_its_token(runtime: Path, make_server: Any) -> None:
    srv = make_server(**SERVER16, token="tok")
    write_server_file(runtime, os.getpid(), srv.url, token="tok")
    cam = labcam.connect()
    assert cam.url == srv.url and cam.token == "tok"
    assert_lossless(cam.snap(meta=True), srv.camera)


def test_discovery_prefers_the_kernels_parent_server(
    runtime: Path, server16: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_server_file(runtime, os.getpid(), server16.url)
    write_server_file(runtime, 1, "http://127.0.0.1:1/")  # alive (init), but not our parent
    with pytest.raises(CameraUnavailable, match="2 Jupyter servers") as err:
        discover_jupyter_server()
    assert server16.url in str(err.value) and "labcam.connect(url" in str(err.value)
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))  # what jupyter_client tells a kernel
    assert discover_jupyter_server() == (server16.url, None)


def test_discovery_picks_the_server_whose_root_holds_the_notebook(
    runtime: Path, tmp_path: Path, server16: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer, inner = tmp_path / "lab", tmp_path / "lab" / "project"
    (inner / "notebooks").mkdir(parents=True)
    write_server_file(runtime, os.getpid(), server16.url, root_dir=str(inner))
    write_server_file(runtime, 1, "http://127.0.0.1:1/", root_dir=str(outer))
    monkeypatch.setenv("JPY_SESSION_NAME", str(inner / "notebooks" / "run.ipynb"))
    assert discover_jupyter_server()[0] == server16.url  # the innermost root holding the notebook
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.chdir(inner / "notebooks")  # without the session name: the kernel's directory
    assert discover_jupyter_server()[0] == server16.url


def test_labcam_url_environment_variable_wins(runtime: Path, make_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = make_server(**SERVER16, token="envtok")
    monkeypatch.setenv("LABCAM_URL", srv.url)
    monkeypatch.setenv("LABCAM_TOKEN", "envtok")
    assert labcam.connect().url == srv.url


# -- against a real Jupyter server ------------------------------------------------------------------------
@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"labcam_jupyter": True}},
        "LabcamApp": {"camera": "simulated", "width": WIDTH, "height": HEIGHT, "bit_depth": 16, "fps": FPS,
                      "exposure_ms": 1.0, "idle_grace": 0.2},
    }


@pytest.fixture
def jupyter(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> dict[str, Any]:
    """The running Jupyter server's URL, token and simulated camera."""
    return {
        "url": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "token": jp_serverapp.identity_provider.token,
        "camera": jp_serverapp.web_app.settings["labcam"].service.engine.driver,
        "root_dir": jp_serverapp.root_dir,
    }


@on_jupyter_loop
async def test_connect_to_a_jupyter_server(jupyter: dict[str, Any]) -> None:
    def session() -> None:
        cam = labcam.connect(jupyter["url"], token=jupyter["token"])
        assert cam.url == jupyter["url"] + "labcam/"  # found under labcam/, base URL kept as quoted
        frame = cam.snap(meta=True)
        assert frame.array.max() > 255
        assert_lossless(frame, jupyter["camera"])
        stack = cam.acquire(100, progress=False)
        numbers = stack.frame_numbers
        assert np.array_equal(numbers, np.arange(numbers[0], numbers[0] + 100)) and stack.dropped == 0
        for i in (0, 50, 99):
            assert_lossless(stack[i], jupyter["camera"])
        assert len(list(cam.frames(limit=3))) == 3
        with pytest.raises(SettingError, match=r"^gain_db=99 is not allowed"):
            cam.gain_db = 99
        cam.gain_db = 6
        assert cam.settings.gain_db == 6.0
        with pytest.raises(AuthenticationError, match="token was refused"):
            labcam.connect(jupyter["url"], token="wrong")
        with pytest.raises(AuthenticationError, match="needs a token"):
            labcam.connect(jupyter["url"])

    await asyncio.to_thread(session)


@on_jupyter_loop
async def test_connect_without_arguments_finds_the_jupyter_server(
    jupyter: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "kernel-runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("LABCAM_URL", raising=False)
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))  # this process is the server
    write_server_file(runtime, os.getpid(), jupyter["url"], token=jupyter["token"], root_dir=jupyter["root_dir"])
    cam = await asyncio.to_thread(labcam.connect)
    assert cam.url == jupyter["url"] + "labcam/" and cam.token == jupyter["token"]
    frame = await asyncio.to_thread(cam.snap, meta=True)
    assert_lossless(frame, jupyter["camera"])
