"""Preview: engine frames → 8-bit display images → JPEG, once per variant, shared by every viewer.

``display`` maps a frame to 8 bits (decimate first, integer maths); ``jpeg`` encodes (simplejpeg);
``variants`` is the fan-out hub the server streams from. Nothing here knows about the network:
the server builds on it, never the other way round. (Full-resolution snapshots: ``labcam.snapshots``.)
"""

from __future__ import annotations

from .display import DisplayMapper, auto_range, decimate, decimation_step, to_display
from .jpeg import encode_jpeg
from .variants import EncodedFrame, PreviewHub, Variant, encode_frame

__all__ = [
    "DisplayMapper",
    "EncodedFrame",
    "PreviewHub",
    "Variant",
    "auto_range",
    "decimate",
    "decimation_step",
    "encode_frame",
    "encode_jpeg",
    "to_display",
]
