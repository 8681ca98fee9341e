"""Camera settings: one typed value object and the rules that validate changes to it.

Drivers describe what their camera allows with a ``SettingSpec`` per setting; ``validate_changes``
checks a set of changes against those specs as a whole and returns the new ``Settings`` or raises a
``SettingError`` that names the setting, the value and the allowed range. Nothing is applied until
every change has passed, so a bad request changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from .errors import SettingError

TRIGGER_MODES = ("free_running", "software", "hardware")


@dataclass(frozen=True)
class Settings:
    """The settings of a camera, in labcam's units (milliseconds, decibels, frames/s, pixels)."""

    exposure_ms: float
    gain_db: float
    fps: float
    roi: tuple[int, int, int, int]  # x, y, width, height on the sensor
    pixel_format: str
    trigger_mode: str = "free_running"
    # Settings this camera does not have (e.g. "gain_db" on a model without gain): left out of
    # ``to_dict`` and of the specs; the attribute holds what the camera does anyway.
    absent: frozenset[str] = field(default=frozenset(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roi"] = list(self.roi)
        for name in (*self.absent, "absent"):
            d.pop(name, None)
        return d


@dataclass(frozen=True)
class SettingSpec:
    """What one setting accepts.

    ``kind`` is "float" (with ``minimum``/``maximum``), "choice" (one of ``choices``) or "roi"
    (x, y, width, height inside ``sensor`` = (width, height), sizes multiples of ``step``, at least
    ``minimum`` pixels wide and high).
    """

    name: str
    kind: Literal["float", "choice", "roi"]
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    sensor: tuple[int, int] = (0, 0)
    step: int = 1
    settable_while_streaming: bool = True

    def describe(self) -> str:
        """The allowed values, as said in error messages and shown to clients."""
        if self.kind == "float":
            return f"a number from {self.minimum:g} to {self.maximum:g} {self.unit}".rstrip()
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        w, h = self.sensor
        return (
            f"[x, y, width, height] of whole numbers inside the {w}x{h} sensor, "
            f"width and height at least {self.minimum:g} and multiples of {self.step}"
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "allowed": self.describe()}
        if self.unit:
            d["unit"] = self.unit
        if self.kind == "float":
            d.update(minimum=self.minimum, maximum=self.maximum)
        elif self.kind == "choice":
            d["choices"] = list(self.choices)
        else:
            d.update(sensor=list(self.sensor), step=self.step, minimum=self.minimum)
        d["settable_while_streaming"] = self.settable_while_streaming
        return d

    def coerce(self, value: Any) -> Any:
        """Return ``value`` in this setting's type, or raise ``SettingError``."""
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(self.name, value, self.describe())
            v = float(value)
            assert self.minimum is not None and self.maximum is not None
            if not math.isfinite(v) or not (self.minimum <= v <= self.maximum):
                raise SettingError(self.name, value, self.describe())
            return v
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise SettingError(self.name, value, self.describe())
            return value
        return self._coerce_roi(value)

    def _coerce_roi(self, value: Any) -> tuple[int, int, int, int]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 4:
            raise SettingError(self.name, value, self.describe())
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
                raise SettingError(self.name, value, self.describe())
            out.append(int(v))
        x, y, w, h = out
        sw, sh = self.sensor
        minimum = int(self.minimum or 1)
        ok = (
            x >= 0 and y >= 0 and w >= minimum and h >= minimum
            and x + w <= sw and y + h <= sh
            and w % self.step == 0 and h % self.step == 0
        )
        if not ok:
            raise SettingError(self.name, value, self.describe())
        return (x, y, w, h)


@dataclass(frozen=True)
class SettingSpecs:
    """The specs of every setting of one camera, keyed by ``Settings`` field name."""

    specs: Mapping[str, SettingSpec] = field(default_factory=dict)

    def __getitem__(self, name: str) -> SettingSpec:
        return self.specs[name]

    def to_dict(self) -> dict[str, Any]:
        return {name: spec.to_dict() for name, spec in self.specs.items()}


def validate_changes(specs: SettingSpecs, current: Settings, changes: Mapping[str, Any]) -> Settings:
    """Check ``changes`` against ``specs`` and return the settings they would give.

    Raises ``SettingError`` for an unknown setting or a bad value; ``current`` is never modified.
    The exposure must also fit in one frame period (exposure <= 1000 / fps), as on real sensors.
    """
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in specs.specs:
            raise SettingError(name, value, "unknown setting; known: " + ", ".join(specs.specs))
        coerced[name] = specs[name].coerce(value)
    new = replace(current, **coerced)
    period_ms = 1000.0 / new.fps
    # A camera without a frame rate setting paces itself by its exposure: nothing to check.
    has_frame_rate = "fps" in specs.specs
    if has_frame_rate and new.trigger_mode == "free_running" and new.exposure_ms > period_ms + 1e-9:
        # Name the setting the caller changed, so the message points at what to fix.
        name = next((n for n in ("exposure_ms", "fps", "trigger_mode") if n in coerced), "exposure_ms")
        value = getattr(new, name)
        allowed = (
            f"exposure {new.exposure_ms:g} ms does not fit in one frame period at {new.fps:g} fps "
            f"({period_ms:g} ms); lower the exposure or the frame rate"
        )
        raise SettingError(name, value, allowed)
    return new
