"""JPEG encoding of previews (simplejpeg).

simplejpeg (libjpeg-turbo) releases the GIL while it encodes, so previews encode in parallel on a
small thread pool (2 threads ran ~1.9x faster than one here; Pillow's JPEG encoder does not scale
that way, see ``benchmarks/bench_stream.py``). Mono previews are encoded as one GRAY channel, a
third of the work and bytes of an RGB JPEG of the same picture. Full-resolution snapshots, JPEG
among them, are ``labcam.snapshots``.
"""

from __future__ import annotations

import numpy as np
import simplejpeg


def encode_jpeg(image: np.ndarray, quality: int, *, fastdct: bool = True) -> bytes:
    """Encode a C-contiguous uint8 image, (H, W) mono or (H, W, 3) RGB, as JPEG.

    ``fastdct`` trades ~5 % speed for a loss of quality nobody sees in a live preview.
    """
    if image.ndim == 2:
        return simplejpeg.encode_jpeg(image[:, :, None], quality, "GRAY", fastdct=fastdct)
    return simplejpeg.encode_jpeg(image, quality, "RGB", colorsubsampling="420", fastdct=fastdct)


__all__ = ["encode_jpeg"]
