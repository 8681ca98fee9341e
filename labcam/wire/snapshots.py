"""Snapshots on the wire: the formats a client may ask for, and the one file-name rule.

Every place that names a snapshot file uses ``snapshot_file_name`` or mirrors it exactly: the REST
snap's ``Content-Disposition`` (``labcam.server``), the live view's comm-mode snap
(``labcam.widget``), and in JavaScript the shared client's helper that the test page, the widget's
websocket mode and the Vue component use. The rule (docs/protocol.md, "Snapshot file names")::

    labcam_<serial>_<YYYYMMDD-HHMMSS>_<frame number>.<extension>

- ``serial``: the camera's serial number, ``camera`` when it has none;
- the frame's capture time (its ``timestamp``, epoch seconds) in the local time of the machine that
  names the file, ``YYYYMMDD-HHMMSS``; the current time when the frame has no timestamp;
- the frame number, ``frame`` when there is none;
- the format's extension: ``png``, ``jpg``, ``tif``, ``npy`` (``SNAP_EXTENSIONS``);
- then every run of characters other than ASCII letters, digits, ``_``, ``.`` and ``-`` becomes one
  ``_`` (the JavaScript ``/[^\\w.-]+/g``), so the name is safe on every file system.

Example: camera ``SIM 0001``, frame 12 taken at 2025-11-25 09:23:20 local time, TIFF:
``labcam_SIM_0001_20251125-092320_12.tif``.
"""

from __future__ import annotations

import re
import time

SNAP_FORMATS: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
    "npy": "application/octet-stream",
}
"""Snapshot formats and their content types. PNG and TIFF keep 16-bit frames' values; NPY is the
raw array; JPEG is an 8-bit display image."""

SNAP_EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "tiff": "tif", "npy": "npy"}
"""The file-name extension of each snapshot format."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def snapshot_file_name(serial: str | None, frame_number: int | None, timestamp: float | None, fmt: str) -> str:
    """The file name of a snapshot (the rule in this module's docstring).

    >>> snapshot_file_name("SIM 0001", 12, None, "tiff").startswith("labcam_SIM_0001_")
    True
    """
    when = time.localtime(timestamp if timestamp is not None else time.time())
    frame = "frame" if frame_number is None else str(frame_number)
    name = f"labcam_{serial or 'camera'}_{time.strftime('%Y%m%d-%H%M%S', when)}_{frame}.{SNAP_EXTENSIONS.get(fmt, fmt)}"
    return _UNSAFE.sub("_", name)


__all__ = ["SNAP_EXTENSIONS", "SNAP_FORMATS", "snapshot_file_name"]
