"""Exceptions raised by labcam's public API.

Every error a user can cause by passing bad input derives from ``ValueError`` too, so
``except ValueError`` in a notebook catches it; faults of the camera derive from ``CameraError``.
"""

from __future__ import annotations


class LabcamError(Exception):
    """Base class of every labcam error."""


class SettingError(LabcamError, ValueError):
    """A setting was out of range, of the wrong type, unknown, or not allowed now.

    The message names the setting, the value and what is allowed; nothing was changed.
    """

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={value!r} is not allowed: {allowed}")


class CameraError(LabcamError):
    """The camera failed or cannot be used."""


class CameraUnavailable(CameraError):
    """The requested camera cannot be opened (SDK missing, no camera, camera busy)."""


class CameraDisconnected(CameraError):
    """The camera went away (unplugged, powered off) while in use."""


class FrameTimeout(CameraError, TimeoutError):
    """No frame arrived within the timeout."""


class StreamStopped(CameraError):
    """The stream was stopped while a read was waiting; not a fault."""
