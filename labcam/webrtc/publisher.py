"""The camera, published once to a Janus mountpoint, and what each viewer is handed.

``WebRTCPublisher`` owns, for one engine:

- the **publishing thread**: one *latest* engine subscription (a slow encode skips frames, never
  queues them) → ``DisplayMapper`` (8 bits, at most ``max_width`` wide) → ``H264Encoder`` →
  frame-info SEI → RFC 6184 packets → ``PacedSender`` over UDP to the mountpoint's RTP port. Its
  cost does not depend on the number of viewers: Janus fans the packets out.
- **keyframes**: an IDR every ``gop`` frames (the floor), and on each PLI/FIR that Janus forwards
  to the mountpoint's RTCP port (``RtcpListener``; ``keyframe_spacing`` limits how often).
- the **watchdog thread**: checks Janus once a second. When Janus is gone (our own exited, or
  three checks in a row unanswered) it says so (``state`` ``lost``) and keeps trying, backing off; a Janus of our own that died is started again on the same
  ports; when Janus answers again the mountpoint is created again (Janus forgets it on restart).
  labcam's own WebSocket stream never depends on any of this.
- **viewer tokens**: ``viewer_info()`` adds a fresh Janus token (streaming plugin only) through
  the admin API; the newest ``max_tokens`` are kept, older ones are removed.
"""

from __future__ import annotations

import collections
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..engine import Engine
from ..errors import CameraError, FrameTimeout
from ..preview.display import DisplayMapper
from ..preview.h264 import H264Encoder
from .janus import JanusAccess, JanusClient, JanusError, JanusProcess, free_port
from .rtp import H264Packetizer, PacedSender, RtcpListener, rtp_timestamp, sender_report, with_frame_info

log = logging.getLogger("labcam.webrtc")

DEFAULT_MOUNTPOINT = 1
WATCH_INTERVAL_S = 1.0
LOST_AFTER_FAILURES = 3  # checks unanswered in a row before an external Janus counts as lost
MAX_RESTART_BACKOFF_S = 8.0
SENDER_REPORT_INTERVAL_S = 1.0
FRAME_WAIT_S = 1.0


@dataclass(frozen=True)
class PublishOptions:
    """How the camera is encoded for WebRTC viewers."""

    max_width: int = 1280
    crf: float = 23.0
    gop: int = 60  # frames: a keyframe at least this often, whatever Janus relays
    keyframe_spacing: int = 10  # frames: the most often a PLI may force a keyframe
    pace_fraction: float = 0.5  # of the frame interval, over which a unit's packets are spread
    mtu: int = 1200
    max_tokens: int = 1000  # viewer tokens kept in Janus (the oldest are removed)
    # What viewers are told to use for ICE (RTCIceServer dicts: a TURN server for viewers behind
    # NAT, docs/scale-out.md). None by default: never a public STUN server.
    ice_servers: tuple[dict[str, Any], ...] = ()


class WebRTCPublisher:
    """Publishes ``engine`` to Janus mountpoint ``mountpoint_id``.

    ``janus``: a ``JanusProcess`` (not yet started: labcam starts it, restarts it if it dies, and
    stops it on ``close``) or the ``JanusAccess`` of a running Janus. ``start()`` raises
    ``JanusError`` (Janus missing, unreachable, the id taken) and leaves nothing running.
    """

    def __init__(
        self, engine: Engine, janus: JanusProcess | JanusAccess, *, mountpoint_id: int = DEFAULT_MOUNTPOINT,
        options: PublishOptions = PublishOptions(), host: str = "127.0.0.1",
    ) -> None:
        if isinstance(mountpoint_id, bool) or not isinstance(mountpoint_id, int) or not 1 <= mountpoint_id <= 2**53:
            raise ValueError(f"mountpoint_id={mountpoint_id!r} is out of range: a whole number from 1 to 2**53")
        self.engine = engine
        self.options = options
        self.mountpoint_id = mountpoint_id
        self.host = host  # where the mountpoint's RTP ports listen (loopback: labcam is on the same machine)
        self._own = janus if isinstance(janus, JanusProcess) else None
        self._access = janus if isinstance(janus, JanusAccess) else None
        self.client: JanusClient | None = None
        self.state = "stopped"  # "publishing" | "lost" | "stopped"
        self.message = ""
        self.rtp_port = free_port(host, socket.SOCK_DGRAM)
        self.rtcp_port = free_port(host, socket.SOCK_DGRAM)
        self._rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rtp.bind((host, 0))
        self._rtp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self._rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rtcp.bind((host, 0))
        self._packetizer = H264Packetizer(ssrc=secrets.randbits(32), mtu=options.mtu)
        self._encoder: H264Encoder | None = None
        self._keyframe_wanted = threading.Event()
        self._rtcp_listener = RtcpListener(self._rtcp, self._keyframe_wanted.set)
        self._tokens: collections.deque[str] = collections.deque()
        self._tokens_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.frames_skipped = 0

    @property
    def plis(self) -> int:
        """PLI/FIR messages Janus forwarded to us."""
        return self._rtcp_listener.plis

    @property
    def access(self) -> JanusAccess:
        access = self._own.access if self._own is not None else self._access
        if access is None:
            raise JanusError("Janus is not started")
        return access

    # -- start and stop -------------------------------------------------------------------------
    def start(self) -> WebRTCPublisher:
        try:
            if self._own is not None:
                self._own.start()
            self.client = JanusClient(self.access)
            self.client.info()
            self._create_mountpoint()
        except BaseException:
            self.close()
            raise
        self.state, self.message = "publishing", ""
        self._rtcp_listener.start()
        for target, name in ((self._publish, "labcam-webrtc-publish"), (self._watch, "labcam-webrtc-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _create_mountpoint(self) -> None:
        assert self.client is not None
        self.client.create_mountpoint(self.mountpoint_id, rtp_port=self.rtp_port, rtcp_port=self.rtcp_port, host=self.host)
        self._send_sender_report()  # Janus learns where our RTCP comes from, and so where PLIs go

    def close(self) -> None:
        """Stop publishing, remove the mountpoint and our tokens, stop our own Janus. Safe twice."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        self._threads.clear()
        self._rtcp_listener.stop()
        if self.client is not None and self.state == "publishing":
            try:
                self.client.destroy_mountpoint(self.mountpoint_id)
                with self._tokens_lock:
                    for token in self._tokens:
                        self.client.remove_token(token)
                    self._tokens.clear()
            except JanusError:
                pass  # Janus gone: nothing left to remove
        if self._own is not None:
            self._own.stop()
        self._rtp.close()
        self._rtcp.close()
        self.state = "stopped"

    # -- what a viewer needs ----------------------------------------------------------------------
    def viewer_info(self) -> dict[str, Any]:
        """Janus's URL, the mountpoint, and a fresh token for one viewer. Blocking (admin API).
        Raises ``JanusError`` when Janus is not reachable."""
        if self.client is None or self.state != "publishing":
            raise JanusError(f"WebRTC is not available: {self.message or self.state}")
        token = self.client.add_token()
        with self._tokens_lock:
            self._tokens.append(token)
            old = [self._tokens.popleft() for _ in range(max(0, len(self._tokens) - self.options.max_tokens))]
        for stale in old:
            try:
                self.client.remove_token(stale)
            except JanusError:
                pass
        return {
            "janus_url": self.access.viewer_url,
            "mountpoint": self.mountpoint_id,
            "token": token,
            "ice_servers": [dict(server) for server in self.options.ice_servers],
            "codec": self._encoder.codec if self._encoder is not None else None,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "state": self.state, "message": self.message, "mountpoint": self.mountpoint_id,
            "frames_sent": self.frames_sent, "keyframes_sent": self.keyframes_sent,
            "frames_skipped": self.frames_skipped, "packets_sent": self._packetizer.packets,
            "plis_received": self.plis,
        }

    # -- the publishing thread ----------------------------------------------------------------
    def _publish(self) -> None:
        mapper = DisplayMapper(max_width=self.options.max_width)
        sender = PacedSender(self._rtp, ("127.0.0.1", self.rtp_port), fps=30.0, pace_fraction=self.options.pace_fraction)
        last_report = 0.0
        try:
            sub = self.engine.subscribe("webrtc")
        except CameraError as exc:
            self.state, self.message = "stopped", f"camera: {exc}"
            return
        with sub:
            while not self._stop.is_set():
                try:
                    frame = sub.next(timeout=FRAME_WAIT_S)
                except FrameTimeout:
                    continue
                except CameraError:  # the engine closed
                    return
                if self.state != "publishing":
                    continue  # Janus gone: nothing to send to; recovery asks for a keyframe
                fps = max(1.0, min(120.0, float(self.engine.settings.fps)))
                sender.budget = self.options.pace_fraction / fps
                image, _ = mapper.map(frame.array, frame.meta.bit_depth)
                encoder = self._encoder_for(image.shape[1], image.shape[0], fps)
                if self._keyframe_wanted.is_set():
                    self._keyframe_wanted.clear()
                    encoder.request_keyframe()
                unit = encoder.encode(image)
                nals = with_frame_info(unit.data, frame.meta.frame_number, frame.meta.timestamp)
                packets = self._packetizer.packetize(nals, rtp_timestamp(frame.meta.timestamp))
                sender.send(packets)
                self.frames_sent += 1
                self.keyframes_sent += unit.keyframe
                self.frames_skipped = sub.missed
                now = time.monotonic()
                if now - last_report >= SENDER_REPORT_INTERVAL_S:
                    last_report = now
                    self._send_sender_report(rtp_timestamp(frame.meta.timestamp))

    def _encoder_for(self, width: int, height: int, fps: float) -> H264Encoder:
        enc = self._encoder
        if enc is None or (enc.width, enc.height) != (width, height):
            o = self.options
            enc = H264Encoder(width, height, fps=fps, crf=o.crf, gop=o.gop, keyframe_spacing=o.keyframe_spacing)
            self._encoder = enc
        return enc

    def _send_sender_report(self, rtp_ts: int | None = None) -> None:
        p = self._packetizer
        report = sender_report(p.ssrc, rtp_timestamp(time.time()) if rtp_ts is None else rtp_ts, p.packets, p.octets)
        try:
            self._rtcp.sendto(report, ("127.0.0.1", self.rtcp_port))
        except OSError:
            pass  # Janus gone; the watchdog notices

    # -- the watchdog thread ------------------------------------------------------------------
    def _watch(self) -> None:
        backoff = WATCH_INTERVAL_S
        failures = 0  # unanswered checks in a row: a Janus busy for a moment is not a lost one
        while not self._stop.wait(backoff if self.state == "lost" else WATCH_INTERVAL_S):
            assert self.client is not None
            try:
                if self._own is not None and not self._own.running:
                    failures = LOST_AFTER_FAILURES  # our Janus exited: no doubt about it
                    code = self._own.process.returncode if self._own.process else "?"
                    raise JanusError(f"our Janus exited (code {code})")
                self.client.info()
                failures = 0
                if self.state == "lost":
                    self._recover()
                    log.warning("WebRTC: Janus is back, publishing to mountpoint %d again", self.mountpoint_id)
                    self.state, self.message, backoff = "publishing", "", WATCH_INTERVAL_S
            except JanusError as exc:
                failures += 1
                if failures < LOST_AFTER_FAILURES:
                    continue
                if self.state != "lost":
                    log.warning("WebRTC: Janus lost (%s); the WebSocket stream goes on, retrying", exc)
                self.state, self.message = "lost", str(exc)
                backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)
                if self._own is not None and not self._own.running:
                    self._restart_own()

    def _restart_own(self) -> None:
        own = self._own
        assert own is not None
        own.stop()
        try:
            own.start()  # the same ports as before (kept by JanusProcess), new secrets
        except JanusError as exc:
            self.message = f"restarting Janus: {exc}"
            return
        self.client = JanusClient(self.access)

    def _recover(self) -> None:
        # A restarted Janus has forgotten every token, labcam's own too: a new client adds a new one.
        self.client = JanusClient(self.access)
        if self._own is not None:
            with self._tokens_lock:
                self._tokens.clear()
        if self.mountpoint_id not in self.client.mountpoint_ids():
            self._create_mountpoint()
        self._keyframe_wanted.set()


__all__ = ["DEFAULT_MOUNTPOINT", "PublishOptions", "WebRTCPublisher"]
