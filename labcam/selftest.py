"""``labcam selftest``: find out, on the camera in front of you, what only hardware can tell.

Some facts about a PixeLINK camera cannot be known from the SDK's documentation: the MONO16 byte
order and bit alignment, which code a USB unplug returns, which code STOP wakes ``getNextFrame``
with, whether frame timestamps share ``getCurrentTimestamp``'s clock, which optional features the
model has. The self-test opens the camera and measures them, in this order:

1. **opening**: the camera, its features (settings) and their ranges, what it lacks;
2. **settings**: every setting round-tripped at its limits (what the camera rounds or refuses);
3. **pixels** (PixeLINK with MONO16): labcam's decoding of a live frame against the SDK's own
   ``formatImage`` on the same frame: byte order and alignment;
   **bayer order** (colour PixeLINK): whether the reported Bayer order follows odd ROI offsets;
4. **timing**: the frame rate against the setting, how long a timeout takes, frame timestamps
   against the host clock;
5. **unplug** (only with ``--unplug``): the user unplugs and replugs; records what the SDK said and
   whether labcam recovered.

It writes a JSON report and a readable text report, and says plainly what passed and what labcam
does differently on this camera. Any driver can be tested; checks that do not apply are skipped.
Settings are put back as they were.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cameras.base import CameraDriver
from .engine import Engine
from .errors import CameraError, FrameTimeout, SettingError, StreamStopped
from .settings import Settings

PASS, FAIL, INFO, SKIP = "pass", "fail", "info", "skip"

TIMING_WINDOW_S = 2.0
"""How long the frame rate is measured for."""
TIMEOUT_PROBE_S = 0.5
"""The read timeout the timeout check asks for (waiting for a trigger that never comes)."""
UNPLUG_WAIT_S = 120.0
"""How long the unplug check waits for the user to unplug, then to replug."""


@dataclass
class Check:
    """One finding: ``status`` is pass, fail, info (a fact, not a verdict) or skip."""

    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelftestReport:
    camera: dict[str, Any]
    started: str
    host: str
    checks: list[Check] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # what labcam does differently on this camera

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "camera": self.camera, "started": self.started, "host": self.host,
                "checks": [asdict(c) for c in self.checks], "labcam_does_differently": self.differences}

    def to_text(self) -> str:
        cam = self.camera
        lines = [f"labcam selftest, {self.started} on {self.host}",
                 f"camera: {cam.get('driver')} {cam.get('model')!r} serial {cam.get('serial')}"
                 + (f", firmware {cam['firmware']}" if cam.get("firmware") else ""), ""]
        for c in self.checks:
            lines.append(f"[{c.status.upper():>4}] {c.name}: {c.summary}")
        lines.append("")
        lines.append("RESULT: " + ("everything that was checked passed" if self.passed
                                   else "some checks FAILED (see above); please attach both report files to a bug report"))
        lines.append("")
        lines.append("What labcam does differently on this camera:")
        lines.extend(f"  - {d}" for d in self.differences or ["nothing: it behaves as labcam expects"])
        return "\n".join(lines) + "\n"


def write_reports(report: SelftestReport, directory: Path) -> tuple[Path, Path]:
    """Write ``labcam-selftest-<serial>.json`` and ``.txt`` into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"labcam-selftest-{report.camera.get('driver', 'camera')}-{report.camera.get('serial', '')}".rstrip("-")
    json_path, text_path = directory / f"{stem}.json", directory / f"{stem}.txt"
    json_path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    text_path.write_text(report.to_text())
    return json_path, text_path


def run_selftest(
    driver: CameraDriver,
    *,
    unplug: bool = False,
    ask: Callable[[str], object] = input,
    say: Callable[[str], None] = print,
) -> SelftestReport:
    """Run every check that applies on ``driver`` (opened here if it is not) and return the report.

    ``ask`` shows a prompt and waits for the user (Enter); ``say`` prints progress. With
    ``unplug`` the user is asked to unplug and replug the camera.
    """
    driver.open()
    report = SelftestReport(camera=driver.description.to_dict(),
                            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                            host=f"{platform.node()} ({platform.system()} {platform.release()})")
    original = driver.settings
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("opening", lambda: _opening(driver, report)),
        ("settings", lambda: _settings(driver, original, report)),
        ("pixels", lambda: _pixels(driver, report)),
        ("bayer order", lambda: _bayer_order(driver, report)),
        ("timing", lambda: _timing(driver, report)),
    ]
    if unplug:
        steps.append(("unplug", lambda: _unplug(driver, report, ask, say)))
    try:
        for name, step in steps:
            say(f"selftest: {name} ...")
            try:
                found = step()
            except (CameraError, SettingError) as exc:
                found = [Check(name, FAIL, f"stopped by an error: {type(exc).__name__}: {exc}")]
            finally:
                driver.stop()
            report.checks.extend(found)
            for c in found:
                say(f"  [{c.status.upper()}] {c.name}: {c.summary}")
    finally:
        driver.stop()
        try:
            _restore(driver, original)
        except (CameraError, SettingError) as exc:
            report.checks.append(Check("restore", FAIL, f"the settings could not be put back: {exc}"))
    return report


def _restore(driver: CameraDriver, original: Settings) -> None:
    # All at once: validated as a whole, and the driver writes them in an order the camera accepts.
    driver.update_settings({k: v for k, v in original.to_dict().items() if k in driver.specs.specs})


# -- 1. opening -------------------------------------------------------------------------------------
def _opening(driver: CameraDriver, report: SelftestReport) -> list[Check]:
    d = driver.description
    specs = {name: spec.describe() for name, spec in driver.specs.specs.items()}
    absent = sorted(getattr(driver, "absent_features", ()))
    details: dict[str, Any] = {"description": d.to_dict(), "settings": specs, "absent": absent,
                               "settings_now": driver.settings.to_dict()}
    for name in absent:
        report.differences.append(f"the camera has no {name} feature: {name} is not offered and never written")
    summary = f"{d.model} serial {d.serial}, {d.sensor_width}x{d.sensor_height}, formats {', '.join(d.pixel_formats)}"
    if absent:
        summary += f"; lacks {', '.join(absent)}"
    return [Check("opening", PASS, summary, details)]


# -- 2. settings at their limits ----------------------------------------------------------------------
def _limits(name: str, spec: Any, current: Settings) -> list[Any]:
    if spec.kind == "float":
        return [spec.minimum, spec.maximum]
    if spec.kind == "choice":
        return list(spec.choices)
    w, h = spec.sensor
    small = int(spec.minimum or 1)
    small += (-small) % spec.step
    return [(0, 0, w, h), (w - small, h - small, small, small)]


def _settings(driver: CameraDriver, original: Settings, report: SelftestReport) -> list[Check]:
    rows: list[dict[str, Any]] = []
    failed = []
    for name, spec in driver.specs.specs.items():
        for value in _limits(name, spec, original):
            changes: dict[str, Any] = {name: value}
            if name == "exposure_ms" and "fps" in driver.specs.specs:
                # The longest exposure needs the slowest frame rate (exposure <= 1 / fps).
                changes = {"fps": driver.specs["fps"].minimum, name: min(value, 1000.0 / driver.specs["fps"].minimum)}
            if name == "fps" and value == spec.maximum:
                changes = {"exposure_ms": min(driver.settings.exposure_ms, 1000.0 / value), name: value}
            try:
                got = driver.update_settings(changes).to_dict()[name]
            except SettingError as exc:
                rows.append({"setting": name, "asked": changes[name], "refused": str(exc)})
                continue
            except CameraError as exc:
                failed.append(name)
                rows.append({"setting": name, "asked": changes[name], "error": str(exc)})
                continue
            asked = list(changes[name]) if isinstance(changes[name], tuple) else changes[name]
            rows.append({"setting": name, "asked": asked, "read_back": got})
            if got != asked and spec.kind == "float":
                report.differences.append(f"{name}: asked {asked:g}, the camera chose {got:g} (labcam uses the camera's value)")
            elif got != asked:
                report.differences.append(f"{name}: asked {asked}, the camera chose {got} (labcam uses the camera's value)")
        try:
            _restore(driver, original)
        except (CameraError, SettingError) as exc:
            failed.append(f"{name} (restoring: {exc})")
    status = FAIL if failed else PASS
    changed = sum(1 for r in rows if "read_back" in r and r["read_back"] != r["asked"])
    refused = sum(1 for r in rows if "refused" in r)
    summary = (f"{len(rows)} values at the limits: {changed} adjusted by the camera, {refused} refused"
               + (f"; errors on {', '.join(failed)}" if failed else ""))
    return [Check("settings", status, summary, {"round_trips": rows})]


# -- 3. pixels: MONO16 byte order and alignment --------------------------------------------------------
LAYOUTS = {  # (byte order, alignment) -> how the SDK's 8-bit rendering is made from the raw samples
    ("big", "msb"): (">u2", None),
    ("little", "msb"): ("<u2", None),
    ("big", "lsb"): (">u2", "bits"),
    ("little", "lsb"): ("<u2", "bits"),
}


def _mono8_for(raw: np.ndarray, layout: tuple[str, str], bits: int) -> np.ndarray:
    dtype, lsb = LAYOUTS[layout]
    samples = raw.view(dtype).astype(np.uint32)
    shift = max(bits - 8, 0) if lsb else 8
    return np.clip(samples >> shift, 0, 255).astype(np.uint8)


def _pixels(driver: CameraDriver, report: SelftestReport) -> list[Check]:
    if not hasattr(driver, "read_raw_frame"):
        return [Check("pixels", SKIP, f"the {driver.description.driver} driver has no SDK formatter to compare with")]
    if "mono16" not in driver.description.pixel_formats:
        return [Check("pixels", SKIP, "the camera offers no MONO16")]
    driver.update_settings({"pixel_format": "mono16", **({"trigger_mode": "free_running"}
                                                         if "trigger_mode" in driver.specs.specs else {})})
    driver.start()
    buffer, desc = driver.read_raw_frame(5.0)
    frame = driver.decode_raw_frame(buffer, desc)
    sdk8 = driver.sdk_format_mono8(buffer, desc)
    h, w = sdk8.shape
    raw = np.frombuffer(buffer, np.uint8, count=w * h * 2).copy()
    bits = driver.description.max_bit_depth
    matches = [layout for layout in LAYOUTS
               if np.abs(_mono8_for(raw, layout, bits).reshape(h, w).astype(int) - sdk8).max() <= 1]
    labcam8 = (frame.array >> 8).astype(np.uint8)
    agrees = int(np.abs(labcam8.astype(int) - sdk8).max()) <= 1
    details = {"sdk_layouts_matching": [f"{o}-endian, {a}-aligned" for o, a in matches],
               "labcam_assumes": "big-endian, msb-aligned", "labcam_agrees_with_formatImage": agrees,
               "frame_number": frame.meta.frame_number, "max_bit_depth": bits}
    if agrees and ("big", "msb") in matches:
        return [Check("pixels", PASS, "MONO16 is big-endian and MSB-aligned, as labcam decodes it", details)]
    found = " or ".join(f"{o}-endian {a.upper()}-aligned" for o, a in matches) or "in no layout labcam knows"
    report.differences.append(
        f"MONO16 arrives {found}, but labcam decodes big-endian MSB-aligned: mono12/mono16 frames are wrong "
        "on this camera (use mono8 and report this with the two report files)")
    return [Check("pixels", FAIL, f"MONO16 is {found}; labcam's decoding differs from formatImage", details)]


# -- 3b. colour: does the Bayer order follow the ROI offset? -------------------------------------------
def _bayer_order(driver: CameraDriver, report: SelftestReport) -> list[Check]:
    specs = driver.specs.specs
    if not hasattr(driver, "read_raw_frame") or "rgb8" not in driver.description.pixel_formats or "roi" not in specs:
        return [Check("bayer order", SKIP, "not a colour PixeLINK camera with an ROI")]
    size = max(int(specs["roi"].minimum or 1), 64)
    rows = []
    for x, y in ((0, 0), (1, 0), (0, 1), (1, 1)):
        try:
            roi = driver.update_settings({"pixel_format": "rgb8", "roi": (x, y, size, size)}).roi
        except SettingError as exc:
            rows.append({"asked": [x, y], "refused": str(exc)})
            continue
        driver.start()
        _, desc = driver.read_raw_frame(5.0)
        driver.stop()
        rows.append({"asked": [x, y], "roi": list(roi), "camera_pixel_format": int(desc.PixelFormat.fValue)})
    applied = {(r["roi"][0] % 2, r["roi"][1] % 2): r["camera_pixel_format"] for r in rows if "roi" in r}
    details = {"frames": rows}
    if set(applied) <= {(0, 0)}:
        return [Check("bayer order", INFO, "the camera rounds ROI offsets to even pixels: the Bayer order cannot shift",
                      details)]
    if len(set(applied.values())) > 1:
        return [Check("bayer order", INFO, "the reported Bayer order follows the ROI offset; labcam demosaics each "
                                           "frame with the order its descriptor reports", details)]
    report.differences.append("at odd ROI offsets the camera reports the same Bayer order: if colours look "
                              "swapped there, use even offsets and report it")
    return [Check("bayer order", INFO, "the reported Bayer order stays the same at odd ROI offsets", details)]


# -- 4. timing --------------------------------------------------------------------------------------------
def _timing(driver: CameraDriver, report: SelftestReport) -> list[Check]:
    checks = []
    if "trigger_mode" in driver.specs.specs:
        driver.update_settings({"trigger_mode": "free_running"})
    fps = driver.settings.fps
    driver.start()
    arrivals, stamps, numbers = [], [], []
    end = time.monotonic() + TIMING_WINDOW_S
    while time.monotonic() < end or len(arrivals) < 5:
        frame = driver.read_frame(5.0)
        arrivals.append(time.time())
        stamps.append(frame.meta.timestamp)
        numbers.append(frame.meta.frame_number)
    driver.stop()
    # The camera's rate by its own clock and frame counter: frames this process was too busy to
    # read in time still count, so a loaded computer does not make a good camera fail.
    span = stamps[-1] - stamps[0]
    measured = (numbers[-1] - numbers[0]) / span if span > 0 else float("nan")
    rate_ok = abs(measured - fps) <= 0.1 * fps or "fps" not in driver.specs.specs
    checks.append(Check("frame rate", PASS if rate_ok else FAIL,
                        f"{measured:.1f} frames/s measured, {fps:g} set", {"measured": measured, "set": fps,
                                                                             "frames": len(arrivals)}))
    # Arrival minus timestamp is the camera-to-host delay plus however late this process read the
    # frame. The smallest value of each half of the window is the delay without the lateness; how
    # it moves from the first half to the second is the drift between the two clocks.
    lags = [a - s for a, s in zip(arrivals, stamps, strict=True)]
    half = len(lags) // 2
    first, second = min(lags[:half]), min(lags[half:])
    between = statistics.median(stamps[half:]) - statistics.median(stamps[:half])
    drift = (second - first) / between if between > 0 else float("nan")
    lag = min(first, second)
    clock_ok = abs(lag) < 0.5 and abs(drift) < 0.01
    checks.append(Check("timestamps", PASS if clock_ok else FAIL,
                        f"frames arrive {1000 * lag:.1f} ms after their timestamp (at best), clocks drift {100 * drift:.3f} %",
                        {"min_lag_s": lag, "median_lag_s": statistics.median(lags), "drift": drift,
                         "lags_s": lags[:50]}))
    if not clock_ok:
        report.differences.append(
            "frame timestamps do not follow the host clock (labcam aligns the camera's clock once per start): "
            "timestamps of recordings are off by the lag above")
    checks.append(_timeout(driver, report))
    return checks


def _timeout(driver: CameraDriver, report: SelftestReport) -> Check:
    """Wait for a hardware trigger that never comes: a timeout must come after the time asked for."""
    if "hardware" not in getattr(driver.specs.specs.get("trigger_mode"), "choices", ()):
        return Check("timeout", SKIP, "the camera has no hardware trigger to wait for")
    driver.update_settings({"trigger_mode": "hardware"})
    driver.start()
    started = time.monotonic()
    try:
        driver.read_frame(TIMEOUT_PROBE_S)
    except FrameTimeout as exc:
        took = time.monotonic() - started
        ok = TIMEOUT_PROBE_S * 0.9 <= took <= TIMEOUT_PROBE_S + 1.0
        details: dict[str, Any] = {"asked_s": TIMEOUT_PROBE_S, "took_s": took, "message": str(exc)}
        code = getattr(driver, "last_read_code", None)
        if code is not None:
            # labcam ends an overdue getNextFrame by stopping the stream: this is what STOP woke it with.
            details["stop_wakes_getNextFrame_with"] = driver.return_code_name(code)  # type: ignore[attr-defined]
        return Check("timeout", PASS if ok else FAIL, f"FrameTimeout after {took:.2f} s (asked {TIMEOUT_PROBE_S:g} s)",
                     details)
    except StreamStopped as exc:
        return Check("timeout", FAIL, f"the read ended with StreamStopped instead of a timeout: {exc}")
    finally:
        driver.stop()
        driver.update_settings({"trigger_mode": "free_running"})
    return Check("timeout", FAIL, "a frame came although nothing triggered the camera")


# -- 5. unplug --------------------------------------------------------------------------------------------
def _unplug(driver: CameraDriver, report: SelftestReport, ask: Callable[[str], object],
            say: Callable[[str], None]) -> list[Check]:
    engine = Engine(driver, idle_grace=0)  # the engine does the recovering, exactly as in labcam serve
    lost, recovered = threading.Event(), threading.Event()
    why: list[str] = []
    engine.events.camera_lost.connect(lambda message: (why.append(message), lost.set()))
    engine.events.camera_recovered.connect(recovered.set)
    details: dict[str, Any] = {}
    try:
        with engine.subscribe("selftest") as sub:
            sub.next(timeout=5)
            ask("Unplug the camera's cable now, then press Enter.")
            unplugged = time.monotonic()
            if not lost.wait(UNPLUG_WAIT_S):
                return [Check("unplug", FAIL, f"labcam did not notice the unplug within {UNPLUG_WAIT_S:g} s",
                              {"status": engine.status.to_dict()})]
            details.update(noticed_after_s=time.monotonic() - unplugged, sdk_said=why[0])
            say(f"  lost: {why[0]}")
            ask("Plug the camera back in now, then press Enter.")
            replugged = time.monotonic()
            if not recovered.wait(UNPLUG_WAIT_S):
                return [Check("unplug", FAIL, f"labcam did not get the camera back within {UNPLUG_WAIT_S:g} s",
                              details)]
            sub.next(timeout=20)
            details["frames_again_after_s"] = time.monotonic() - replugged
    finally:
        engine.close()  # closes the driver too; the self-test opens it again to put the settings back
        driver.open()
    report.differences.append(f"an unplug shows up as: {details['sdk_said']}")
    return [Check("unplug", PASS, f"lost after {details['noticed_after_s']:.1f} s ({details['sdk_said']}); "
                                  f"frames again {details['frames_again_after_s']:.1f} s after the replug", details)]
