"""The ``LabcamApp`` server extension: one camera engine in the Jupyter server process, or a relay.

When a ``labcam serve`` on this machine already streams the camera (its runtime file, see
``labcam.hosts``), or ``camera_url`` names a host elsewhere, the extension does not open the camera:
it relays that host under the same routes (``labcam.relay``), behind Jupyter's auth.

The engine (camera driver + capture thread) is created when the extension loads and lives as long
as the server: kernels come and go (restart, crash, shutdown) without the camera noticing, because
they only ever talk to it over HTTP/WebSocket like any other client. The camera only streams while
someone consumes frames (the engine starts and stops it by itself), so an idle Jupyter server does
not keep it running.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode, default

import labcam
from labcam.cameras.selection import CameraHeldByHost
from labcam.hosts import HostInfo, find_host, running_hosts
from labcam.server.service import LabcamService

from .handlers import UNAVAILABLE_PREFIX, UnavailableHandler, build_handlers


class LabcamApp(ExtensionApp):
    """Serves labcam's stream (``labcam/ws/camera/stream``), REST API (``labcam/api/camera``), raw frames
    (``labcam/ws/camera/frames``), test page and JavaScript client under the server's base URL, with
    Jupyter's own authentication and authorization."""

    name = "labcam"
    extension_url = "/labcam/"
    load_other_extensions = True

    # -- the camera ---------------------------------------------------------------------------
    camera = CaselessStrEnum(
        ["auto", "simulated", "pixelink"],
        default_value="auto",
        help="Which camera: 'auto' (a PixeLINK camera when present, else the simulated one, with a "
        "warning saying why), 'pixelink' (an error when unavailable) or 'simulated'.",
    ).tag(config=True)
    serial = Int(None, allow_none=True, help="PixeLINK camera serial number (default: the first found).").tag(
        config=True
    )
    width = Int(None, allow_none=True, help="Simulated camera: sensor width in pixels.").tag(config=True)
    height = Int(None, allow_none=True, help="Simulated camera: sensor height in pixels.").tag(config=True)
    fps = Float(None, allow_none=True, help="Initial frame rate (frames/s).").tag(config=True)
    bit_depth = Int(
        None, allow_none=True, help="Initial bit depth, 8, 12 or 16 (pixel format mono8/mono12/mono16)."
    ).tag(config=True)
    exposure_ms = Float(None, allow_none=True, help="Initial exposure in milliseconds.").tag(config=True)
    gain_db = Float(None, allow_none=True, help="Initial gain in dB.").tag(config=True)
    seed = Int(None, allow_none=True, help="Simulated camera: the specimen's random seed.").tag(config=True)
    idle_grace = Float(
        2.0, help="Seconds the camera keeps streaming after its last consumer leaves (a reloading page)."
    ).tag(config=True)

    # -- the stream -------------------------------------------------------------------------------
    quality = Int(80, help="Default JPEG quality of the live stream (1-100).").tag(config=True)
    max_clients = Int(16, help="Most simultaneous stream connections; more are closed with 1013.").tag(config=True)
    # The only folder REST/WebSocket clients may record into (labcam.server.recordings).
    recordings_dir = Unicode(
        help="Where recordings started through the server are written (default: 'labcam-recordings' "
        "under the server's root_dir). Clients name files inside it; it is created at the first recording."
    ).tag(config=True)
    enabled = Bool(True, help="Set False to load the extension without opening any camera.").tag(config=True)

    # -- relaying a camera host ------------------------------------------------------------------------
    camera_url = Unicode(
        "",
        help="The URL of a labcam serve to relay instead of opening a camera (e.g. http://scope-pc:8001/). "
        "Empty: relay a labcam serve running on this machine if there is one, else open the camera.",
    ).tag(config=True)
    camera_token = Unicode(
        "", help="The token of the camera_url host (its --token), sent with every relayed request."
    ).tag(config=True)

    @default("recordings_dir")
    def _default_recordings_dir(self) -> str:
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return os.path.join(root, "labcam-recordings")

    # -- life cycle --------------------------------------------------------------------------------
    def camera_options(self) -> dict[str, Any]:
        """The configured initial settings, as ``labcam.open`` keyword arguments."""
        options: dict[str, Any] = {}
        for name in ("width", "height", "fps", "exposure_ms", "gain_db", "seed"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        if self.bit_depth is not None:
            if self.bit_depth not in (8, 12, 16):
                raise ValueError(f"LabcamApp.bit_depth={self.bit_depth!r} is not allowed: 8, 12 or 16")
            options["pixel_format"] = f"mono{self.bit_depth}"
        return options

    def initialize_settings(self) -> None:
        # The engine is created here, once per server: handlers of every request share it through
        # the service, and nothing a kernel does can reach it except through those handlers.
        self.service: Any = None
        self.camera_handle: labcam.Camera | None = None
        self.unavailable = ""
        self.relay: Any = None
        if not self.enabled:
            return
        if self.camera_url:
            self._relay_camera_url()
            return
        host = relayable_host(self.camera, self.serial)
        if host is not None:
            self._relay_running_host(host)
            return
        try:
            self.camera_handle = labcam.open(
                self.camera, serial=self.serial, idle_grace=self.idle_grace, **self.camera_options()
            )
        except CameraHeldByHost as exc:  # a labcam serve took the camera since we looked
            self._relay_running_host(exc.host)
            return
        except (labcam.CameraError, ValueError) as exc:
            # Jupyter itself must still start (the user's notebooks matter more than the camera);
            # every labcam route then answers 503 with the reason, which labcam.connect() shows.
            self.unavailable = f"{UNAVAILABLE_PREFIX} ({self.camera}): {exc}"
            self.log.error("%s", self.unavailable)
            return
        self.service = LabcamService(
            self.camera_handle.engine, quality=self.quality, max_clients=self.max_clients,
            recordings_dir=self.recordings_dir,
        )
        d = self.camera_handle.description
        self.log.info(
            "labcam: %s camera %r (serial %s) at %slabcam/",
            d.driver, d.model, d.serial, self.serverapp.base_url if self.serverapp else "/",
        )

    def _relay_camera_url(self) -> None:
        from labcam.relay import HostAddress, RelayError, RelayTarget, StreamRelay, check_host
        from labcam.relay.target import parse_camera_url

        try:
            address = HostAddress(parse_camera_url(self.camera_url), self.camera_token or None)
            if check_host(address) is None:
                self.log.warning("labcam: %s does not answer now; relaying it once it does", address.url)
        except (RelayError, ValueError) as exc:
            # A configuration error: Jupyter still starts, the labcam routes answer 503 with it.
            self.unavailable = f"labcam: cannot relay LabcamApp.camera_url: {exc}"
            self.log.error("%s", self.unavailable)
            return
        self.relay = StreamRelay(RelayTarget(address), max_clients=self.max_clients)
        self.log.info("labcam: relaying the camera of %s at %slabcam/", address.url, self._base_url())

    def _relay_running_host(self, host: HostInfo) -> None:
        from labcam.relay import RelayTarget, StreamRelay

        def find() -> HostInfo | None:
            # Afresh at every (re)connection: the host may come back with another pid or port.
            return find_host(driver=host.driver, serial=host.serial)

        self.relay = StreamRelay(RelayTarget(find=find), max_clients=self.max_clients)
        self.log.info(
            "labcam: the %s camera %r (serial %s) is streamed by labcam serve at %s: relaying it at %slabcam/",
            host.driver, host.model, host.serial, host.url, self._base_url(),
        )

    def _base_url(self) -> str:
        return self.serverapp.base_url if self.serverapp else "/"

    def initialize_handlers(self) -> None:
        if self.relay is not None:
            from .relay import build_relay_handlers

            self.handlers.extend(build_relay_handlers(self.relay))
        elif self.service is not None:
            self.handlers.extend(build_handlers(self.service))
        elif self.unavailable:
            self.handlers.append((r"/labcam(/.*)?", UnavailableHandler, {"message": self.unavailable}))

    async def stop_extension(self) -> None:
        relay, self.relay = getattr(self, "relay", None), None
        if relay is not None:
            await relay.aclose()
        service, camera = self.service, self.camera_handle
        self.service, self.camera_handle = None, None
        if service is not None:
            await service.aclose()  # streams closed with 1001, encoders stopped
        if camera is not None:
            # Closing joins the capture thread: keep it off the server's event loop.
            await asyncio.to_thread(camera.close)



def relayable_host(camera: str, serial: int | None) -> HostInfo | None:
    """The running labcam host the extension relays instead of opening ``camera``, if any.

    "auto": a host of a PixeLINK camera (the given serial, or any), else any host; "pixelink": a
    PixeLINK host (with that serial); "simulated" asks for a simulator of our own: none.
    """
    if camera == "simulated":
        return None
    hosts = running_hosts()
    wanted = [h for h in hosts if h.driver == "pixelink" and (serial is None or h.serial == str(serial))]
    if wanted:
        return wanted[0]
    return hosts[0] if camera == "auto" and serial is None and hosts else None
