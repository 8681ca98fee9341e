"""Snapshots: one full-resolution frame as a file to download (PNG, TIFF, NPY or JPEG).

Unlike previews (``labcam.preview``: 8-bit, decimated, for the eye), PNG, TIFF and NPY keep the
frame's values as they are, 16-bit frames included; JPEG is an 8-bit display image of the full
frame. The server's snap request and REST endpoint and the widget's snapshot button use this.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from .frame import Frame
from .preview.display import DisplayRange, to_display
from .preview.jpeg import encode_jpeg
from .wire.snapshots import SNAP_EXTENSIONS, SNAP_FORMATS

def encode_snapshot(
    frame: Frame, fmt: str, *, quality: int = 95, display: DisplayRange | None = None
) -> bytes:
    """Encode a full-resolution frame for download.

    ``png``: 8-bit or 16-bit grey (12/16-bit values kept as they are), or RGB. ``tiff``: the array
    as is, with the frame metadata as JSON in the image description. ``npy``: ``numpy.save`` of the
    array. ``jpeg``: an 8-bit display image (``display``: None for auto, or a (low, high) window).
    Raises ``ValueError`` for an unknown format.
    """
    array = frame.array
    if fmt == "jpeg":
        image, _ = to_display(array, frame.meta.bit_depth, display=display)
        return encode_jpeg(np.ascontiguousarray(image), quality, fastdct=False)
    buf = io.BytesIO()
    if fmt == "png":
        # Pillow picks "I;16" for uint16 and "L"/"RGB" for uint8; compress_level 1 because a
        # 4 MP 16-bit frame at the default level takes several times longer for ~10 % fewer bytes.
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    elif fmt == "tiff":
        meta: dict[str, Any] = frame.meta.to_dict()
        tifffile.imwrite(
            buf,
            array,
            photometric="rgb" if array.ndim == 3 else "minisblack",
            description=json.dumps(meta),
            metadata=None,
        )
    elif fmt == "npy":
        np.save(buf, np.asarray(array), allow_pickle=False)
    else:
        raise ValueError(f"format={fmt!r} is not allowed: one of {', '.join(SNAP_FORMATS)}")
    return buf.getvalue()


__all__ = ["SNAP_EXTENSIONS", "SNAP_FORMATS", "encode_snapshot"]
