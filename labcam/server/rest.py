"""The REST logic (``api/camera``, its settings, snap and stats), the static files and the test page.

Host-agnostic like every labcam handler (``labcam.server.routes``): no authentication, origin
policy or CORS here; hosts put their own in front.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado import web

from .. import wire
from ..errors import CameraError, FrameTimeout, SettingError
from ..wire import ProtocolError
from .base import CONTROL, ApiHandler, ServiceHandlerMixin
from .service import LabcamService


class CameraHandler(ApiHandler):
    """``GET api/camera``: description, settings, specs and state."""

    def get(self) -> None:
        self.write_json(self.service.camera_info())


class SettingsHandler(ApiHandler):
    """``GET/PATCH/PUT api/camera/settings``: read or change settings (validated as a whole)."""

    def get(self) -> None:
        self.write_json(self.service.engine.settings.to_dict())

    async def patch(self) -> None:
        if self.forbidden(CONTROL, "changing settings"):
            return
        body = self.json_body()
        if body is None:
            return
        if not body:
            self.write_api_error(400, 'no settings given: send e.g. {"exposure_ms": 5}')
            return
        try:
            settings = await self.service.update_settings(body)
        except SettingError as exc:
            self.write_api_error(400, str(exc), setting=exc.name, allowed=exc.allowed)
            return
        except CameraError as exc:
            self.write_api_error(503 if self.service.engine.status.state == "lost" else 409, str(exc))
            return
        self.write_json(settings.to_dict())

    async def put(self) -> None:
        await self.patch()


class SnapHandler(ApiHandler):
    """``GET api/camera/snap?format=png|jpeg|tiff|npy``: the next full-resolution frame."""

    async def get(self) -> None:
        try:
            fmt = wire.parse_snap_format(self.get_query_argument("format", None))
            display = None
            raw_display = self.get_query_argument("display", None)
            if raw_display not in (None, ""):
                display = wire.parse_display(raw_display, self.service.bit_depth)
            raw_quality = self.get_query_argument("quality", None)
            quality = 95 if raw_quality in (None, "") else wire.parse_quality(raw_quality)
        except ProtocolError as exc:
            self.write_api_error(400, str(exc))
            return
        if self.camera_unavailable():
            return
        try:
            frame = await self.service.snap()
        except (CameraError, FrameTimeout) as exc:
            self.write_api_error(503, f"no frame: {exc}")
            return
        data = await self.service.encode_snapshot(frame, fmt, quality=quality, display=display)
        m = frame.meta
        name = wire.snapshot_file_name(m.camera_serial, m.frame_number, m.timestamp, fmt)
        self.set_header("Content-Type", wire.SNAP_FORMATS[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Labcam-Frame-Number", str(m.frame_number))
        self.set_header("X-Labcam-Timestamp", repr(m.timestamp))
        self.set_header("X-Labcam-Pixel-Format", m.pixel_format)
        self.set_header("X-Labcam-Exposure-Ms", repr(m.exposure_ms))
        self.set_header("X-Labcam-Gain-Db", repr(m.gain_db))
        self.finish(data)


class StatsHandler(ApiHandler):
    """``GET api/camera/stats``: camera, encoder and per-client figures."""

    def get(self) -> None:
        self.write_json(self.service.stats())


# -- a host's cameras (several per host: cameras/<id>/...) -------------------------------------------
class CamerasHandler(ApiHandler):
    """``GET api/cameras``: every camera of the host, the first (also at the legacy paths) first."""

    def initialize(self, service: LabcamService, cameras: Mapping[str, LabcamService], **kwargs: Any) -> None:  # type: ignore[override]
        self.cameras = cameras
        super().initialize(service, **kwargs)

    def get(self) -> None:
        listed = []
        for index, (camera_id, service) in enumerate(self.cameras.items()):
            d, root = service.engine.description, f"cameras/{camera_id}/"
            listed.append({
                "id": camera_id, "driver": d.driver, "model": d.model, "serial": d.serial,
                "state": service.engine.status.state, "legacy": index == 0, "path": root,
                "stream": root + "ws/camera/stream", "frames": root + "ws/camera/frames",
                "api": root + "api/camera", "recordings": root + "api/recordings",
            })
        self.write_json({"cameras": listed, "default": next(iter(self.cameras))})


class UnknownCameraHandler(ApiHandler):
    """``cameras/<id>/...`` for an id the host does not serve: 404 naming the ones it does."""

    def initialize(self, service: LabcamService, cameras: Mapping[str, LabcamService], **kwargs: Any) -> None:  # type: ignore[override]
        self.cameras = cameras
        super().initialize(service, **kwargs)

    def get(self, camera_id: str, *args: Any) -> None:
        known = list(self.cameras)
        if camera_id in self.cameras:  # a known camera, a path it does not have
            self.write_api_error(404, f"{self.request.path} is not a labcam route (docs/protocol.md)", cameras=known)
            return
        self.write_api_error(
            404, f"no camera {camera_id!r} here: this host serves {', '.join(map(repr, known))} (GET api/cameras)",
            cameras=known,
        )

    post = patch = put = delete = get


# -- static files and the test page ------------------------------------------------------------------
class StaticHandler(ServiceHandlerMixin, web.StaticFileHandler):
    """``static/(.*)``: the JavaScript client and the test page's assets, from ``service.static_path``."""

    def initialize(self, service: LabcamService, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("path", str(service.static_path))
        super().initialize(service, **kwargs)

    def get_content_type(self) -> str:
        path = self.absolute_path or ""
        if path.endswith(".ts"):
            return "text/plain; charset=utf-8"  # TypeScript declarations (mimetypes says MPEG-TS)
        if path.endswith((".js", ".mjs")):
            return "text/javascript; charset=utf-8"  # ES modules must be served as JavaScript
        return super().get_content_type()

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")  # revalidate (ETag): a new version shows at once


class TestPageHandler(ServiceHandlerMixin, web.RequestHandler):
    """The test page (``static/index.html``) at the root of the labcam routes."""

    def get(self) -> None:
        if not self.request.path.endswith("/"):
            # The page loads "static/..." relative to itself: it must be addressed as a folder.
            self.redirect(self.request.path + "/" + (("?" + self.request.query) if self.request.query else ""))
            return
        page = self.service.static_path / "index.html"
        try:
            html = page.read_bytes()
        except OSError:
            self.set_status(404)
            self.finish({"error": f"the test page is missing ({page})"})
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(html)


__all__ = [
    "CameraHandler",
    "CamerasHandler",
    "SettingsHandler",
    "SnapHandler",
    "StaticHandler",
    "StatsHandler",
    "TestPageHandler",
    "UnknownCameraHandler",
]
