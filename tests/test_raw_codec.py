"""Raw-mode payloads (labcam.preview.raw, docs/raw-mode.md): exact round trips, the byte layout
another language relies on, refusal of corrupt payloads, and the browser's decoder
(labcam/web/labcam-raw.js, served by a real labcam server) in headless Chromium."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from typing import Any

import lz4.frame
import numpy as np
import pytest
import zstandard
from browser_page import chromium_page

from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.raw import RAW_COMPRESSIONS, byte_shuffle, byte_unshuffle, decode_raw, encode_raw

COMPRESSIONS = list(RAW_COMPRESSIONS)


def specimen(bit_depth: int, width: int = 640, height: int = 480) -> np.ndarray:
    fmt = {8: "mono8", 12: "mono12", 16: "mono16"}[bit_depth]
    return SimulatedCamera(width=width, height=height, pixel_format=fmt, seed=3).expected_frame(7)


def rng_pixels(shape: tuple[int, ...], bit_depth: int, seed: int = 0) -> np.ndarray:
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    return np.random.default_rng(seed).integers(0, 1 << bit_depth, shape, dtype=dtype)


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("bit_depth", [8, 12, 16])
def test_round_trip_is_exact(compression: str, shuffle: bool, bit_depth: int) -> None:
    pixels = specimen(bit_depth)
    payload, header = encode_raw(pixels, bit_depth, compression=compression, shuffle=shuffle)  # type: ignore[arg-type]
    out = decode_raw(header, payload)
    assert out.dtype == pixels.dtype and out.shape == pixels.shape
    np.testing.assert_array_equal(out, pixels)
    assert header["encoding"] == "raw"
    assert header["dtype"] == ("uint8" if bit_depth == 8 else "uint16")
    assert (header["width"], header["height"], header["channels"]) == (640, 480, 1)
    assert header["bit_depth"] == bit_depth and header["compression"] == compression
    # 8-bit pixels have one byte: there is nothing to shuffle, and the header says so.
    assert header["shuffle"] is (shuffle and bit_depth > 8)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (13, 1), (7, 13), (333, 517)])
def test_odd_sizes_round_trip(compression: str, shape: tuple[int, int]) -> None:
    for bit_depth, shuffle in ((12, True), (16, False), (8, False)):
        pixels = rng_pixels(shape, bit_depth)
        payload, header = encode_raw(pixels, bit_depth, compression=compression, shuffle=shuffle)  # type: ignore[arg-type]
        np.testing.assert_array_equal(decode_raw(header, payload), pixels)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_a_cropped_view_is_encoded_as_its_own_pixels(compression: str, shuffle: bool) -> None:
    sensor = specimen(12, 1280, 1024)
    sensor.flags.writeable = False  # engine frames are read-only; the encoder only reads
    view = sensor[101:434, 57:574]  # 333 x 517, not contiguous
    assert not view.flags.c_contiguous
    payload, header = encode_raw(view, 12, compression=compression, shuffle=shuffle)  # type: ignore[arg-type]
    assert (header["width"], header["height"]) == (517, 333)
    np.testing.assert_array_equal(decode_raw(header, payload), view)


def test_strided_and_big_endian_input_gives_the_same_payload() -> None:
    pixels = rng_pixels((64, 96), 16, seed=5)
    big_endian = pixels.astype(">u2")
    strided = np.repeat(pixels, 2, axis=1)[:, ::2]  # same values, every other column
    for shuffle in (True, False):
        want, header = encode_raw(pixels, 16, compression="none", shuffle=shuffle)
        for other in (big_endian, strided):
            got, _ = encode_raw(other, 16, compression="none", shuffle=shuffle)
            assert bytes(got) == bytes(want)
        np.testing.assert_array_equal(decode_raw(header, want), pixels)


def test_rgb8_round_trips_with_three_interleaved_channels() -> None:
    pixels = rng_pixels((31, 45, 3), 8)
    payload, header = encode_raw(pixels, 8, compression="deflate")
    assert header["channels"] == 3 and not header["shuffle"]
    np.testing.assert_array_equal(decode_raw(header, payload), pixels)


@pytest.mark.parametrize("compression,level", [("deflate", 0), ("deflate", 3), ("deflate", 6), ("zstd", 3), ("lz4", 9)])
def test_levels_round_trip_and_are_reported(compression: str, level: int) -> None:
    pixels = specimen(12)
    payload, header = encode_raw(pixels, 12, compression=compression, level=level)  # type: ignore[arg-type]
    assert header["level"] == level
    np.testing.assert_array_equal(decode_raw(header, payload), pixels)


def test_byte_shuffle_helpers_are_inverse() -> None:
    pixels = rng_pixels((9, 11), 16)
    planes = byte_shuffle(pixels[:, 1:])
    assert planes.shape == (2, 9, 10) and planes.flags.c_contiguous
    np.testing.assert_array_equal(byte_unshuffle(planes.tobytes(), (9, 10)), pixels[:, 1:])


# -- the payload layout, read with nothing but the codec (what another language does) --------------


def test_deflate_shuffled_payload_is_low_bytes_then_high_bytes_in_one_zlib_stream() -> None:
    pixels = specimen(12)
    payload, header = encode_raw(pixels, 12)  # the default payload
    assert (header["compression"], header["shuffle"], header["level"]) == ("deflate", True, 1)
    raw = zlib.decompress(payload)  # the standard zlib format: 2-byte header, deflate, adler-32
    n = pixels.size
    assert len(raw) == 2 * n
    assert raw[:n] == (pixels & 0xFF).astype(np.uint8).tobytes()
    assert raw[n:] == (pixels >> 8).astype(np.uint8).tobytes()


@pytest.mark.parametrize("compression", ["none", "zstd", "lz4"])
def test_unshuffled_payload_is_row_major_little_endian(compression: str) -> None:
    pixels = rng_pixels((20, 30), 16)
    payload, _ = encode_raw(pixels, 16, compression=compression, shuffle=False)  # type: ignore[arg-type]
    plain = {
        "none": bytes,
        "zstd": zstandard.ZstdDecompressor().decompress,
        "lz4": lz4.frame.decompress,
    }[compression](payload)
    assert plain == pixels.astype("<u2").tobytes()
    if compression == "zstd":
        assert zstandard.frame_content_size(payload) == pixels.nbytes  # one frame that states its size


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pixels,bit_depth,kwargs,match",
    [
        (np.zeros((4, 4), np.uint16), 8, {}, "bit depth 8 must be uint8"),
        (np.zeros((4, 4), np.uint8), 12, {}, "must be uint16"),
        (np.zeros((4, 4), np.int16), 12, {}, "must be uint16"),
        (np.zeros((4, 4), np.uint16), 17, {}, "bit_depth=17"),
        (np.zeros((4, 4, 2), np.uint8), 8, {}, r"\(H, W\) or \(H, W, 3\)"),
        (np.zeros((0, 4), np.uint8), 8, {}, "sides 1 to"),
        (np.zeros((4, 4), np.uint16), 12, {"compression": "brotli"}, "compression='brotli'"),
        (np.zeros((4, 4), np.uint16), 12, {"compression": "deflate", "level": 10}, "from 0 to 9"),
        (np.zeros((4, 4), np.uint16), 12, {"compression": "zstd", "level": 0}, "from 1 to 22"),
        (np.zeros((4, 4), np.uint16), 12, {"shuffle": 1}, "shuffle=1"),
        ([[1, 2]], 8, {}, "numpy array"),
    ],
)
def test_bad_encode_arguments_raise_value_error(pixels: Any, bit_depth: int, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_raw(pixels, bit_depth, **kwargs)


def _corruptions(payload: bytes) -> dict[str, bytes]:
    n = len(payload)
    return {
        "empty": b"",
        "truncated by one byte": payload[:-1],
        "truncated by half": payload[: n // 2],
        "one byte too many": payload + b"\0",
        "zeroed": bytes(n),
        "garbage after the first bytes": payload[:12] + bytes(range(256)) * (n // 256 + 1),
    }


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_corrupt_or_truncated_payloads_raise_value_error(compression: str, shuffle: bool) -> None:
    pixels = specimen(12)
    payload, header = encode_raw(pixels, 12, compression=compression, shuffle=shuffle)  # type: ignore[arg-type]
    payload = bytes(payload)
    for what, bad in _corruptions(payload).items():
        if compression == "none" and what == "zeroed":
            continue  # same size, other values: nothing in an uncompressed payload can tell
        with pytest.raises(ValueError, match="raw payload"):
            decode_raw(header, bad)
            pytest.fail(f"{compression}: a payload {what} was accepted")


@pytest.mark.parametrize("compression", ["deflate", "zstd", "lz4"])
def test_a_payload_larger_than_its_header_says_is_refused(compression: str) -> None:
    big = rng_pixels((64, 64), 12)
    payload, header = encode_raw(big, 12, compression=compression)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="raw payload"):
        decode_raw({**header, "height": 32}, payload)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"encoding": "jpeg"}, "encoding='jpeg'"),
        ({"dtype": "float32"}, "dtype='float32'"),
        ({"dtype": "uint8"}, "does not carry bit_depth 12"),
        ({"compression": "br"}, "compression='br'"),
        ({"width": 0}, "width=0"),
        ({"height": 1.5}, "height=1.5 must be int"),
        ({"width": True}, "width=True must be int"),
        ({"shuffle": "yes"}, "shuffle='yes' must be bool"),
        ({"bit_depth": 20}, "bit_depth=20"),
        ({"channels": 2}, "channels=2"),
    ],
)
def test_bad_headers_raise_value_error(change: dict[str, Any], match: str) -> None:
    payload, header = encode_raw(rng_pixels((8, 8), 12), 12)
    with pytest.raises(ValueError, match=match):
        decode_raw({**header, **change}, payload)
    missing = {k: v for k, v in header.items() if k != "width"}
    with pytest.raises(ValueError, match="width=None"):
        decode_raw(missing, payload)


def test_shuffled_uint8_header_is_refused() -> None:
    payload, header = encode_raw(rng_pixels((8, 8), 8), 8)
    with pytest.raises(ValueError, match="shuffle must be false"):
        decode_raw({**header, "shuffle": True}, payload)


# -- the browser decodes what the server encodes ------------------------------------------------------

DECODE_IN_PAGE = """async ([modUrl, header, b64]) => {
  const { decodeRaw } = await import(modUrl);
  const payload = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  let pixels;
  try {
    pixels = await decodeRaw(header, payload);
  } catch (err) {
    return { error: err.message };
  }
  const bytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { type: pixels.constructor.name, length: pixels.length, b64: btoa(text) };
}"""


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Any]:
    with chromium_page() as page:
        yield page


def _decode_in_browser(page: Any, base_url: str, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
    page.goto(base_url + "static/labcam-raw.js")  # any page of the server's origin, so the import is same-origin
    module_url = base_url + "static/labcam-raw.js"
    return page.evaluate(DECODE_IN_PAGE, [module_url, header, base64.b64encode(payload).decode()])


def test_chromium_decodes_the_default_payload_to_the_same_counts(browser_page: Any, server: Any) -> None:
    """The path the JavaScript client will take: DecompressionStream('deflate') + the in-page
    unshuffle of labcam-raw.js, as served by labcam, on a cropped 12-bit specimen frame."""
    view = specimen(12, 1280, 1024)[101:434, 57:574]
    payload, header = encode_raw(view, 12)
    assert (header["compression"], header["shuffle"]) == ("deflate", True)
    result = _decode_in_browser(browser_page, server.url, dict(header), bytes(payload))
    assert "error" not in result, result
    assert result["type"] == "Uint16Array" and result["length"] == view.size
    decoded = np.frombuffer(base64.b64decode(result["b64"]), "<u2").reshape(view.shape)
    np.testing.assert_array_equal(decoded, view)


def test_chromium_decodes_unshuffled_16_bit_and_8_bit_payloads(browser_page: Any, server: Any) -> None:
    for bit_depth, compression, shuffle, dtype, js_type in (
        (16, "deflate", False, "<u2", "Uint16Array"),
        (16, "none", False, "<u2", "Uint16Array"),
        (8, "deflate", False, "u1", "Uint8Array"),
    ):
        pixels = specimen(bit_depth, 320, 240)
        payload, header = encode_raw(pixels, bit_depth, compression=compression, shuffle=shuffle)  # type: ignore[arg-type]
        result = _decode_in_browser(browser_page, server.url, dict(header), bytes(payload))
        assert result.get("type") == js_type, result
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(result["b64"]), dtype).reshape(pixels.shape), pixels)


def test_chromium_rejects_corrupt_payloads_with_a_clear_error(browser_page: Any, server: Any) -> None:
    pixels = specimen(12, 320, 240)
    payload, header = encode_raw(pixels, 12)
    payload = bytes(payload)
    cases = {
        "truncated": (dict(header), payload[:-5], "deflate"),
        "too long for the header": ({**header, "height": 120}, payload, "more than"),
        "corrupt": (dict(header), payload[:2] + bytes(len(payload) - 2), "deflate"),
        "zstd without a decoder": ({**header, "compression": "zstd"}, payload, "need a decoder"),
        "bad header": ({**header, "dtype": "uint8"}, payload, "bit_depth 12"),
    }
    for what, (hdr, data, words) in cases.items():
        result = _decode_in_browser(browser_page, server.url, hdr, data)
        assert "error" in result, f"{what}: the browser accepted it"
        assert words in result["error"] and result["error"].startswith("raw payload"), (what, result["error"])
