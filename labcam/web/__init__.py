"""The browser code: one folder of ES modules and styles, no Python logic, no build step.

- ``labcam-client.js`` (types: ``labcam-client.d.ts``): the client of the stream protocol and the
  helpers every browser view shares (recording-status order, snapshot file names, bit depth, the
  settings coalescer, the log slider, number formats, overlay texts).
- ``index.html``, ``testpage.js``, ``testpage.css``: the test page.
- ``liveview.js``, ``liveview.css``: the notebook live view (``labcam.widget``).

Both hosts (``labcam serve`` and the Jupyter extension) serve this folder as ``static/``; the widget
reads its files from here; the Vue app in ``frontend/`` imports the client from here.
"""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent

__all__ = ["WEB_DIR"]
