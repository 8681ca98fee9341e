"""The writer for a recording's format, and a recording's metadata read back.

Both writers keep the file readable with every frame written so far at all times, so a process
that is killed, or a disk that fills, leaves a file that opens in Fiji, napari and Python. How
each does it is said in its module: ``ome_tiff`` (tifffile, one page per frame) and ``ome_zarr``
(zarr-python's store layout, one chunk file per frame); what they share is in ``files``.

Why not ome-writers (measured in ``benchmarks/bench_recording.py``, see ``docs/recording.md``):
its TIFF backend writes pages on a thread fed by an unbounded queue and turns write errors (disk
full) into a warning while frames keep being accepted, links pages before their data is written
and only writes the per-frame metadata at close; its Zarr backend goes through zarr-python's
array API, whose per-frame overhead made it several times slower than these writers here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .files import FrameWriter

# The format modules are imported when a recording is opened or read, not with labcam.recording:
# tifffile and zarr-python (the optional [recording] extra, ~0.3 s to import) are then loaded only
# by a process that records, and a missing zarr is reported by the recording that needs it.


def open_writer(
    path: Path, fmt: str, *, overwrite: bool = False, expected_frames: int | None = None, fsync: bool = True
) -> FrameWriter:
    """Create the file or folder for a recording and return its writer."""
    cls: type[FrameWriter]
    if fmt == "ome-tiff":
        from .ome_tiff import OmeTiffWriter as cls
    else:
        from .ome_zarr import OmeZarrWriter as cls
    writer = cls(path, expected_frames=expected_frames, fsync=fsync)
    writer.open(overwrite=overwrite)
    return writer


def read_recording_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The labcam metadata of a recording: ``{"summary": {...}, "frames": [{...}, ...]}``.

    ``frames`` has one dict per frame in the file (``FRAME_FIELDS``). Works on files from a
    recording that was killed (then ``summary`` is empty): the per-frame metadata is read from
    where it is written with each frame (TIFF page tags; the Zarr store's JSON-lines file).
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        from .ome_zarr import read_zarr_metadata

        return read_zarr_metadata(p)
    from .ome_tiff import read_tiff_metadata

    return read_tiff_metadata(p)


__all__ = ["open_writer", "read_recording_metadata"]
