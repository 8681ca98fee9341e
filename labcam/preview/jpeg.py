"""Image encoding: JPEG previews (simplejpeg) and lossless snapshots (PNG, TIFF, NPY).

simplejpeg (libjpeg-turbo) releases the GIL while it encodes, so previews encode in parallel on a
small thread pool (2 threads ran ~1.9x faster than one here; Pillow's JPEG encoder does not scale
that way, see ``benchmarks/bench_stream.py``). Mono previews are encoded as one GRAY channel, a
third of the work and bytes of an RGB JPEG of the same picture.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import simplejpeg

from ..frame import Frame
from ..wire import SNAP_FORMATS
from .display import DisplayRange, to_display

def encode_jpeg(image: np.ndarray, quality: int, *, fastdct: bool = True) -> bytes:
    """Encode a C-contiguous uint8 image, (H, W) mono or (H, W, 3) RGB, as JPEG.

    ``fastdct`` trades ~5 % speed for a loss of quality nobody sees in a live preview.
    """
    if image.ndim == 2:
        return simplejpeg.encode_jpeg(image[:, :, None], quality, "GRAY", fastdct=fastdct)
    return simplejpeg.encode_jpeg(image, quality, "RGB", colorsubsampling="420", fastdct=fastdct)


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
        from PIL import Image

        # Pillow picks "I;16" for uint16 and "L"/"RGB" for uint8; compress_level 1 because a
        # 4 MP 16-bit frame at the default level takes several times longer for ~10 % fewer bytes.
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    elif fmt == "tiff":
        import tifffile

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


__all__ = ["encode_jpeg", "encode_snapshot"]
