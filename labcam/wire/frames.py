"""Frame headers: what every frame message says about its frame, and the raw-frame codec.

Three kinds of message carry a frame, and each header has ``bit_depth`` (the significant bits per
sample), so no client has to guess it from the pixel format:

- a preview ``frame`` (``preview_header``): an 8-bit JPEG of the frame, for eyes;
- a ``snap`` reply (``snap_header``): the full-resolution frame, PNG/TIFF/NPY/JPEG;
- a raw frame of ``ws/camera/frames`` (``encode_raw_frame``/``decode_raw_frame``): the array's own
  bytes, what ``labcam.connect()`` reads.

This module needs numpy and ``labcam.frame`` only: a ``connect()`` kernel decodes raw frames without
loading the server, the preview encoder or simplejpeg.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..frame import PIXEL_FORMATS, Frame, FrameMeta
from .envelope import Buffer, pack_binary, split_binary


def bit_depth_of(pixel_format: str, default: int = 16) -> int:
    """Significant bits per sample of ``pixel_format`` (``default`` for a format labcam does not know)."""
    return PIXEL_FORMATS.get(pixel_format, default)


def preview_header(
    frame: Frame,
    width: int,
    height: int,
    display: tuple[int, int],
    *,
    encoding: str = "jpeg",
    view: tuple[int, int, int, int] | None = None,
    clamped: bool = False,
    histogram: Mapping[str, Any] | None = None,
    saturated: int | None = None,
    raw: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A preview ``frame`` message's fields (without ``data``): ``width``/``height`` are the encoded
    image's, ``display`` the (low, high) counts mapped to black and white.

    ``view``: the sensor region sent (default: the whole frame), ``clamped`` whether the asked one
    had to change; ``histogram`` (``{"bins", "range"}``) and ``saturated``: the camera's counts of
    the view; ``raw``: a raw payload's fields (``dtype``, ``shuffle``, ``compression``, ``level``,
    ``channels``). ``sensor`` is the frame's own size (the camera's ROI).
    """
    meta = frame.meta
    header: dict[str, Any] = {
        "type": "frame",
        "encoding": encoding,
        "timestamp": meta.timestamp,
        "frame_number": meta.frame_number,
        "width": int(width),
        "height": int(height),
        "source_width": frame.width,
        "source_height": frame.height,
        "pixel_format": meta.pixel_format,
        "bit_depth": bit_depth_of(meta.pixel_format, frame.array.dtype.itemsize * 8),
        "display": [display[0], display[1]],
        "exposure_ms": meta.exposure_ms,
        "gain_db": meta.gain_db,
        "view": [int(v) for v in view] if view is not None else [0, 0, frame.width, frame.height],
        "sensor": [frame.width, frame.height],
    }
    if histogram is not None:
        header["histogram"] = dict(histogram)
    if saturated is not None:
        header["saturated"] = int(saturated)
    if clamped:
        header["clamped"] = True
    if raw is not None:
        header.update(raw)
    return header


def snap_header(frame: Frame) -> dict[str, Any]:
    """A ``snap`` reply's frame fields (the reply adds ``type``, ``encoding`` and ``data``)."""
    m = frame.meta
    return {
        "frame_number": m.frame_number,
        "timestamp": m.timestamp,
        "width": frame.width,
        "height": frame.height,
        "pixel_format": m.pixel_format,
        "bit_depth": m.bit_depth,
        "exposure_ms": m.exposure_ms,
        "gain_db": m.gain_db,
        "roi": list(m.roi),
        "camera_serial": m.camera_serial,
    }


def encode_raw_frame(frame: Frame, *, missed: int = 0, index: int | None = None) -> bytes:
    """One raw-frame message for ``frame``: the envelope's header, then the array's bytes (C order).

    The array is copied once (into the message); its dtype string keeps the byte order, so the
    client rebuilds exactly the same numbers on any machine.
    """
    array = np.ascontiguousarray(frame.array)
    m = frame.meta
    header: dict[str, Any] = {
        "type": "frame",
        "frame_number": m.frame_number,
        "timestamp": m.timestamp,
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "pixel_format": m.pixel_format,
        "bit_depth": bit_depth_of(m.pixel_format, array.dtype.itemsize * 8),
        "exposure_ms": m.exposure_ms,
        "gain_db": m.gain_db,
        "roi": list(m.roi),
        "camera_serial": m.camera_serial,
        "dropped_before": m.dropped_before,
        "missed": missed,
    }
    if index is not None:
        header["index"] = index
    return pack_binary(header, memoryview(array).cast("B"))


def decode_raw_frame(message: Buffer) -> tuple[Frame, dict[str, Any]]:
    """The ``Frame`` in a message made by ``encode_raw_frame``, and the whole header.

    The array is a read-only view of ``message`` (no copy), like frames shared by the engine.
    Raises ``ValueError`` for a message that is not a raw frame.
    """
    try:
        header, view, start = split_binary(message)
    except ValueError as exc:
        raise ValueError(f"raw frame: {exc}") from None
    if header.get("type") != "frame":
        raise ValueError(f"not a raw frame message: type={header.get('type')!r}")
    dtype = np.dtype(header["dtype"])
    shape = tuple(int(s) for s in header["shape"])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(view) - start != expected:
        raise ValueError(
            f"raw frame payload is {len(view) - start} bytes, header says {shape} {dtype} ({expected} bytes)"
        )
    array = np.frombuffer(view, dtype=dtype, offset=start).reshape(shape)
    meta = FrameMeta(
        frame_number=int(header["frame_number"]),
        timestamp=float(header["timestamp"]),
        exposure_ms=float(header["exposure_ms"]),
        gain_db=float(header["gain_db"]),
        roi=tuple(int(v) for v in header["roi"]),  # type: ignore[arg-type]
        pixel_format=str(header["pixel_format"]),
        camera_serial=str(header.get("camera_serial", "")),
        dropped_before=int(header.get("dropped_before", 0)),
    )
    return Frame(array, meta), header


__all__ = ["bit_depth_of", "decode_raw_frame", "encode_raw_frame", "preview_header", "snap_header"]
