"""Preview display mapping, JPEG/snapshot encoding and the shared encoded-frame messages."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from labcam.frame import Frame, FrameMeta
from labcam.preview.display import (
    AUTO_SAMPLE_PIXELS,
    AutoRange,
    DisplayMapper,
    auto_range,
    clamp_range,
    decimate,
    decimation_step,
    to_display,
)
from labcam.preview.jpeg import encode_jpeg
from labcam.preview.variants import Variant, encode_frame
from labcam.snapshots import encode_snapshot
from labcam.wire import pack_binary, unpack_binary


def frame_of(array: np.ndarray, pixel_format: str) -> Frame:
    h, w = array.shape[:2]
    meta = FrameMeta(7, 1_700_000_000.5, 10.0, 0.0, (0, 0, w, h), pixel_format, "SIM-9")
    return Frame(array, meta)


@pytest.fixture
def noisy12() -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.poisson(900, (480, 640)).astype(np.uint16).clip(0, 4095)


# -- decimation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "max_width", "step"), [(640, None, 1), (640, 640, 1), (640, 639, 2), (640, 320, 2), (640, 200, 4), (2448, 612, 4)])
def test_decimation_step(width: int, max_width: int | None, step: int) -> None:
    assert decimation_step(width, max_width) == step
    if max_width:
        assert -(-width // step) <= max_width


def test_decimation_is_a_view_not_a_copy(noisy12: np.ndarray) -> None:
    view = decimate(noisy12, 200)
    assert view.shape == (120, 160) and np.shares_memory(view, noisy12)
    assert decimate(noisy12, None) is noisy12


# -- bit depth mapping ------------------------------------------------------------------------------------
def test_full_range_12_bit_is_a_shift(noisy12: np.ndarray) -> None:
    image, rng = to_display(noisy12, 12, display=(0, 4095))
    assert rng == (0, 4095) and image.dtype == np.uint8 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, noisy12 >> 4)


def test_full_range_16_bit_is_a_shift() -> None:
    a = np.arange(0, 65536, 7, dtype=np.uint16)[: 100 * 90].reshape(100, 90)
    image, _ = to_display(a, 16, display=(0, 65535))
    np.testing.assert_array_equal(image, a >> 8)


@pytest.mark.parametrize(("lo", "hi"), [(800, 1000), (0, 300), (100, 4000), (1000, 1001), (5, 260)])
def test_display_window_matches_float_reference_within_two_levels(noisy12: np.ndarray, lo: int, hi: int) -> None:
    image, rng = to_display(noisy12, 12, display=(lo, hi))
    assert rng == (lo, hi)
    reference = np.clip((noisy12.astype(np.float64) - lo) * 255.0 / (hi - lo), 0, 255)
    assert np.abs(image - reference).max() <= 2.0
    assert image[noisy12 <= lo].max(initial=0) == 0
    assert image[noisy12 >= hi].min(initial=255) >= 254


def test_window_on_8_bit_frames() -> None:
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image, _ = to_display(a, 8, display=(64, 192))
    reference = np.clip((a.astype(float) - 64) * 255 / 128, 0, 255)
    assert np.abs(image - reference).max() <= 2


def test_decimate_first_then_map(noisy12: np.ndarray) -> None:
    image, _ = to_display(noisy12, 12, max_width=160, display=(0, 4095))
    np.testing.assert_array_equal(image, noisy12[::4, ::4] >> 4)


def test_mono8_auto_passes_through_without_a_copy() -> None:
    a = np.zeros((48, 64), np.uint8)
    image, rng = to_display(a, 8)
    assert image is a and rng == (0, 255)
    small, _ = to_display(a, 8, max_width=32)
    assert small.shape == (24, 32) and small.flags.c_contiguous


def test_rgb_stays_rgb_and_contiguous() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    image, rng = to_display(rgb, 8, max_width=40)
    assert image.shape == (30, 40, 3) and image.flags.c_contiguous and rng == (0, 255)
    np.testing.assert_array_equal(image, rgb[::2, ::2])
    assert simplejpeg.decode_jpeg(encode_jpeg(image, 90)).shape == (30, 40, 3)


def test_clamp_range_after_a_format_change() -> None:
    assert clamp_range((100, 4000), 8) == (100, 255)
    assert clamp_range((300, 4000), 8) == (254, 255)
    assert clamp_range((0, 4095), 12) == (0, 4095)


# -- auto range -------------------------------------------------------------------------------------------
def test_auto_range_finds_the_percentiles_from_a_small_sample() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(1000, 3001, (1024, 1280)).astype(np.uint16)
    lo, hi = auto_range(a, 12)
    assert 1000 <= lo < 1030 and 2970 < hi <= 3000
    # a few hot pixels do not set the white point
    a[::97, ::89] = 4095
    assert auto_range(a, 12)[1] <= 3000


def test_auto_range_reads_a_bounded_sample_and_a_flat_frame_gives_a_valid_window() -> None:
    big = np.zeros((2048, 2448), np.uint16)
    # the sample is a strided view of at most ~AUTO_SAMPLE_PIXELS pixels, whatever the frame size
    step = int(np.ceil(np.sqrt(big.size / AUTO_SAMPLE_PIXELS)))
    assert big[::step, ::step].size <= AUTO_SAMPLE_PIXELS * 1.05
    assert auto_range(big, 16) == (0, 1)


def test_auto_range_is_smoothed_but_follows_scene_changes() -> None:
    auto = AutoRange()
    assert auto.update((1000, 2000)) == (1000, 2000)
    jittered = auto.update((1010, 1990))  # noise: a small step, not a jump
    assert 1000 <= jittered[0] <= 1010 and 1990 <= jittered[1] <= 2000 and jittered != (1010, 1990)
    assert auto.update((3000, 4000)) == (3000, 4000)  # a new scene: jump at once


def test_mapper_reuses_its_buffers(noisy12: np.ndarray) -> None:
    mapper = DisplayMapper(max_width=320)
    first, _ = mapper.map(noisy12, 12)
    second, _ = mapper.map(noisy12, 12)
    assert first is second, "the output buffer should be preallocated and reused"
    other, _ = mapper.map(noisy12[:100, :100], 12)
    assert other.shape == (100, 100) and other is not first  # a new shape gets new buffers


def test_auto_12_bit_preview_uses_the_8_bit_range(noisy12: np.ndarray) -> None:
    image, (lo, hi) = to_display(noisy12, 12)
    assert 700 < lo < 900 < hi < 1100
    assert image.min() == 0 and image.max() >= 254


# -- JPEG and snapshots --------------------------------------------------------------------------------------
def test_mono_jpeg_is_one_grey_channel() -> None:
    a = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    jpeg = encode_jpeg(a, 90)
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert Image.open(io.BytesIO(jpeg)).mode == "L" and decoded.shape == (48, 64)
    assert np.abs(decoded.astype(int) - a).mean() < 3


@pytest.mark.parametrize("pixel_format", ["mono8", "mono12", "mono16", "rgb8"])
def test_lossless_snapshots_round_trip(pixel_format: str) -> None:
    rng = np.random.default_rng(3)
    bits = {"mono8": 8, "mono12": 12, "mono16": 16, "rgb8": 8}[pixel_format]
    shape = (40, 52, 3) if pixel_format == "rgb8" else (40, 52)
    dtype = np.uint8 if bits == 8 else np.uint16
    array = rng.integers(0, 1 << bits, shape).astype(dtype)
    frame = frame_of(array, pixel_format)
    png = np.asarray(Image.open(io.BytesIO(encode_snapshot(frame, "png"))))
    np.testing.assert_array_equal(png, array)
    import tifffile

    with tifffile.TiffFile(io.BytesIO(encode_snapshot(frame, "tiff"))) as tif:
        np.testing.assert_array_equal(tif.asarray(), array)
        assert json.loads(tif.pages[0].description)["frame_number"] == 7
    np.testing.assert_array_equal(np.load(io.BytesIO(encode_snapshot(frame, "npy"))), array)
    jpeg = encode_snapshot(frame, "jpeg")
    assert jpeg[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="format='bmp'"):
        encode_snapshot(frame, "bmp")


# -- encoded frames ------------------------------------------------------------------------------------------
def test_encoded_frame_messages_are_built_once_and_agree(noisy12: np.ndarray) -> None:
    frame = frame_of(noisy12, "mono12")
    enc = encode_frame(frame, Variant(quality=70, max_width=320), DisplayMapper(320))
    text = enc.json_message
    assert enc.json_message is text and enc.binary_message is enc.binary_message
    msg = json.loads(text)
    assert msg["type"] == "frame" and base64.b64decode(msg["data"]) == enc.jpeg
    header, payload = unpack_binary(enc.binary_message)
    assert payload == enc.jpeg
    assert {k: v for k, v in msg.items() if k != "data"} == header
    assert header["width"] == 320 and header["height"] == 240
    assert header["source_width"] == 640 and header["pixel_format"] == "mono12"
    assert header["frame_number"] == 7 and header["timestamp"] == 1_700_000_000.5
    lo, hi = header["display"]
    assert 0 <= lo < hi <= 4095


def test_binary_layout() -> None:
    msg = pack_binary({"type": "frame", "a": 1}, b"\xff\xd8xyz")
    n = int.from_bytes(msg[:4], "big")
    assert json.loads(msg[4 : 4 + n]) == {"type": "frame", "a": 1} and msg[4 + n :] == b"\xff\xd8xyz"
