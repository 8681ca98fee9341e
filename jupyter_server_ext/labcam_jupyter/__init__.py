"""labcam inside a Jupyter server: the camera's stream, REST API and raw frames under ``{base_url}labcam/``.

Installed as the top-level package ``labcam_jupyter`` (a labcam-specific name, so nothing generic
lands in site-packages) and enabled automatically by the shipped
``etc/jupyter/jupyter_server_config.d/labcam_jupyter.json``. ``jupyter server extension list``
shows it. Configure it like any Jupyter app, e.g. ``jupyter lab --LabcamApp.fps=15`` or
``c.LabcamApp.camera = "simulated"`` in ``jupyter_server_config.py``.
"""

from __future__ import annotations

from typing import Any

from .app import LabcamApp

__all__ = ["LabcamApp"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "labcam_jupyter", "app": LabcamApp}]
