"""A Janus WebRTC server for labcam: one of our own, or a running one, and what labcam asks of it.

labcam never serves WebRTC itself. It publishes RTP to a mountpoint of Janus's streaming plugin
and hands each viewer what it needs to watch that mountpoint (``labcam.webrtc.publisher``). This
module is the Janus side:

- ``JanusProcess`` starts ``janus`` (Debian's package) with a config it generates in a temporary
  folder. Secure by default, and nothing enabled that labcam does not use:

  - the HTTP transport (labcam's requests) and the WebSocket transport (the viewers': a browser
    opens at most 6 HTTP connections to one host, and each janus.js session over HTTP holds a long
    poll, so a page with more than a few viewers stalls over HTTP), nothing else (no Unix sockets,
    MQTT...), both bound where labcam serve binds; every request needs a token (``token_auth``,
    stored tokens, no HMAC secret);
  - the admin API on 127.0.0.1 only, behind a random ``admin_secret`` (the Debian config's
    ``janusoverlord`` default is never used), and only labcam knows it;
  - the streaming plugin only, with a random ``admin_key``: only labcam creates mountpoints;
  - ICE on the loopback interface only (``ice_enforce_list = "lo"``), no STUN server, no mDNS.

- ``JanusClient`` speaks Janus's HTTP API (``/janus``, long polls not needed: labcam only makes
  requests) and its admin API (``/admin``): ``add_token``/``remove_token`` for per-viewer tokens
  that may use the streaming plugin only, ``create_mountpoint`` for an RTP H.264 mountpoint.

A running Janus (``--webrtc janus=http://host:port/janus``) must be configured the same way by its
owner; labcam then needs its admin API address and secret and the streaming ``admin_key``
(``JanusAccess``).

Errors are ``JanusError`` with a message saying what to do: Janus not installed, not reachable,
a bad URL, a mountpoint id already taken, a refused secret.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("labcam.webrtc")

STREAMING_PLUGIN = "janus.plugin.streaming"
REQUEST_TIMEOUT_S = 5.0
START_TIMEOUT_S = 15.0
# Janus's error code for "a mountpoint with this id already exists" (JANUS_STREAMING_ERROR_CANT_CREATE
# is 456 in janus_streaming.c; the text names the id too).
MOUNTPOINT_EXISTS_CODE = 456


class JanusError(RuntimeError):
    """Janus missing, unreachable, misconfigured or refusing a request; the message says which."""


@dataclass(frozen=True)
class JanusAccess:
    """What labcam needs to use a Janus: its API URL, its admin API URL and secret, and the
    streaming plugin's admin_key. ``public_url`` is the API URL viewers are given (the same unless
    Janus sits behind a proxy)."""

    url: str  # e.g. http://127.0.0.1:8088/janus
    admin_url: str  # e.g. http://127.0.0.1:7088/admin
    admin_secret: str
    streaming_admin_key: str
    public_url: str = ""  # what viewers are given: the WebSocket API (ws://host:port) if there is one

    @property
    def viewer_url(self) -> str:
        return self.public_url or self.url


def parse_janus_url(url: str) -> str:
    """``http(s)://host:port/path``, checked; raises ``JanusError`` naming what is wrong."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise JanusError(f"bad Janus URL {url!r}: it must start with http:// or https:// (e.g. http://127.0.0.1:8088/janus)")
    if not parsed.hostname:
        raise JanusError(f"bad Janus URL {url!r}: no host (e.g. http://127.0.0.1:8088/janus)")
    try:
        parsed.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise JanusError(f"bad Janus URL {url!r}: the port must be a number from 1 to 65535") from None
    if parsed.query or parsed.fragment:
        raise JanusError(f"bad Janus URL {url!r}: no query or fragment, just http://host:port/path")
    return url.rstrip("/")


@dataclass(frozen=True)
class WebRTCChoice:
    """What ``--webrtc`` asked for: our own Janus (``url`` None) or a running one."""

    url: str | None = None


def parse_webrtc(text: str) -> WebRTCChoice:
    """``janus`` or ``janus=http://host:port/janus`` (an argparse ``type``)."""
    kind, _, url = text.partition("=")
    if kind != "janus":
        raise argparse.ArgumentTypeError(f"--webrtc {text!r}: use 'janus' or 'janus=http://host:port/janus'")
    if not _:
        return WebRTCChoice()
    try:
        return WebRTCChoice(parse_janus_url(url))
    except JanusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ==================================================================================================
# The HTTP API and the admin API
# ==================================================================================================
class JanusClient:
    """Requests to a Janus's HTTP API and admin API. Blocking (urllib): call it from a thread or
    executor, never from the event loop."""

    def __init__(self, access: JanusAccess, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.access = access
        self.timeout = timeout
        self._own_token: str | None = None  # labcam's own API token (streaming plugin only)

    # -- transport -----------------------------------------------------------------------------
    def _fetch(self, url: str, body: dict[str, Any] | None = None, *, api: str = "") -> dict[str, Any]:
        """GET ``url`` (or POST ``body`` as JSON): Janus's JSON answer, or a ``JanusError`` that
        names ``api`` (the URL the user gave) and what went wrong."""
        api = api or url
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise JanusError(f"Janus at {url} answered HTTP {exc.code}: is {api} a Janus API URL?") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise JanusError(f"Janus is not reachable at {api}: {getattr(exc, 'reason', exc)}") from exc
        except ValueError as exc:
            raise JanusError(f"{url} did not answer with JSON: is {api} a Janus API URL?") from exc
        return reply

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"transaction": secrets.token_hex(6), **body}
        reply = self._fetch(url, body)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(f"Janus refused {body.get('janus')!r}: {error.get('reason')} (code {error.get('code')})")
        return reply

    def admin(self, request: str, **fields: Any) -> dict[str, Any]:
        """One admin API request (``add_token``, ``list_tokens``...), with the admin secret."""
        return self._post(self.access.admin_url, {"janus": request, "admin_secret": self.access.admin_secret, **fields})

    # -- tokens ----------------------------------------------------------------------------------
    def add_token(self, token: str | None = None) -> str:
        """A new stored token that may use the streaming plugin and nothing else; returns it."""
        token = token or secrets.token_urlsafe(24)
        self.admin("add_token", token=token, plugins=[STREAMING_PLUGIN])
        return token

    def remove_token(self, token: str) -> None:
        self.admin("remove_token", token=token)

    def list_tokens(self) -> list[str]:
        reply = self.admin("list_tokens")
        return [t["token"] for t in reply.get("data", {}).get("tokens", [])]

    # -- the streaming plugin ------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """GET /info of the API (no token needed for it): the server's name, version, plugins."""
        url = self.access.url + "/info"
        reply = self._fetch(url, api=self.access.url)
        if reply.get("janus") != "server_info":
            raise JanusError(f"{url} is not a Janus server (no server_info)")
        if STREAMING_PLUGIN not in reply.get("plugins", {}):
            raise JanusError(f"Janus at {self.access.url} has no streaming plugin ({STREAMING_PLUGIN})")
        return reply

    def streaming(self, body: dict[str, Any]) -> dict[str, Any]:
        """One synchronous request to the streaming plugin, on a session and handle of its own
        (created and destroyed here); returns the plugin's ``plugindata.data``."""
        if self._own_token is None:
            self._own_token = self.add_token()
        token = self._own_token
        session = self._post(self.access.url, {"janus": "create", "token": token})["data"]["id"]
        session_url = f"{self.access.url}/{session}"
        try:
            handle = self._post(session_url, {"janus": "attach", "plugin": STREAMING_PLUGIN, "token": token})["data"]["id"]
            reply = self._post(f"{session_url}/{handle}", {"janus": "message", "body": body, "token": token})
        finally:
            try:
                self._post(session_url, {"janus": "destroy", "token": token})
            except JanusError:
                pass  # the session times out by itself
        data: dict[str, Any] = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"Janus's streaming plugin refused {body.get('request')!r}: {data['error']} (code {data.get('error_code')})")
        return data

    def create_mountpoint(
        self, mountpoint_id: int, *, rtp_port: int, rtcp_port: int, host: str = "127.0.0.1",
        payload_type: int = 96, fmtp: str = "profile-level-id=42e01f;packetization-mode=1", name: str = "labcam",
    ) -> dict[str, Any]:
        """An RTP mountpoint with one H.264 video stream, on ``host``:``rtp_port`` (and RTCP on
        ``rtcp_port``: Janus sends the viewers' keyframe requests there), keeping the latest
        keyframe for viewers that join. Raises ``JanusError`` if the id is taken."""
        try:
            return self.streaming({
                "request": "create", "type": "rtp", "id": int(mountpoint_id), "name": name,
                "description": name, "admin_key": self.access.streaming_admin_key, "permanent": False,
                "media": [{
                    "type": "video", "mid": "v", "label": "camera", "port": rtp_port, "rtcpport": rtcp_port,
                    "iface": host, "pt": payload_type, "codec": "h264", "fmtp": fmtp, "bufferkf": True,
                }],
            })
        except JanusError as exc:
            if f"code {MOUNTPOINT_EXISTS_CODE})" in str(exc) or "already exists" in str(exc):
                raise JanusError(
                    f"Janus mountpoint id {mountpoint_id} is already taken: choose another (--webrtc-mountpoint)"
                ) from exc
            raise

    def destroy_mountpoint(self, mountpoint_id: int) -> None:
        self.streaming({"request": "destroy", "id": int(mountpoint_id), "admin_key": self.access.streaming_admin_key})

    def mountpoint_ids(self) -> list[int]:
        return [int(m["id"]) for m in self.streaming({"request": "list"}).get("list", [])]


# ==================================================================================================
# A Janus of our own
# ==================================================================================================
def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _jcfg(sections: dict[str, dict[str, Any]]) -> str:
    """libconfig text (Janus's .jcfg) of nested sections of scalars."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))  # a double-quoted string with JSON's escapes, as libconfig reads them

    lines = []
    for name, entries in sections.items():
        lines.append(f"{name}: {{")
        lines.extend(f"\t{k} = {value(v)}" for k, v in entries.items())
        lines.append("}")
    return "\n".join(lines) + "\n"


def _libraries(folder: Path, *keep: str) -> str:
    """The comma-separated .so names in ``folder`` except ``keep``: what the config disables."""
    names = sorted(p.name for p in folder.glob("libjanus_*.so"))
    return ",".join(n for n in names if n not in keep)


@dataclass
class JanusProcess:
    """``janus`` started with a generated config in a temporary folder; ``stop()`` ends it and
    removes the folder. ``host`` is where its HTTP API listens (where labcam serve binds)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    admin_port: int = 0
    ws_port: int = 0  # the viewers' WebSocket API; 0: a free port
    executable: str = "janus"
    lib_folder: Path = Path("/usr/lib/x86_64-linux-gnu/janus")
    rtp_port_range: tuple[int, int] = (20000, 40000)
    debug_level: int = 3  # warnings and errors
    ice_enforce_list: str = "lo"  # interfaces/addresses for ICE candidates; "" for all
    access: JanusAccess | None = field(default=None, init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    folder: Path | None = field(default=None, init=False)

    def start(self, timeout: float = START_TIMEOUT_S) -> JanusAccess:
        exe = shutil.which(self.executable)
        if exe is None:
            raise JanusError(
                f"Janus is not installed ({self.executable!r} not found): apt-get install janus "
                "(see docs/setup.md), or give a running one with --webrtc janus=http://host:port/janus"
            )
        if not (self.lib_folder / "plugins" / "libjanus_streaming.so").exists():
            raise JanusError(f"Janus's streaming plugin is not in {self.lib_folder}/plugins")
        port = self.port or free_port(self.host)
        ws_port = self.ws_port or free_port(self.host)
        admin_port = self.admin_port or free_port("127.0.0.1")
        admin_secret, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        folder = Path(tempfile.mkdtemp(prefix="labcam-janus-"))
        self._write_config(folder, port, ws_port, admin_port, admin_secret, admin_key)
        log_file = folder / "janus.log"
        self.folder = folder
        self.process = subprocess.Popen(
            [exe, "-F", str(folder), "-C", str(folder / "janus.jcfg"), "-L", str(log_file), "-N", "-o"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.access = JanusAccess(
            url=f"http://{host}:{port}/janus", admin_url=f"http://127.0.0.1:{admin_port}/admin",
            admin_secret=admin_secret, streaming_admin_key=admin_key, public_url=f"ws://{host}:{ws_port}/",
        )
        self._wait_ready(timeout, log_file)
        self.port, self.ws_port, self.admin_port = port, ws_port, admin_port
        return self.access

    def _wait_ready(self, timeout: float, log_file: Path) -> None:
        assert self.process is not None and self.access is not None
        client = JanusClient(self.access, timeout=1.0)
        deadline = time.monotonic() + timeout
        backoff = 0.02
        while True:
            if self.process.poll() is not None:
                tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                self.stop()
                raise JanusError(f"janus exited at start (code {self.process.returncode}):\n{tail}")
            try:
                client.info()
                client.list_tokens()  # the admin API answers too
                return
            except JanusError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise JanusError(f"janus did not answer within {timeout:g} s") from None
            time.sleep(backoff)  # polling a starting process, backing off; not a test's synchronisation
            backoff = min(backoff * 2, 0.5)

    def _write_config(self, folder: Path, port: int, ws_port: int, admin_port: int, admin_secret: str, admin_key: str) -> None:
        lo, hi = self.rtp_port_range
        (folder / "janus.jcfg").write_text(_jcfg({
            "general": {
                "configs_folder": str(folder),
                "plugins_folder": str(self.lib_folder / "plugins"),
                "transports_folder": str(self.lib_folder / "transports"),
                "events_folder": str(self.lib_folder / "events"),
                "loggers_folder": str(self.lib_folder / "loggers"),
                "debug_level": self.debug_level,
                "token_auth": True,  # stored tokens (no token_auth_secret): added through the admin API
                "admin_secret": admin_secret,
                "server_name": "labcam-janus",
                "session_timeout": 60,
                "hide_dependencies": True,
            },
            "media": {"rtp_port_range": f"{lo}-{hi}"},
            # No STUN server (none is configured), no mDNS, and candidates only where labcam serves.
            "nat": {"ignore_mdns": True, "nice_debug": False, **({"ice_enforce_list": self.ice_enforce_list} if self.ice_enforce_list else {})},
            "plugins": {"disable": _libraries(self.lib_folder / "plugins", "libjanus_streaming.so")},
            "transports": {"disable": _libraries(self.lib_folder / "transports", "libjanus_http.so", "libjanus_websockets.so")},
            "loggers": {"disable": _libraries(self.lib_folder / "loggers", "")},
            "events": {"broadcast": False, "disable": _libraries(self.lib_folder / "events", "")},
        }))
        (folder / "janus.transport.http.jcfg").write_text(_jcfg({
            "general": {"json": "plain", "base_path": "/janus", "http": True, "port": port, "ip": self.host, "https": False},
            "admin": {
                "admin_base_path": "/admin", "admin_http": True, "admin_port": admin_port, "admin_ip": "127.0.0.1",
                "admin_https": False, "admin_acl": "127.",
            },
        }))
        (folder / "janus.transport.websockets.jcfg").write_text(_jcfg({
            "general": {"json": "plain", "ws": True, "ws_port": ws_port, "ws_ip": self.host, "wss": False},
            "admin": {"admin_ws": False, "admin_wss": False},
        }))
        (folder / "janus.plugin.streaming.jcfg").write_text(_jcfg({
            "general": {"admin_key": admin_key, "rtp_port_range": f"{lo}-{hi}", "events": False},
        }))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """End Janus (SIGTERM, then SIGKILL after ``timeout``) and remove its folder. Safe twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> JanusProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["JanusAccess", "JanusClient", "JanusError", "JanusProcess", "WebRTCChoice", "parse_janus_url", "parse_webrtc"]
