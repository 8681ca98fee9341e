"""quality=auto's controller (``labcam.server.adapt.AutoQuality``), fed the figures a viewer's window
measures, on a clock of our own. The real link is tests/test_links.py."""

from __future__ import annotations

from labcam.server.adapt import CAPACITY_MAX_AGE_S, LADDER, STEP_UP_AFTER_S, AutoQuality, Measurement


def behind(capacity: float, frame_bytes: float, fps: float = 30.0) -> Measurement:
    """A second in which the link (``capacity`` bytes/s) was the limit: most frames skipped."""
    sent = max(1, int(capacity / frame_bytes))
    return Measurement(frames_sent=sent, frames_skipped=int(fps) - sent, delivered_bytes_per_s=capacity,
                       delivery_ms=400.0, base_rtt_ms=40.0, frame_bytes=frame_bytes, camera_fps=fps)


def keeping_up(frame_bytes: float, fps: float = 30.0) -> Measurement:
    return Measurement(frames_sent=int(fps), frames_skipped=0, delivered_bytes_per_s=frame_bytes * fps,
                       delivery_ms=45.0, base_rtt_ms=40.0, frame_bytes=frame_bytes, camera_fps=fps)


def test_a_fast_link_keeps_the_best_rung() -> None:
    auto = AutoQuality()
    for t in range(10):
        choice = auto.update(float(t), keeping_up(140_000))
    assert (choice.quality, choice.scale, choice.fps) == (80, 1, None)
    assert "best rung" in choice.reason


def test_a_5_mbit_link_gets_the_rung_that_fits_in_one_step() -> None:
    auto = AutoQuality()
    choice = auto.update(0.0, behind(625_000, 140_000))  # 5 Mbit/s against 34 Mbit/s of q80
    # 80 % of 625 kB/s at 30 fps is 16.7 kB a frame: quality 60 at a quarter of the width (0.105 of q80)
    assert (choice.quality, choice.scale, choice.fps) == (60, 4, None)
    assert "behind: frames late" in choice.reason and "5.0 Mbit/s" in choice.reason
    # Keeping up there, it stays: one rung up (0.16 of q80 = 22 kB × 30) does not fit in 65 %
    for t in range(1, 12):
        again = auto.update(float(t), keeping_up(14_700))
    assert (again.quality, again.scale) == (60, 4)


def test_it_probes_one_rung_up_once_the_capacity_is_old_and_steps_back_if_it_does_not_fit() -> None:
    auto = AutoQuality()
    auto.update(0.0, behind(625_000, 140_000))
    t, choice = 1.0, auto.choice
    while (choice.quality, choice.scale) == (60, 4):
        choice = auto.update(t, keeping_up(14_700))
        t += 1.0
    assert CAPACITY_MAX_AGE_S <= t <= CAPACITY_MAX_AGE_S + STEP_UP_AFTER_S + 2
    assert (choice.quality, choice.scale) == (25, 2) and "probe" in choice.reason
    back = auto.update(t, behind(625_000, 22_500))
    assert (back.quality, back.scale) == (60, 4)


def test_a_very_slow_link_caps_the_frame_rate_on_the_last_rung() -> None:
    auto = AutoQuality()
    choice = auto.update(0.0, behind(50_000, 140_000))  # 400 kbit/s
    assert (choice.quality, choice.scale) == LADDER[-1]
    # 80 % of 50 kB/s in frames of 0.058 × 140 kB = 8.1 kB: 4 frames a second
    assert choice.fps == 4 and "at 4 fps" in choice.reason


def test_frames_arriving_late_count_as_behind_too() -> None:
    auto = AutoQuality()
    late = Measurement(frames_sent=30, frames_skipped=0, delivered_bytes_per_s=4_000_000, delivery_ms=300.0,
                       base_rtt_ms=20.0, frame_bytes=140_000, camera_fps=30.0)
    choice = auto.update(0.0, late)
    assert "frames late" in choice.reason and choice.quality < 80


def test_a_pinned_width_leaves_quality_and_fps() -> None:
    auto = AutoQuality(scales=(1,))
    choice = auto.update(0.0, behind(625_000, 140_000))
    # full width only: quality 25 (0.43 of q80 = 60 kB) at 8 fps fits in 500 kB/s
    assert (choice.quality, choice.scale, choice.fps) == (25, 1, 8)


def test_frames_held_back_without_a_longer_delay_are_a_growing_window_not_a_slow_link() -> None:
    # A 100 ms link while the window grows: half the frames wait, but none queue in the network.
    auto = AutoQuality()
    growing = Measurement(frames_sent=15, frames_skipped=15, delivered_bytes_per_s=15 * 140_000,
                          delivery_ms=105.0, base_rtt_ms=103.0, frame_bytes=140_000, camera_fps=30.0)
    for t in range(5):
        choice = auto.update(float(t), growing)
    assert (choice.quality, choice.scale) == (80, 1)
    queued = Measurement(frames_sent=15, frames_skipped=15, delivered_bytes_per_s=15 * 140_000,
                         delivery_ms=140.0, base_rtt_ms=103.0, frame_bytes=140_000, camera_fps=30.0)
    assert auto.update(5.0, queued).reason.startswith("behind: frames skipped")


def test_without_frames_of_the_current_rung_measured_nothing_changes() -> None:
    auto = AutoQuality()
    unmeasured = Measurement(frames_sent=0, frames_skipped=30, delivered_bytes_per_s=50_000, delivery_ms=900.0,
                             base_rtt_ms=20.0, frame_bytes=None, camera_fps=30.0)
    choice = auto.update(0.0, unmeasured)
    assert (choice.quality, choice.scale, choice.fps) == (80, 1, None)
