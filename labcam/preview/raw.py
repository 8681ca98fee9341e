"""Raw mode payloads: ``labcam.wire.rawcodec`` under its first name (the codec is part of the wire
format, so a ``connect()`` client can decode it without loading the preview encoder)."""

from __future__ import annotations

from ..wire import rawcodec as _codec
from ..wire.rawcodec import (
    RAW_COMPRESSIONS,
    RAW_DEFAULTS,
    RawHeader,
    byte_shuffle,
    byte_unshuffle,
    decode_raw,
    encode_raw,
)

__all__ = _codec.__all__
