"""The wire format: what labcam's server, clients and widget say to each other (docs/protocol.md).

A neutral layer below ``labcam.preview``, ``labcam.server``, ``labcam.remote`` and
``labcam.widget``: it imports only the standard library, numpy and ``labcam.frame``, so a
``connect()`` kernel can decode frames without loading the server, the preview encoder or
simplejpeg, and the server and the widget validate options by the same rules.

- ``envelope``: the one binary envelope (``uint32 BE length | JSON header | payload``) of preview
  frames, snaps and raw frames;
- ``frames``: the frame headers (each with ``bit_depth``) and the raw-frame codec;
- ``options``: the stream options' ranges and parsers, control messages, the raw endpoint's query;
- ``messages``: every message the server sends, the recording messages included;
- ``snapshots``: snapshot formats and the one snapshot file-name rule.
"""

from __future__ import annotations

from .envelope import pack_binary, split_binary, unpack_binary
from .frames import bit_depth_of, decode_raw_frame, encode_raw_frame, preview_header, snap_header
from .messages import (
    configured_message,
    connected_message,
    dumps,
    error_message,
    json_frame_message,
    pong_message,
    raw_error_message,
    record_error_message,
    recording_message,
    recordings_message,
    settings_message,
    snap_message,
    stats_message,
    status_message,
    with_request_id,
)
from .options import (
    CLOSE_BAD_OPTION,
    CONTROL_TYPES,
    FORMATS,
    FPS_RANGE,
    MAX_BUFFER_FRAMES,
    MAX_COUNT,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_FRAMES,
    MAX_WIDTH_RANGE,
    OPTION_RANGES,
    PROTOCOL_VERSION,
    QUALITY_RANGE,
    DisplayRange,
    ProtocolError,
    RawOptions,
    StreamOptions,
    apply_configure,
    close_reason,
    only_fields,
    parse_control,
    parse_display,
    parse_fps,
    parse_max_width,
    parse_next_request,
    parse_ping_id,
    parse_quality,
    parse_query,
    parse_raw_options,
    parse_request_id,
    parse_snap_format,
)
from .snapshots import SNAP_EXTENSIONS, SNAP_FORMATS, snapshot_file_name

__all__ = [
    "CLOSE_BAD_OPTION",
    "CONTROL_TYPES",
    "FORMATS",
    "FPS_RANGE",
    "MAX_BUFFER_FRAMES",
    "MAX_COUNT",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_FRAMES",
    "MAX_WIDTH_RANGE",
    "OPTION_RANGES",
    "PROTOCOL_VERSION",
    "QUALITY_RANGE",
    "SNAP_EXTENSIONS",
    "SNAP_FORMATS",
    "DisplayRange",
    "ProtocolError",
    "RawOptions",
    "StreamOptions",
    "apply_configure",
    "bit_depth_of",
    "close_reason",
    "configured_message",
    "connected_message",
    "decode_raw_frame",
    "dumps",
    "encode_raw_frame",
    "error_message",
    "json_frame_message",
    "only_fields",
    "pack_binary",
    "parse_control",
    "parse_display",
    "parse_fps",
    "parse_max_width",
    "parse_next_request",
    "parse_ping_id",
    "parse_quality",
    "parse_query",
    "parse_raw_options",
    "parse_request_id",
    "parse_snap_format",
    "pong_message",
    "preview_header",
    "raw_error_message",
    "record_error_message",
    "recording_message",
    "recordings_message",
    "settings_message",
    "snap_header",
    "snap_message",
    "snapshot_file_name",
    "split_binary",
    "stats_message",
    "status_message",
    "unpack_binary",
    "with_request_id",
]
