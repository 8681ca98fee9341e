"""What every recording writer shares: the writer interface and the file plumbing under it.

- ``RecordingInfo`` (what a writer learns from the first frame) and ``FrameWriter`` (the interface
  of ``ome_tiff.OmeTiffWriter`` and ``ome_zarr.OmeZarrWriter``), with the per-frame fields both
  store (``FRAME_FIELDS``; the TIFF keeps them in the private tag ``FRAME_TAG``).
- ``RecordingWriteError`` and ``write_error``: an ``OSError`` turned into words a user can act on.
- Writes that cannot be torn: ``write_all``/``pwrite_all`` loop over short writes (a filling disk
  makes them short before it makes them fail), ``atomic_write_*`` replace a file by rename, and
  ``make_reserve`` sets space aside for the closing metadata.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..frame import PIXEL_FORMATS

# Private TIFF tag (in the 65000-65535 range reserved for private use; not used by any format
# tifffile knows) holding each page's per-frame metadata as ASCII JSON.
FRAME_TAG = 65437
# Per-frame metadata fields, in the order they are stored.
FRAME_FIELDS = ("index", "frame_number", "timestamp", "exposure_ms", "gain_db", "dropped_before", "missed_before")


class RecordingWriteError(OSError):
    """Writing the recording failed (disk full, folder not writable, ...). The message says what to do."""


@dataclass(frozen=True)
class RecordingInfo:
    """What a writer needs to know before the first frame: the image and where it comes from."""

    width: int
    height: int
    dtype: str  # numpy dtype name: "uint8" or "uint16"
    pixel_format: str
    samples: int = 1  # 3 for rgb8
    pixel_size_um: float | None = None
    fps: float | None = None  # nominal frame rate (OME-Zarr time scale)
    name: str = ""
    camera: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)  # epoch seconds
    software: str = "labcam"

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS.get(self.pixel_format, np.dtype(self.dtype).itemsize * 8)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.samples == 1 else (self.height, self.width, self.samples)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.samples * np.dtype(self.dtype).itemsize

    @classmethod
    def from_frame(cls, array: np.ndarray, pixel_format: str, **kw: Any) -> RecordingInfo:
        samples = int(array.shape[2]) if array.ndim == 3 else 1
        return cls(
            width=int(array.shape[1]),
            height=int(array.shape[0]),
            dtype=str(array.dtype),
            pixel_format=pixel_format,
            samples=samples,
            **kw,
        )


class FrameWriter(ABC):
    """Writes the frames of one recording, in order. Used from one thread.

    ``open`` creates the file (raising ``RecordingWriteError`` at once if it cannot), ``begin`` is
    called with the first frame's ``RecordingInfo``, ``write`` once per frame, ``close`` once with
    the recording summary (also after a failed ``write``: it then keeps what is on disk readable and
    does not raise for a full disk).
    """

    format: ClassVar[str]

    def __init__(self, path: Path, *, expected_frames: int | None = None, fsync: bool = True) -> None:
        self.path = Path(path)
        self.expected_frames = expected_frames
        self.fsync = fsync
        self.frames_written = 0
        self.bytes_written = 0  # pixel bytes
        self.info: RecordingInfo | None = None
        self.failed: BaseException | None = None

    @abstractmethod
    def open(self, *, overwrite: bool = False) -> None: ...

    @abstractmethod
    def begin(self, info: RecordingInfo) -> None: ...

    @abstractmethod
    def write(self, array: np.ndarray, meta: dict[str, Any]) -> None: ...

    @abstractmethod
    def close(self, summary: dict[str, Any]) -> None: ...


# -- errors and plumbing -----------------------------------------------------------------------------------------


def write_error(exc: BaseException, path: Path, what: str) -> RecordingWriteError:
    """A ``RecordingWriteError`` that says in plain words what went wrong with ``path``."""
    code = getattr(exc, "errno", None)
    if code is None and isinstance(exc, OSError):
        # numpy's tofile reports a short write without errno; a full disk is the usual reason.
        try:
            if shutil.disk_usage(_existing_parent(path)).free < 1024 * 1024:
                code = errno.ENOSPC
        except OSError:
            pass
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "the disk is full" if code == errno.ENOSPC else ("the disk quota is used up" if code == errno.EDQUOT else "the file is too large for this file system")
        msg = f"{what} {str(path)!r}: {why}; free some space or record to another disk"
    elif code in (errno.EACCES, errno.EPERM):
        msg = f"{what} {str(path)!r}: permission denied; choose a folder you can write to"
    elif code == errno.EROFS:
        msg = f"{what} {str(path)!r}: the file system is read-only; choose another folder"
    elif code == errno.ENOENT:
        msg = f"{what} {str(path)!r}: the folder does not exist"
    elif code == errno.ENOTDIR or (code == errno.EEXIST and not path.parent.is_dir()):
        msg = f"{what} {str(path)!r}: part of the path is a file, not a folder"
    else:
        msg = f"{what} {str(path)!r}: {exc}"
    err = RecordingWriteError(msg)  # one argument: str(err) is the message, without "[Errno n]"
    err.errno = code
    return err


def _existing_parent(path: Path) -> Path:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        if n <= 0:  # pragma: no cover - pwrite raises rather than returning 0
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        pos += n


def write_all(fd: int, view: memoryview) -> None:
    """``os.write`` until all is written; a short write on a full disk becomes ENOSPC."""
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - the next write raises
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def atomic_write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` by ``doc`` so that a reader (or a crash) sees the old or the new, never half."""
    atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, memoryview(data))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def make_reserve(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except (AttributeError, OSError):
            f.write(b"\0" * size)


__all__ = [
    "FRAME_FIELDS",
    "FRAME_TAG",
    "FrameWriter",
    "RecordingInfo",
    "RecordingWriteError",
    "atomic_write_bytes",
    "atomic_write_json",
    "is_disk_full",
    "make_reserve",
    "pwrite_all",
    "write_all",
    "write_error",
]
