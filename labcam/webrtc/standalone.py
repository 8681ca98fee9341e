"""``labcam serve --webrtc janus[=URL]``: parse the option, start publishing, mount ``api/webrtc``.

- ``--webrtc janus``: labcam starts a Janus of its own (``JanusProcess``) bound where labcam binds.
- ``--webrtc janus=http://host:port/janus``: a running Janus. Its admin API and secrets come from
  the environment, never the command line (where ``ps`` shows them): ``LABCAM_JANUS_ADMIN_URL``
  (default: the same host, port 7088, ``/admin``), ``LABCAM_JANUS_ADMIN_SECRET`` and
  ``LABCAM_JANUS_ADMIN_KEY`` (the streaming plugin's ``admin_key``); ``LABCAM_JANUS_WS_URL``
  (its WebSocket API, ``ws://host:8188/``) is what viewers are given, if set.
- Either way, ``LABCAM_WEBRTC_ICE_SERVERS`` (JSON) lists the ICE servers viewers are told to use:
  a TURN server for viewers behind NAT. None by default.

Janus missing or unreachable is not fatal: labcam serve logs why and serves its WebSocket stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from tornado import web

from ..engine import Engine
from ..server.app import StandaloneSecurity
from .handler import WebRTCInfoHandler, mount
from .janus import JanusAccess, JanusError, JanusProcess, WebRTCChoice, parse_janus_url, parse_webrtc
from .publisher import DEFAULT_MOUNTPOINT, PublishOptions, WebRTCPublisher

log = logging.getLogger("labcam.webrtc")

DEFAULT_ADMIN_PORT = 7088


class StandaloneWebRTCInfoHandler(StandaloneSecurity, WebRTCInfoHandler):
    """``api/webrtc`` with labcam serve's token, origin and host checks."""


def external_access(url: str, environ: Mapping[str, str] = os.environ) -> JanusAccess:
    """The ``JanusAccess`` of a running Janus at ``url``, its secrets from the environment."""
    secret = environ.get("LABCAM_JANUS_ADMIN_SECRET", "")
    key = environ.get("LABCAM_JANUS_ADMIN_KEY", "")
    if not secret or not key:
        raise JanusError(
            "a running Janus needs LABCAM_JANUS_ADMIN_SECRET (its admin_secret) and LABCAM_JANUS_ADMIN_KEY "
            "(its streaming plugin's admin_key) in the environment"
        )
    host = urlparse(url).hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    admin = environ.get("LABCAM_JANUS_ADMIN_URL") or f"http://{netloc}:{DEFAULT_ADMIN_PORT}/admin"
    viewers = environ.get("LABCAM_JANUS_WS_URL", "")  # e.g. ws://host:8188/ (else viewers use the HTTP API)
    return JanusAccess(url=url, admin_url=parse_janus_url(admin), admin_secret=secret, streaming_admin_key=key,
                       public_url=viewers)


def ice_servers_from(environ: Mapping[str, str] = os.environ) -> tuple[dict[str, Any], ...]:
    """``LABCAM_WEBRTC_ICE_SERVERS``: the viewers' ICE servers, a JSON list of RTCIceServer objects,
    e.g. ``[{"urls": "turn:turn.lab.example:3478", "username": "u", "credential": "p"}]``."""
    text = environ.get("LABCAM_WEBRTC_ICE_SERVERS", "").strip()
    if not text:
        return ()
    try:
        servers = json.loads(text)
    except ValueError as exc:
        raise JanusError(f"LABCAM_WEBRTC_ICE_SERVERS is not JSON: {exc}") from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and s.get("urls") for s in servers):
        raise JanusError('LABCAM_WEBRTC_ICE_SERVERS must be a JSON list of {"urls": ..., "username": ..., "credential": ...}')
    return tuple(servers)


def ice_interfaces(host: str) -> str:
    """Where our Janus may offer ICE candidates: the interface labcam binds (loopback stays loopback)."""
    if host in ("0.0.0.0", "::", ""):
        return ""  # all interfaces, as labcam
    try:
        return "lo" if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        return "lo" if host == "localhost" else ""


def make_publisher(
    engine: Engine, choice: WebRTCChoice, *, host: str, mountpoint_id: int = DEFAULT_MOUNTPOINT,
    options: PublishOptions = PublishOptions(), environ: Mapping[str, str] = os.environ,
) -> WebRTCPublisher:
    janus: JanusProcess | JanusAccess
    options = dataclasses.replace(options, ice_servers=options.ice_servers or ice_servers_from(environ))
    if choice.url is None:
        janus = JanusProcess(host=host, ice_enforce_list=ice_interfaces(host))
    else:
        janus = external_access(choice.url, environ)
    return WebRTCPublisher(engine, janus, mountpoint_id=mountpoint_id, options=options)


async def start_webrtc(
    app: web.Application, engine: Engine, choice: WebRTCChoice, *, host: str, mountpoint_id: int = DEFAULT_MOUNTPOINT,
    prefix: str = "/", handler: type[web.RequestHandler] = StandaloneWebRTCInfoHandler,
    options: PublishOptions = PublishOptions(),
) -> WebRTCPublisher | None:
    """Start publishing and mount ``api/webrtc`` on ``app``; None (logged) when Janus cannot be used."""
    try:
        publisher = make_publisher(engine, choice, host=host, mountpoint_id=mountpoint_id, options=options)
        await asyncio.get_running_loop().run_in_executor(None, publisher.start)
    except JanusError as exc:
        log.error("WebRTC is off: %s. Serving the WebSocket stream only.", exc)
        return None
    mount(app, publisher, handler, prefix)
    log.info("WebRTC:     %s (Janus mountpoint %d; viewers ask %sapi/webrtc)", publisher.access.viewer_url, mountpoint_id, prefix)
    return publisher


async def stop_webrtc(publisher: WebRTCPublisher | None) -> None:
    if publisher is not None:
        await asyncio.get_running_loop().run_in_executor(None, publisher.close)


__all__ = [
    "StandaloneWebRTCInfoHandler", "WebRTCChoice", "external_access", "make_publisher", "parse_webrtc",
    "start_webrtc", "stop_webrtc",
]
