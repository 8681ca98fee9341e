"""Camera drivers: one module per driver behind the interface in ``base``."""

from .base import CameraDescription, CameraDriver

__all__ = ["CameraDescription", "CameraDriver"]
