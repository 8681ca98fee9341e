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
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .camera_info import DEFAULT_CAMERA_ID
from .cameras.selection import BIT_DEPTHS, CameraSpec, camera_id, open_camera
from .engine import Engine
from .errors import CameraUnavailable, SettingError
from .hosts import HostInfo, announced, running_hosts, runtime_dir
from .selftest import run_selftest, write_reports

log = logging.getLogger("labcam.cli")

DEFAULT_PORT = 8001
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


def _camera_spec(text: str) -> Any:

    try:
        return CameraSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_camera_arguments(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    g = p.add_argument_group("camera")
    if several:
        g.add_argument(
            "--camera", action="append", type=_camera_spec, default=None, metavar="SPEC",
            help="auto, simulated or pixelink (default: auto: a PixeLINK camera when one is present, else the "
            "simulated camera), with options: DRIVER[:key=value,...], e.g. pixelink:7020 or "
            "simulated:name=sim2,width=640,bit_depth=12. Repeat it to serve several cameras, each under "
            "cameras/<id>/ (the first also at the usual paths); see docs/configuration.md",
        )
    else:
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


def _add_webrtc_arguments(p: argparse.ArgumentParser) -> None:
    from .webrtc.janus import parse_webrtc  # the standard library only: cheap

    w = p.add_argument_group("webrtc (docs/scale-out.md)")
    w.add_argument("--webrtc", type=parse_webrtc, default=None, metavar="janus[=URL]",
                   help="also publish to Janus for WebRTC viewers: 'janus' starts one, 'janus=http://host:port/janus' uses a running one")
    w.add_argument("--webrtc-mountpoint", type=_int_range("webrtc-mountpoint", 1, 2**31 - 1), default=1, metavar="ID",
                   help="the Janus streaming mountpoint id to create (default 1)")


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
    _add_camera_arguments(serve, several=True)
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
    sec.add_argument("--view-token", default=None, metavar="TOKEN",
                     help="also accept this token, for watching only: it may stream, read, snap and probe, but "
                     "not change settings or start/stop recordings (needs --token)")
    sec.add_argument("--certfile", default=None, metavar="PEM",
                     help="serve https/wss with this certificate (a secure context for LAN browsers: H.264 decoding)")
    sec.add_argument("--keyfile", default=None, metavar="PEM", help="its private key (default: in --certfile)")
    sec.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="allow pages from ORIGIN (e.g. http://localhost:5173) to stream and use the API; repeatable")
    _add_webrtc_arguments(serve)
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
    id: str = DEFAULT_CAMERA_ID  # its routes: cameras/<id>/...


class _Collect(logging.Handler):
    """Keeps the warnings logged while the camera is chosen: they say why auto fell back."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open_collecting(choice: str, open_it: Callable[[], Any]) -> OpenedCamera:
    """``open_it()``'s driver, and why ``auto`` fell back to the simulated camera (its warnings)."""
    collect = _Collect()
    root = logging.getLogger("labcam")
    root.addHandler(collect)
    # The warnings are collected, not printed: the caller says them once, with what it serves.
    propagate, root.propagate = root.propagate, False
    try:
        driver = open_it()
    finally:
        root.propagate = propagate
        root.removeHandler(collect)
    why = ""
    if choice == "auto" and driver.description.driver == "simulated":
        why = "; ".join(collect.messages) or "no PixeLINK camera was found"
    return OpenedCamera(driver, why)


def open_driver(args: argparse.Namespace) -> OpenedCamera:
    """Open the camera the flags ask for; raises ``CameraUnavailable`` or ``ValueError``."""
    return _open_collecting(args.camera, lambda: open_camera(args.camera, serial=args.serial, **camera_options(args)))


def open_cameras(args: argparse.Namespace) -> list[OpenedCamera]:
    """Open every ``--camera SPEC`` of ``labcam serve`` (the flags are their defaults) and give each
    its id; all or none: when one fails, those opened are closed again and the error raised
    (``CameraUnavailable``, ``SettingError``, ``ValueError``: bad option or duplicate id)."""
    specs: list[CameraSpec] = args.camera or [CameraSpec("auto")]
    named = [spec.name for spec in specs if spec.name is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"camera names must differ: {', '.join(named)}")
    opened: list[OpenedCamera] = []
    try:
        for spec in specs:
            one = _open_collecting(spec.driver, lambda: spec.open(serial=args.serial, **camera_options(args)))
            opened.append(one)
            d = one.driver.description
            one.id = camera_id(spec.name, d.driver, d.serial, alone=len(specs) == 1)
        ids = [one.id for one in opened]
        if len(set(ids)) != len(ids):
            raise ValueError(
                f"two cameras would have the same id ({', '.join(ids)}): give them names, "
                "e.g. --camera simulated:name=sim1 --camera simulated:name=sim2"
            )
    except BaseException:
        for one in opened:
            one.driver.close()
        raise
    return opened


def describe_camera(driver: Any) -> str:
    d, s = driver.description, driver.settings
    _, _, w, h = s.roi
    return f"{d.driver} camera {d.model!r} (serial {d.serial}) {w}x{h} {s.pixel_format} at {s.fps:g} fps"


# -- serve ---------------------------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    # Only serve loads the server (tornado, the preview encoders, simplejpeg: ~80 ms): info and
    # selftest start without it.
    from .server.app import LOOPBACK_HOSTS, is_loopback, normalise_origin, tls_context, view_token_problem

    try:
        origins = [normalise_origin(o) if o != "*" else o for o in args.allow_origin]
        if args.keyfile and not args.certfile:
            raise ValueError("--keyfile needs --certfile")
        args.ssl_context = tls_context(args.certfile, args.keyfile) if args.certfile else None
    except ValueError as exc:
        print(f"labcam serve: {exc}", file=sys.stderr)
        return 2
    problem = view_token_problem(args.token, args.view_token)
    if problem:
        print(f"labcam serve: {problem}", file=sys.stderr)
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
        opened = open_cameras(args)
    except SettingError as exc:
        print(f"labcam serve: {exc}", file=sys.stderr)
        return 2
    except CameraUnavailable as exc:
        print(f"labcam serve: no camera: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad simulated sensor size, duplicate camera ids and the like
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
    args: argparse.Namespace, opened: list[OpenedCamera], origins: list[str], allowed_hosts: set[str] | None
) -> int:
    from .server.app import start_standalone  # see serve()

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
            {one.id: Engine(one.driver, idle_grace=args.idle_grace) for one in opened},
            host=args.host, port=args.port,
            service_kwargs={
                "quality": args.quality, "max_clients": args.max_clients,
                "encode_workers": args.encode_workers, "recordings_dir": args.recordings_dir,
            },
            token=args.token, view_token=args.view_token, allowed_origins=origins, allowed_hosts=allowed_hosts,
            ssl_context=args.ssl_context,
        )
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    service, port = running.service, running.port
    webrtc = None
    if args.webrtc is not None:  # Janus missing or unreachable: logged, and the WebSocket stream goes on
        from .webrtc.standalone import start_webrtc  # PyAV and the publisher: only with --webrtc

        webrtc = await start_webrtc(running.http.request_callback, service.engine, args.webrtc, host=args.host,
                                    mountpoint_id=args.webrtc_mountpoint)

    for one in opened:
        if one.why:
            log.warning("serving the SIMULATED camera%s: %s", "" if len(opened) == 1 else f" as {one.id!r}", one.why)
        log.info("camera: %s%s", describe_camera(one.driver), "" if len(opened) == 1 else f" as {one.id!r}")
    host = f"[{args.host}]" if ":" in args.host else args.host
    if args.host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    query = f"?token={args.token}" if args.token else ""
    http, ws = ("https", "wss") if args.ssl_context else ("http", "ws")
    page = f"{http}://{host}:{port}/{query}"
    log.info("test page:  %s", page)
    log.info("stream:     %s://%s:%d/ws/camera/stream%s", ws, host, port, query)
    log.info("REST:       %s://%s:%d/api/camera", http, host, port)
    if len(opened) > 1:
        for one in opened:
            log.info("camera %r: %s://%s:%d/cameras/%s/ (stream, REST, recordings under it)", one.id, http, host, port, one.id)
        log.info("cameras:    %s://%s:%d/api/cameras", http, host, port)
    for camera_id, each in running.services.items():
        log.info("recordings: %s%s", each.recordings.root, "" if len(opened) == 1 else f" ({camera_id})")
    if args.view_token:
        log.info("view token: accepted for watching (no settings changes, no recordings)")
    if origins:
        log.info("allowed origins: %s", ", ".join(origins))
    log.info("listening on %s://%s:%d/ (Ctrl-C to stop)", http, host, port)
    if args.open_browser:
        threading.Thread(target=webbrowser.open, args=(page,), daemon=True).start()
    d = service.engine.description  # other labcam processes find this host by its runtime file
    info = HostInfo(f"{http}://{host}:{port}/", d.driver, d.model, d.serial, token=args.token,
                    cameras=tuple(running.services))
    with announced(info):
        await stop.wait()

    log.info("shutting down: closing %d stream(s), stopping the camera%s",
             sum(len(each.clients) for each in running.services.values()), "s" if len(opened) > 1 else "")
    if webrtc is not None:
        from .webrtc.standalone import stop_webrtc

        await stop_webrtc(webrtc)
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
    hosts = running_hosts()
    print(f"hosts:    {len(hosts) or 'none'} running on this machine (in {runtime_dir()})")
    for host in hosts:
        print(f"  {host.describe()}")
        if host.cameras != (DEFAULT_CAMERA_ID,):
            print(f"    cameras: {', '.join(host.cameras)} (under {host.url}cameras/<id>/; the first also at {host.url})")


def _info_camera(args: argparse.Namespace) -> int:
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


def selftest(args: argparse.Namespace) -> int:
    """``labcam selftest``: open the camera the flags ask for, run the checks, write both reports.

    Exit code 0 when every check passed, 1 when one failed, 2 when no camera could be opened.
    """
    try:
        opened = open_driver(args)
    except (CameraUnavailable, ValueError) as exc:
        print(f"labcam selftest: no camera: {exc}")
        return 2
    if opened.why:
        print(f"note: testing the simulated camera because {opened.why}")
    print(f"testing {describe_camera(opened.driver)}")
    try:
        report = run_selftest(opened.driver, unplug=args.unplug)
    finally:
        opened.driver.close()
    json_path, text_path = write_reports(report, Path(args.report_dir))
    print()
    print(report.to_text(), end="")
    print(f"\nreports: {text_path} and {json_path}")
    return 0 if report.passed else 1


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
        return selftest(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
