"""The small interface every camera driver implements.

A driver wraps one physical (or simulated) camera. It is used from exactly two threads: the
engine's capture thread calls ``read_frame`` in a loop; any other thread may call ``stop`` (which
must wake a blocked ``read_frame``), read the description and settings, and change settings.
Drivers know nothing of the engine, consumers or the network.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ..camera_info import CameraDescription
from ..errors import SettingError
from ..frame import Frame
from ..settings import Settings, SettingSpecs, validate_changes


class CameraDriver(ABC):
    """One camera. Subclasses implement the abstract methods; ``update_settings`` is shared.

    Errors: ``read_frame`` raises ``FrameTimeout`` when no frame came in time, ``StreamStopped``
    when ``stop`` interrupted it, ``CameraDisconnected`` when the camera is gone. ``open`` raises
    ``CameraUnavailable`` with the reason when the camera cannot be used.
    """

    def __init__(self) -> None:
        # Serialises settings changes against each other (reads of ``settings`` are lock-free:
        # the value object is immutable and replaced whole).
        self._settings_lock = threading.Lock()

    # -- identity -----------------------------------------------------------------------------
    @property
    @abstractmethod
    def description(self) -> CameraDescription: ...

    @property
    @abstractmethod
    def settings(self) -> Settings: ...

    @property
    @abstractmethod
    def specs(self) -> SettingSpecs: ...

    # -- life cycle ---------------------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Connect to the camera and apply the initial settings."""

    @abstractmethod
    def close(self) -> None:
        """Release the camera. Safe to call twice and after a disconnect."""

    @abstractmethod
    def start(self) -> None:
        """Start streaming frames."""

    @abstractmethod
    def stop(self) -> None:
        """Stop streaming; wakes a ``read_frame`` blocked in another thread. Safe to call twice."""

    @property
    @abstractmethod
    def streaming(self) -> bool: ...

    @abstractmethod
    def read_frame(self, timeout: float) -> Frame:
        """Block until the next frame arrives and return it (``dropped_before`` left at 0)."""

    @abstractmethod
    def reconnect(self) -> bool:
        """Try once to get a lost camera back (same serial) with the settings re-applied.

        Returns True when the camera is back and streaming again if it was before the loss.
        """

    # -- settings -----------------------------------------------------------------------------
    @abstractmethod
    def _apply_settings(self, new: Settings, changed: frozenset[str]) -> Settings:
        """Apply already-validated settings and return them as read back from the camera."""

    def update_settings(self, changes: Mapping[str, Any]) -> Settings:
        """Validate ``changes`` as a whole, apply them, and return the settings now in force.

        Raises ``SettingError`` (nothing changed) for unknown names, bad values, values out of
        range, or a change the camera does not allow while streaming.
        """
        with self._settings_lock:
            current = self.settings
            new = validate_changes(self.specs, current, changes)
            changed = frozenset(k for k in changes if getattr(new, k) != getattr(current, k))
            if not changed:
                return current
            if self.streaming:
                for name in changed:
                    spec = self.specs[name]
                    if not spec.settable_while_streaming:
                        raise SettingError(name, changes[name], "cannot be changed while streaming")
            return self._apply_settings(new, changed)
