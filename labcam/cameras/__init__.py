"""Camera drivers: one module per driver behind the interface in ``base``."""

from ..camera_info import CameraDescription
from .base import CameraDriver

__all__ = ["CameraDescription", "CameraDriver"]
