"""H.264 over RTP to Janus: RFC 6184 packets, paced, with the frame's number and capture time.

The packetizer is the format's definition (RFC 6184, packetization-mode 1), written here because
PyAV's ``rtp`` muxer sends packets itself, all at once, through FFmpeg's own socket: it cannot be
paced, and its SDP/SSRC are FFmpeg's. What this module does:

- **Packets.** Each NAL unit of an access unit goes in one *single NAL unit* packet when it fits
  in ``mtu`` bytes, else in *FU-A* fragments (S bit on the first, E on the last). The marker bit is
  set on the access unit's last packet. All packets of an access unit share its RTP timestamp
  (90 kHz, from the frame's capture time: viewers' jitter buffers see the camera's real timing).
- **Frame info.** Each access unit carries an SEI NAL unit (type 6) holding one
  ``user_data_unregistered`` message (payload type 5): the UUID ``FRAME_INFO_UUID``, then the frame
  number (uint64) and the capture time (float64 epoch seconds), big-endian. An SEI, not an RTP
  header extension, because Janus relays the payload unchanged but rewrites or drops header
  extensions it has not negotiated; a decoder ignores the SEI, and a browser can read it with an
  encoded-frame transform (``labcam-webrtc.js``) to show latency and drops.
- **Pacing.** ``PacedSender`` spreads an access unit's packets evenly over ``pace_fraction`` of
  the frame interval, a few packets at a time, instead of one burst: an unpaced 30-packet keyframe
  overflowed the receiving socket (14 % lost in a trial, the viewer at 10.6 fps).
- **Keyframe requests.** ``RtcpListener`` reads RTCP arriving on the sending socket pair and calls
  back on PLI (RFC 4585, PT 206 FMT 1) and FIR (RFC 5104, FMT 4). It also sends a receiver-less
  Sender Report now and then, so Janus learns where to send its RTCP.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..preview.h264 import split_nal_units

log = logging.getLogger("labcam.webrtc")

RTP_VERSION = 2
CLOCK_RATE = 90_000  # H.264's RTP clock (RFC 6184)
DEFAULT_MTU = 1200  # RTP payload bytes: leaves room for Janus's SRTP and the viewers' tunnels
NAL_SEI = 6
NAL_FU_A = 28
SEI_USER_DATA_UNREGISTERED = 5
FRAME_INFO_UUID = uuid.UUID("6c616263-616d-4672-8a6d-65496e666f30")  # "labcam" + frame info, v0
FRAME_INFO = struct.Struct(">Qd")  # frame number, capture time (epoch s)

RTCP_SR = 200
RTCP_PSFB = 206  # payload-specific feedback: PLI (fmt 1), FIR (fmt 4)
RTCP_RTPFB = 205


# ==================================================================================================
# The frame-info SEI
# ==================================================================================================
def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: 00 00 followed by 00..03 gets a 03 in between."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _unescape(ebsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for b in ebsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def frame_info_sei(frame_number: int, capture_time: float) -> bytes:
    """The SEI NAL unit (no start code) carrying ``frame_number`` and ``capture_time``."""
    payload = FRAME_INFO_UUID.bytes + FRAME_INFO.pack(frame_number, capture_time)
    rbsp = bytes([SEI_USER_DATA_UNREGISTERED, len(payload)]) + payload + b"\x80"  # + rbsp stop bit
    return bytes([NAL_SEI]) + _escape(rbsp)


def read_frame_info(nal: bytes) -> tuple[int, float] | None:
    """(frame number, capture time) from a NAL unit if it is our SEI, else None."""
    if not nal or nal[0] & 0x1F != NAL_SEI:
        return None
    rbsp = _unescape(nal[1:])
    i = 0
    while i + 2 <= len(rbsp) and rbsp[i] != 0x80:
        ptype = size = 0
        while rbsp[i] == 0xFF:
            ptype, i = ptype + 255, i + 1
        ptype, i = ptype + rbsp[i], i + 1
        while rbsp[i] == 0xFF:
            size, i = size + 255, i + 1
        size, i = size + rbsp[i], i + 1
        body = rbsp[i : i + size]
        if ptype == SEI_USER_DATA_UNREGISTERED and body[:16] == FRAME_INFO_UUID.bytes and len(body) >= 16 + FRAME_INFO.size:
            number, when = FRAME_INFO.unpack_from(body, 16)
            return int(number), float(when)
        i += size
    return None


def with_frame_info(access_unit: bytes, frame_number: int, capture_time: float) -> list[bytes]:
    """The access unit's NAL units with the frame-info SEI before its first slice (after SPS/PPS,
    where H.264 7.4.1.2.3 puts SEI)."""
    nals = split_nal_units(access_unit)
    first_slice = next((i for i, n in enumerate(nals) if 1 <= n[0] & 0x1F <= 5), len(nals))
    return nals[:first_slice] + [frame_info_sei(frame_number, capture_time)] + nals[first_slice:]


# ==================================================================================================
# RFC 6184 packets
# ==================================================================================================
class H264Packetizer:
    """NAL units of access units → RTP packets (RFC 6184, packetization-mode 1, no STAP-A)."""

    def __init__(self, *, payload_type: int = 96, ssrc: int, mtu: int = DEFAULT_MTU, first_sequence: int = 0) -> None:
        if not 96 <= payload_type <= 127:
            raise ValueError(f"payload_type={payload_type} is out of range: a dynamic type, 96 to 127")
        if not 100 <= mtu <= 9000:
            raise ValueError(f"mtu={mtu} is out of range: 100 to 9000 bytes")
        self.payload_type, self.ssrc, self.mtu = payload_type, ssrc & 0xFFFFFFFF, mtu
        self.sequence = first_sequence & 0xFFFF
        self.packets = 0
        self.octets = 0  # payload bytes sent (for the Sender Report)

    def _header(self, timestamp: int, marker: bool) -> bytes:
        header = struct.pack(
            ">BBHII", RTP_VERSION << 6, (int(marker) << 7) | self.payload_type, self.sequence,
            timestamp & 0xFFFFFFFF, self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return header

    def packetize(self, nals: list[bytes], timestamp: int) -> list[bytes]:
        """The RTP packets of one access unit (its NAL units without start codes)."""
        payloads: list[bytes] = []
        for nal in nals:
            if len(nal) <= self.mtu:
                payloads.append(nal)
                continue
            indicator = (nal[0] & 0xE0) | NAL_FU_A  # F and NRI of the NAL, type 28
            kind = nal[0] & 0x1F
            body = memoryview(nal)[1:]
            step = self.mtu - 2
            for start in range(0, len(body), step):
                fu_header = kind | (0x80 if start == 0 else 0) | (0x40 if start + step >= len(body) else 0)
                payloads.append(bytes([indicator, fu_header]) + body[start : start + step])
        packets = [self._header(timestamp, i == len(payloads) - 1) + p for i, p in enumerate(payloads)]
        self.packets += len(packets)
        self.octets += sum(len(p) for p in payloads)
        return packets


@dataclass(frozen=True)
class RtpPacket:
    """A parsed RTP packet (for checks and tests)."""

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
            raise ValueError("not an RTP packet")
        b0, b1, seq, ts, ssrc = struct.unpack_from(">BBHII", data)
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension
            (length,) = struct.unpack_from(">H", data, offset + 2)
            offset += 4 + 4 * length
        return cls(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, data[offset:])


def depacketize(packets: Iterator[RtpPacket] | list[RtpPacket]) -> list[bytes]:
    """NAL units back from in-order packets (single NAL and FU-A): the receiving side of
    ``H264Packetizer``, for checks."""
    nals: list[bytes] = []
    fragment = bytearray()
    for p in packets:
        kind = p.payload[0] & 0x1F
        if kind == NAL_FU_A:
            fu = p.payload[1]
            if fu & 0x80:
                fragment = bytearray([(p.payload[0] & 0xE0) | (fu & 0x1F)])
            fragment += p.payload[2:]
            if fu & 0x40:
                nals.append(bytes(fragment))
        else:
            nals.append(p.payload)
    return nals


def rtp_timestamp(capture_time: float) -> int:
    """The 90 kHz RTP timestamp of a capture time (epoch seconds), modulo 2**32."""
    return int(round(capture_time * CLOCK_RATE)) & 0xFFFFFFFF


# ==================================================================================================
# Sending, paced, and RTCP
# ==================================================================================================
class PacedSender:
    """Sends each access unit's packets spread over ``pace_fraction`` of the frame interval.

    ``send`` blocks for at most that long (call it from the publishing thread, never the event
    loop). Packets go out in groups of ``burst`` at even intervals; a unit whose pacing would
    reach past the next frame is sent faster instead (the budget is per frame), so pacing never
    builds a backlog.
    """

    def __init__(
        self, sock: socket.socket, address: tuple[str, int], *, fps: float, pace_fraction: float = 0.5, burst: int = 4,
        clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0.0 <= pace_fraction <= 1.0:
            raise ValueError(f"pace_fraction={pace_fraction} is out of range: 0 (no pacing) to 1")
        self.sock, self.address = sock, address
        self.budget = pace_fraction / max(fps, 1e-3)
        self.burst = max(1, burst)
        self._clock, self._sleep = clock, sleep
        self.sent = 0
        self.send_errors = 0

    def send(self, packets: list[bytes]) -> None:
        groups = [packets[i : i + self.burst] for i in range(0, len(packets), self.burst)]
        start = self._clock()
        gap = self.budget / len(groups) if groups and self.budget > 0 else 0.0
        for n, group in enumerate(groups):
            if gap:
                delay = start + n * gap - self._clock()
                if delay > 0:
                    self._sleep(delay)  # pacing: the wire's timing, not synchronisation
            for packet in group:
                try:
                    self.sock.sendto(packet, self.address)
                    self.sent += 1
                except OSError:  # Janus gone: the packet is lost, as on any network
                    self.send_errors += 1


def sender_report(ssrc: int, rtp_ts: int, packets: int, octets: int, now: float | None = None) -> bytes:
    """An RTCP Sender Report without report blocks (RFC 3550 6.4.1)."""
    now = time.time() if now is None else now
    ntp = now + 2_208_988_800  # NTP era 0 starts in 1900
    seconds = int(ntp)
    fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack(
        ">BBHIIIIII", RTP_VERSION << 6, RTCP_SR, 6, ssrc & 0xFFFFFFFF, seconds & 0xFFFFFFFF, fraction,
        rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF,
    )


def keyframe_requests(datagram: bytes) -> int:
    """How many PLI/FIR messages a compound RTCP datagram holds."""
    found, i = 0, 0
    while i + 4 <= len(datagram):
        b0, pt, length = struct.unpack_from(">BBH", datagram, i)
        if b0 >> 6 != RTP_VERSION:
            break
        if pt == RTCP_PSFB and (b0 & 0x1F) in (1, 4):
            found += 1
        i += 4 * (length + 1)
    return found


class RtcpListener:
    """Reads RTCP from Janus on its own thread and calls ``on_keyframe_request`` for each PLI/FIR.

    Counts what it saw in ``plis`` (the benchmark reports it: does Janus relay viewers' PLIs?).
    """

    def __init__(self, sock: socket.socket, on_keyframe_request: Callable[[], None]) -> None:
        self.sock = sock
        self.on_keyframe_request = on_keyframe_request
        self.plis = 0
        self.reports = 0
        self._stop = threading.Event()
        self.sock.settimeout(0.25)
        self._thread = threading.Thread(target=self._run, name="labcam-rtcp", daemon=True)

    def start(self) -> RtcpListener:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                datagram = self.sock.recv(2048)
            except socket.timeout:
                continue
            except OSError:  # ICMP port unreachable (Janus gone), or closed: wait and go on
                if self._stop.wait(0.25):
                    return
                continue
            self.reports += 1
            n = keyframe_requests(datagram)
            if n:
                self.plis += n
                self.on_keyframe_request()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)


__all__ = [
    "CLOCK_RATE",
    "FRAME_INFO_UUID",
    "H264Packetizer",
    "PacedSender",
    "RtcpListener",
    "RtpPacket",
    "depacketize",
    "frame_info_sei",
    "keyframe_requests",
    "read_frame_info",
    "rtp_timestamp",
    "sender_report",
    "with_frame_info",
]
