"""The stream's options and control messages: ranges, parsers, validation (docs/protocol.md).

Pure functions and value objects, no I/O: a host turns query parameters and control messages into
``StreamOptions`` (or a ``ProtocolError`` whose message says which parameter, what was given and what
is allowed). The raw-frame endpoint's query (``RawOptions``) is parsed here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .snapshots import SNAP_FORMATS

DisplayRange = tuple[int, int]
"""A display window in camera counts: (low, high), mapped to black and white."""
ViewRect = tuple[int, int, int, int]
"""A region of the sensor (the camera's current ROI) in sensor pixels: (x, y, width, height)."""
SizeBox = tuple[int, int]
"""A box of device pixels a view must fit in: (width, height)."""

PROTOCOL_VERSION = 1
FORMATS = ("json", "binary")
FPS_RANGE = (0.1, 1000.0)
QUALITY_RANGE = (1, 100)
MAX_WIDTH_RANGE = (16, 16384)
SIZE_RANGE = (16, 16384)  # each side of ``size``
VIEW_MAX = 65536  # the largest x, y, width or height a ``view`` may say (sensor pixels)
ENCODINGS = ("jpeg", "raw", "h264")
COMPRESSIONS = ("deflate", "zstd", "lz4", "none")  # raw payloads (labcam.wire.rawcodec)
PROBE_MAX_SIDE = 64  # a probe reads at most 64x64 pixels
AUTO = "auto"  # quality=auto
OPTION_RANGES: dict[str, tuple[float, float]] = {"fps": FPS_RANGE, "quality": QUALITY_RANGE, "max_width": MAX_WIDTH_RANGE}
"""The numeric stream options' (low, high) limits, both included: the server's parsers, the live
view's checks and (through its ``option_ranges`` trait) its controls use these."""
# Control messages larger than this close the connection with 1009 (Tornado enforces it).
MAX_MESSAGE_BYTES = 64 * 1024
# A ping id is echoed back: keep it small so a client cannot make the server echo a lot.
MAX_PING_ID_CHARS = 128
# A request's ``request_id`` is echoed in its reply: a string this short, or a safe integer/finite number.
MAX_REQUEST_ID_CHARS = 128
MAX_REQUEST_ID_INT = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: ids survive the round trip
# A stream refused for a bad query parameter is accepted, told why (an ``error`` with
# ``"request": "connect"``) and closed with this code: browsers show a refused handshake only as 1006.
CLOSE_BAD_OPTION = 4400
# WebSocket close reasons are at most 123 bytes (RFC 6455: a control frame carries 125).
MAX_CLOSE_REASON_BYTES = 123

STREAM_OPTION_NAMES = ("format", "fps", "quality", "max_width", "display", "view", "size", "encoding", "compression",
                       "bitrate", "gop")
# What ``configure`` may change (``format`` only to the value it has).
CONFIGURABLE = ("fps", "quality", "max_width", "display", "view", "size", "encoding", "compression", "bitrate", "gop")
# The options of issue 11's view-aware stream: a client that sets none of them gets today's stream.
VIEW_OPTIONS = ("view", "size", "encoding", "compression")
CONTROL_TYPES = ("configure", "ping", "snap", "settings", "pause", "resume", "record", "probe")


class ProtocolError(ValueError):
    """A query parameter or control message that is not allowed; the message says why."""

    def __init__(self, message: str, *, request: str | None = None, request_id: Any = None) -> None:
        super().__init__(message)
        self.request = request
        self.request_id = request_id  # echoed in the error reply (a valid one only)


def _not_allowed(name: str, value: Any, allowed: str) -> ProtocolError:
    return ProtocolError(f"{name}={value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class StreamOptions:
    """One client's stream options. ``None`` means "the default": camera rate, server quality,
    full width; ``display`` None is auto."""

    format: str = "json"
    fps: float | None = None
    quality: int | str | None = None  # a number, "auto" (labcam.server.adapt) or None (the server's)
    max_width: int | None = None
    display: DisplayRange | None = None
    paused: bool = False
    view: ViewRect | None = None  # None: the full sensor
    size: SizeBox | None = None  # None: no box (``max_width`` alone bounds the width, as before)
    encoding: str | None = None  # None: "jpeg"
    compression: str | None = None  # None: "deflate" (raw payloads only)
    bitrate: int | None = None  # encoding=h264 only (see H264_OPTION_NAMES)
    gop: int | None = None

    @property
    def view_aware(self) -> bool:
        """True when the client set any of the view-aware options (else: today's stream, exactly)."""
        return any(getattr(self, name) is not None for name in VIEW_OPTIONS)

    def to_dict(self, default_quality: int) -> dict[str, Any]:
        """As sent in ``connected``/``configured``: defaults resolved where the server decides them.

        The view-aware options appear once the client has set one of them, so a client of the
        original protocol sees the stream document it always saw."""
        out: dict[str, Any] = {
            "format": self.format,
            "fps": self.fps,
            "quality": self.quality if self.quality is not None else default_quality,
            "max_width": self.max_width,
            "display": "auto" if self.display is None else list(self.display),
            "paused": self.paused,
        }
        if self.view_aware:
            out["view"] = "full" if self.view is None else list(self.view)
            out["size"] = None if self.size is None else list(self.size)
            out["encoding"] = self.encoding or "jpeg"
            out["compression"] = self.compression or "deflate"
        if self.encoding == "h264":
            out.update(bitrate=self.bitrate, gop=self.gop)
        return out


# -- values ---------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    """``value`` as a finite float if it is a JSON number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return v if math.isfinite(v) else None


def _whole(value: Any) -> int | None:
    v = _number(value)
    if v is None or v != int(v):
        return None
    return int(v)


def parse_format(value: Any) -> str:
    if value not in FORMATS:
        raise _not_allowed("format", value, "'json' or 'binary'")
    return str(value)


def _in_range(name: str, value: Any, parsed: Any, bounds: tuple[float, float], what: str) -> Any:
    """``parsed`` (``value`` read as a number, or None) if within ``bounds``, else ``ProtocolError``."""
    lo, hi = bounds
    if parsed is None or not lo <= parsed <= hi:
        raise _not_allowed(name, value, f"{what} from {lo:g} to {hi:g}")
    return parsed


def parse_fps(value: Any) -> float:
    return float(_in_range("fps", value, _number(value), FPS_RANGE, "a number of frames per second"))


def parse_quality(value: Any) -> int:
    return int(_in_range("quality", value, _whole(value), QUALITY_RANGE, "a whole number"))


def parse_max_width(value: Any) -> int:
    return int(_in_range("max_width", value, _whole(value), MAX_WIDTH_RANGE, "a whole number of pixels"))


def parse_display(value: Any, bit_depth: int) -> DisplayRange | None:
    """``"auto"`` → None; ``"MIN,MAX"`` or ``[MIN, MAX]`` → (MIN, MAX) with 0 <= MIN < MAX < 2**bits."""
    top = (1 << bit_depth) - 1
    allowed = f"'auto' or MIN,MAX with 0 <= MIN < MAX <= {top} ({bit_depth}-bit camera counts)"
    if value == "auto":
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise _not_allowed("display", value, allowed)
    if len(parts) != 2:
        raise _not_allowed("display", value, allowed)
    lo, hi = _whole(parts[0]), _whole(parts[1])
    if lo is None or hi is None or not 0 <= lo < hi <= top:
        raise _not_allowed("display", value, allowed)
    return lo, hi


def _parts(value: Any, n: int) -> list[Any] | None:
    """``value`` as ``n`` parts: a comma-separated string (query) or a JSON list; None otherwise."""
    if isinstance(value, str):
        parts: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return None
    return parts if len(parts) == n else None


def _strict_whole(value: Any) -> int | None:
    """A whole number: an int (not a bool), or a string of digits (query values), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value == int(value) else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("-").isdigit() else None
    return None


def parse_view(value: Any, sensor: tuple[int, int] | None = None) -> ViewRect | None:
    """``"full"`` → None; ``"x,y,w,h"`` or ``[x, y, w, h]`` (whole sensor pixels) → (x, y, w, h).

    A view that reaches past the sensor's edge is allowed (the server clamps it and says so in the
    frame header); one that starts outside the current sensor (``sensor``: its width, height) is not.
    """
    allowed = (
        f"'full' or x,y,w,h in sensor pixels: whole numbers, x and y from 0 to {VIEW_MAX}, "
        f"w and h from 1 to {VIEW_MAX}"
    )
    if value == "full":
        return None
    parts = _parts(value, 4)
    if parts is None:
        raise _not_allowed("view", value, allowed)
    x, y, w, h = (_strict_whole(p) for p in parts)
    if x is None or y is None or w is None or h is None:
        raise _not_allowed("view", value, allowed)
    if not (0 <= x <= VIEW_MAX and 0 <= y <= VIEW_MAX and 1 <= w <= VIEW_MAX and 1 <= h <= VIEW_MAX):
        raise _not_allowed("view", value, allowed)
    if sensor is not None and (x >= sensor[0] or y >= sensor[1]):
        raise _not_allowed(
            "view", value, f"a region that starts on the sensor, which is {sensor[0]}x{sensor[1]}: "
            f"x from 0 to {sensor[0] - 1}, y from 0 to {sensor[1] - 1} (it may reach past the edge: it is clamped)",
        )
    return x, y, w, h


def parse_size(value: Any) -> SizeBox:
    """``"w,h"`` or ``[w, h]``: the device-pixel box a view must fit, each side 16 to 16384."""
    lo, hi = SIZE_RANGE
    allowed = f"w,h: whole numbers of device pixels from {lo} to {hi} each"
    parts = _parts(value, 2)
    if parts is None:
        raise _not_allowed("size", value, allowed)
    w, h = (_strict_whole(p) for p in parts)
    if w is None or h is None or not (lo <= w <= hi and lo <= h <= hi):
        raise _not_allowed("size", value, allowed)
    return w, h


def parse_encoding(value: Any) -> str:
    if value not in ENCODINGS:
        raise _not_allowed("encoding", value, "one of " + ", ".join(ENCODINGS))
    return str(value)


def parse_compression(value: Any) -> str:
    if value not in COMPRESSIONS:
        raise _not_allowed("compression", value, "one of " + ", ".join(map(repr, COMPRESSIONS)) + " (raw frames)")
    return str(value)


def parse_probe(msg: Mapping[str, Any]) -> ViewRect:
    """A ``probe`` request's (x, y, w, h) in sensor pixels (w, h default 1, at most 64). Whether the
    region lies inside the frame is the server's check (it knows the frame)."""
    only_fields(msg, ("x", "y", "w", "h"))
    out = []
    for name, default, lo, hi in (("x", None, 0, VIEW_MAX), ("y", None, 0, VIEW_MAX),
                                  ("w", 1, 1, PROBE_MAX_SIDE), ("h", 1, 1, PROBE_MAX_SIDE)):
        value = msg.get(name, default)
        parsed = _strict_whole(value) if value is not None else None
        if parsed is None or not lo <= parsed <= hi:
            what = "sensor pixels" if name in ("x", "y") else "pixels"
            raise ProtocolError(
                f"{name}={value!r} is not allowed: a whole number of {what} from {lo} to {hi}"
                + (" (required)" if default is None else ""),
                request="probe",
            )
        out.append(parsed)
    return out[0], out[1], out[2], out[3]


# -- query parameters and control messages --------------------------------------------------------
def parse_query(args: Mapping[str, Any], bit_depth: int, sensor: tuple[int, int] | None = None) -> StreamOptions:
    """Stream options from query parameters (values: str, bytes, or lists of them, last one wins).

    Unknown parameters (``token``, cache busters) are ignored; a bad known one raises
    ``ProtocolError`` naming it.
    """

    def get(name: str) -> str | None:
        v = args.get(name)
        if isinstance(v, (list, tuple)):
            v = v[-1] if v else None
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_allowed(name, v, "UTF-8 text") from None
        return v

    opts = StreamOptions()
    fmt = get("format")
    if fmt is not None:
        opts = replace(opts, format=parse_format(fmt))
    changes: dict[str, Any] = {}
    for name in CONFIGURABLE:
        v = get(name)
        if v is not None and v != "":
            changes[name] = v
    return apply_configure(opts, changes, bit_depth, sensor)


def apply_configure(
    opts: StreamOptions, changes: Mapping[str, Any], bit_depth: int, sensor: tuple[int, int] | None = None
) -> StreamOptions:
    """``opts`` with ``changes`` (any subset of the configurable options; None resets one).

    Validated as a whole: raises ``ProtocolError`` and changes nothing when any value is bad.
    ``sensor`` (width, height of the current frame) refuses views that start outside it.
    """
    new: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "format":
            if value == opts.format:
                continue
            raise ProtocolError(
                f"format cannot change on an open stream (it is {opts.format!r}); reconnect with ?format={value}"
            )
        if name in H264_OPTION_NAMES and name != "encoding":
            new[name] = None if value is None else parse_h264_option(name, value)
            continue
        if name not in CONFIGURABLE:
            raise ProtocolError(f"{name!r} is not a stream option: configure takes {', '.join(CONFIGURABLE)}")
        if value is None:
            new[name] = None
        elif name == "fps":
            new[name] = parse_fps(value)
        elif name == "quality":  # "auto": the server chooses for the link (labcam.server.adapt)
            new[name] = AUTO if value == AUTO else parse_quality(value)
        elif name == "max_width":
            new[name] = parse_max_width(value)
        elif name == "view":
            new[name] = parse_view(value, sensor)
            if new[name] is None and "encoding" not in changes:
                # "full" is a choice of the view-aware stream (its options show in "configured"),
                # where null means "back to the default"
                new["encoding"] = opts.encoding or "jpeg"
        elif name == "size":
            new[name] = parse_size(value)
        elif name == "encoding":
            new[name] = parse_encoding(value)
        elif name == "compression":
            new[name] = parse_compression(value)
        else:
            new[name] = parse_display(value, bit_depth)
    return check_h264_options(replace(opts, **new))


# -- encoding=h264 (labcam.preview.h264_variant) ---------------------------------------------------
H264_OPTION_NAMES = ("encoding", "bitrate", "gop")
# The same limits as labcam.preview.h264's encoder (the wire layer does not import the encoders).
H264_BITRATE_RANGE = (50_000, 100_000_000)  # bits/s
H264_GOP_RANGE = (1, 3600)  # frames


def parse_h264_option(name: str, value: Any) -> Any:
    """``bitrate`` (bits/s) or ``gop`` (frames between keyframes)."""
    bounds, what = (H264_BITRATE_RANGE, "a whole number of bits/s") if name == "bitrate" else (H264_GOP_RANGE, "a whole number of frames")
    return int(_in_range(name, value, _whole(value), bounds, what))


def check_h264_options(opts: StreamOptions) -> StreamOptions:
    """The H.264 options together: only with encoding=h264, and h264 only in binary format."""
    if opts.encoding != "h264":
        given = [n for n in ("bitrate", "gop") if getattr(opts, n) is not None]
        if given:
            raise ProtocolError(f"{', '.join(given)} only go with encoding=h264 (the stream is {opts.encoding or 'jpeg'})")
    elif opts.format != "binary":
        raise ProtocolError("encoding=h264 needs format=binary (access units are binary messages)")
    elif opts.fps is not None:
        raise ProtocolError("fps does not go with encoding=h264: each frame depends on the one before, "
                            "so a viewer gets every frame of its variant (or waits for a keyframe)")
    return opts


def parse_control(text: str | bytes) -> dict[str, Any]:
    """A client's control message as a dict with a known ``type``, or ``ProtocolError``."""
    if isinstance(text, bytes):
        raise ProtocolError("binary messages are not accepted: send JSON text")
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"the message is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message must be a JSON object with a 'type', not {type(msg).__name__}")
    kind = msg.get("type")
    request = kind if isinstance(kind, str) else None
    request_id = parse_request_id(msg.get("request_id"), request)
    if kind not in CONTROL_TYPES:
        raise ProtocolError(
            f"type={kind!r} is not allowed: one of {', '.join(CONTROL_TYPES)}",
            request=request,
            request_id=request_id,
        )
    return msg


def parse_request_id(value: Any, request: str | None = None) -> Any:
    """A request's optional ``request_id`` (None when absent): a string of at most
    ``MAX_REQUEST_ID_CHARS`` characters or a number (integers within +-(2**53 - 1), finite floats).
    Anything else raises ``ProtocolError`` (without an id to echo: the one given was not valid)."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_REQUEST_ID_CHARS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_REQUEST_ID_INT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    raise ProtocolError(
        f"request_id={shown} is not allowed: a string of at most {MAX_REQUEST_ID_CHARS} characters "
        f"or a number (whole numbers within +-{MAX_REQUEST_ID_INT})",
        request=request,
    )


def close_reason(message: str) -> str:
    """``message`` cut to fit a WebSocket close frame (at most 123 UTF-8 bytes)."""
    data = message.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return message
    return data[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def parse_ping_id(msg: Mapping[str, Any]) -> Any:
    ping_id = msg.get("id")
    if ping_id is None or isinstance(ping_id, bool) or isinstance(ping_id, (int, float)):
        return ping_id
    if isinstance(ping_id, str) and len(ping_id) <= MAX_PING_ID_CHARS:
        return ping_id
    raise ProtocolError(
        f"id={ping_id!r} is not allowed: a number or a string of at most {MAX_PING_ID_CHARS} characters",
        request="ping",
    )


def parse_snap_format(value: Any, default: str = "png") -> str:
    if value is None:
        return default
    if value not in SNAP_FORMATS:
        raise _not_allowed("format", value, "one of " + ", ".join(SNAP_FORMATS))
    return str(value)


def only_fields(msg: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse fields a message type does not take (a typo should not pass silently)."""
    extra = [k for k in msg if k not in ("type", "request_id") and k not in allowed]
    if extra:
        took = ", ".join(allowed) if allowed else "no other fields"
        raise ProtocolError(f"{msg.get('type')} does not take {', '.join(map(repr, extra))} (it takes {took})")


# -- the raw-frame endpoint's query (ws/camera/frames) ---------------------------------------------------
# Frames a ``mode=all`` buffer may hold, and the most frames one connection may ask for.
MAX_BUFFER_FRAMES = 4096
MAX_COUNT = 100_000_000
# Frames one ``next`` request may ask for: a pipelining window, not a backlog.
MAX_REQUEST_FRAMES = 64


@dataclass(frozen=True)
class RawOptions:
    """What a raw-frame client asked for in the query string."""

    mode: str = "latest"  # "latest" (pull, latest wins) | "all" (push, every frame)
    count: int | None = None  # close after this many frames
    buffer: int | None = None  # mode=all: buffer size in frames (None: the server's memory budget)


def parse_raw_options(args: Mapping[str, str | None]) -> RawOptions:
    """Validate the raw endpoint's query parameters; ``ValueError`` naming the bad one."""

    def whole(name: str, low: int, high: int) -> int | None:
        raw = args.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ValueError(f"{name}={raw!r} is not allowed: a whole number from {low} to {high}")
        return value

    mode = args.get("mode") or "latest"
    if mode not in ("latest", "all"):
        raise ValueError(f"mode={mode!r} is not allowed: 'latest' or 'all'")
    buffer = whole("buffer", 1, MAX_BUFFER_FRAMES)
    if buffer is not None and mode != "all":
        raise ValueError(f"buffer={args.get('buffer')!r} is not allowed: only with mode=all")
    return RawOptions(mode=mode, count=whole("count", 1, MAX_COUNT), buffer=buffer)


def parse_next_request(message: str | bytes) -> tuple[int, bool]:
    """A raw ``mode=latest`` client's ``{"type": "next", "frames": k, "fresh": bool}``: (k, fresh).

    Raises ``ValueError`` with the message the client is sent.
    """
    try:
        request = json.loads(message)
        if not isinstance(request, dict) or request.get("type") != "next":
            raise ValueError
    except ValueError:
        raise ValueError('expected {"type": "next"} (optionally with "frames": k and "fresh": true)') from None
    k = request.get("frames", 1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_REQUEST_FRAMES:
        raise ValueError(f"frames={k!r} is not allowed: a whole number from 1 to {MAX_REQUEST_FRAMES}")
    return k, bool(request.get("fresh"))


__all__ = [
    "CLOSE_BAD_OPTION",
    "COMPRESSIONS",
    "CONFIGURABLE",
    "CONTROL_TYPES",
    "ENCODINGS",
    "FORMATS",
    "FPS_RANGE",
    "MAX_BUFFER_FRAMES",
    "MAX_COUNT",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_FRAMES",
    "MAX_WIDTH_RANGE",
    "OPTION_RANGES",
    "PROBE_MAX_SIDE",
    "PROTOCOL_VERSION",
    "QUALITY_RANGE",
    "SIZE_RANGE",
    "VIEW_MAX",
    "DisplayRange",
    "ProtocolError",
    "RawOptions",
    "SizeBox",
    "StreamOptions",
    "ViewRect",
    "apply_configure",
    "close_reason",
    "only_fields",
    "parse_compression",
    "parse_control",
    "parse_display",
    "parse_encoding",
    "parse_fps",
    "parse_max_width",
    "parse_next_request",
    "parse_ping_id",
    "parse_probe",
    "parse_quality",
    "parse_query",
    "parse_raw_options",
    "parse_request_id",
    "parse_size",
    "parse_snap_format",
    "parse_view",
]
