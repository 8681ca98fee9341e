"""Raw mode payloads: a view's pixels at full bit depth, lossless, and the matching decoder.

Part of the wire format (a raw preview frame's payload), so it lives here: the server encodes with
it, and a ``connect()`` client (``RemoteCamera.preview``) decodes with it without loading the
preview encoder. ``labcam.wire`` does not import this module itself (it needs the codec libraries
python-isal, zstandard and lz4); ``labcam.preview.raw`` re-exports it.

The payload (docs/raw-mode.md specifies it byte for byte) is the pixels in row-major order as
little-endian ``uint8`` (bit depth <= 8) or ``uint16``, optionally byte-shuffled (every pixel's low
byte, then every pixel's high byte) and then compressed as one deflate stream in the zlib format, one
zstd frame or one lz4 frame, or not at all. The frame header says how (``RawHeader``).

Why shuffle: a 12-bit sensor's high bytes take 16 values and its low bytes are mostly noise; kept
apart, the compressor finds the high-byte plane almost free (ratio 1.37 -> 1.70 for deflate-1 on
the simulated specimen, and the encode gets faster). The shuffle is two whole-array integer
operations (a cast to uint8 keeps the low byte, a shift right by 8 gives the high one). They read a
cropped view in place, in half the time of gathering the bytes through a strided
``view(np.uint8)`` copy (measured in ``benchmarks/bench_raw_codecs.py``). Deflate goes through
python-isal (ISA-L) at levels 0-3: the same zlib format as the standard library, about seven times
faster to encode.

The decoder is pure numpy plus the codec libraries, for Python clients. It trusts nothing: the
header's fields are checked, the decompressed size must be exactly width x height x channels x
bytes per sample (decompression stops one byte past it, so a forged stream cannot balloon), and a
corrupt, truncated or over-long payload raises ``ValueError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import lz4.frame
import numpy as np
import zstandard
from isal import isal_zlib

__all__ = [
    "RAW_COMPRESSIONS",
    "RAW_DEFAULTS",
    "RawHeader",
    "byte_shuffle",
    "byte_unshuffle",
    "decode_raw",
    "encode_raw",
]

Compression = Literal["none", "deflate", "zstd", "lz4"]

RAW_COMPRESSIONS: dict[str, tuple[int, int]] = {
    "none": (0, 0),
    "deflate": (0, 9),
    "zstd": (1, 22),
    "lz4": (0, 16),
}
"""Each ``compression`` with its allowed ``level`` range (inclusive)."""

RAW_DEFAULTS: dict[str, Any] = {"compression": "deflate", "level": 1, "shuffle": True}
"""The default payload: byte shuffle + deflate level 1 (chosen by measurement, docs/raw-mode.md).
Chromium, Firefox and Safari inflate it natively (``DecompressionStream("deflate")``)."""

_DEFAULT_LEVELS = {"none": 0, "deflate": 1, "zstd": 1, "lz4": 0}
_ISAL_MAX_LEVEL = 3  # ISA-L implements deflate levels 0-3; higher levels fall back to zlib.
_MAX_SIDE = 65535  # a decoder refuses headers beyond this before it allocates anything
_CHANNELS = (1, 3)


class RawHeader(TypedDict):
    """The frame-header fields of a raw payload (the server adds type, frame number, view, ...)."""

    encoding: Literal["raw"]
    dtype: Literal["uint8", "uint16"]
    shuffle: bool
    compression: Compression
    level: int
    width: int
    height: int
    channels: int
    bit_depth: int


def byte_shuffle(pixels: np.ndarray) -> np.ndarray:
    """A new C-contiguous (2, *shape) uint8 array: the low bytes of ``pixels`` (uint16, any byte order,
    any strides), then their high bytes. Its buffer is the shuffled payload before compression."""
    planes = np.empty((2, *pixels.shape), np.uint8)
    # Casting by value, so it is byte-order independent and reads a strided view in place.
    np.copyto(planes[0], pixels, casting="unsafe")
    np.right_shift(pixels, 8, out=planes[1], casting="unsafe")
    return planes


def byte_unshuffle(planes: bytes | bytearray | memoryview, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``byte_shuffle``: a native-order uint16 array of ``shape``."""
    n = int(np.prod(shape))
    b = np.frombuffer(planes, np.uint8, count=2 * n)
    out = (b[n:].astype(np.uint16) << 8).reshape(shape)
    out |= b[:n].reshape(shape)
    return out


def _check_level(compression: str, level: int | None) -> int:
    if compression not in RAW_COMPRESSIONS:
        raise ValueError(f"compression={compression!r}: must be one of {', '.join(RAW_COMPRESSIONS)}")
    if level is None:
        return _DEFAULT_LEVELS[compression]
    lo, hi = RAW_COMPRESSIONS[compression]
    if isinstance(level, bool) or not isinstance(level, int) or not lo <= level <= hi:
        raise ValueError(f"level={level!r}: {compression} takes an integer level from {lo} to {hi}")
    return level


def _check_pixels(pixels: Any, bit_depth: int) -> np.dtype:
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"pixels must be a numpy array, not {type(pixels).__name__}")
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or not 1 <= bit_depth <= 16:
        raise ValueError(f"bit_depth={bit_depth!r}: must be an integer from 1 to 16")
    want = np.dtype(np.uint8 if bit_depth <= 8 else np.uint16)
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize != want.itemsize:
        raise ValueError(f"pixels of bit depth {bit_depth} must be {want.name}, not {pixels.dtype}")
    ok_shape = pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in _CHANNELS)
    if not ok_shape or 0 in pixels.shape[:2] or max(pixels.shape[:2]) > _MAX_SIDE:
        raise ValueError(f"pixels of shape {pixels.shape}: must be (H, W) or (H, W, 3), sides 1 to {_MAX_SIDE}")
    return want


def _compress(data: memoryview, compression: str, level: int) -> bytes:
    if compression == "deflate":
        if level <= _ISAL_MAX_LEVEL:
            return isal_zlib.compress(data, level)
        return zlib.compress(data, level)
    if compression == "zstd":
        # A fresh context per call: encodes run on several worker threads and a context is not
        # thread-safe. It costs ~20 us. The frame records its content size (the decoder checks it).
        return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)
    return lz4.frame.compress(data, compression_level=level, store_size=True)


def encode_raw(
    pixels: np.ndarray,
    bit_depth: int,
    *,
    compression: Compression = RAW_DEFAULTS["compression"],
    level: int | None = None,
    shuffle: bool = RAW_DEFAULTS["shuffle"],
) -> tuple[bytes | memoryview, RawHeader]:
    """Encode ``pixels`` ((H, W) or (H, W, 3); uint8 for ``bit_depth`` <= 8, else uint16; any byte
    order; a cropped view is fine and is not copied first) as a raw payload.

    ``level`` None takes the compression's default (deflate 1, zstd 1, lz4 0). ``shuffle`` applies to
    16-bit pixels only: 8-bit payloads are never shuffled and say ``shuffle: false``.
    Returns the payload (bytes, or for ``compression="none"`` a memoryview that may share the input's
    memory) and its header fields. Raises ValueError on bad arguments.
    """
    dtype = _check_pixels(pixels, bit_depth)
    level = _check_level(compression, level)
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle={shuffle!r}: must be true or false")
    shuffle = shuffle and dtype.itemsize == 2
    if shuffle:
        data = byte_shuffle(pixels)
    else:
        data = np.ascontiguousarray(pixels, dtype=dtype.newbyteorder("<"))
    buf = data.data.cast("B")  # the array's own buffer: no copy
    payload = buf if compression == "none" else _compress(buf, compression, level)
    header: RawHeader = {
        "encoding": "raw",
        "dtype": "uint8" if dtype.itemsize == 1 else "uint16",
        "shuffle": shuffle,
        "compression": compression,
        "level": level,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "channels": int(pixels.shape[2]) if pixels.ndim == 3 else 1,
        "bit_depth": bit_depth,
    }
    return payload, header


# -- decoding (Python clients) --------------------------------------------------------------------


def _field(header: Mapping[str, Any], name: str, kind: type, allowed: Any = None) -> Any:
    value = header.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"raw header: {name}={value!r} must be {kind.__name__}")
    if allowed is not None and value not in allowed:
        shown = f"{allowed.start} to {allowed.stop - 1}" if isinstance(allowed, range) else ", ".join(map(str, allowed))
        raise ValueError(f"raw header: {name}={value!r} must be one of {shown}")
    return value


def _decompress(payload: bytes | bytearray | memoryview, compression: str, size: int) -> bytes:
    """Exactly ``size`` decompressed bytes, or ValueError. Output stops at ``size + 1`` bytes."""
    try:
        if compression == "deflate":
            d = isal_zlib.decompressobj()
            out = d.decompress(payload, size + 1)
            ended, extra = d.eof, d.unused_data
        elif compression == "zstd":
            claimed = zstandard.frame_content_size(payload)
            if claimed != size:  # -1: a frame that does not state its size (labcam's always do)
                held = "does not state its size" if claimed < 0 else f"holds {claimed} bytes"
                raise ValueError(f"raw payload: the zstd frame {held}, the header says {size} bytes")
            z = zstandard.ZstdDecompressor().decompressobj()
            out = z.decompress(payload)
            ended, extra = z.eof, z.unused_data
        else:
            f = lz4.frame.LZ4FrameDecompressor()
            out = f.decompress(payload, max_length=size + 1)
            ended, extra = f.eof, f.unused_data
    except ValueError:
        raise
    # (isal's type stub declares ``error`` as an instance, not a class: hence the ignore)
    except (isal_zlib.error, zstandard.ZstdError, RuntimeError) as exc:  # type: ignore[misc]
        raise ValueError(f"raw payload: corrupt {compression} data ({exc})") from exc
    if len(out) > size:
        raise ValueError(f"raw payload: {compression} data decompress to more than the {size} bytes the header says")
    if len(out) < size:
        raise ValueError(f"raw payload: {compression} data truncated: {len(out)} of {size} bytes")
    if not ended:
        raise ValueError(f"raw payload: {compression} data truncated: the stream stops before its end mark")
    if extra:
        raise ValueError(f"raw payload: {len(extra)} bytes after the end of the {compression} data")
    return out


def decode_raw(header: Mapping[str, Any], payload: bytes | bytearray | memoryview) -> np.ndarray:
    """The pixels of a raw payload: a new (H, W) or (H, W, channels) uint8/uint16 array in native
    byte order. Raises ValueError naming the problem for a bad header or a corrupt, truncated or
    over-long payload."""
    if header.get("encoding") != "raw":
        raise ValueError(f"raw header: encoding={header.get('encoding')!r} must be 'raw'")
    dtype_name = _field(header, "dtype", str, ("uint8", "uint16"))
    compression = _field(header, "compression", str, tuple(RAW_COMPRESSIONS))
    shuffle = _field(header, "shuffle", bool)
    width = _field(header, "width", int, range(1, _MAX_SIDE + 1))
    height = _field(header, "height", int, range(1, _MAX_SIDE + 1))
    channels = _field(header, "channels", int, _CHANNELS) if "channels" in header else 1
    bit_depth = _field(header, "bit_depth", int, range(1, 17))
    itemsize = 1 if dtype_name == "uint8" else 2
    if (bit_depth <= 8) != (itemsize == 1):
        raise ValueError(f"raw header: dtype {dtype_name} does not carry bit_depth {bit_depth}")
    if shuffle and itemsize == 1:
        raise ValueError("raw header: shuffle must be false for uint8 pixels")
    shape = (height, width, channels) if channels > 1 else (height, width)
    size = height * width * channels * itemsize
    if compression == "none":
        if len(payload) != size:
            raise ValueError(f"raw payload: want {size} bytes, got {len(payload)}")
        data: bytes | bytearray | memoryview = payload
    else:
        data = _decompress(payload, compression, size)
    if shuffle:
        return byte_unshuffle(data, shape)
    return np.frombuffer(data, np.dtype(dtype_name).newbyteorder("<")).reshape(shape).astype(dtype_name)
