"""The one binary envelope of every binary message: preview frames, snaps and raw frames.

::

    | N: uint32 big-endian | N bytes: UTF-8 JSON header | payload bytes |

The header says what the payload is (``"type"``: ``frame`` or ``snap``; ``encoding`` for images,
``dtype``/``shape`` for raw arrays). The JavaScript client splits messages the same way
(``parseBinaryMessage`` in ``labcam-client.js``).
"""

from __future__ import annotations

import json
import struct
from typing import Any

_LENGTH = struct.Struct(">I")

Buffer = bytes | bytearray | memoryview


def pack_binary(header: dict[str, Any], payload: Buffer) -> bytes:
    """One binary message: the header's length, the header as compact UTF-8 JSON, the payload.

    ``payload`` may be any buffer (a ``memoryview`` of an array is copied once, into the message).
    """
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return b"".join((_LENGTH.pack(len(head)), head, payload))


def split_binary(message: Buffer) -> tuple[dict[str, Any], memoryview, int]:
    """The header of a binary message, a view of the whole message and the payload's offset in it.

    No copy of the payload: ``view[offset:]`` is it. Raises ``ValueError`` for a message too short
    for its length prefix or header, or a header that is not a JSON object.
    """
    view = memoryview(message)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if len(view) < _LENGTH.size:
        raise ValueError(f"binary message too short ({len(view)} bytes)")
    (n,) = _LENGTH.unpack_from(view)
    start = _LENGTH.size + n
    if start > len(view):
        raise ValueError(f"binary message header length {n} exceeds the message ({len(view)} bytes)")
    header = json.loads(bytes(view[_LENGTH.size : start]))
    if not isinstance(header, dict):
        raise ValueError(f"binary message header is not a JSON object: {type(header).__name__}")
    return header, view, start


def unpack_binary(message: Buffer) -> tuple[dict[str, Any], bytes]:
    """The inverse of ``pack_binary``: the header and a copy of the payload (for clients and tests)."""
    header, view, start = split_binary(message)
    return header, bytes(view[start:])


__all__ = ["pack_binary", "split_binary", "unpack_binary"]
