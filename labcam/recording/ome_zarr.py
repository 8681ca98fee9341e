"""The OME-Zarr v0.5 writer (zarr-python lays out the store; frames go straight to chunk files).

One chunk (file) per frame, written straight to disk, then the array's shape in ``0/zarr.json``
is updated in place, so readers never see a frame whose chunk is missing. Per-frame metadata is
appended as one JSON line per frame to ``labcam-frames.jsonl`` inside the store (crash-safe) and,
on close, stored as columns in the group's ``attributes["labcam"]``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from .files import (
    FRAME_FIELDS,
    FrameWriter,
    RecordingInfo,
    atomic_write_bytes,
    atomic_write_json,
    is_disk_full,
    make_reserve,
    pwrite_all,
    write_all,
    write_error,
)

# OME-Zarr: free space set aside in the store so the closing metadata can be written when the
# disk is full (the reserve file is deleted first).
ZARR_RESERVE = 256 * 1024
FRAMES_JSONL = "labcam-frames.jsonl"
RESERVE_NAME = ".labcam-reserve"


class OmeZarrWriter(FrameWriter):
    """One OME-Zarr v0.5 image (Zarr v3): array ``0`` with axes t(, c), y, x, one chunk per frame.

    The store layout and metadata are made by zarr-python; frames are written as chunk files
    directly (uncompressed "bytes" codec, so a chunk is exactly the frame's little-endian bytes),
    which measured several times faster than zarr's array API for one-frame writes. Tests read the
    result back with zarr.
    """

    format = "ome-zarr"

    def __init__(self, path: Path, *, expected_frames: int | None = None, fsync: bool = True) -> None:
        super().__init__(path, expected_frames=expected_frames, fsync=fsync)
        self._array_meta: dict[str, Any] = {}
        self._array_json: Path | None = None
        self._array_json_fd: int | None = None  # kept open: the frame count is rewritten in place
        self._count_offset = 0  # byte offset of the frame count in 0/zarr.json
        self._jsonl_fd: int | None = None
        self._chunks = ""  # the array's chunk folder, as a str (cheaper than Path per frame)
        self._metas: list[dict[str, Any]] = []
        self._created_dir = False

    def open(self, *, overwrite: bool = False) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if overwrite and self.path.exists():
                shutil.rmtree(self.path)  # a Zarr store: checked by paths._check_existing
            self.path.mkdir()
            self._created_dir = True
            make_reserve(self.path / RESERVE_NAME, ZARR_RESERVE)
        except OSError as exc:
            raise write_error(exc, self.path, "cannot create") from exc

    def begin(self, info: RecordingInfo) -> None:
        self.info = info
        rgb = info.samples == 3
        shape = (0, 3, info.height, info.width) if rgb else (0, info.height, info.width)
        try:
            store = LocalStore(self.path)
            group = zarr.create_group(store=store, zarr_format=3, overwrite=True, attributes=self._attributes(None))
            arr = group.create_array(
                "0",
                shape=shape,
                chunks=(1, *shape[1:]),
                dtype=info.dtype,
                compressors=None,
                filters=None,
                fill_value=0,
                dimension_names=["t", "c", "y", "x"] if rgb else ["t", "y", "x"],
                chunk_key_encoding={"name": "default", "separator": "/"},
            )
            store.close()
            # Chunks are written as raw bytes below: make sure zarr agreed to the plain layout.
            codecs = [c.to_dict() for c in arr.metadata.codecs]  # type: ignore[union-attr]
            if len(codecs) != 1 or codecs[0].get("name") != "bytes":  # pragma: no cover - zarr default changed
                raise RuntimeError(f"unexpected zarr codecs for an uncompressed array: {codecs}")
            self._array_json = self.path / "0" / "zarr.json"
            self._array_meta = json.loads(self._array_json.read_text())
            # The same metadata with the frame count as a fixed-width field (a JSON number padded
            # with spaces), so each frame updates it with one small in-place write.
            doc = dict(self._array_meta, shape=["@FRAMES@", *self._array_meta["shape"][1:]])
            text = json.dumps(doc, indent=2).encode()
            self._count_offset = text.index(b'"@FRAMES@"')
            text = text.replace(b'"@FRAMES@"', b"0".ljust(_COUNT_WIDTH))
            atomic_write_bytes(self._array_json, text)
            self._array_json_fd = os.open(self._array_json, os.O_WRONLY)
            self._jsonl_fd = os.open(self.path / FRAMES_JSONL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            (self.path / "0" / "c").mkdir()
        except OSError as exc:
            raise write_error(exc, self.path, "cannot write") from exc
        self._chunks = str(self.path / "0" / "c")
        self._rgb = rgb

    def _attributes(self, summary: dict[str, Any] | None) -> dict[str, Any]:
        info = self.info
        assert info is not None
        px = info.pixel_size_um
        space_unit = {"unit": "micrometer"} if px else {}
        axes: list[dict[str, Any]] = [{"name": "t", "type": "time", "unit": "second"}]
        if info.samples == 3:
            axes.append({"name": "c", "type": "channel"})
        axes += [{"name": "y", "type": "space", **space_unit}, {"name": "x", "type": "space", **space_unit}]
        dt = 1.0 / info.fps if info.fps else 1.0
        scale = [dt] + ([1.0] if info.samples == 3 else []) + [px or 1.0, px or 1.0]
        maximum = 2**info.bit_depth - 1
        channels = (
            [{"label": c, "color": col, "window": {"min": 0, "max": maximum, "start": 0, "end": maximum}, "active": True}
             for c, col in (("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF"))]
            if info.samples == 3
            else [{"label": "camera", "color": "FFFFFF", "window": {"min": 0, "max": maximum, "start": 0, "end": maximum}, "active": True}]
        )
        ome = {
            "version": "0.5",
            "multiscales": [
                {
                    "name": info.name or self.path.name,
                    "axes": axes,
                    "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
                }
            ],
            "omero": {"channels": channels, "rdefs": {"model": "color" if info.samples == 3 else "greyscale"}},
        }
        labcam: dict[str, Any] = {
            "camera": info.camera,
            "settings": info.settings,
            "pixel_format": info.pixel_format,
            "bit_depth": info.bit_depth,
            "started": info.started,
            "frames_file": FRAMES_JSONL,
        }
        if summary is not None:
            labcam["recording"] = summary
        return {"ome": ome, "labcam": labcam}

    def write(self, array: np.ndarray, meta: dict[str, Any]) -> None:
        # As few system calls as possible: on a busy machine every one of them may wait for the
        # GIL on the way back, and that, not the disk, is what limits a file-per-frame format.
        assert self._array_json_fd is not None and self._jsonl_fd is not None, "begin() first"
        i = self.frames_written
        data = np.ascontiguousarray(np.moveaxis(array, 2, 0) if self._rgb else array)
        if data.dtype.byteorder == ">" or (data.dtype.byteorder == "=" and not _LITTLE_ENDIAN):  # pragma: no cover
            data = data.astype(data.dtype.newbyteorder("<"))
        folder = f"{self._chunks}/{i}"
        chunk = f"{folder}/0/0/0" if self._rgb else f"{folder}/0/0"
        fd = -1
        try:
            os.mkdir(folder)
            os.mkdir(f"{folder}/0")
            if self._rgb:
                os.mkdir(f"{folder}/0/0")
            fd = os.open(chunk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            write_all(fd, memoryview(data).cast("B"))
            os.close(fd)
            fd = -1
            os.write(self._jsonl_fd, (json.dumps(meta, separators=(",", ":")) + "\n").encode())
            # Only now make the frame part of the array: readers never see a missing chunk.
            pwrite_all(self._array_json_fd, str(i + 1).encode().ljust(_COUNT_WIDTH), self._count_offset)
        except OSError as exc:
            self.failed = exc
            if fd >= 0:
                os.close(fd)
            # Give the space of the unfinished chunk back (it matters on a full disk).
            shutil.rmtree(folder, ignore_errors=True)
            raise write_error(exc, self.path, "cannot write frame to") from exc
        self.frames_written += 1
        self.bytes_written += array.nbytes
        self._metas.append(meta)

    def close(self, summary: dict[str, Any]) -> None:
        for name in ("_jsonl_fd", "_array_json_fd"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    if self.fsync:
                        os.fsync(fd)
                except OSError:
                    pass
                os.close(fd)
                setattr(self, name, None)
        # Free the reserve first: on a full disk it is what lets the metadata below be written.
        try:
            (self.path / RESERVE_NAME).unlink()
        except OSError:
            pass
        if self.info is None:
            # No frame came: remove the empty folder rather than leave a store without an image.
            if self._created_dir:
                shutil.rmtree(self.path, ignore_errors=True)
            return
        group_json = self.path / "zarr.json"
        try:
            doc = json.loads(group_json.read_text())
            attrs = self._attributes(summary)
            attrs["labcam"]["frames"] = {k: [m.get(k) for m in self._metas] for k in FRAME_FIELDS}
            doc["attributes"] = attrs
            atomic_write_json(group_json, doc)
        except OSError as exc:
            if not is_disk_full(exc):
                raise write_error(exc, self.path, "cannot finish") from exc
            # Still full: the summary alone (per-frame metadata stays in labcam-frames.jsonl).
            doc["attributes"] = self._attributes(summary)
            try:
                atomic_write_json(group_json, doc)
            except OSError:
                pass
        if self.fsync:
            _fsync_tree(self.path)


_LITTLE_ENDIAN = sys.byteorder == "little"
_COUNT_WIDTH = 20  # digits + padding of the in-place frame count in 0/zarr.json


def _fsync_tree(root: Path) -> None:
    """Make the store durable before ``close`` returns.

    One ``syncfs`` of the store's file system (Linux) instead of an open + fsync per chunk file;
    elsewhere the metadata files are fsynced and the chunks left to the OS's write-back.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = os.open(root, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    for p in (root / "zarr.json", root / "0" / "zarr.json", root / FRAMES_JSONL):
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def read_zarr_metadata(path: Path) -> dict[str, Any]:
    group = json.loads((path / "zarr.json").read_text())
    n = json.loads((path / "0" / "zarr.json").read_text())["shape"][0]
    labcam = group.get("attributes", {}).get("labcam", {})
    columns = labcam.get("frames")
    if columns:
        frames = [dict(zip(columns, values)) for values in zip(*columns.values())]
    else:
        frames = []
        with open(path / FRAMES_JSONL, "rb") as f:
            for line in f:
                try:
                    frames.append(json.loads(line))
                except ValueError:  # a line cut short by a crash
                    break
    return {"summary": labcam.get("recording", {}), "frames": frames[:n]}


__all__ = ["OmeZarrWriter", "read_zarr_metadata"]
