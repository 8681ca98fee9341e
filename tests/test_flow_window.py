"""The window sized to the link (``labcam.flow.WindowSizer`` inside a ``FrameWindow``), on a clock of
our own: a camera offers frames at its rate, a modelled link (one bottleneck queue: serialisation at
its rate, then the propagation delay; acknowledgements come back after the other half of the round
trip) carries what the window lets go, and every acknowledgement goes back into the window, as the
stream server does with its pongs. No sleeping, no real network: the real-network check is
tests/test_links.py.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from labcam.flow import PROBE_AFTER_S, WINDOW_MAX, FrameWindow, WindowSizer


@dataclass
class Run:
    sent: list[float] = field(default_factory=list)  # send times
    delivered: list[float] = field(default_factory=list)  # arrival times at the viewer
    queued: list[float] = field(default_factory=list)  # time each frame waited for the bottleneck
    windows: list[tuple[float, int]] = field(default_factory=list)  # (time, window) after each ack

    def fps(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.delivered) / (end - start)


def simulate(
    window: FrameWindow[int], *, seconds: float, camera_fps: float = 30.0, frame_bytes: int = 36_000,
    rate_bps: float | None = None, rtt_s: float | None = None,
    link: list[tuple[float, float, float]] | None = None,
) -> Run:
    """Drive ``window`` for ``seconds``. ``link``: [(from time, rate bits/s, rtt s)], or one
    ``rate_bps``/``rtt_s`` for the whole run."""
    phases = link or [(0.0, rate_bps or 1e9, rtt_s or 0.0)]
    run = Run()
    events: list[tuple[float, int, str, int]] = []  # (time, order, kind, value)
    order = 0

    def push(t: float, kind: str, value: int = 0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, value))

    def link_at(t: float) -> tuple[float, float]:
        rate, rtt = phases[0][1:]
        for start, r, d in phases:
            if t >= start:
                rate, rtt = r, d
        return rate, rtt

    free_at = 0.0  # when the bottleneck has sent everything queued before

    def send(now: float) -> None:
        nonlocal free_at
        seq = window.sent(now, nbytes=frame_bytes)
        rate, rtt = link_at(now)
        start = max(now, free_at)
        free_at = start + frame_bytes * 8 / rate
        run.sent.append(now)
        run.queued.append(start - now)
        arrives = free_at + rtt / 2
        run.delivered.append(arrives)
        push(arrives + rtt / 2, "ack", seq)

    for i in range(int(seconds * camera_fps)):
        push(i / camera_fps, "frame", i)
    while events:
        now, _, kind, value = heapq.heappop(events)
        if now >= seconds:
            break
        if kind == "frame":
            if window.offer(value, now) is not None:
                send(now)
        else:
            window.ack(value, now)
            if window.take_pending(now) is not None:
                send(now)
            run.windows.append((now, window.size))
    return run


def sized() -> FrameWindow[int]:
    return FrameWindow(2, sizer=WindowSizer())


def test_a_long_round_trip_on_a_fast_link_gets_the_camera_rate() -> None:
    fixed = simulate(FrameWindow(2), seconds=8, rate_bps=100e6, rtt_s=0.100)
    adaptive = simulate(window := sized(), seconds=8, rate_bps=100e6, rtt_s=0.100)
    assert fixed.fps(3, 8) < 21, "2 frames per 103 ms round trip"  # the limit this replaces
    assert adaptive.fps(3, 8) >= 29.5
    assert window.sizer is not None
    assert window.sizer.fps == pytest.approx(30, abs=1.5)
    # 30 fps × 103 ms = 3.1 frames in the round trip, plus the headroom
    assert 4 <= window.size <= 6
    assert window.sizer.base_s == pytest.approx(0.100 + 36_000 * 8 / 100e6, abs=0.002)


@pytest.mark.parametrize("rtt_s", [0.002, 0.020, 0.080])
def test_a_slow_link_is_kept_full_and_queues_about_two_frames_at_most(rtt_s: float) -> None:
    # 5 Mbit/s carries 17 frames of 36 kB a second: the link, not the camera, is the limit.
    capacity = 5e6 / (36_000 * 8)
    run = simulate(sized(), seconds=20, rate_bps=5e6, rtt_s=rtt_s)
    assert run.fps(4, 20) >= 0.95 * capacity
    frame_time = 1 / capacity
    # what a frame waited at the bottleneck behind earlier ones, after the start
    waits = [q for t, q in zip(run.sent, run.queued) if t > 4]
    assert max(waits) <= 2.05 * frame_time, max(waits) / frame_time


def test_a_window_never_acknowledged_stays_at_its_minimum_and_sends_no_more() -> None:
    window = sized()
    for i in range(10):
        if window.offer(i, i / 30) is not None:
            window.sent(i / 30, nbytes=1000)
    assert window.size == 2 and window.in_flight == 2 and window.seq == 2


def test_the_window_follows_a_round_trip_that_grows_and_shrinks() -> None:
    # 20 ms, then 200 ms (a VPN), then 20 ms again: a probe finds the longer one within seconds
    link = [(0.0, 100e6, 0.020), (10.0, 100e6, 0.200), (30.0, 100e6, 0.020)]
    run = simulate(window := sized(), seconds=45, link=link)
    assert run.fps(5, 10) >= 29.5
    assert run.fps(10, 10 + PROBE_AFTER_S) < 15, "the old round trip holds for a while"
    assert run.fps(10 + PROBE_AFTER_S + 2, 30) >= 29.5, "then the window grew to the new round trip"
    late = [w for t, w in run.windows if 31 <= t]
    assert max(late) <= 3, "and shrank back at once when it was short again"
    assert run.fps(31, 45) >= 29.5
    assert window.sizer is not None and window.sizer.base_s == pytest.approx(0.023, abs=0.003)


def test_a_standing_queue_is_drained_to_measure_the_base_round_trip() -> None:
    # The link is the limit (a standing queue): every few seconds one frame goes into an empty pipe.
    window = sized()
    run = simulate(window, seconds=30, rate_bps=5e6, rtt_s=0.040)
    assert window.sizer is not None
    serialisation = 36_000 * 8 / 5e6
    assert window.sizer.base_s == pytest.approx(0.040 + serialisation, abs=0.005)
    assert max(w for _, w in run.windows) < WINDOW_MAX


def test_the_sizer_counts_rate_and_bytes_of_cumulative_acks() -> None:
    sizer = WindowSizer()
    sizer.delivered(0.0, 0.05, 1, 10_000, clean=True)
    assert sizer.fps is None and sizer.window == 2  # one acknowledgement: no rate yet
    sizer.delivered(0.5, 0.05, 3, 30_000, clean=False)  # one pong acknowledging three frames
    assert sizer.fps == pytest.approx(6.0) and sizer.bytes_per_s == pytest.approx(60_000)
    assert sizer.window == 2  # 6 fps × 50 ms = 0.3 frames: the minimum
    for i in range(1, 21):
        sizer.delivered(0.5 + i * 0.05, 0.05, 1, 10_000, clean=False)
    # 20 acknowledgements per second over the last second, base 50 ms: 1 frame + the headroom
    assert sizer.fps == pytest.approx(20.0) and sizer.window == 2
    sizer.delivered(1.55, 0.3, 1, 10_000, clean=False)  # a late one does not raise the base
    assert sizer.base_s == pytest.approx(0.05)
