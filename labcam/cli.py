"""The ``labcam`` command: ``labcam serve`` (the stream server), ``labcam info`` and ``labcam selftest``.

``labcam serve`` binds 127.0.0.1:8001 by default and says in its first lines which camera it
streams (and, when ``--camera auto`` fell back to the simulated camera, why) and where. Ctrl-C or
SIGTERM shut it down cleanly: streams are closed with 1001, the camera is stopped, exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .hosts import HostInfo, announced

log = logging.getLogger("labcam.cli")

DEFAULT_PORT = 8001
BIT_DEPTHS = {8: "mono8", 12: "mono12", 16: "mono16"}
# Seconds the shutdown waits for streams to finish their close handshakes before dropping them.
SHUTDOWN_GRACE_S = 2.0


# -- arguments ---------------------------------------------------------------------------------------
def _positive_float(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not a number") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not allowed: a number > 0")
        return v

    return parse


def _int_range(name: str, lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not a whole number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name}={v} is not allowed: from {lo} to {hi}")
        return v

    return parse


def _add_camera_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("camera")
    g.add_argument(
        "--camera", choices=("auto", "simulated", "pixelink"), default="auto",
        help="auto: a PixeLINK camera when one is present, else the simulated camera (default: auto)",
    )
    g.add_argument("--serial", type=int, default=None, help="PixeLINK serial number (default: the first found)")
    g.add_argument("--width", type=_int_range("width", 16, 65536), help="simulated sensor width (pixels)")
    g.add_argument("--height", type=_int_range("height", 16, 65536), help="simulated sensor height (pixels)")
    g.add_argument("--fps", type=_positive_float("fps"), help="initial frame rate (frames/s)")
    g.add_argument("--bit-depth", type=int, choices=sorted(BIT_DEPTHS), help="pixel format mono8/mono12/mono16")
    g.add_argument("--exposure-ms", type=_positive_float("exposure-ms"), help="initial exposure (ms)")
    g.add_argument("--gain-db", type=float, help="initial gain (dB)")
    g.add_argument("--seed", type=int, help="simulated camera: the specimen's random seed")


def build_parser() -> argparse.ArgumentParser:
    # --log-level works before or after the command ("labcam serve --log-level DEBUG").
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser = argparse.ArgumentParser(prog="labcam", description="Live lab-camera streaming.", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", parents=[common], help="stream the camera to browsers (test page, WebSocket, REST)",
        description="Stream the camera over WebSocket and REST (docs/protocol.md), with a test page at /.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_int_range("port", 0, 65535), default=DEFAULT_PORT,
                       help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    _add_camera_arguments(serve)
    s = serve.add_argument_group("stream")
    s.add_argument("--quality", type=_int_range("quality", 1, 100), default=80, help="default JPEG quality (80)")
    s.add_argument("--max-clients", type=_int_range("max-clients", 1, 10000), default=16,
                   help="most simultaneous streams; more are closed with 1013 (16)")
    s.add_argument("--encode-workers", type=_int_range("encode-workers", 1, 64), default=2,
                   help="JPEG encoder threads (2)")
    s.add_argument("--idle-grace", type=float, default=2.0,
                   help="seconds the camera keeps running after the last viewer leaves (2)")
    r = serve.add_argument_group("recording")
    r.add_argument("--recordings-dir", default="recordings", metavar="DIR",
                   help="the only folder clients may record into over REST/WebSocket; created at the "
                   "first recording (default: ./recordings)")
    sec = serve.add_argument_group("security")
    sec.add_argument("--token", default=None, help="require this token (?token=T or 'Authorization: token T')")
    sec.add_argument("--certfile", default=None, metavar="PEM",
                     help="serve https/wss with this certificate (a secure context for LAN browsers: H.264 decoding)")
    sec.add_argument("--keyfile", default=None, metavar="PEM", help="its private key (default: in --certfile)")
    sec.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="allow pages from ORIGIN (e.g. http://localhost:5173) to stream and use the API; repeatable")
    serve.add_argument("--open-browser", action="store_true", help="open the test page in a browser")

    info = sub.add_parser("info", parents=[common], help="say which camera would be used, and why")
    _add_camera_arguments(info)

    selftest = sub.add_parser(
        "selftest", parents=[common], help="check the camera and write a report (docs/troubleshooting.md)",
        description="Open the camera, check its settings, pixels and timing, and write a JSON and a text report.",
    )
    _add_camera_arguments(selftest)
    selftest.add_argument("--unplug", action="store_true",
                          help="also ask you to unplug and replug the camera, and record what happens")
    selftest.add_argument("--report-dir", default=".", metavar="DIR",
                          help="folder for labcam-selftest-*.json and .txt (default: the current folder)")
    return parser


def camera_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``open_camera`` keyword arguments the flags ask for (unset flags are left out)."""
    options: dict[str, Any] = {}
    for name in ("width", "height", "fps", "exposure_ms", "gain_db", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "bit_depth", None) is not None:
        options["pixel_format"] = BIT_DEPTHS[args.bit_depth]
    return options


# -- opening the camera ------------------------------------------------------------------------------
@dataclass
class OpenedCamera:
    driver: Any
    why: str  # why this camera ("" when it is the one asked for)


class _Collect(logging.Handler):
    """Keeps the warnings logged while the camera is chosen: they say why auto fell back."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def open_driver(args: argparse.Namespace) -> OpenedCamera:
    """Open the camera the flags ask for; raises ``CameraUnavailable`` or ``ValueError``."""
    from .cameras.selection import open_camera

    collect = _Collect()
    root = logging.getLogger("labcam")
    root.addHandler(collect)
    # The warnings are collected, not printed: the caller says them once, with what it serves.
    propagate, root.propagate = root.propagate, False
    try:
        driver = open_camera(args.camera, serial=args.serial, **camera_options(args))
    finally:
        root.propagate = propagate
        root.removeHandler(collect)
    why = ""
    if args.camera == "auto" and driver.description.driver == "simulated":
        why = "; ".join(collect.messages) or "no PixeLINK camera was found"
    return OpenedCamera(driver, why)


def describe_camera(driver: Any) -> str:
    d, s = driver.description, driver.settings
    _, _, w, h = s.roi
    return f"{d.driver} camera {d.model!r} (serial {d.serial}) {w}x{h} {s.pixel_format} at {s.fps:g} fps"


# -- serve ---------------------------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    from .errors import CameraUnavailable, SettingError
    from .server.app import LOOPBACK_HOSTS, is_loopback, normalise_origin, tls_context

    try:
        origins = [normalise_origin(o) if o != "*" else o for o in args.allow_origin]
        if args.keyfile and not args.certfile:
            raise ValueError("--keyfile needs --certfile")
        args.ssl_context = tls_context(args.certfile, args.keyfile) if args.certfile else None
    except ValueError as exc:
        print(f"labcam serve: {exc}", file=sys.stderr)
        return 2
    loopback = is_loopback(args.host)
    if not loopback and not args.token:
        banner = "!" * 78
        log.warning(
            "\n%s\n  labcam serve is binding to %s WITHOUT a token: anyone who can reach this\n"
            "  machine can watch the camera and change its settings. Use --token (or bind 127.0.0.1).\n%s",
            banner, args.host, banner,
        )
    try:
        opened = open_driver(args)
    except SettingError as exc:
        print(f"labcam serve: {exc}", file=sys.stderr)
        return 2
    except CameraUnavailable as exc:
        print(f"labcam serve: no camera: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad simulated sensor size and the like
        print(f"labcam serve: {exc}", file=sys.stderr)
        return 2
    allowed_hosts = None
    if loopback and not args.token:
        # Loopback without a token: answer only to loopback names (DNS-rebinding protection).
        allowed_hosts = set(LOOPBACK_HOSTS) | {args.host.lower()}
    try:
        return asyncio.run(_serve(args, opened, origins, allowed_hosts))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


async def _serve(
    args: argparse.Namespace, opened: OpenedCamera, origins: list[str], allowed_hosts: set[str] | None
) -> int:
    from .engine import Engine
    from .server.app import start_standalone

    # Signals first: "listening on" must never be printed before Ctrl-C/SIGTERM shut down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises KeyboardInterrupt
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))

    try:
        running = start_standalone(
            Engine(opened.driver, idle_grace=args.idle_grace), host=args.host, port=args.port,
            service_kwargs={
                "quality": args.quality, "max_clients": args.max_clients,
                "encode_workers": args.encode_workers, "recordings_dir": args.recordings_dir,
            },
            token=args.token, allowed_origins=origins, allowed_hosts=allowed_hosts,
            ssl_context=args.ssl_context,
        )
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    service, port = running.service, running.port

    camera = describe_camera(opened.driver)
    if opened.why:
        log.warning("serving the SIMULATED camera: %s", opened.why)
    log.info("camera: %s", camera)
    host = f"[{args.host}]" if ":" in args.host else args.host
    if args.host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    query = f"?token={args.token}" if args.token else ""
    http, ws = ("https", "wss") if args.ssl_context else ("http", "ws")
    page = f"{http}://{host}:{port}/{query}"
    log.info("test page:  %s", page)
    log.info("stream:     %s://%s:%d/ws/camera/stream%s", ws, host, port, query)
    log.info("REST:       %s://%s:%d/api/camera", http, host, port)
    log.info("recordings: %s", service.recordings.root)
    if origins:
        log.info("allowed origins: %s", ", ".join(origins))
    log.info("listening on %s://%s:%d/ (Ctrl-C to stop)", http, host, port)
    if args.open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(page,), daemon=True).start()
    d = service.engine.description  # other labcam processes find this host by its runtime file
    with announced(HostInfo(f"{http}://{host}:{port}/", d.driver, d.model, d.serial, token=args.token)):
        await stop.wait()

    log.info("shutting down: closing %d stream(s), stopping the camera", len(service.clients))
    await running.aclose(SHUTDOWN_GRACE_S)
    log.info("stopped")
    return 0


# -- info ----------------------------------------------------------------------------------------------
def info(args: argparse.Namespace) -> int:
    code = _info_camera(args)
    _info_hosts()
    return code


def _info_hosts() -> None:
    """The running ``labcam serve`` hosts, which may hold the camera ``info`` could not open."""
    from .hosts import running_hosts, runtime_dir

    hosts = running_hosts()
    print(f"hosts:    {len(hosts) or 'none'} running on this machine (in {runtime_dir()})")
    for host in hosts:
        print(f"  {host.describe()}")


def _info_camera(args: argparse.Namespace) -> int:
    from .errors import CameraUnavailable

    try:
        opened = open_driver(args)
    except CameraUnavailable as exc:
        print(f"no camera: {exc}")
        return 1
    except ValueError as exc:
        print(f"labcam info: {exc}", file=sys.stderr)
        return 2
    try:
        d = opened.driver.description
        print(f"camera:   {describe_camera(opened.driver)}")
        if opened.why:
            print(f"why:      simulated because {opened.why}")
        elif args.camera == "auto":
            print(f"why:      auto found a {d.driver} camera")
        print(f"formats:  {', '.join(d.pixel_formats)} (up to {d.max_bit_depth} bits)")
        print(f"sensor:   {d.sensor_width}x{d.sensor_height}" + (f", {d.pixel_size_um} µm/pixel" if d.pixel_size_um else ""))
        if d.firmware:
            print(f"firmware: {d.firmware}")
        for name, spec in opened.driver.specs.specs.items():
            print(f"  {name:<13} {spec.describe()}")
    finally:
        opened.driver.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "INFO")),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Tornado logs every request at INFO: frames are not requests, but page loads and API calls
    # would drown the startup lines.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    if args.command == "serve":
        return serve(args)
    if args.command == "info":
        return info(args)
    if args.command == "selftest":
        from .selftest import selftest_command

        return selftest_command(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
