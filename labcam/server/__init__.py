"""The stream server: Tornado WebSocket and REST handlers over the preview hub.

- ``service.LabcamService``: the shared state a host creates once per camera.
- the handler logic (no auth, no host settings): ``stream`` (the live stream, over ``queues``'
  request queues and ``labcam.flow``'s frame window), ``rawframes``, ``rest``,
  ``recording_handlers`` (over ``recordings``' tornado-free manager).
- ``routes``: ``HandlerClasses`` and ``route_table``, what a host mounts.
- ``app``: the standalone host (``labcam serve``): security mixin + logic, ``make_app``,
  ``start_standalone``.

Options, validation and messages (docs/protocol.md) are ``labcam.wire``'s.

The Jupyter extension builds its own concrete handlers from the logic (see ``routes``).
"""

from __future__ import annotations

from .routes import HandlerClasses, route_table
from .service import STATIC_DIR, LabcamService

__all__ = ["STATIC_DIR", "HandlerClasses", "LabcamService", "route_table"]
