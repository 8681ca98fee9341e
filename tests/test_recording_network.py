"""Recording over the network, against a real server on loopback: REST (``api/recordings``), the
stream's ``record`` message and its broadcasts, ``labcam.connect().record``, the test page's Record
button (Playwright), and the Jupyter extension's routes with Jupyter's auth (pytest-jupyter).

Every recording here is read back from disk: frames written == frames in the file, and the pixels
are the simulated camera's (deterministic per frame number). Waiting is on events: the recorder's
own ``wait``, ``recording`` messages, the page's status element; never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from tornado.httpclient import HTTPResponse

import labcam
from chromium_args import CHROMIUM_ARGS
from http_helpers import fetch
from http_helpers import json_body as js
from labcam.recording import RecordingError, read_recording_metadata
from labcam.server.recordings import MAX_ACTIVE

TIMEOUT = 15.0


# -- helpers ------------------------------------------------------------------------------------------
@pytest.fixture
def rec_dir(tmp_path: Path) -> Path:
    """The server's recordings folder (not created: the first recording creates it)."""
    return tmp_path / "recordings"


@pytest.fixture
def srv(make_server: Callable[..., Any], rec_dir: Path) -> Any:
    return make_server(fps=100.0, recordings_dir=rec_dir)


async def start(srv: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> HTTPResponse:
    return await fetch(srv.url + "api/recordings", "POST", body, headers)


def wait_done(srv: Any, rec_id: str) -> None:
    """Block until the server's recorder has closed the file (its own event, not a poll)."""
    assert srv.service.recordings.wait(rec_id, TIMEOUT), f"recording {rec_id} did not finish"


async def wait_done_async(srv: Any, rec_id: str) -> None:
    await asyncio.get_running_loop().run_in_executor(None, wait_done, srv, rec_id)


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_tiff(srv: Any, path: Path, frames: int) -> None:
    """The file holds exactly ``frames`` consecutive frames whose pixels are the camera's."""
    pixels = tifffile.imread(path)
    meta = read_recording_metadata(path)
    assert pixels.shape == (frames, 240, 320) and len(meta["frames"]) == frames
    numbers = [m["frame_number"] for m in meta["frames"]]
    assert numbers == list(range(numbers[0], numbers[0] + frames)), f"gaps in the file: {numbers}"
    assert meta["summary"]["dropped"] == 0 and meta["summary"]["frames_written"] == frames
    for i in (0, frames // 2, frames - 1):
        assert np.array_equal(pixels[i], srv.camera.expected_frame(numbers[i])), f"frame {i} differs"


# -- REST --------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_rest_start_status_and_the_file_round_trip(srv: Any, rec_dir: Path) -> None:
    assert not rec_dir.exists(), "the folder is created by the first recording, not by the server"
    resp = await start(srv, {"name": "run1.ome.tif", "frames": 25})
    assert resp.code == 201, resp.body
    st = js(resp)
    assert st["name"] == "run1.ome.tif" and st["format"] == "ome-tiff" and st["frames_target"] == 25
    assert st["state"] in ("recording", "done") and st["error"] is None and "path" not in st
    assert resp.headers["Location"] == f"/api/recordings/{st['id']}"
    for key in ("frames_written", "mb_per_s", "dropped"):
        assert key in st
    listed = js(await fetch(srv.url + "api/recordings"))
    assert [r["id"] for r in listed["recordings"]] == [st["id"]]
    assert listed["max_active"] == MAX_ACTIVE and listed["folder"] == str(rec_dir)
    await wait_done_async(srv, st["id"])
    final = js(await fetch(srv.url + f"api/recordings/{st['id']}"))
    assert (final["state"], final["frames_written"], final["dropped"], final["stop_reason"]) == ("done", 25, 0, "frames")
    assert final["mb_per_s"] > 0
    check_tiff(srv, rec_dir / "run1.ome.tif", 25)
    # stopping a finished recording answers with its final status
    again = await fetch(srv.url + f"api/recordings/{st['id']}/stop", "POST")
    assert again.code == 200 and js(again)["frames_written"] == 25
    assert (await fetch(srv.url + "api/recordings/r999-0000")).code == 404
    assert (await fetch(srv.url + "api/recordings/r999-0000/stop", "POST")).code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["POST stop", "DELETE"])
async def test_rest_stop_in_the_middle_keeps_every_frame_written(srv: Any, rec_dir: Path, how: str) -> None:
    resp = await start(srv, {"name": "day1/open", "format": "zarr"})  # no limit; suffix from the format
    assert resp.code == 201, resp.body
    st = js(resp)
    assert st["name"] == "day1/open.ome.zarr" and st["frames_target"] is None
    # some frames first: the recorder's subscription is the engine's, so an acquire after the
    # start means the recording has at least these frames too
    cam = labcam.connect(srv.url)
    await asyncio.get_running_loop().run_in_executor(None, cam.acquire, 5)
    url = srv.url + f"api/recordings/{st['id']}"
    resp = await (fetch(url + "/stop", "POST") if how == "POST stop" else fetch(url, "DELETE"))
    assert resp.code == 200, resp.body
    final = js(resp)
    assert final["state"] == "done" and final["stop_reason"] == "stopped" and final["frames_written"] >= 5
    frames = zarr.open_group(str(rec_dir / "day1" / "open.ome.zarr"), mode="r")["0"]
    assert frames.shape[0] == final["frames_written"]
    assert np.array_equal(frames[0], srv.camera.expected_frame(read_recording_metadata(rec_dir / "day1" / "open.ome.zarr")["frames"][0]["frame_number"]))


BAD_NAMES = [
    ("../x.ome.tif", "'..'"),
    ("/abs.ome.tif", "absolute"),
    ("%2e%2e/x", "must end with"),
    ("a/../../x.ome.tif", "'..'"),
    ("C:\\x.ome.tif", "backslash"),
    ("~/x.ome.tif", "'~'"),
    (".hidden.ome.tif", "hidden"),
    ("x.txt", "must end with"),
    ("", "empty"),
    ("out/x.ome.tif", "leads out of the recordings folder"),  # a symlink to a folder outside
    ("link.ome.tif", "symbolic link"),  # a symlink as the file itself
    ("exists.ome.tif", "already exists"),  # no overwrite
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "why"), BAD_NAMES, ids=[n or "empty" for n, _ in BAD_NAMES])
async def test_refused_names_are_400_and_create_nothing(srv: Any, tmp_path: Path, rec_dir: Path, name: str, why: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rec_dir.mkdir()
    (rec_dir / "out").symlink_to(outside, target_is_directory=True)
    (rec_dir / "link.ome.tif").symlink_to(outside / "target.ome.tif")
    (rec_dir / "exists.ome.tif").write_bytes(b"keep me")
    before = tree(tmp_path)
    resp = await start(srv, {"name": name, "frames": 5})
    assert resp.code == 400, resp.body
    assert why in js(resp)["error"], js(resp)["error"]
    assert tree(tmp_path) == before, "something was created"
    assert not Path("/abs.ome.tif").exists() and not (tmp_path / "x.ome.tif").exists()
    assert (rec_dir / "exists.ome.tif").read_bytes() == b"keep me"
    assert js(await fetch(srv.url + "api/recordings"))["recordings"] == []


@pytest.mark.anyio
async def test_names_are_never_url_decoded_and_overwrite_replaces_a_recording(srv: Any, tmp_path: Path, rec_dir: Path) -> None:
    # "%2e%2e" in a JSON body is a folder name like any other: it lands inside the recordings folder.
    st = js(await start(srv, {"name": "%2e%2e/x.ome.tif", "frames": 3}))
    await wait_done_async(srv, st["id"])
    assert (rec_dir / "%2e%2e" / "x.ome.tif").is_file() and tree(tmp_path) == {"recordings", "recordings/%2e%2e", "recordings/%2e%2e/x.ome.tif"}
    # the same name again: refused, then replaced when asked
    assert (await start(srv, {"name": "%2e%2e/x.ome.tif", "frames": 4})).code == 400
    resp = await start(srv, {"name": "%2e%2e/x.ome.tif", "frames": 4, "overwrite": True})
    assert resp.code == 201, resp.body
    await wait_done_async(srv, js(resp)["id"])
    check_tiff(srv, rec_dir / "%2e%2e" / "x.ome.tif", 4)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"frames": 5}, "needs a 'name'"),
        ({"name": 5}, "name=5"),
        ({"name": "a.ome.tif", "frames": 0}, "frames=0 is not allowed"),
        ({"name": "a.ome.tif", "frames": 1.5}, "frames=1.5 is not allowed"),
        ({"name": "a.ome.tif", "frames": True}, "frames=True is not allowed"),
        ({"name": "a.ome.tif", "duration": -1}, "duration=-1 is not allowed"),
        ({"name": "a.ome.tif", "format": "avi"}, "format='avi' is not allowed"),
        ({"name": "a.ome.tif", "format": "zarr"}, "contradicts the suffix"),
        ({"name": "a.ome.tif", "overwrite": "yes"}, "overwrite='yes' is not allowed"),
        ({"name": "a.ome.tif", "frame": 5}, "unknown field(s) 'frame'"),
        ("not json", "must be a JSON object"),
        ([1, 2], "must be a JSON object, not list"),
    ],
)
async def test_bad_options_are_400_and_create_nothing(srv: Any, tmp_path: Path, body: Any, words: str) -> None:
    raw = body.encode() if isinstance(body, str) else None
    resp = await fetch(srv.url + "api/recordings", "POST", None if raw else body, raw_body=raw)
    assert resp.code == 400 and words in js(resp)["error"], (resp.code, resp.body)
    assert tree(tmp_path) <= {"recordings"}


@pytest.mark.anyio
async def test_a_token_server_needs_the_token_to_record(make_server: Callable[..., Any], rec_dir: Path) -> None:
    srv = make_server(token="T0K", recordings_dir=rec_dir)
    for headers in ({}, {"Authorization": "token wrong"}):
        resp = await start(srv, {"name": "t.ome.tif", "frames": 3}, headers)
        assert resp.code == 403 and "token" in js(resp)["error"]
        assert (await fetch(srv.url + "api/recordings", headers=headers)).code == 403
    assert not rec_dir.exists(), "a refused request created the folder"
    resp = await start(srv, {"name": "t.ome.tif", "frames": 3}, {"Authorization": "token T0K"})
    assert resp.code == 201, resp.body
    rec_id = js(resp)["id"]
    assert (await fetch(srv.url + f"api/recordings/{rec_id}/stop", "POST")).code == 403
    assert (await fetch(srv.url + f"api/recordings/{rec_id}")).code == 403
    await wait_done_async(srv, rec_id)
    resp = await fetch(srv.url + f"api/recordings/{rec_id}/stop?token=T0K", "POST")
    assert resp.code == 200 and js(resp)["frames_written"] == 3
    assert (rec_dir / "t.ome.tif").is_file()


@pytest.mark.anyio
async def test_too_many_recordings_or_the_same_file_twice_is_409(srv: Any, rec_dir: Path) -> None:
    ids = []
    for i in range(MAX_ACTIVE):
        resp = await start(srv, {"name": f"many{i}.ome.tif"})
        assert resp.code == 201, resp.body
        ids.append(js(resp)["id"])
    # frames for all four: they subscribed before this acquisition, so each has these frames too
    await asyncio.get_running_loop().run_in_executor(None, labcam.connect(srv.url).acquire, 3)
    resp = await start(srv, {"name": "one-more.ome.tif", "frames": 3})
    assert resp.code == 409 and f"at most {MAX_ACTIVE}" in js(resp)["error"] and js(resp)["reason"] == "busy"
    assert not (rec_dir / "one-more.ome.tif").exists()
    assert js(await fetch(srv.url + "api/recordings"))["active"] == MAX_ACTIVE
    # a running recording's file is never replaced under it
    assert js(await fetch(srv.url + f"api/recordings/{ids[0]}", "DELETE"))["state"] == "done"
    resp = await start(srv, {"name": "many1.ome.tif", "overwrite": True})
    assert resp.code == 409 and "being recorded right now" in js(resp)["error"]
    for rec_id in ids[1:]:
        final = js(await fetch(srv.url + f"api/recordings/{rec_id}/stop", "POST"))
        assert final["state"] == "done" and final["frames_written"] >= 3
        with tifffile.TiffFile(rec_dir / final["name"]) as tif:
            assert len(tif.pages) == final["frames_written"]


# -- the stream's record message -------------------------------------------------------------------------
async def next_recording(client: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next ``recording`` message on a stream that satisfies ``predicate``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await client.message("recording", max(deadline - loop.time(), 0.001))
        if predicate(msg):
            return msg


@pytest.mark.anyio
async def test_ws_record_start_status_stop_and_broadcasts(srv: Any, ws_connect: Any, rec_dir: Path) -> None:
    a = await ws_connect(srv, "format=binary")
    b = await ws_connect(srv, "format=binary&fps=5")
    a.send({"type": "record", "action": "start", "name": "ws.ome.tif"})
    reply = await next_recording(a, lambda m: "reply" in m)
    assert reply["reply"] == "start" and reply["name"] == "ws.ome.tif" and reply["state"] == "recording"
    rec_id = reply["id"]
    started = await next_recording(b, lambda m: m.get("event") == "started")
    assert started["id"] == rec_id
    # progress about once a second, to every client
    progress = await next_recording(b, lambda m: m.get("event") == "progress")
    assert progress["id"] == rec_id and progress["frames_written"] > 0 and progress["dropped"] == 0
    a.send({"type": "record", "action": "status", "id": rec_id})
    status = await next_recording(a, lambda m: m.get("reply") == "status")
    assert status["id"] == rec_id and status["state"] == "recording"
    a.send({"type": "record", "action": "status"})
    listed = await a.message("recordings")
    assert listed["reply"] == "status" and [r["id"] for r in listed["recordings"]] == [rec_id]
    a.send({"type": "record", "action": "stop", "id": rec_id})
    stopped = await next_recording(a, lambda m: m.get("reply") == "stop")
    assert stopped["state"] == "done" and stopped["stop_reason"] == "stopped"
    finished = await next_recording(b, lambda m: m.get("event") == "finished")
    assert finished["frames_written"] == stopped["frames_written"] > 0
    with tifffile.TiffFile(rec_dir / "ws.ome.tif") as tif:
        assert len(tif.pages) == stopped["frames_written"]
    a.close()
    b.close()


@pytest.mark.anyio
async def test_ws_record_errors_name_the_request_and_the_stream_carries_on(srv: Any, ws_connect: Any, tmp_path: Path) -> None:
    c = await ws_connect(srv, "format=binary")
    cases = [
        ({"action": "start", "name": "../x.ome.tif", "frames": 3}, "'..'", "start"),
        ({"action": "start", "name": "/x.ome.tif"}, "absolute", "start"),
        ({"action": "start", "name": "x.ome.tif", "frames": -2}, "frames=-2", "start"),
        ({"action": "start", "name": "x.ome.tif", "colour": "red"}, "'colour'", "start"),
        ({"action": "stop"}, "id=None", "stop"),
        ({"action": "stop", "id": "nope"}, "no recording 'nope'", "stop"),
        ({"action": "explode"}, "action='explode' is not allowed", "explode"),
    ]
    for msg, words, action in cases:
        c.send({"type": "record", **msg})
        err = await c.message("error")
        assert err["request"] == "record" and err["action"] == action and words in err["message"], err
    await c.frames(2)  # still streaming
    assert tree(tmp_path) <= {"recordings"}
    c.close()


@pytest.mark.anyio
async def test_live_and_stalled_clients_during_a_recording_change_nothing_in_the_file(
    srv: Any, ws_connect: Any, rec_dir: Path
) -> None:
    """A live viewer reading every frame and one that never reads (stalled) do not cost the
    recording a frame: the file has every frame, consecutive, with the camera's pixels."""
    live = await ws_connect(srv, "format=binary")
    stalled = await ws_connect(srv, "format=json")  # never read from again
    n = 120
    reply_task = asyncio.ensure_future(start(srv, {"name": "busy.ome.tif", "frames": n}))
    headers = await live.frames(60)  # the viewer keeps streaming meanwhile
    st = js(await reply_task)
    await wait_done_async(srv, st["id"])
    final = js(await fetch(srv.url + f"api/recordings/{st['id']}"))
    assert (final["frames_written"], final["dropped"], final["dropped_overflow"]) == (n, 0, 0)
    check_tiff(srv, rec_dir / "busy.ome.tif", n)
    assert len(headers) == 60
    live.close()
    stalled.close()


# -- labcam.connect() ---------------------------------------------------------------------------------------
def test_remote_camera_record_round_trip(srv: Any, rec_dir: Path) -> None:
    cam = labcam.connect(srv.url)
    rec = cam.record("remote.ome.tif", frames=20)
    assert rec.name == "remote.ome.tif" and rec.id
    assert rec.wait(TIMEOUT)
    p = rec.progress
    assert (p.state, p.frames_written, p.dropped, p.path) == ("done", 20, 0, "remote.ome.tif")
    assert rec.status()["frames_written"] == 20 and rec.error is None and rec.done
    check_tiff(srv, rec_dir / "remote.ome.tif", 20)
    # refused names and options are ValueErrors with the server's reason
    with pytest.raises(ValueError, match="already exists"):
        cam.record("remote.ome.tif", frames=2)
    with pytest.raises(ValueError, match="'..'"):
        cam.record("../up.ome.tif", frames=2)
    with pytest.raises(ValueError, match="frames=0"):
        cam.record("zero.ome.tif", frames=0)
    # an open-ended recording stops with the block; frames acquired meanwhile are in it
    with cam.record(Path("sub") / "open", format="ome-zarr") as rec2:
        cam.acquire(5)
    final = rec2.stop()
    assert final.state == "done" and final.frames_written >= 5 and final.stop_reason == "stopped"
    assert zarr.open_group(str(rec_dir / "sub" / "open.ome.zarr"), mode="r")["0"].shape[0] == final.frames_written
    # too many at once: a RecordingError saying so
    running = [cam.record(f"r{i}.ome.tif") for i in range(MAX_ACTIVE)]
    with pytest.raises(RecordingError, match="running already") as err:
        cam.record("late.ome.tif", frames=2)
    assert err.value.reason == "busy"
    for r in running:
        assert r.stop().state == "done"


# -- the test page ----------------------------------------------------------------------------------------
CHROMIUM = Path(os.environ.get("LABCAM_CHROMIUM", "/usr/bin/chromium"))
WAIT_MS = 15_000


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        yield pg
        browser.close()
        assert not errors, f"uncaught errors in the page: {errors}"


def test_test_page_record_button_reaches_done_with_n_frames(srv: Any, rec_dir: Path, page: Any) -> None:
    page.goto(srv.url)
    page.wait_for_selector("#record:not([disabled])", timeout=WAIT_MS)
    page.fill("#record-name", "page.ome.tif")
    page.fill("#record-frames", "30")
    page.click("#record")
    page.wait_for_selector("#record-status[data-state='done']", timeout=WAIT_MS)
    text = page.text_content("#record-status") or ""
    assert "page.ome.tif" in text and "30/30 frames" in text and "dropped 0" in text, text
    assert page.get_attribute("#record-status", "data-frames") == "30"
    assert page.is_enabled("#record") and not page.is_enabled("#record-stop")
    check_tiff(srv, rec_dir / "page.ome.tif", 30)
    # a refused name is shown, nothing recorded
    page.fill("#record-name", "../escape.ome.tif")
    page.click("#record")
    page.wait_for_selector("#record-error:not([hidden])", timeout=WAIT_MS)
    assert "'..'" in (page.text_content("#record-error") or "")
    # an open-ended recording is stopped with the Stop button
    page.fill("#record-name", "page2.ome.tif")
    page.fill("#record-frames", "")
    page.click("#record")
    # the first progress broadcast (about a second in) says frames are in the file
    page.wait_for_selector("#record-status[data-state='recording']:not([data-frames='0'])", timeout=WAIT_MS)
    page.click("#record-stop")
    page.wait_for_selector("#record-status[data-state='done']", timeout=WAIT_MS)
    frames = int(page.get_attribute("#record-status", "data-frames") or "-1")
    with tifffile.TiffFile(rec_dir / "page2.ome.tif") as tif:
        assert len(tif.pages) == frames



# -- the notebook widget ------------------------------------------------------------------------------------
class CommPage:
    """Plays the page side of a ``LiveView`` in comm mode: sends what liveview.js sends through
    ipywidgets' own message handler, records what the kernel sends back (events, no sleeps)."""

    def __init__(self, view: Any) -> None:
        import threading

        self.view = view
        self.sent: list[dict[str, Any]] = []
        self.changed = threading.Condition()

        def record(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            if data["method"] == "custom":
                with self.changed:
                    self.sent.append(data["content"])
                    self.changed.notify_all()

        view.comm.send = record

    def tell(self, content: dict[str, Any]) -> None:
        self.view._handle_msg({"content": {"data": {"method": "custom", "content": {"view": "v1", **content}}}, "buffers": []})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first message sent so far (or, waiting, from now on) that satisfies ``predicate``."""
        with self.changed:
            found = self.changed.wait_for(lambda: next((m for m in self.sent if predicate(m)), None), timeout)
            assert found, f"the kernel did not send it within {timeout} s; it sent {[m.get('type') for m in self.sent]}"
            return found


def test_widget_comm_mode_records_with_the_kernels_camera(tmp_path: Path) -> None:
    pytest.importorskip("anywidget")
    cam = labcam.open("simulated", width=320, height=240, fps=100.0, idle_grace=0.2)
    view = cam.live()
    try:
        assert view.mode == "comm"
        page = CommPage(view)
        target = tmp_path / "widget.ome.tif"
        page.tell({"type": "record", "action": "start", "name": str(target), "frames": 15})
        reply = page.wait_for(lambda m: m.get("reply") == "start")
        assert reply["type"] == "recording" and reply["name"] == "widget.ome.tif" and reply["frames_target"] == 15
        done = page.wait_for(lambda m: m.get("event") == "finished")
        assert (done["state"], done["frames_written"], done["dropped"], done["id"]) == ("done", 15, 0, reply["id"])
        assert view.recording.wait(0) and tifffile.imread(target).shape == (15, 240, 320)
        # an existing file: the kernel's error goes to the page
        page.tell({"type": "record", "action": "start", "name": str(target), "frames": 2})
        assert "already exists" in page.wait_for(lambda m: m.get("type") == "error" and m.get("request") == "record")["message"]
        # open-ended, stopped from the page
        page.tell({"type": "record", "action": "start", "name": str(tmp_path / "open.ome.zarr")})
        opened = page.wait_for(lambda m: m.get("reply") == "start" and m["name"] == "open.ome.zarr")
        cam.acquire(3)  # frames the recording has too
        page.tell({"type": "record", "action": "stop"})
        final = page.wait_for(lambda m: m.get("event") == "finished" and m["id"] == opened["id"])
        assert final["stop_reason"] == "stopped" and final["frames_written"] >= 3
        assert zarr.open_group(str(tmp_path / "open.ome.zarr"), mode="r")["0"].shape[0] == final["frames_written"]
    finally:
        view.close()
        cam.close()


def test_widget_comm_mode_with_a_remote_camera_records_on_the_server(srv: Any, rec_dir: Path) -> None:
    pytest.importorskip("anywidget")
    from labcam.widget import LiveView

    view = LiveView(labcam.connect(srv.url), mode="comm")
    try:
        page = CommPage(view)
        page.tell({"type": "record", "action": "start", "name": "from-widget.ome.tif", "frames": 10})
        reply = page.wait_for(lambda m: m.get("reply") == "start")
        assert reply["id"] == view.recording.id and "path" not in reply  # the server's own id and name
        done = page.wait_for(lambda m: m.get("event") == "finished")
        assert (done["state"], done["frames_written"]) == ("done", 10)
        check_tiff(srv, rec_dir / "from-widget.ome.tif", 10)
        page.tell({"type": "record", "action": "start", "name": "../nope.ome.tif", "frames": 2})
        assert "'..'" in page.wait_for(lambda m: m.get("type") == "error")["message"]
    finally:
        view.close()


# The widget's browser module in a real page: the labcam test page (same origin as the stream, so
# the handshake passes the origin check) with the widget rendered into it from its ES module and a
# stand-in for the anywidget model.
WIDGET_HARNESS = """
async ([esm, values]) => {
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const { default: widget } = await import(url);
  const handlers = {};
  const model = {
    sent: [],
    get: (k) => values[k], set: (k, v) => { values[k] = v; }, save_changes() {},
    on(name, fn) { (handlers[name] ||= []).push(fn); }, off() {},
    send(content) { this.sent.push(content); },
    emit(name, ...args) { for (const fn of handlers[name] || []) fn(...args); },
  };
  const host = document.createElement("div");
  host.id = "widget-host";
  document.body.prepend(host);
  widget.render({ model, el: host });
  window.widgetModel = model;
}
"""


def test_widget_record_button_over_the_stream_in_a_browser(srv: Any, rec_dir: Path, page: Any) -> None:
    pytest.importorskip("anywidget")
    from labcam.widget import LiveView

    values = {"mode": "websocket", "requested_mode": "websocket", "stream_url": srv.url, "token": "", "fps": None,
              "quality": None, "max_width": None, "display_range": "auto", "paused": False, "camera_info": {},
              "kernel_error": ""}
    page.goto(srv.url + "?autoconnect=0")
    page.evaluate(WIDGET_HARNESS, [LiveView._esm, values])
    root = "#widget-host .labcam-liveview"
    page.wait_for_selector(f"{root}[data-state='streaming']", timeout=WAIT_MS)
    page.fill(f"{root} .lc-rec-name", "widget-ws.ome.tif")
    page.fill(f"{root} .lc-rec-frames", "20")
    page.click(f"{root} .lc-record")
    page.wait_for_selector(f"{root}[data-recording-state='done']", timeout=WAIT_MS)
    text = page.text_content(f"{root} .lc-rec-status") or ""
    assert "widget-ws.ome.tif" in text and "20/20 frames" in text and "dropped 0" in text, text
    assert page.text_content(f"{root} .lc-record") == "● Rec"
    check_tiff(srv, rec_dir / "widget-ws.ome.tif", 20)
    # open-ended: the button becomes Stop, and stops it
    page.fill(f"{root} .lc-rec-name", "widget-open.ome.tif")
    page.fill(f"{root} .lc-rec-frames", "")
    page.click(f"{root} .lc-record")
    page.wait_for_selector(f"{root}[data-recording-state='recording'] .lc-record[aria-pressed='true']", timeout=WAIT_MS)
    page.wait_for_selector(f"{root}[data-recording-state='recording']:not([data-recording-frames='0'])", timeout=WAIT_MS)
    page.click(f"{root} .lc-record")
    page.wait_for_selector(f"{root}[data-recording-state='done']", timeout=WAIT_MS)
    frames = int(page.get_attribute(root, "data-recording-frames") or "-1")
    with tifffile.TiffFile(rec_dir / "widget-open.ome.tif") as tif:
        assert len(tif.pages) == frames > 0
    # a refused name shows in the view's error line
    page.fill(f"{root} .lc-rec-name", "/etc/x.ome.tif")
    page.click(f"{root} .lc-record")
    page.wait_for_selector(f"{root} .lc-error:not([hidden])", timeout=WAIT_MS)
    assert "absolute" in (page.text_content(f"{root} .lc-error") or "")
    assert page.evaluate("window.widgetModel.sent.length") == 0, "websocket mode never asks the kernel"


# -- the Jupyter extension ----------------------------------------------------------------------------------
# pytest-jupyter's fixtures, imported into this module only (not a plugin: see jupyter_fixtures). Its
# async-test hook is not loaded: the Jupyter test runs on pytest-jupyter's loop, where the Jupyter
# server runs, by hand.
from jupyter_fixtures import *  # noqa: E402,F401,F403


@pytest.fixture
def jp_server_config(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The extension on a small simulated camera; ``indirect`` parametrization adds ServerApp settings."""
    return {
        "ServerApp": {"jpserver_extensions": {"labcam_jupyter": True}, **getattr(request, "param", {})},
        "LabcamApp": {
            "camera": "simulated", "width": 320, "height": 240, "fps": 100.0, "idle_grace": 0.2,
            "recordings_dir": str(tmp_path / "jupyter-recordings"),
        },
    }


def test_jupyter_extension_records_with_jupyter_auth(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, jp_asyncio_loop: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "jupyter-recordings"
    service = jp_serverapp.web_app.settings["labcam"].service
    assert service.recordings.root == folder
    token = jp_serverapp.identity_provider.token
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}labcam/"

    async def run() -> None:
        body = {"name": "jupyter.ome.tif", "frames": 12}
        for headers in ({}, {"Authorization": "token wrong"}):
            resp = await fetch(base + "api/recordings", "POST", body, headers)
            assert resp.code == 403, (headers, resp.code)
            assert (await fetch(base + "api/recordings", headers=headers)).code == 403
        assert not folder.exists(), "a refused request created the folder"
        auth = {"Authorization": f"token {token}"}
        resp = await fetch(base + "api/recordings", "POST", body, auth)  # token: no XSRF cookie needed
        assert resp.code == 201, resp.body
        rec_id = js(resp)["id"]
        await asyncio.get_running_loop().run_in_executor(None, service.recordings.wait, rec_id, TIMEOUT)
        final = js(await fetch(base + f"api/recordings/{rec_id}", headers=auth))
        assert (final["state"], final["frames_written"], final["dropped"]) == ("done", 12, 0)
        assert (await fetch(base + f"api/recordings/{rec_id}", "DELETE")).code == 403
        assert (await fetch(base + f"api/recordings/{rec_id}", "DELETE", headers=auth)).code == 200
        assert (await fetch(base + "api/recordings", "POST", {"name": "../up.ome.tif"}, auth)).code == 400
        with tifffile.TiffFile(folder / "jupyter.ome.tif") as tif:
            assert len(tif.pages) == 12
        # the stream's record message, with the token
        from tornado.websocket import websocket_connect

        conn = await websocket_connect("ws" + base[4:] + f"ws/camera/stream?format=binary&token={token}")
        conn.write_message(json.dumps({"type": "record", "action": "status"}))
        while True:
            msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
            assert msg is not None
            if isinstance(msg, str) and json.loads(msg)["type"] == "recordings":
                assert [r["id"] for r in json.loads(msg)["recordings"]] == [rec_id]
                break
        conn.close()

    jp_asyncio_loop.run_until_complete(run())


def _read_only_authorizer() -> type:
    from jupyter_server.auth.authorizer import Authorizer

    class ReadOnlyLabcam(Authorizer):
        """Lets users watch the camera (read) but not change anything (write) on ``labcam``."""

        def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
            return not (resource == "labcam" and action == "write")

    return ReadOnlyLabcam


@pytest.mark.parametrize("jp_server_config", [{"authorizer_class": _read_only_authorizer()}], indirect=True)
def test_jupyter_read_only_users_may_follow_but_not_start_or_stop_recordings(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_http_port: int, jp_asyncio_loop: Any, tmp_path: Path
) -> None:
    token = jp_serverapp.identity_provider.token
    auth = {"Authorization": f"token {token}"}
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}labcam/"

    async def run() -> None:
        assert (await fetch(base + "api/recordings", "POST", {"name": "ro.ome.tif", "frames": 3}, auth)).code == 403
        assert (await fetch(base + "api/recordings", headers=auth)).code == 200
        from tornado.websocket import websocket_connect

        conn = await websocket_connect("ws" + base[4:] + f"ws/camera/stream?format=binary&token={token}")
        for action in ("start", "stop"):
            conn.write_message(json.dumps({"type": "record", "action": action, "name": "ro.ome.tif", "id": "x"}))
            while True:
                msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
                assert msg is not None
                if isinstance(msg, str) and json.loads(msg)["type"] == "error":
                    assert "not authorized to start or stop recordings" in json.loads(msg)["message"]
                    break
        conn.write_message(json.dumps({"type": "record", "action": "status"}))
        while True:
            msg = await asyncio.wait_for(conn.read_message(), TIMEOUT)
            assert msg is not None
            if isinstance(msg, str) and json.loads(msg)["type"] == "recordings":
                break
        conn.close()
        assert not (tmp_path / "jupyter-recordings").exists()

    jp_asyncio_loop.run_until_complete(run())
