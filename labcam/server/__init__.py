"""The stream server: Tornado WebSocket and REST handlers over the preview hub.

- ``service.LabcamService``: the shared state a host creates once per camera.
- ``handlers``: the handler logic (no auth, no host settings) and ``route_table``.
- ``app``: the standalone host (``labcam serve``): security mixin + logic, ``make_app``.
- ``protocol``: options, validation and messages of docs/protocol.md.

The Jupyter extension builds its own concrete handlers from ``handlers`` (see its docstring).
"""

from __future__ import annotations

from .handlers import HandlerClasses, route_table
from .service import STATIC_DIR, LabcamService

__all__ = ["STATIC_DIR", "HandlerClasses", "LabcamService", "route_table"]
