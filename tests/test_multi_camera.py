"""Several cameras per host: ``labcam serve --camera SPEC --camera SPEC`` serves each under
``cameras/<id>/`` with its own engine, preview hub and recordings; the first also at the legacy paths;
``api/cameras`` lists them; an unknown id is a 404 naming the known ones; bad specs stop the start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from http_helpers import TIMEOUT, fetch, json_body
from test_cli import run_labcam, serve  # noqa: F401 (serve: the fixture)
from test_hosts import INFO, host_files, runtime, wait_until  # noqa: F401 (runtime: the fixture)
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

import labcam
from labcam.cameras.selection import CameraSpec, camera_id
from labcam.errors import CameraUnavailable
from labcam.wire import unpack_binary

# Two simulated cameras told apart by size, bit depth and specimen.
TWO = [
    "--camera", "simulated:name=bf,width=320,height=240,fps=60",
    "--camera", "simulated:name=fl,width=160,height=128,bit_depth=12,seed=7,serial=SIM-FL,fps=60",
]


async def first_frame(url: str) -> dict[str, Any]:
    conn = await websocket_connect(url)
    try:
        while True:
            msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
            assert msg is not None, f"{url} closed before a frame"
            if isinstance(msg, bytes):
                header, _ = unpack_binary(msg)
                if header["type"] == "frame":
                    return header
    finally:
        conn.close()


async def record(base: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a recording on the camera at ``base``; its final status, from the stream's ``finished`` event."""
    conn = await websocket_connect("ws" + base[4:] + "ws/camera/stream?format=binary")
    try:
        connected = json.loads(await asyncio.wait_for(conn.read_message(), TIMEOUT))
        assert connected["type"] == "connected"  # registered: it gets the recording's news
        conn.write_message(json.dumps({"type": "pause"}))  # no frames needed
        resp = await fetch(base + "api/recordings", "POST", body)
        assert resp.code == 201, resp.body
        rec_id = json_body(resp)["id"]
        while True:
            msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
            assert msg is not None, "the stream closed before the recording finished"
            if isinstance(msg, str):
                data = json.loads(msg)
                if data["type"] == "recording" and data.get("event") == "finished" and data["id"] == rec_id:
                    return data
    finally:
        conn.close()


def test_two_cameras_stream_and_record_at_once_each_under_its_own_path(serve, tmp_path: Path, runtime: Path) -> None:  # noqa: F811
    rec_dir = tmp_path / "recordings"
    s = serve(*TWO, "--recordings-dir", str(rec_dir))
    assert "camera 'fl': " + s.url + "cameras/fl/" in s.output
    ws = "ws" + s.url[4:]

    async def run() -> None:
        listing = json_body(await fetch(s.url + "api/cameras"))
        assert [c["id"] for c in listing["cameras"]] == ["bf", "fl"] and listing["default"] == "bf"
        bf, fl = listing["cameras"]
        assert (bf["legacy"], fl["legacy"]) == (True, False)
        assert (fl["driver"], fl["serial"], fl["path"], fl["stream"]) == (
            "simulated", "SIM-FL", "cameras/fl/", "cameras/fl/ws/camera/stream")
        assert fl["api"] == "cameras/fl/api/camera" and fl["frames"] == "cameras/fl/ws/camera/frames"

        # both stream at once, each its own frames; the legacy path is the first camera
        frames = await asyncio.gather(
            first_frame(ws + "cameras/bf/ws/camera/stream?format=binary"),
            first_frame(ws + "cameras/fl/ws/camera/stream?format=binary"),
            first_frame(ws + "ws/camera/stream?format=binary"),
        )
        sizes = [(f["source_width"], f["source_height"], f["bit_depth"]) for f in frames]
        assert sizes == [(320, 240, 8), (160, 128, 12), (320, 240, 8)]
        legacy = json_body(await fetch(s.url + "api/camera"))
        assert legacy["camera"]["sensor_width"] == 320
        assert json_body(await fetch(s.url + "cameras/fl/api/camera"))["camera"]["serial"] == "SIM-FL"

        # settings are per camera
        resp = await fetch(s.url + "cameras/fl/api/camera/settings", "PATCH", {"exposure_ms": 3.5})
        assert resp.code == 200
        assert json_body(await fetch(s.url + "cameras/fl/api/camera/settings"))["exposure_ms"] == 3.5
        assert json_body(await fetch(s.url + "cameras/bf/api/camera/settings"))["exposure_ms"] != 3.5

        # both record at once, each into its own folder
        done = await asyncio.gather(
            record(s.url + "cameras/bf/", {"name": "run.ome.tif", "frames": 6}),
            record(s.url + "cameras/fl/", {"name": "run.ome.zarr", "frames": 4}),
        )
        assert [(d["state"], d["frames_written"]) for d in done] == [("done", 6), ("done", 4)]
        folders = [json_body(await fetch(s.url + f"cameras/{c}/api/recordings"))["folder"] for c in ("bf", "fl")]
        assert folders == [str(rec_dir / "bf"), str(rec_dir / "fl")]
        # the legacy api/recordings is the first camera's
        assert json_body(await fetch(s.url + "api/recordings"))["folder"] == str(rec_dir / "bf")

        # an unknown camera: 404 naming the ids, for REST and for the stream's handshake
        resp = await fetch(s.url + "cameras/nope/api/camera")
        assert resp.code == 404
        body = json_body(resp)
        assert body["cameras"] == ["bf", "fl"] and "'nope'" in body["error"] and "'bf', 'fl'" in body["error"]
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(ws + "cameras/nope/ws/camera/stream")
        assert refused.value.code == 404
        assert (await fetch(s.url + "cameras/fl/api/nothing")).code == 404

        # the test page of each camera
        page = await fetch(s.url + "cameras/fl/")
        assert page.code == 200 and b"labcam" in page.body

    asyncio.run(run())
    with tifffile.TiffFile(rec_dir / "bf" / "run.ome.tif") as tif:
        assert len(tif.pages) == 6 and tif.pages[0].shape == (240, 320)
    stack = zarr.open_group(str(rec_dir / "fl" / "run.ome.zarr"), mode="r")["0"]
    assert stack.shape[0] == 4 and stack.shape[-2:] == (128, 160) and stack.dtype == np.uint16

    # the runtime file and labcam info list the camera ids
    wait_until(lambda: len(host_files(runtime)) == 1, "labcam serve writes its runtime file")
    (path,) = host_files(runtime)
    assert json.loads(path.read_text())["cameras"] == ["bf", "fl"]
    out = run_labcam(*INFO)
    assert "cameras: bf, fl" in out.stdout, out.stdout
    assert s.stop() == 0
    assert "stopping the cameras" in s.output


def test_connect_chooses_a_camera_by_id(serve) -> None:  # noqa: F811
    s = serve(*TWO)
    first, second = labcam.connect(s.url), labcam.connect(s.url, camera="fl")
    try:
        assert second.url == s.url + "cameras/fl/"
        assert second.snap().shape == (128, 160) and second.description.serial == "SIM-FL"
        assert first.snap().shape == (240, 320)
        view = second.live()  # the page streams from the camera's own prefix
        try:
            assert (view.mode, view.stream_url) == ("websocket", s.url + "cameras/fl/")
        finally:
            view.close()
        with pytest.raises(CameraUnavailable, match=r"no camera 'nope'.*'bf', 'fl'"):
            labcam.connect(s.url, camera="nope")
        with pytest.raises(ValueError, match="camera id"):
            labcam.connect(s.url, camera="../x")
    finally:
        first.close()
        second.close()
    assert s.stop() == 0


def test_one_camera_is_served_as_today_and_also_as_cameras_default(serve) -> None:  # noqa: F811
    s = serve("--camera", "simulated", "--width", "320", "--height", "240")

    async def run() -> None:
        listing = json_body(await fetch(s.url + "api/cameras"))
        assert [c["id"] for c in listing["cameras"]] == ["default"]
        same = [json_body(await fetch(s.url + p))["camera"] for p in ("api/camera", "cameras/default/api/camera")]
        assert same[0] == same[1]

    asyncio.run(run())
    assert "cameras/" not in s.output  # the start-up lines are today's
    assert s.stop() == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--camera", "webcam:x=1"], ["'webcam' is not a camera", "DRIVER"]),
        (["--camera", "simulated:width=abc"], ["width='abc' is not allowed"]),
        (["--camera", "simulated:colour=red"], ["'colour' is not an option of simulated cameras"]),
        (["--camera", "pixelink:width=640"], ["'width' is not an option of pixelink cameras"]),
        (["--camera", "simulated:name=a b"], ["camera id 'a b' is not allowed"]),
        (["--camera", "simulated:name=x", "--camera", "simulated:name=x,seed=2"], ["camera names must differ"]),
        (["--camera", "simulated", "--camera", "simulated"], ["the same id", "name"]),
        (["--camera", "simulated:name=a", "--camera", "simulated:name=b,width=17"], ["width=17"]),
        (["--camera", "simulated:bit_depth=10"], ["bit_depth='10' is not allowed: 8, 12 or 16"]),
    ],
)
def test_bad_camera_specs_exit_2_and_start_nothing(args: list[str], words: list[str], runtime: Path) -> None:
    out = run_labcam("serve", "--port", "0", *args)
    assert out.returncode == 2, out
    for word in words:
        assert word in out.stderr, out.stderr
    assert "listening" not in out.stdout + out.stderr and "Traceback" not in out.stderr
    assert host_files(runtime) == []


def test_camera_specs_and_ids_follow_the_documented_rule() -> None:
    spec = CameraSpec.parse("pixelink:7020,name=bf,exposure-ms=5")
    assert (spec.driver, spec.serial, spec.name, dict(spec.options)) == ("pixelink", 7020, "bf", {"exposure_ms": 5.0})
    assert CameraSpec.parse("auto") == CameraSpec("auto")
    assert dict(CameraSpec.parse("simulated:bit_depth=16,width=64").options) == {"pixel_format": "mono16", "width": 64}
    assert camera_id(None, "pixelink", "7020", alone=False) == "pixelink-7020"
    assert camera_id(None, "simulated", "SIM 0001/x", alone=False) == "simulated-SIM-0001-x"
    assert camera_id(None, "pixelink", "7020", alone=True) == "default"
    assert camera_id("sim2", "simulated", "SIM-0001", alone=True) == "sim2"
    with pytest.raises(ValueError, match="given twice"):
        CameraSpec.parse("pixelink:7020,serial=7021")


def test_the_test_page_picks_a_camera_and_shows_a_refusal_for_the_view_role(serve) -> None:  # noqa: F811
    from browser_page import chromium_page

    s = serve(*TWO, "--token", "FuLl", "--view-token", "ViEw")
    with chromium_page() as page:
        page.goto(s.url + "?token=ViEw")
        page.wait_for_selector("#camera-picker", timeout=15_000)
        assert page.eval_on_selector("#camera-picker", "p => [...p.options].map(o => o.value)") == ["cameras/bf/", "cameras/fl/"]
        page.wait_for_function("() => window.labcamTestPage.framesDrawn > 2", timeout=15_000)
        assert page.eval_on_selector("#view", "c => [c.width, c.height]") == [320, 240]
        page.select_option("#camera-picker", "cameras/fl/")  # navigates to the second camera's page
        page.wait_for_url(s.url + "cameras/fl/?token=ViEw", timeout=15_000)
        page.wait_for_function("() => window.labcamTestPage && window.labcamTestPage.framesDrawn > 2", timeout=15_000)
        assert page.eval_on_selector("#view", "c => [c.width, c.height]") == [160, 128]
        assert page.eval_on_selector("#camera-picker", "p => p.value") == "cameras/fl/"
        # the view token: a settings change is refused, and the page says which role it needs
        page.wait_for_selector("#exposure:not([disabled])", timeout=15_000)
        page.fill("#exposure", "3.5")
        page.dispatch_event("#exposure", "change")
        page.wait_for_selector("#settings-error:not([hidden])", timeout=15_000)
        assert "needs the control role" in (page.text_content("#settings-error") or "")
    cam = labcam.connect(s.url, token="ViEw", camera="fl")
    try:
        assert cam.settings.exposure_ms != 3.5
    finally:
        cam.close()
    assert s.stop() == 0
