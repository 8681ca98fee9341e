"""The simulated camera: a live-looking microscope specimen, paced and numbered like a real camera.

It stands in for a real camera whenever none is present (in the lab, in tests, in benchmarks), so
it has to look and behave like one while costing as little CPU as possible. Three parts:

- ``specimen``: what frame ``n`` looks like (the specimen, the sensor model, the fast renderer);
  a function of (seed, sensor size, settings, n) only.
- ``driver``: ``SimulatedCamera``, the ``CameraDriver``: settings, life cycle, when each frame is
  taken and how it is numbered and stamped.
- ``faults``: ``SimulatedFaults``, misbehaviour on demand (timeouts, drops, stalls, unplugging).
"""

from __future__ import annotations

from .driver import SimulatedCamera
from .faults import SimulatedFaults
from .specimen import clear_caches

__all__ = ["SimulatedCamera", "SimulatedFaults", "clear_caches"]
