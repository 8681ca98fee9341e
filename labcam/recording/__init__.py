"""Recording: every frame of the camera to OME-TIFF or OME-Zarr, on its own thread.

- ``Camera.record(path, frames=..., duration=...)`` starts one and returns a ``Recording`` handle
  (``wait``, ``stop``, ``progress``, ``status()``, ``events``, ``path``, ``error``).
- ``resolve_recording_path(root, name, overwrite=False)`` confines a name that came from the
  network to the recordings folder ``root`` (the server uses it before ``start_recording``).
- ``read_recording_metadata(path)`` gives back the per-frame metadata and the summary.

See ``docs/recording.md`` for the file layout and what survives a crash.
"""

from __future__ import annotations

from .paths import check_output_path, format_from_suffix, resolve_recording_path
from .recorder import (
    Recorder,
    Recording,
    RecordingError,
    RecordingEvents,
    RecordingProgress,
    attach_progress_bar,
    buffer_budget,
    start_recording,
)
from .files import FRAME_TAG, RecordingWriteError
from .writers import read_recording_metadata

__all__ = [
    "FRAME_TAG",
    "Recorder",
    "Recording",
    "RecordingError",
    "RecordingEvents",
    "RecordingProgress",
    "RecordingWriteError",
    "attach_progress_bar",
    "buffer_budget",
    "check_output_path",
    "format_from_suffix",
    "read_recording_metadata",
    "resolve_recording_path",
    "start_recording",
]
