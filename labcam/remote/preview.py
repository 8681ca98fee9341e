"""``RemotePreview``: a camera's view-aware preview stream (``ws/camera/stream``) as numpy arrays.

What the browser's live view gets, for Python: a region of the sensor (``view``) reduced on the
server to fit a box (``size``), as raw counts at full bit depth (``encoding="raw"``, decoded exactly
with ``labcam.wire.rawcodec.decode_raw``) or as the 8-bit JPEG the viewers see (decoded with
simplejpeg, else Pillow). Each frame comes with its header: the sensor region it covers, the
histogram of the camera's counts, the saturated-pixel count. ``encoding="h264"`` gets the H.264
stream the browsers decode (about 12x fewer bytes than JPEG), decoded here with PyAV to the 8-bit luma.

The stream is latest-frame-wins like every viewer's: a loop slower than the camera gets fresh frames,
not a backlog (the server keeps at most two in flight). The codec libraries load on the first frame,
so a kernel that only acquires or snaps never loads them (H.264: PyAV through
``labcam.preview.h264``, loaded on the first H.264 frame).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from ..errors import CameraDisconnected, CameraError, FrameTimeout
from ..wire import split_binary
from .transport import MAX_FRAME_MESSAGE, HttpClient, IOThread, _reach_error, error_message


@dataclass(frozen=True)
class PreviewFrame:
    """One preview frame: ``array`` ((H, W) or (H, W, 3); uint16/uint8 counts in raw mode, uint8 in
    JPEG mode, the (H, W) uint8 luma in H.264 mode) and its frame ``header`` (docs/protocol.md)."""

    array: np.ndarray
    header: dict[str, Any] = field(repr=False)

    @property
    def frame_number(self) -> int:
        return int(self.header["frame_number"])

    @property
    def timestamp(self) -> float:
        return float(self.header["timestamp"])

    @property
    def view(self) -> tuple[int, int, int, int]:
        """The sensor region this image covers (x, y, w, h), after the server's clamping."""
        x, y, w, h = self.header["view"]
        return int(x), int(y), int(w), int(h)

    @property
    def step(self) -> int:
        """Sensor pixels per image pixel (the server's decimation factor)."""
        return max(1, round(self.view[2] / max(self.array.shape[1], 1)))

    @property
    def bit_depth(self) -> int:
        return int(self.header["bit_depth"])

    @property
    def saturated(self) -> int:
        return int(self.header.get("saturated", 0))

    @property
    def histogram(self) -> np.ndarray:
        """64 counts of the camera's counts over [0, 2**bit_depth), from a sample of the view."""
        return np.asarray(self.header.get("histogram", {}).get("bins", []), dtype=np.int64)

    @property
    def clamped(self) -> bool:
        return bool(self.header.get("clamped", False))


def decode_preview(header: dict[str, Any], payload: bytes | memoryview) -> np.ndarray:
    """The pixels of one preview frame message's payload (raw: exact counts; JPEG: 8-bit)."""
    if header.get("encoding") == "raw":
        from ..wire.rawcodec import decode_raw  # the codec libraries, only for raw previews

        return decode_raw(header, payload)
    mono = header.get("pixel_format") != "rgb8"
    try:
        import simplejpeg
    except ImportError:  # a client without simplejpeg: Pillow decodes it too
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(bytes(payload))).convert("L" if mono else "RGB"))
    image = simplejpeg.decode_jpeg(bytes(payload), colorspace="GRAY" if mono else "RGB")
    return image[:, :, 0] if mono else image


def stream_query(options: dict[str, Any]) -> dict[str, str]:
    """Stream options as query parameters (lists as ``a,b,c``; None left out)."""
    out = {"format": "binary"}
    for name, value in options.items():
        if value is None:
            continue
        out[name] = ",".join(str(int(v)) for v in value) if isinstance(value, (list, tuple)) else str(value)
    return out


class RemotePreview:
    """The preview stream of a remote camera: iterate (``for`` / ``async for``) for ``PreviewFrame``s,
    ``configure(view=..., size=...)`` to change what it shows, ``close()`` (or a ``with`` block) to
    end it. Create with ``RemoteCamera.preview``."""

    def __init__(self, http: HttpClient, io: IOThread, options: dict[str, Any], timeout: float | None) -> None:
        self._http = http
        self._io = io
        self._options = options
        self._timeout = timeout
        self._conn: Any = None
        self._h264: Any = None  # an H264Decoder for this connection's access units (stateful: in order)
        self._closed = False
        self.connected: dict[str, Any] = {}
        self.stream: dict[str, Any] = {}  # the options in force, as the server says

    # -- the connection (on the IO thread) ------------------------------------------------------
    async def _open(self) -> None:
        query = urllib.parse.urlencode(stream_query(self._options))
        http_url = urllib.parse.urljoin(self._http.root, "ws/camera/stream") + "?" + query
        request = HTTPRequest(
            "ws" + http_url[len("http") :], headers=self._http.headers(),
            connect_timeout=self._http.timeout, request_timeout=self._http.timeout,
        )
        try:
            conn = await websocket_connect(request, max_message_size=MAX_FRAME_MESSAGE)
        except HTTPClientError as exc:
            body = exc.response.body if exc.response is not None and exc.response.body else b""
            raise self._http.http_error(http_url, exc.code, (error_message(body) if body else exc.message or "").encode()) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise _reach_error(self._http.root, exc) from None
        first = await asyncio.wait_for(conn.read_message(), self._http.timeout)
        msg = json.loads(first) if isinstance(first, str) else {}
        if msg.get("type") == "error":  # a bad option: the server says which, then closes (4400)
            conn.close()
            raise ValueError(msg.get("message", "the server refused the preview options"))
        if msg.get("type") != "connected":
            conn.close()
            raise CameraError(f"labcam server: unexpected first message on the stream: {str(first)[:80]!r}")
        self._conn, self.connected, self.stream = conn, msg, dict(msg.get("stream", {}))
        self._h264 = None  # a new connection starts at a keyframe

    async def _read(self, timeout: float | None) -> str | bytes:
        if self._conn is None:
            await self._open()
        try:
            message = await asyncio.wait_for(self._conn.read_message(), timeout)
        except asyncio.TimeoutError:
            raise FrameTimeout(f"no preview frame from {self._http.root} within {timeout:g} s") from None
        if message is None:
            code, reason = self._conn.close_code, self._conn.close_reason
            raise CameraDisconnected(f"the preview stream from {self._http.root} closed ({code}: {reason or 'connection lost'})")
        return message

    async def _receive(self, timeout: float | None) -> PreviewFrame:
        if self._closed:
            raise CameraError("this preview stream is closed")
        while True:
            message = await self._read(timeout)
            if isinstance(message, bytes):
                header, view, start = split_binary(message)
                if header.get("type") != "frame":
                    continue
                if header.get("encoding") != "h264":
                    return PreviewFrame(decode_preview(header, view[start:]), header)
                image = self._decode_h264(header, view[start:])
                if image is not None:
                    return PreviewFrame(image, header)
            # stats, settings, status broadcasts: not frames

    def _decode_h264(self, header: dict[str, Any], unit: memoryview) -> np.ndarray | None:
        """The luma of the picture an access unit completes, or None (none yet: a decoder starts at a
        keyframe, and the server starts every viewer at one)."""
        if self._h264 is None:
            if not header.get("keyframe"):
                return None
            from ..preview.h264 import H264Decoder  # PyAV, only for H.264 previews

            self._h264 = H264Decoder()
        from ..preview.h264 import luma

        pictures = self._h264.decode(bytes(unit))
        return luma(pictures[-1]).copy() if pictures else None  # a copy: FFmpeg reuses its buffers

    async def _configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        if self._conn is None:
            await self._open()
        await self._conn.write_message(json.dumps({"type": "configure", **changes}))
        while True:  # frames of the old options may come first; none follows "configured"
            message = await self._read(self._http.timeout)
            if isinstance(message, str):
                msg = json.loads(message)
                if msg.get("type") == "configured":
                    self.stream = dict(msg["stream"])
                    return self.stream
                if msg.get("type") == "error" and msg.get("request") == "configure":
                    raise ValueError(msg.get("message", "configure refused"))

    # -- the caller's side ----------------------------------------------------------------------
    def next(self, timeout: float | None = None) -> PreviewFrame:
        """The next frame (``FrameTimeout`` after ``timeout`` s, default the stream's)."""
        return self._io.run(self._receive(self._timeout if timeout is None else timeout))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the stream's options (``view``, ``size``, ``encoding``, ``compression``, ``quality``,
        ``display``, ``fps``; None resets one): the options now in force. ``ValueError`` naming the
        field for a bad one (nothing changes)."""
        changes = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
        return self._io.run(self._configure(changes))

    def __iter__(self) -> Iterator[PreviewFrame]:
        return self

    def __next__(self) -> PreviewFrame:
        return self.next()

    def __aiter__(self) -> AsyncIterator[PreviewFrame]:
        return self

    async def __anext__(self) -> PreviewFrame:
        return await self._io.run_async(self._receive(self._timeout))

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            self._io.loop.call_soon_threadsafe(conn.close)

    def __enter__(self) -> RemotePreview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the loop may be gone already
            pass


__all__ = ["PreviewFrame", "RemotePreview", "decode_preview"]
