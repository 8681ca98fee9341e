"""``LabcamService``: what every host (standalone app, Jupyter extension) creates once.

It owns the per-process server state the handlers share: the engine, the preview hub, the
registry of stream clients, the once-a-second stats tick, and the bridge that carries engine events
(emitted on the capture thread) onto the event loop as ``settings``/``status`` broadcasts.
Handlers receive it through ``initialize(service=...)``; they keep nothing global.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..camera_info import EngineStatus
from ..engine import Engine
from ..errors import CameraError, FrameTimeout, SettingError
from ..frame import Frame
from ..preview.variants import PreviewHub
from ..settings import Settings
from ..snapshots import encode_snapshot
from ..web import WEB_DIR
from ..wire import (
    DisplayRange,
    ViewRect,
    bit_depth_of,
    error_message,
    parse_quality,
    probe_message,
    settings_message,
    snap_header,
    snap_message,
    status_message,
)
from .recordings import MAX_ACTIVE, RecordingManager

log = logging.getLogger("labcam.server")

STATIC_DIR = WEB_DIR  # the browser code, served as static/


class StreamClient(Protocol):
    """What the service needs from a connected stream handler."""

    client_id: str

    def send_control(self, text: str) -> None: ...

    def tick(self, now: float, camera: Mapping[str, Any]) -> None: ...

    def client_stats(self) -> dict[str, Any]: ...

    def shutdown(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class SettingsReply:
    """A stream client's ``settings`` request that carried a ``request_id``: the broadcast of the
    change it makes goes to ``client`` with the id (its reply), and ``sent`` records that it did."""

    client: Any
    request_id: Any
    sent: bool = False


class LabcamService:
    """The shared state behind the stream and REST handlers of one camera.

    ``quality``: default JPEG quality. ``max_clients``: stream connections beyond it are closed with
    1013. ``ping_interval``: WebSocket keep-alive pings, seconds (hosts apply it; the standalone app
    does). ``stats_interval``: how often each client gets a ``stats`` message. ``encode_workers``:
    preview encoder threads. ``owns_engine``: close the engine in ``close()``. ``recordings_dir``:
    the only folder network clients may record into (created at the first recording);
    ``max_recordings``: how many may run at once (``labcam.server.recordings``).

    Methods run on the event loop unless said otherwise; the loop is the one the first stream
    client (or the first ``await``-ing method) runs on.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        quality: int = 80,
        max_clients: int = 16,
        ping_interval: float = 10.0,
        ping_timeout: float | None = None,
        stats_interval: float = 1.0,
        encode_workers: int = 2,
        snap_timeout: float = 5.0,
        static_path: Path | str = STATIC_DIR,
        owns_engine: bool = False,
        recordings_dir: Path | str = "recordings",
        max_recordings: int = MAX_ACTIVE,
    ) -> None:
        parse_quality(quality)  # a bad default is a programming error: fail loudly now
        if max_clients < 1:
            raise ValueError(f"max_clients={max_clients!r} is not allowed: a whole number >= 1")
        self.engine = engine
        self.quality = int(quality)
        self.max_clients = int(max_clients)
        self.ping_interval = float(ping_interval)
        self.ping_timeout = float(ping_timeout) if ping_timeout is not None else float(ping_interval)
        self.stats_interval = float(stats_interval)
        self.snap_timeout = float(snap_timeout)
        self.static_path = Path(static_path)
        self.owns_engine = owns_engine
        self.hub = PreviewHub(engine, workers=encode_workers)
        # Recording progress is announced to every stream client (texts from recorder threads).
        self.recordings = RecordingManager(
            engine, recordings_dir, max_active=max_recordings,
            notify=lambda text: self._call_on_loop(self.broadcast, text),
        )
        self.started = time.time()
        self._clients: dict[str, StreamClient] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self._all_gone: asyncio.Future[None] | None = None  # resolved when the last client leaves
        self.connections_total = 0
        self.connections_refused = 0
        self._changing = threading.local()  # .reply: the stream request changing settings on this thread
        # Engine events arrive on the capture thread (or whichever thread changed the settings):
        # each handler only hops onto the loop.
        self._connections: list[tuple[Any, Callable[..., None]]] = [
            (engine.events.settings_changed, self._on_settings_changed),
            (engine.events.status_changed, self._on_status_changed),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)

    # -- the loop ---------------------------------------------------------------------------------
    def bind_loop(self) -> asyncio.AbstractEventLoop:
        """Remember the running loop (called by handlers on it); returns it."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        return loop

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed:
            return  # no client ever connected: nobody to tell
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed in between
            pass

    def _on_settings_changed(self, settings: Settings) -> None:
        # Emitted on the thread that changed the settings: update_settings marks its own thread
        # with the stream request that asked, whose client gets the broadcast as its reply.
        reply = getattr(self._changing, "reply", None)
        self._call_on_loop(self._broadcast_settings, settings.to_dict(), reply)

    def _broadcast_settings(self, settings: dict[str, Any], reply: SettingsReply | None) -> None:
        text = settings_message(settings)
        for client in list(self._clients.values()):
            if reply is not None and client is reply.client:
                client.send_control(settings_message(settings, reply.request_id))
                reply.sent = True
            else:
                client.send_control(text)

    def _on_status_changed(self, status: EngineStatus) -> None:
        self._call_on_loop(self.broadcast, status_message(status.state, status.message))

    # -- clients ----------------------------------------------------------------------------------
    def register(self, client: StreamClient) -> str | None:
        """Admit a stream client: its id, or None when the server is full (or closing)."""
        self.bind_loop()
        if self._closed or len(self._clients) >= self.max_clients:
            self.connections_refused += 1
            return None
        client_id = f"c{next(self._ids)}"
        client.client_id = client_id
        self._clients[client_id] = client
        self.connections_total += 1
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick_loop())
        return client_id

    def unregister(self, client: StreamClient) -> None:
        self._clients.pop(getattr(client, "client_id", ""), None)
        if not self._clients and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    @property
    def clients(self) -> list[StreamClient]:
        return list(self._clients.values())

    def broadcast(self, text: str) -> None:
        """Send a control message (settings, status) to every stream client."""
        for client in list(self._clients.values()):
            client.send_control(text)

    async def _tick_loop(self) -> None:
        """Once per ``stats_interval``: each client sends its ``stats`` (and measures its RTT)."""
        try:
            while self._clients and not self._closed:
                await asyncio.sleep(self.stats_interval)
                now = time.monotonic()
                camera = self.camera_figures()
                for client in list(self._clients.values()):
                    try:
                        client.tick(now, camera)
                    except Exception:  # one client's trouble must not stop the others' stats
                        log.exception("stats tick failed for client %s", getattr(client, "client_id", "?"))
        finally:
            self._ticker = None
            if self._clients and not self._closed:
                self._ticker = asyncio.ensure_future(self._tick_loop())

    # -- camera -----------------------------------------------------------------------------------
    @property
    def bit_depth(self) -> int:
        """Bit depth of the current pixel format (display ranges are validated against it)."""
        return bit_depth_of(self.engine.settings.pixel_format)

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames the camera sends now (its ROI), what views are in; None
        when the camera does not say."""
        _, _, w, h = self.engine.settings.roi
        return (int(w), int(h)) if w > 0 and h > 0 else None

    def camera_info(self) -> dict[str, Any]:
        return {
            "camera": self.engine.description.to_dict(),
            "settings": self.engine.settings.to_dict(),
            "specs": self.engine.specs.to_dict(),
            "state": self.engine.status.state,
        }

    def camera_figures(self) -> dict[str, Any]:
        s = self.engine.status
        return {"state": s.state, "fps": round(s.fps, 2), "frames": s.frames, "dropped": s.dropped}

    async def update_settings(self, changes: Mapping[str, Any], *, reply: SettingsReply | None = None) -> Settings:
        """Validate and apply camera settings off the loop (a ROI change restarts the capture).

        ``reply``: the stream request that asked (with its ``request_id``): its client gets this
        change's ``settings`` broadcast with the id, as its reply, and ``reply.sent`` becomes true.
        Raises ``SettingError`` (nothing changed) or ``CameraError``.
        """
        loop = self.bind_loop()
        return await loop.run_in_executor(None, self._update_settings, dict(changes), reply)

    def _update_settings(self, changes: dict[str, Any], reply: SettingsReply | None) -> Settings:
        self._changing.reply = reply
        try:
            return self.engine.update_settings(changes)
        finally:
            self._changing.reply = None

    async def settings_request(self, client: StreamClient, changes: Mapping[str, Any], request_id: Any = None) -> str | None:
        """A stream client's ``settings`` request: the message that answers it, or None when the
        change's broadcast (which reaches every client, this one with its ``request_id``) did."""
        before = self.engine.settings
        # With a request_id, the broadcast of this change reaches this client as its reply (the same
        # settings message plus the request_id); everyone else gets the plain one.
        reply = SettingsReply(client, request_id) if request_id is not None else None
        try:
            after = await self.update_settings(changes, reply=reply)
        except SettingError as exc:
            return error_message(str(exc), "settings", request_id)
        except CameraError as exc:
            return error_message(f"settings not applied: {exc}", "settings", request_id)
        if reply is not None:
            # Nothing changed, so no broadcast came: answer the sender alone.
            return None if reply.sent else settings_message(after.to_dict(), request_id)
        return settings_message(after.to_dict()) if after == before else None

    async def snap_request(
        self, fmt: str, *, wire_format: str, display: DisplayRange | None, request_id: Any = None
    ) -> str | bytes:
        """A stream client's ``snap`` request: the ``snap`` reply (binary in ``wire_format``
        "binary") or the ``error`` that answers it."""
        try:
            frame = await self.snap()
            data = await self.encode_snapshot(frame, fmt, display=display)
        except (CameraError, FrameTimeout) as exc:
            return error_message(f"no snap: {exc}", "snap", request_id)
        return snap_message(wire_format, fmt, data, snap_header(frame), request_id)

    async def probe_request(self, region: ViewRect, request_id: Any = None) -> str:
        """A stream client's ``probe``: the counts of ``region`` (x, y, w, h) of the latest frame at
        full bit depth, the one the engine holds (a reference: nothing is copied but the region's
        values), or the next one before the first. An ``error`` naming the field when the region
        leaves the frame."""
        frame = self.engine.latest
        if frame is None:
            try:
                frame = await self.snap()
            except (CameraError, FrameTimeout) as exc:
                return error_message(f"no probe: {exc}", "probe", request_id)
        x, y, w, h = region
        fw, fh = frame.width, frame.height
        for name, value, start, side, limit in (("x", x, x, w, fw), ("y", y, y, h, fh)):
            if start + side > limit:
                size = "w" if name == "x" else "h"
                return error_message(
                    f"probe {name}={value} with {size}={side} is not allowed: the frame is {fw}x{fh}, so "
                    f"{name} + {size} must be at most {limit} ({name} from 0 to {limit - side})",
                    "probe", request_id,
                )
        pixels = frame.array[y : y + h, x : x + w]
        values = pixels.reshape(-1, pixels.shape[2]).tolist() if pixels.ndim == 3 else pixels.ravel().tolist()
        return probe_message(region, values, frame.meta.frame_number, frame.meta.bit_depth, request_id)

    async def snap(self, timeout: float | None = None) -> Frame:
        """The next full-resolution frame (the stream keeps running). Raises ``CameraError`` when
        the camera is lost or no frame comes within ``timeout`` (default ``snap_timeout``)."""
        loop = self.bind_loop()
        state = self.engine.status.state
        if state == "lost":
            raise CameraError(f"the camera is lost: {self.engine.status.message}")
        # subscribe() may wait for the engine's control lock: keep it off the loop.
        sub = await loop.run_in_executor(None, self.engine.subscribe, "snap")
        try:
            return await sub.anext(self.snap_timeout if timeout is None else timeout)
        finally:
            sub.close()

    async def encode_snapshot(
        self, frame: Frame, fmt: str, *, quality: int = 95, display: DisplayRange | None = None
    ) -> bytes:
        """Encode a snapshot off the loop (a 16-bit PNG of a 5 MP frame takes ~100 ms)."""
        loop = self.bind_loop()
        return await loop.run_in_executor(
            None, lambda: encode_snapshot(frame, fmt, quality=quality, display=display)
        )

    # -- figures ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The ``GET api/camera/stats`` document."""
        hub = self.hub.stats()
        return {
            "camera": self.camera_figures(),
            "encoder": {
                "variants": hub["variants"],
                "encode_ms": hub["encode_ms"],
                "frames_in": hub["frames_in"],
                "frames_missed": hub["frames_missed"],
                "encodes": hub["encodes"],
            },
            "clients": [c.client_stats() for c in self._clients.values()],
            "server": {
                "uptime_s": round(time.time() - self.started, 1),
                "max_clients": self.max_clients,
                "connections_total": self.connections_total,
                "connections_refused": self.connections_refused,
            },
        }

    # -- life cycle -------------------------------------------------------------------------------
    async def aclose(self, timeout: float = 2.0, *, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every stream (``code``), wait up to ``timeout`` s for them to go, stop encoding,
        and close the engine if this service owns it. Call on the loop."""
        if self._closed:
            return
        self._closed = True
        clients = list(self._clients.values())
        if clients:
            self._all_gone = asyncio.get_running_loop().create_future()
        for client in clients:
            try:
                client.shutdown(code, reason)
            except Exception:
                log.exception("closing client %s", getattr(client, "client_id", "?"))
        if self._all_gone is not None and self._clients:
            try:
                await asyncio.wait_for(asyncio.shield(self._all_gone), timeout)
            except asyncio.TimeoutError:
                log.warning("%d stream(s) did not finish closing within %g s", len(self._clients), timeout)
        if self._ticker is not None:
            self._ticker.cancel()
        # Recordings end with their files closed normally, before the camera may be closed.
        await asyncio.get_running_loop().run_in_executor(None, self.recordings.close)
        await self.hub.aclose()
        self._disconnect()
        if self.owns_engine:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.engine.close)

    def close(self) -> None:
        """Synchronous close, for when the loop is gone: no close handshakes are waited for."""
        if not self._closed:
            self._closed = True
            for client in list(self._clients.values()):
                try:
                    client.shutdown(1001, "server shutting down")
                except Exception:
                    pass
        self.recordings.close()
        self.hub.close()
        self._disconnect()
        if self.owns_engine:
            self.engine.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _disconnect(self) -> None:
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (ValueError, RuntimeError):
                pass
        self._connections = []


__all__ = ["STATIC_DIR", "LabcamService", "SettingsReply", "StreamClient"]
