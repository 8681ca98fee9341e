"""The notebook live view: ``LiveView`` (what ``cam.live()`` returns).

Needs the ``[jupyter]`` extra (ipywidgets, anywidget). Importing ``labcam`` never imports this
package: ``Camera.live()`` imports it lazily, so scripts and servers stay free of widget code.
"""

from __future__ import annotations

from .liveview import LiveView

__all__ = ["LiveView"]
