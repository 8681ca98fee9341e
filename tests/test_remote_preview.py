"""``RemoteCamera.preview``: the view-aware preview stream in Python, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import labcam


def test_a_raw_preview_at_one_to_one_is_exactly_the_region_of_the_frame(make_server: Any) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12", seed=5)
    cam = labcam.connect(srv.url)
    with cam.preview(view=(130, 70, 256, 200), size=(1280, 1024), encoding="raw") as stream:
        for _ in range(3):
            f = stream.next()
            assert f.view == (130, 70, 256, 200) and f.step == 1 and f.bit_depth == 12 and not f.clamped
            assert f.array.dtype == np.uint16 and f.array.shape == (200, 256)
            assert np.array_equal(f.array, srv.camera.expected_frame(f.frame_number)[70:270, 130:386])
            assert f.histogram.shape == (64,) and f.histogram.sum() == 256 * 200
        # a new view: only frames of it after configure returns
        stream.configure(view=(0, 0, 640, 480), size=(320, 240))
        f = stream.next()
        assert f.view == (0, 0, 640, 480) and f.array.shape == (240, 320) and f.step == 2
        assert np.array_equal(f.array, srv.camera.expected_frame(f.frame_number)[::2, ::2])
        with pytest.raises(ValueError, match="size="):
            stream.configure(size=(1, 1))
        assert stream.next().array.shape == (240, 320)  # nothing changed, the stream goes on
    cam.close()


def test_a_jpeg_preview_is_the_8_bit_picture_viewers_see(make_server: Any) -> None:
    srv = make_server(width=640, height=480, pixel_format="mono12")
    cam = labcam.connect(srv.url)
    with cam.preview(size=(160, 160), encoding="jpeg", display=(0, 4095)) as stream:
        f = stream.next()
        assert f.array.dtype == np.uint8 and f.array.shape == (120, 160) and f.header["encoding"] == "jpeg"
        expected = srv.camera.expected_frame(f.frame_number)[::4, ::4] >> 4
        assert np.abs(f.array.astype(int) - expected).mean() < 4
    cam.close()


def test_an_h264_preview_decodes_to_the_source_frames(make_server: Any) -> None:
    srv = make_server(width=320, height=240, pixel_format="mono8")
    cam = labcam.connect(srv.url)
    with cam.preview(encoding="h264") as stream:
        frames = [stream.next() for _ in range(20)]
    cam.close()
    assert frames[0].header["keyframe"] is True and frames[0].header["codec"].startswith("avc1.")
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(set(numbers))  # in order, each once
    for f in frames:
        assert f.header["encoding"] == "h264" and f.array.dtype == np.uint8 and f.array.shape == (240, 320)
        expected = srv.camera.expected_frame(f.frame_number).astype(np.float64)
        mse = float(np.mean((f.array.astype(np.float64) - expected) ** 2))
        assert 10 * np.log10(255.0**2 / mse) > 35.0, f"frame {f.frame_number}"


def test_a_bad_preview_option_says_which(make_server: Any) -> None:
    srv = make_server()
    cam = labcam.connect(srv.url)
    stream = cam.preview(view=(0, 0, 0, 10))
    with pytest.raises(ValueError, match="view="):
        stream.next()
    stream.close()
    cam.close()


PROBE = """
import json, sys
import labcam

cam = labcam.connect(sys.argv[1])
with cam.preview(view=(0, 0, 32, 16)) as stream:
    f = stream.next()
cam.close()
print(json.dumps({"modules": sorted(sys.modules), "shape": list(f.array.shape)}))
"""


def test_a_raw_preview_loads_no_server_preview_or_jpeg_code(make_server: Any) -> None:
    srv = make_server(width=64, height=48, pixel_format="mono12")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, srv.url], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [16, 32]
    loaded = [m for m in report["modules"] if m.split(".")[0] == "simplejpeg" or m.startswith(("labcam.server", "labcam.preview"))]
    assert not loaded, loaded
