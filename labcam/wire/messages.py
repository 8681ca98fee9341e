"""Every message a labcam server sends, built in one place (docs/protocol.md).

Text messages are JSON (``dumps``: no NaN, value objects through their ``to_dict``); the binary ones
(frames, binary snaps) use the one envelope of ``labcam.wire.envelope``. A reply to a request that
carried a ``request_id`` carries it too (``with_request_id``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from .envelope import pack_binary
from .options import PROTOCOL_VERSION


def dumps(msg: Mapping[str, Any]) -> str:
    return json.dumps(msg, allow_nan=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def with_request_id(msg: dict[str, Any], request_id: Any) -> dict[str, Any]:
    """``msg`` answering a request: ``request_id`` added when the request carried one."""
    if request_id is not None:
        msg["request_id"] = request_id
    return msg


# -- the preview stream (ws/camera/stream) ---------------------------------------------------------
def connected_message(
    *, client_id: str, camera: dict[str, Any], settings: dict[str, Any], specs: dict[str, Any],
    stream: dict[str, Any], state: str,
) -> str:
    return dumps(
        {
            "type": "connected",
            "protocol": PROTOCOL_VERSION,
            "client_id": client_id,
            "camera": camera,
            "settings": settings,
            "specs": specs,
            "stream": stream,
            "state": state,
            "server_time": time.time(),
            "request_ids": True,  # replies carry the request's request_id (clients match by it)
        }
    )


def json_frame_message(header: Mapping[str, Any], jpeg: bytes) -> str:
    """A preview frame in ``json`` format: the header's fields plus ``data``, the base64 JPEG."""
    fields = {k: v for k, v in header.items() if k != "type"}
    data = base64.b64encode(jpeg).decode("ascii")
    # Spliced rather than json.dumps'ed with the data inside: base64 needs no escaping, and this
    # skips a scan of ~100 KB of text per frame.
    return '{"type": "frame", "data": "' + data + '", ' + json.dumps(fields)[1:]


def configured_message(stream: dict[str, Any], request_id: Any = None) -> str:
    return dumps(with_request_id({"type": "configured", "stream": stream}, request_id))


def settings_message(settings: dict[str, Any], request_id: Any = None) -> str:
    """A ``settings`` broadcast (no ``request_id``), or the reply to the client that asked."""
    return dumps(with_request_id({"type": "settings", "settings": settings}, request_id))


def status_message(state: str, message: str = "") -> str:
    return dumps({"type": "status", "state": state, "message": message})


def pong_message(ping_id: Any, request_id: Any = None) -> str:
    return dumps(with_request_id({"type": "pong", "id": ping_id, "server_time": time.time()}, request_id))


def error_message(message: str, request: str | None = None, request_id: Any = None) -> str:
    return dumps(with_request_id({"type": "error", "message": message, "request": request}, request_id))


def stats_message(stats: Mapping[str, Any]) -> str:
    return dumps({"type": "stats", **stats})


def snap_message(
    fmt_wire: str, encoding: str, data: bytes, header: dict[str, Any], request_id: Any = None
) -> str | bytes:
    """A ``snap`` reply: JSON text with base64 ``data``, or a binary message laid out like a frame."""
    fields = with_request_id({"type": "snap", "encoding": encoding, **header}, request_id)
    if fmt_wire == "binary":
        return pack_binary(fields, data)
    return dumps({**fields, "data": base64.b64encode(data).decode("ascii")})


def probe_message(
    region: tuple[int, int, int, int], values: list[Any], frame_number: int, bit_depth: int, request_id: Any = None
) -> str:
    """The answer to a ``probe``: the counts of ``region`` (x, y, w, h) of the latest frame, row-major
    (an ``[r, g, b]`` list per pixel for RGB)."""
    x, y, w, h = region
    msg = {"type": "probe", "x": x, "y": y, "w": w, "h": h, "values": values,
           "frame_number": frame_number, "bit_depth": bit_depth}
    return dumps(with_request_id(msg, request_id))


# -- recordings (the stream's record message and broadcasts) -----------------------------------------
def recording_message(
    status: Mapping[str, Any], *, event: str | None = None, reply: str | None = None, request_id: Any = None
) -> str:
    """``{"type": "recording", ...status}``: a broadcast (``event``) or the answer to a request
    (``reply``, with the request's ``request_id`` when it had one)."""
    head: dict[str, Any] = {"type": "recording"}
    if event is not None:
        head["event"] = event
    if reply is not None:
        head["reply"] = reply
    return dumps(with_request_id({**head, **status}, request_id))


def recordings_message(recordings: list[dict[str, Any]], max_active: int, request_id: Any = None) -> str:
    """The answer to ``{"type": "record", "action": "status"}`` without an id: every recording."""
    msg = {"type": "recordings", "reply": "status", "recordings": recordings, "max_active": max_active}
    return dumps(with_request_id(msg, request_id))


def record_error_message(message: str, action: Any = None, request_id: Any = None) -> str:
    """The protocol's ``error`` for a ``record`` request (``action`` added when known)."""
    msg: dict[str, Any] = {"type": "error", "message": message, "request": "record"}
    if isinstance(action, str):
        msg["action"] = action
    return dumps(with_request_id(msg, request_id))


# -- the raw frames (ws/camera/frames) ----------------------------------------------------------------
def raw_error_message(message: str) -> str:
    """What a raw-frame connection answers to a request it cannot take (the connection stays open)."""
    return json.dumps({"type": "error", "message": message})


__all__ = [
    "configured_message",
    "connected_message",
    "dumps",
    "error_message",
    "json_frame_message",
    "pong_message",
    "probe_message",
    "raw_error_message",
    "record_error_message",
    "recording_message",
    "recordings_message",
    "settings_message",
    "snap_message",
    "stats_message",
    "status_message",
    "with_request_id",
]
