"""The capture engine: one capture shared by any number of consumers, faults recovered."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from labcam.cameras.simulated import SimulatedCamera
from labcam.engine import Engine
from labcam.errors import CameraError, FrameTimeout, SettingError


@pytest.fixture
def sim() -> SimulatedCamera:
    cam = SimulatedCamera(width=64, height=48, fps=100.0, exposure_ms=1.0, seed=3)
    cam.open()
    return cam


@pytest.fixture
def engine(sim: SimulatedCamera):
    eng = Engine(sim, idle_grace=0)
    yield eng
    eng.close()


def wait_for(event: threading.Event, what: str, timeout: float = 10.0) -> None:
    assert event.wait(timeout), f"timed out waiting for {what}"


def test_every_consumer_gets_the_same_frame_objects_from_one_capture(engine: Engine) -> None:
    subs = [engine.subscribe(f"c{i}", buffer=50) for i in range(5)]
    got = [[sub.next(5) for _ in range(10)] for sub in subs]
    numbers = [[f.meta.frame_number for f in frames] for frames in got]
    assert all(n == numbers[0] for n in numbers), "consumers saw different frames"
    assert numbers[0] == list(range(numbers[0][0], numbers[0][0] + 10))
    # shared, not copied: the same array object reaches every consumer, and it is read-only
    for i in range(10):
        assert all(frames[i].array is got[0][i].array for frames in got)
    assert not got[0][0].array.flags.writeable
    assert engine.status.frames >= 10


def test_a_stalled_consumer_does_not_slow_the_capture_or_others(engine: Engine) -> None:
    stalled = engine.subscribe("stalled")  # never reads
    stalled_buffered = engine.subscribe("stalled-buffered", buffer=4)
    # A consumer that wants every frame takes a small buffer: a thread can be descheduled for a
    # frame or two on a loaded machine, and that is not what this test is about.
    fast = engine.subscribe("fast", buffer=16)
    frames = [fast.next(5) for _ in range(40)]
    numbers = [f.meta.frame_number for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + 40)), "the fast consumer lost frames"
    assert fast.missed == 0
    # the stalled buffered consumer holds at most its buffer; the rest are counted, not queued
    assert stalled_buffered.pending == 4
    assert stalled_buffered.missed >= 36
    # the stalled latest consumer gets the newest frame when it finally reads
    newest = stalled.next(5)
    assert newest.meta.frame_number >= numbers[-1]


def test_buffered_subscription_delivers_every_frame_in_order(engine: Engine) -> None:
    sub = engine.subscribe("all", buffer=100)
    numbers = [sub.next(5).meta.frame_number for _ in range(30)]
    assert numbers == list(range(numbers[0], numbers[0] + 30))
    assert sub.missed == 0


def test_latest_subscription_counts_what_it_skipped(engine: Engine) -> None:
    slow = engine.subscribe("slow")
    pacer = engine.subscribe("pacer", buffer=20)
    first = slow.next(5)
    for _ in range(10):
        pacer.next(5)
    newer = slow.next(5)
    skipped = newer.meta.frame_number - first.meta.frame_number - 1
    assert skipped >= 5
    assert slow.missed == skipped


def test_camera_starts_with_first_consumer_and_stops_after_last(sim: SimulatedCamera) -> None:
    engine = Engine(sim, idle_grace=0)
    started, stopped = threading.Event(), threading.Event()
    engine.events.streaming_started.connect(started.set)
    engine.events.streaming_stopped.connect(stopped.set)
    assert not engine.running and engine.status.state == "idle"
    sub = engine.subscribe()
    sub.next(5)
    assert started.is_set() and engine.running and sim.streaming
    sub.close()
    wait_for(stopped, "the camera to stop after the last consumer left")
    assert not engine.running and not sim.streaming
    assert engine.status.state == "idle"
    engine.close()


def test_grace_period_keeps_camera_running_for_a_returning_consumer(sim: SimulatedCamera) -> None:
    engine = Engine(sim, idle_grace=30)
    starts: list[int] = []
    engine.events.streaming_started.connect(lambda: starts.append(1))
    sub = engine.subscribe()
    sub.next(5)
    sub.close()
    assert engine.running, "stopped before the grace period ended"
    again = engine.subscribe()
    again.next(5)
    assert len(starts) == 1, "the camera was restarted for a returning consumer"
    again.close()
    engine.close()
    assert not sim.streaming


def test_grace_period_ends_and_camera_stops(sim: SimulatedCamera) -> None:
    engine = Engine(sim, idle_grace=0.2)
    stopped = threading.Event()
    engine.events.streaming_stopped.connect(stopped.set)
    with engine.subscribe() as sub:
        sub.next(5)
    wait_for(stopped, "the idle stop after the grace period")
    assert not engine.running
    engine.close()


def test_frame_metadata(engine: Engine, sim: SimulatedCamera) -> None:
    sub = engine.subscribe(buffer=10)
    a, b = sub.next(5), sub.next(5)
    assert b.meta.frame_number == a.meta.frame_number + 1
    assert b.meta.timestamp > a.meta.timestamp > 1.6e9  # epoch seconds
    assert a.meta.exposure_ms == sim.settings.exposure_ms
    assert a.meta.gain_db == sim.settings.gain_db
    assert a.meta.roi == sim.settings.roi
    assert a.meta.pixel_format == "mono8" and a.meta.bit_depth == 8
    assert a.meta.camera_serial == sim.description.serial
    assert a.array.shape == (48, 64) and a.array.dtype == np.uint8


def test_camera_side_gaps_are_counted_as_drops(engine: Engine, sim: SimulatedCamera) -> None:
    drops: list[int] = []
    engine.events.frames_dropped.connect(drops.append)
    sub = engine.subscribe(buffer=50)
    before = sub.next(5)
    sim.faults.drop_frames(3)
    frames = [sub.next(5) for _ in range(5)]
    gap_frames = [f for f in frames if f.meta.dropped_before]
    assert len(gap_frames) == 1 and gap_frames[0].meta.dropped_before == 3
    assert engine.status.dropped == 3 and drops == [3]
    numbers = [before.meta.frame_number] + [f.meta.frame_number for f in frames]
    assert numbers[-1] - numbers[0] == 5 + 3


def test_unplug_is_reported_and_consumers_resume_after_replug(engine: Engine, sim: SimulatedCamera) -> None:
    lost, recovered = threading.Event(), threading.Event()
    reasons: list[str] = []
    engine.events.camera_lost.connect(lambda why: (reasons.append(why), lost.set()))
    engine.events.camera_recovered.connect(recovered.set)
    sub = engine.subscribe()
    sub.next(5)
    sim.faults.disconnect()
    wait_for(lost, "camera_lost")
    assert engine.status.state == "lost" and reasons
    with pytest.raises(FrameTimeout):
        sub.next(0.3)  # no frames while the camera is gone, and no crash
    sim.faults.replug()
    wait_for(recovered, "camera_recovered")
    frame = sub.next(5)  # the same subscription carries on
    assert frame.array.shape == (48, 64)
    assert engine.status.state == "streaming"


def test_timeout_burst_shows_as_stalled_then_recovers(engine: Engine, sim: SimulatedCamera) -> None:
    states: list[str] = []
    engine.events.status_changed.connect(lambda st: states.append(st.state))
    sub = engine.subscribe()
    sub.next(5)
    sim.faults.timeouts(4)
    before = engine.status.timeouts
    # frames come back after the burst
    for _ in range(3):
        sub.next(10)
    assert engine.status.timeouts - before == 4
    assert "stalled" in states
    assert states[-1] == "streaming"


def test_bad_settings_change_nothing(engine: Engine, sim: SimulatedCamera) -> None:
    before = sim.settings
    changed: list[object] = []
    engine.events.settings_changed.connect(changed.append)
    with pytest.raises(SettingError, match="exposure_ms"):
        engine.update_settings({"gain_db": 3.0, "exposure_ms": -1})
    with pytest.raises(SettingError, match="unknown setting"):
        engine.update_settings({"brightness": 3})
    assert sim.settings == before and changed == []


def test_settings_change_is_applied_and_announced(engine: Engine) -> None:
    changed: list[object] = []
    engine.events.settings_changed.connect(changed.append)
    sub = engine.subscribe(buffer=200)
    sub.next(5)
    new = engine.update_settings({"gain_db": 6.0})
    assert new.gain_db == 6.0 and changed == [new]
    for _ in range(100):
        frame = sub.next(5)
        if frame.meta.gain_db == 6.0:
            break
    else:
        pytest.fail("frames never showed the new gain")


def test_roi_change_while_streaming_pauses_capture_and_frames_follow(engine: Engine) -> None:
    sub = engine.subscribe()
    assert sub.next(5).array.shape == (48, 64)
    engine.update_settings({"roi": (16, 8, 32, 24)})
    assert engine.running
    for _ in range(50):
        frame = sub.next(5)
        if frame.array.shape == (24, 32):
            break
    else:
        pytest.fail("frames never took the new ROI")
    assert frame.meta.roi == (16, 8, 32, 24)


def test_async_consumers(engine: Engine) -> None:
    async def main() -> list[int]:
        sub = engine.subscribe(buffer=10)
        try:
            return [(await sub.anext(5)).meta.frame_number for _ in range(5)]
        finally:
            sub.close()

    numbers = asyncio.run(main())
    assert numbers == list(range(numbers[0], numbers[0] + 5))


def test_async_timeout(sim: SimulatedCamera) -> None:
    sim.update_settings({"trigger_mode": "hardware"})  # no trigger, so no frames
    engine = Engine(sim, idle_grace=0)

    async def main() -> None:
        with engine.subscribe() as sub:
            with pytest.raises(FrameTimeout):
                await sub.anext(0.2)

    asyncio.run(main())
    engine.close()


def test_close_wakes_waiting_consumers(sim: SimulatedCamera) -> None:
    sim.update_settings({"trigger_mode": "hardware"})
    engine = Engine(sim, idle_grace=0)
    sub = engine.subscribe()
    errors: list[BaseException] = []
    waiting = threading.Event()

    def consumer() -> None:
        waiting.set()
        try:
            sub.next(30)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    t = threading.Thread(target=consumer)
    t.start()
    wait_for(waiting, "the consumer to start")
    engine.close()
    t.join(10)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], CameraError) and "closed" in str(errors[0])
    with pytest.raises(CameraError):
        engine.subscribe()
