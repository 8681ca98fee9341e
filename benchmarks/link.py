"""An emulated network link on this machine: a rate limit (``tbf``) plus a round-trip delay.

    python benchmarks/link.py --rate 20mbit --rtt 40ms --port-map 8001:18001 -- <command>
    python benchmarks/link.py --rate 5mbit --rtt 80ms --selftest
    python benchmarks/link.py --cleanup          # remove links left behind by a killed run

``<command>`` runs inside a network namespace of its own. There, ``127.0.0.1:18001`` is the server
that listens on this machine's ``127.0.0.1:8001``, reached across the emulated link (``--port-map
8001`` keeps the number). Being ``127.0.0.1``, a page loaded from it is still a secure context for
Chromium (WebCodecs needs one). Needs root (``ip netns``, ``tc``: iproute2).

What the bytes cross, for each mapped port::

    command ── 127.0.0.1:18001 ──▶ delay relay ══ veth, tbf each way ══▶ host relay ──▶ 127.0.0.1:8001
            (namespace loopback)   (namespace)    (a private /30)       (10.x.x.1)     (the server)

- **Rate.** ``tbf`` on the egress of both ends of a veth pair: each direction gets ``rate`` of its
  own, as on a full-duplex link. ``netem`` is missing from these kernels, hence the relay for delay.
- **Delay.** The relay in the namespace holds every chunk it forwards for ``rtt / 2``, in both
  directions, in order; a chunk is the bytes one read returned. Its buffer is bounded (a little
  more than rate × one-way delay, what keeps the link full): when it is full the relay stops
  reading and TCP's flow control pushes back to the sender, so the relay never becomes a queue of
  its own.
- **Queue sizing.** A real bottleneck queues what the sender sends beyond the rate. Its size
  matters here: a queue much larger than the round trip (the 400 ms often seen in tbf examples)
  lets a sender that over-sends pile up hundreds of milliseconds the emulated RTT does not show,
  and a queue of a few packets drops TCP's normal bursts, so the link never reaches its rate. tbf's
  queue is therefore one bandwidth-delay product, ``latency = max(rtt, 20 ms)`` (the classic
  router buffer rule; 20 ms keeps short-RTT links from dropping bursts), and its bucket
  ``burst = max(2 packets, rate × 1 ms)``: a larger bucket lets a whole video frame pass at wire
  speed after an idle moment, hiding the serialisation delay a slow link has.
- **Limits, honestly.** The relays terminate TCP, so the server's TCP congestion control sees the
  rate and the queue but not the added delay; everything above TCP (WebSocket pings, frame acks,
  the time a frame takes to arrive) sees all of it. A new connection is accepted by the relay at
  once, so TCP's handshake costs no round trip (the first request and reply cost one). Packet loss
  is not emulated beyond what the full tbf queue drops.

As a context manager, for tests and benchmarks::

    with Link(rate="5mbit", rtt_ms=80) as link:
        url = link.url_for(8001)                 # as seen inside the namespace
        link.run([sys.executable, "client.py", url])
        sock = link.connect(8001)                # or a socket of this process, across the link
        browser = playwright.chromium.launch(executable_path=link.wrap_executable("chromium"))

Everything lives on this machine: loopback, and a namespace and veth pair this module creates and
removes (also on Ctrl-C, SIGTERM or failure; ``--cleanup`` removes those of a killed run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

NETNS_PREFIX = "labcam-link-"
# The /30s come from this block; one the machine already routes or uses is never picked.
SUBNET_POOL = ipaddress.ip_network("10.237.0.0/16")
LOCK_FILE = "/run/labcam-link.lock"
PACKET_BYTES = 1514  # an Ethernet frame at the veth's MTU of 1500: what tbf counts
MIN_QUEUE_S = 0.020
CHUNK = 65536
CLONE_NEWNET = 0x40000000

_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bps": 8, "kbps": 8e3, "mbps": 8e6}


def parse_rate(text: str) -> float:
    """``"20mbit"`` → 20e6 bits/s (units as tc spells them: bit, kbit, mbit, gbit, bps, kbps, mbps)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"rate={text!r}: expected a number and one of {', '.join(_UNITS)}, e.g. 20mbit")
    bits = float(m.group(1)) * _UNITS[m.group(2)]
    if not 8e3 <= bits <= 10e9:
        raise ValueError(f"rate={text!r}: must be between 8kbit and 10gbit")
    return bits


def parse_ms(text: str | float) -> float:
    """``"40ms"``, ``"0.04s"`` or ``40`` → 40.0 milliseconds."""
    if isinstance(text, (int, float)):
        ms = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|)\s*", text.lower())
        if not m:
            raise ValueError(f"rtt={text!r}: expected milliseconds, e.g. 40ms or 0.04s")
        ms = float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
    if not 0.0 <= ms <= 10_000.0:
        raise ValueError(f"rtt={text!r}: must be between 0 and 10000 ms")
    return ms


def tbf_params(rate_bps: float, rtt_ms: float) -> dict[str, int]:
    """tbf's bucket (``burst``) and queue (``limit``), in bytes, for a link (see the module docstring)."""
    rate_Bps = rate_bps / 8.0
    burst = max(2 * PACKET_BYTES, int(rate_Bps * 0.001))
    limit = burst + max(4 * PACKET_BYTES, int(rate_Bps * max(rtt_ms / 1000.0, MIN_QUEUE_S)))
    return {"burst": burst, "limit": limit}


def relay_buffer_bytes(rate_bps: float, one_way_s: float) -> int:
    """What the delay relay may hold per direction: twice rate × one-way delay (enough to keep the
    link full), and at least a few chunks."""
    return max(4 * CHUNK, int(2 * rate_bps / 8.0 * one_way_s))


# ==================================================================================================
# Namespaces
# ==================================================================================================
def _require_tools() -> None:
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"the link emulator needs {' and '.join(missing)} (Debian package iproute2): "
            "scripts/setup.sh --test installs it"
        )
    if os.geteuid() != 0:
        raise PermissionError(
            "the link emulator needs root: it creates a network namespace, a veth pair and tc qdiscs "
            "(run the tests or benchmark as root, as CI does)"
        )


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _tc(netns: str | None, *args: str) -> None:
    cmd = ["tc", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine's own namespace has an address on or a route to (not default)."""
    nets = []
    for line in _ip("-o", "-4", "addr", "show").splitlines():
        m = re.search(r"inet (\S+)", line)
        if m:
            nets.append(ipaddress.ip_interface(m.group(1)).network)
    for line in _ip("-o", "-4", "route", "show", "table", "all").splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("default", "broadcast", "local", "unreachable", "prohibit", "blackhole"):
            first = line.split()[1] if first != "default" else ""
        with contextlib.suppress(ValueError):
            if first:
                nets.append(ipaddress.ip_network(first, strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    used = _networks_in_use()
    for net in SUBNET_POOL.subnets(new_prefix=30):
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /30 left in {SUBNET_POOL}")


def cleanup_stale() -> list[str]:
    """Remove namespaces of links whose process is gone (a kill -9 leaves them). Returns their names."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(re.escape(NETNS_PREFIX) + r"(\d+)-\d+", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
            removed.append(name)
    return removed


_libc = ctypes.CDLL(None, use_errno=True)


def _enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (sockets it creates live there)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


# ==================================================================================================
# Relays
# ==================================================================================================
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close (no delay: the host end)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float, cap: int
) -> None:
    """Copy until EOF, each chunk written ``delay_s`` after it was read, in order. Holds at most
    ``cap`` bytes: a full buffer stops the reading, and TCP pushes back to the sender."""
    held: deque[tuple[float, bytes]] = deque()
    changed = asyncio.Condition()
    state = {"bytes": 0, "eof": False}

    async def take_in() -> None:
        try:
            while data := await reader.read(CHUNK):
                async with changed:
                    await changed.wait_for(lambda: state["bytes"] < cap)
                    held.append((time.monotonic() + delay_s, data))
                    state["bytes"] += len(data)
                    changed.notify_all()
        finally:
            async with changed:
                state["eof"] = True
                changed.notify_all()

    async def give_out() -> None:
        while True:
            async with changed:
                await changed.wait_for(lambda: bool(held) or state["eof"])
                if not held:
                    break
                due, data = held[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            async with changed:
                held.popleft()
                state["bytes"] -= len(data)
                changed.notify_all()
        if writer.can_write_eof():
            writer.write_eof()

    inbound = asyncio.ensure_future(take_in())
    try:
        await give_out()
        await inbound
    except (ConnectionError, OSError):
        writer.transport.abort()
    finally:
        inbound.cancel()


def _make_socket(listen_port: int | None) -> socket.socket:
    """A TCP socket in the calling thread's namespace; listening on 127.0.0.1:``listen_port`` if given."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if listen_port is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", listen_port))
        sock.listen(128)
    return sock


@contextlib.contextmanager
def _quiet_on_close(writer: asyncio.StreamWriter) -> Iterator[None]:
    """A connection still open when the link closes is cut (reset), without a traceback."""
    try:
        yield
    except asyncio.CancelledError:
        writer.transport.abort()


def _small_write_buffer(writer: asyncio.StreamWriter) -> None:
    # drain() then waits as soon as one chunk is pending, so backpressure is felt at once.
    writer.transport.set_write_buffer_limits(high=CHUNK, low=CHUNK // 4)


class Link:
    """An emulated link between a network namespace and this machine (see the module docstring).

    ``rate``: tc spelling (``"20mbit"``) or bits/s; ``rtt_ms``: the round trip to add (half each
    way). ``ports``: {server port on 127.0.0.1: port inside the namespace}; ``expose()`` adds more.
    Use as a context manager, or ``start()``/``close()``. Raises ``PermissionError`` without root.
    """

    def __init__(self, rate: str | float = "20mbit", rtt_ms: float | str = 40.0, ports: dict[int, int] | None = None):
        self.rate_bps = parse_rate(rate) if isinstance(rate, str) else float(rate)
        if not 8e3 <= self.rate_bps <= 10e9:
            raise ValueError(f"rate={rate!r}: must be between 8kbit and 10gbit")
        self.rtt_ms = parse_ms(rtt_ms)
        self.tbf = tbf_params(self.rate_bps, self.rtt_ms)
        self._initial_ports = dict(ports or {})
        self.netns = ""
        self.host_ip = ""
        self.ns_ip = ""
        self.ports: dict[int, int] = {}
        self._host_dev = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ns_executor: ThreadPoolExecutor | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._closed = False
        self._expose_lock = threading.Lock()
        self._scripts: list[str] = []

    # ---- lifecycle --------------------------------------------------------------------------------
    _count = 0

    def start(self) -> Link:
        _require_tools()
        Link._count += 1
        self.netns = f"{NETNS_PREFIX}{os.getpid()}-{Link._count}"
        self._host_dev = f"lk{os.getpid()}x{Link._count}h"  # at most 15 characters
        ns_dev = self._host_dev[:-1] + "n"
        try:
            with open(LOCK_FILE, "w") as lock:  # two links starting at once must not pick one /30
                fcntl.flock(lock, fcntl.LOCK_EX)
                net = _free_subnet()
                host, ns = list(net.hosts())
                self.host_ip, self.ns_ip = str(host), str(ns)
                _ip("netns", "add", self.netns)
                _ip("link", "add", self._host_dev, "type", "veth", "peer", "name", ns_dev, "netns", self.netns)
                _ip("addr", "add", f"{host}/30", "dev", self._host_dev)
            _ip("-n", self.netns, "addr", "add", f"{ns}/30", "dev", ns_dev)
            for netns, dev in ((None, self._host_dev), (self.netns, ns_dev)):
                _tc(netns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{int(self.rate_bps)}bit",
                    "burst", str(self.tbf["burst"]), "limit", str(self.tbf["limit"]))
            # No IPv6 in the namespace: its link-local address would appear a moment after the
            # link comes up, and Chromium aborts its loads then (ERR_NETWORK_CHANGED).
            for conf in ("all", "default", ns_dev):
                subprocess.run(["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w",
                                f"net.ipv6.conf.{conf}.disable_ipv6=1"], capture_output=True, timeout=10)
            _ip("link", "set", self._host_dev, "up")
            _ip("-n", self.netns, "link", "set", ns_dev, "up")
            _ip("-n", self.netns, "link", "set", "lo", "up")
            self._wait_carrier(ns_dev)
            self._start_relays()
            for server_port, inner_port in self._initial_ports.items():
                self.expose(server_port, inner_port)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_carrier(self, dev: str, timeout: float = 5.0) -> None:
        """Until the namespace's end of the veth has its carrier: the network a program started in
        the namespace sees does not change under it any more."""
        deadline = time.monotonic() + timeout
        while "LOWER_UP" not in _ip("-n", self.netns, "link", "show", "dev", dev):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the link's {dev} got no carrier within {timeout:g} s")
            time.sleep(0.02)  # polling the kernel's link state, not waiting for a program

    def close(self) -> None:
        """Stop the relays and remove the namespace (its veth end goes with it, and the peer too)."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()
        if self._ns_executor is not None:
            self._ns_executor.shutdown(wait=False)
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=10)
        for script in self._scripts:
            with contextlib.suppress(OSError):
                os.remove(script)
        if self._host_dev:  # normally gone with the namespace; never leave it behind
            subprocess.run(["ip", "link", "del", self._host_dev], capture_output=True, timeout=10)

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what users call ------------------------------------------------------------------------
    @property
    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.netns]

    def expose(self, server_port: int, inner_port: int | None = None) -> int:
        """Make ``127.0.0.1:server_port`` of this machine reachable inside the namespace at
        ``127.0.0.1:inner_port`` (default: the same number) across the link. Returns the inner port."""
        with self._expose_lock:  # clients on several threads may ask for the same port at once
            if server_port in self.ports:
                return self.ports[server_port]
            inner = server_port if inner_port is None else inner_port
            if not (0 < server_port < 65536 and 0 < inner < 65536):
                raise ValueError(f"ports must be 1..65535, got {server_port}:{inner}")
            self._call(self._expose(server_port, inner))
            self.ports[server_port] = inner
            return inner

    def url_for(self, server_port: int, scheme: str = "http", path: str = "") -> str:
        """The URL of the server at ``127.0.0.1:server_port`` as seen inside the namespace."""
        return f"{scheme}://127.0.0.1:{self.expose(server_port)}{path}"

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run`` of ``cmd`` inside the namespace."""
        return subprocess.run([*self.prefix, *cmd], **kwargs)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen([*self.prefix, *cmd], **kwargs)

    def wrap_executable(self, executable: str) -> str:
        """A script that runs ``executable`` inside the namespace, for tools that take a program
        path rather than a command (Playwright's ``executable_path``). Removed with the link."""
        import tempfile

        path = shutil.which(executable) or executable
        fd, script = tempfile.mkstemp(prefix=f"{self.netns}-", suffix=".sh")
        with os.fdopen(fd, "w") as f:
            f.write(f'#!/bin/sh\nexec ip netns exec {self.netns} "{path}" "$@"\n')
        os.chmod(script, 0o700)
        self._scripts.append(script)
        return script

    def connect(self, server_port: int, timeout: float = 10.0) -> socket.socket:
        """A connected TCP socket of this process whose bytes to ``127.0.0.1:server_port`` cross
        the link (it is created inside the namespace)."""
        inner = self.expose(server_port)
        sock = self._new_ns_socket()
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", inner))
        return sock

    # ---- the relays, on one event loop thread -----------------------------------------------------
    def _start_relays(self) -> None:
        self._ns_executor = ThreadPoolExecutor(1, "link-netns", initializer=_enter_netns, initargs=(self.netns,))
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="link-relays", daemon=True)
        self._thread.start()

    def _new_ns_socket(self, listen_port: int | None = None) -> socket.socket:
        """A TCP socket created inside the namespace (from any thread but the executor's own)."""
        assert self._ns_executor is not None
        return self._ns_executor.submit(_make_socket, listen_port).result(timeout=10)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=10)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _expose(self, server_port: int, inner_port: int) -> None:
        one_way = self.rtt_ms / 2000.0
        cap = relay_buffer_bytes(self.rate_bps, one_way)

        async def host_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with _quiet_on_close(writer):
                await host_pipes(reader, writer)

        async def host_pipes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", server_port)
            except OSError:
                writer.transport.abort()
                return
            for w in (writer, up_w):
                _small_write_buffer(w)
                w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
            for w in (writer, up_w):
                w.close()

        host_server = await asyncio.start_server(host_side, self.host_ip, 0)
        host_port = host_server.sockets[0].getsockname()[1]

        async def ns_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with _quiet_on_close(writer):
                await ns_pipes(reader, writer)

        async def ns_pipes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            loop = asyncio.get_running_loop()
            sock = await loop.run_in_executor(self._ns_executor, _make_socket, None)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (self.host_ip, host_port))
            except OSError:
                sock.close()
                writer.transport.abort()
                return
            far_r, far_w = await asyncio.open_connection(sock=sock)
            for w in (writer, far_w):
                _small_write_buffer(w)
            await asyncio.gather(
                _delayed_pipe(reader, far_w, one_way, cap), _delayed_pipe(far_r, writer, one_way, cap)
            )
            for w in (writer, far_w):
                w.close()

        listener = await asyncio.get_running_loop().run_in_executor(
            self._ns_executor, _make_socket, inner_port
        )
        listener.setblocking(False)
        ns_server = await asyncio.start_server(ns_side, sock=listener)
        self._servers += [host_server, ns_server]


# ==================================================================================================
# Self-check: throughput and round trip through the link, against what was asked
# ==================================================================================================
class _FarSide:
    """A bulk and echo server on this machine's loopback (the server side of the link), in a thread.

    The first byte a client sends picks the job: ``b"e"`` echo everything back; ``b"d"`` + 8-byte
    count: send that many bytes; ``b"u"``: read until EOF, then reply with the 8-byte byte count.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            job = conn.recv(1)
            if job == b"e":
                while data := conn.recv(CHUNK):
                    conn.sendall(data)
            elif job == b"d":
                n = int.from_bytes(_recv_exactly(conn, 8), "big")
                block = bytes(CHUNK)
                while n > 0:
                    conn.sendall(block[: min(n, CHUNK)])
                    n -= min(n, CHUNK)
            elif job == b"u":
                total = 0
                while data := conn.recv(CHUNK):
                    total += len(data)
                conn.sendall(total.to_bytes(8, "big"))

    def close(self) -> None:
        self.sock.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise ConnectionError("closed early")
        buf += data
    return bytes(buf)


def measure_rtt_ms(link: Link, port: int, pings: int = 10) -> list[float]:
    """Round trips of a 1-byte echo through the link (application level, as a WebSocket ping)."""
    with link.connect(port) as sock:
        sock.sendall(b"e")
        out = []
        for _ in range(pings):
            t0 = time.perf_counter()
            sock.sendall(b"x")
            _recv_exactly(sock, 1)
            out.append((time.perf_counter() - t0) * 1000.0)
        return out


def measure_download_bps(link: Link, port: int, seconds: float = 3.0) -> float:
    """Goodput server → namespace, bits/s, timed from the first byte to the last (so the round
    trip before the first byte does not count against the rate)."""
    nbytes = int(link.rate_bps / 8 * seconds)
    with link.connect(port, timeout=seconds * 10 + 10) as sock:
        sock.sendall(b"d" + nbytes.to_bytes(8, "big"))
        first = sock.recv(CHUNK)
        t0, got = time.perf_counter(), 0
        while got < nbytes - len(first):
            data = sock.recv(CHUNK)
            if not data:
                raise ConnectionError(f"closed after {got} of {nbytes} bytes")
            got += len(data)
        return got * 8 / (time.perf_counter() - t0)


def measure_upload_bps(link: Link, port: int, seconds: float = 3.0) -> float:
    """Goodput namespace → server, bits/s, until the server confirms it has every byte."""
    nbytes = int(link.rate_bps / 8 * seconds)
    with link.connect(port, timeout=seconds * 10 + 10) as sock:
        sock.sendall(b"u")
        t0 = time.perf_counter()
        block, left = bytes(CHUNK), nbytes
        while left > 0:
            sock.sendall(block[: min(left, CHUNK)])
            left -= min(left, CHUNK)
        sock.shutdown(socket.SHUT_WR)
        got = int.from_bytes(_recv_exactly(sock, 8), "big")
        dt = time.perf_counter() - t0 - link.rtt_ms / 2000.0  # the confirmation's way back
        return got * 8 / dt


def measure_loaded_rtt_ms(link: Link, port: int, seconds: float = 3.0) -> list[float]:
    """Round trips of a second connection while a download fills the link: what the queue adds
    (at most tbf's queue time, ``limit / rate``, if the relays queue nothing of their own)."""
    done = threading.Event()

    def bulk() -> None:
        try:
            measure_download_bps(link, port, seconds)
        finally:
            done.set()

    worker = threading.Thread(target=bulk, daemon=True)
    worker.start()
    rtts: list[float] = []
    with link.connect(port) as sock:
        sock.sendall(b"e")
        time_limit = time.monotonic() + seconds * 10 + 10
        # Skip the first half second: the queue is still filling (TCP's slow start).
        start = time.monotonic() + 0.5
        while not done.is_set() and time.monotonic() < time_limit:
            t0 = time.perf_counter()
            sock.sendall(b"x")
            _recv_exactly(sock, 1)
            if time.monotonic() >= start:
                rtts.append((time.perf_counter() - t0) * 1000.0)
    worker.join(timeout=seconds * 10 + 10)
    return rtts


def queue_ms(link: Link) -> float:
    """The most tbf's queue can delay a packet: ``limit / rate``."""
    return link.tbf["limit"] * 8 / link.rate_bps * 1000.0


def selftest(rate: str, rtt_ms: float, seconds: float) -> None:
    far = _FarSide()
    try:
        with Link(rate=rate, rtt_ms=rtt_ms) as link:
            rtts = measure_rtt_ms(link, far.port)
            down = measure_download_bps(link, far.port, seconds)
            up = measure_upload_bps(link, far.port, seconds)
            loaded = measure_loaded_rtt_ms(link, far.port, seconds)
            print(f"link {link.netns}: rate {link.rate_bps / 1e6:g} Mbit/s, rtt {link.rtt_ms:g} ms, "
                  f"tbf burst {link.tbf['burst']} B limit {link.tbf['limit']} B")
            print(f"  rtt (1-byte echo, {len(rtts)}x): median {statistics.median(rtts):.1f} ms, "
                  f"min {min(rtts):.1f}, max {max(rtts):.1f}  (asked {link.rtt_ms:g})")
            p95 = sorted(loaded)[int(0.95 * (len(loaded) - 1))]
            print(f"  rtt during a download on another connection ({len(loaded)}x): median "
                  f"{statistics.median(loaded):.1f} ms, p95 {p95:.1f}  (asked + tbf queue = "
                  f"{link.rtt_ms + queue_ms(link):.0f}; a packet the full queue drops costs TCP a 200 ms timeout)")
            print(f"  download: {down / 1e6:.2f} Mbit/s = {down / link.rate_bps:.2f}x the rate")
            print(f"  upload:   {up / 1e6:.2f} Mbit/s = {up / link.rate_bps:.2f}x the rate")
    finally:
        far.close()


# ==================================================================================================
# Command line
# ==================================================================================================
def _port_map(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?::(\d+))?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SERVER_PORT[:PORT_IN_NAMESPACE]")
    return int(m.group(1)), int(m.group(2) or m.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default="20mbit", help="bandwidth each way, tc units (default 20mbit)")
    parser.add_argument("--rtt", default="40ms", help="round trip added, e.g. 40ms (default 40ms)")
    parser.add_argument("--port-map", action="append", type=_port_map, default=[], metavar="SERVER[:INNER]",
                        help="server port on 127.0.0.1 [: port inside the namespace]; repeatable")
    parser.add_argument("--selftest", action="store_true", help="measure throughput and RTT, then exit")
    parser.add_argument("--seconds", type=float, default=3.0, help="selftest: seconds per transfer")
    parser.add_argument("--cleanup", action="store_true", help="remove links left by killed runs, then exit")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run in the namespace")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        rate, rtt = parse_rate(args.rate), parse_ms(args.rtt)
    except ValueError as exc:
        parser.error(str(exc))
    if args.cleanup:
        print("removed:", " ".join(cleanup_stale()) or "nothing")
        return 0
    if args.selftest:
        selftest(args.rate, rtt, args.seconds)
        return 0
    if not command:
        parser.error("give a command after --, or --selftest")
    if not args.port_map:
        parser.error("give at least one --port-map SERVER[:INNER] for the command to reach")

    # SIGTERM and SIGHUP unwind like Ctrl-C, so the finally below removes the namespace.
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)
    with Link(rate=rate, rtt_ms=rtt, ports=dict(args.port_map)) as link:
        for server, inner in link.ports.items():
            print(f"link: 127.0.0.1:{inner} in {link.netns} -> 127.0.0.1:{server}, "
                  f"{link.rate_bps / 1e6:g} Mbit/s, rtt {link.rtt_ms:g} ms", file=sys.stderr)
        proc = link.popen(command)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 130


if __name__ == "__main__":
    sys.exit(main())
