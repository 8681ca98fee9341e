"""The notebook live view: ``LiveView`` (what ``cam.live()`` returns).

Needs the ``[jupyter]`` extra (ipywidgets, anywidget). Importing ``labcam`` never imports this
package: ``Camera.live()``, ``RemoteCamera.live()`` and ``labcam.LiveView`` import it lazily, so
scripts and servers stay free of widget code. The view never opens a camera itself: it is handed
one (``cam.live()``) or a ``connect`` for its comm fallback (``labcam.LiveView`` passes
``labcam.connect``).
"""

from __future__ import annotations

from .liveview import LiveView

__all__ = ["LiveView"]
