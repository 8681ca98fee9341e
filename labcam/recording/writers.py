"""File writers for recordings: OME-TIFF (tifffile) and OME-Zarr v0.5 (zarr), one frame at a time.

Both writers keep the file readable with every frame written so far at all times, so a process
that is killed, or a disk that fills, leaves a file that opens in Fiji, napari and Python:

- **OME-TIFF**: every frame is one TIFF page (IFD) written by tifffile. A page is linked into the
  file's IFD chain only after its pixels and IFD are completely written (``_LinkLastFile`` holds
  back tifffile's in-place pointer update until then), and the OME-XML's frame count
  (``SizeT``/``PlaneCount``, written into a fixed-width field) is patched in place right after.
  Per-frame metadata (frame number, timestamp, exposure, gain, drops) is a small JSON text in a
  private tag of each page (``FRAME_TAG``), so it survives a crash along with its pixels. On a
  clean close the OME-XML is rewritten with one ``Plane`` per frame (``DeltaT``, ``ExposureTime``)
  and a ``MapAnnotation`` with the recording summary (frames, drops, why it stopped).
- **OME-Zarr**: one chunk (file) per frame, written straight to disk, then the array's shape in
  ``0/zarr.json`` is updated atomically (write + rename), so readers never see a frame whose chunk
  is missing. Per-frame metadata is appended as one JSON line per frame to
  ``labcam-frames.jsonl`` inside the store (crash-safe) and, on close, stored as columns in the
  group's ``attributes["labcam"]``.

Why not ome-writers (measured in ``benchmarks/bench_recording.py``, see ``docs/recording.md``):
its TIFF backend writes pages on a thread fed by an unbounded queue and turns write errors (disk
full) into a warning while frames keep being accepted, links pages before their data is written
and only writes the per-frame metadata at close; its Zarr backend goes through zarr-python's
array API, whose per-frame overhead made it several times slower than these writers here.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..frame import PIXEL_FORMATS

# Private TIFF tag (in the 65000-65535 range reserved for private use; not used by any format
# tifffile knows) holding each page's per-frame metadata as ASCII JSON.
FRAME_TAG = 65437
# Bytes kept free in the first page's ImageDescription so the closing OME-XML (at least its
# compact form: counts, drops, error) can always be written in place, even on a full disk.
DESCRIPTION_RESERVE = 16 * 1024
# A classic (32-bit offset) TIFF is used only when the whole recording is known to stay below
# this; everything else is BigTIFF. Classic files open in more (older) software.
CLASSIC_TIFF_LIMIT = 2**31
# OME-Zarr: free space set aside in the store so the closing metadata can be written when the
# disk is full (the reserve file is deleted first).
ZARR_RESERVE = 256 * 1024
FRAMES_JSONL = "labcam-frames.jsonl"
RESERVE_NAME = ".labcam-reserve"
OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
SUMMARY_NAMESPACE = "labcam.recording"
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


def open_writer(
    path: Path, fmt: str, *, overwrite: bool = False, expected_frames: int | None = None, fsync: bool = True
) -> FrameWriter:
    """Create the file or folder for a recording and return its writer."""
    cls: type[FrameWriter] = OmeTiffWriter if fmt == "ome-tiff" else OmeZarrWriter
    writer = cls(path, expected_frames=expected_frames, fsync=fsync)
    writer.open(overwrite=overwrite)
    return writer


# -- errors -----------------------------------------------------------------------------------------


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


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# -- OME-TIFF -----------------------------------------------------------------------------------


class _LinkLastFile(io.RawIOBase):
    """A raw file for tifffile that holds back overwrites of existing bytes until ``commit``.

    tifffile writes a page as: patch the previous IFD's "next IFD" pointer, write the pixels, then
    write the IFD into the gap it left. Killed in the middle, the file would point at a half-written
    page. Here every write that lands on bytes already in the file (the pointer patch and the IFD,
    which goes into a gap before the pixels) is kept in memory and written by ``commit`` in reverse
    order — IFD first, pointer last — after the pixels are on disk. A page is therefore either fully
    linked or not linked at all. ``discard`` drops them (after a failed write: the page is never
    linked, the file stays valid). Appends go straight to the file; ``fileno`` lets numpy write the
    pixels without a copy.
    """

    def __init__(self, path: Path, mode: str) -> None:
        super().__init__()
        self._f = open(path, mode, buffering=0)  # noqa: SIM115 - closed in close()
        self._fd = self._f.fileno()
        self._pending: list[tuple[int, bytes]] = []

    # io.RawIOBase
    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def flush(self) -> None:
        # numpy's tofile and tifffile call flush at points that are not page boundaries: nothing
        # to do here (the file is unbuffered); ``commit`` is the real boundary.
        pass

    def write(self, b: Any) -> int:
        data = memoryview(b).cast("B")
        n = len(data)
        pos = self._f.tell()
        if pos + n <= os.fstat(self._fd).st_size:
            self._pending.append((pos, bytes(data)))
            self._f.seek(pos + n)
            return n
        # Loop: a regular-file write can be short when the disk fills; the next one raises ENOSPC.
        done = 0
        while done < n:
            written = self._f.write(data[done:])
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
        return n

    def commit(self) -> None:
        for pos, data in reversed(self._pending):
            _pwrite_all(self._fd, data, pos)
        self._pending.clear()

    def pwrite(self, data: bytes, pos: int) -> None:
        """Overwrite bytes at ``pos`` now (not deferred), leaving the file position alone."""
        _pwrite_all(self._fd, data, pos)

    def sync(self) -> None:
        os.fsync(self._fd)

    def discard(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self._pending.clear()
        if not self._f.closed:
            self._f.close()
        super().close()


def _pad_before_closing_tag(xml: str, length: int) -> str:
    """``xml`` padded with spaces before ``</OME>`` to ``length`` bytes (UTF-8)."""
    closing = "</OME>"
    assert xml.endswith(closing)
    pad = length - len(xml.encode("utf-8"))
    return xml[: -len(closing)] + " " * max(pad, 0) + closing


def _pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        if n <= 0:  # pragma: no cover - pwrite raises rather than returning 0
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        pos += n


class OmeTiffWriter(FrameWriter):
    """One OME-TIFF file, one page per frame (see the module docstring for the crash guarantees)."""

    format = "ome-tiff"

    def __init__(self, path: Path, *, expected_frames: int | None = None, fsync: bool = True) -> None:
        super().__init__(path, expected_frames=expected_frames, fsync=fsync)
        self._raw: _LinkLastFile | None = None
        self._tif: Any = None
        self._uuid = f"urn:uuid:{uuid.uuid4()}"
        self._metas: list[dict[str, Any]] = []
        self._desc_offset: int | None = None  # file offset of the ImageDescription value
        self._desc_len = 0  # its length in bytes, without the trailing NUL
        self._count_field: tuple[int, int] = (0, 0)  # (offset in the description, length)
        self._count_template = ""
        self._write_kwargs: dict[str, Any] = {}

    def open(self, *, overwrite: bool = False) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = _LinkLastFile(self.path, "wb" if overwrite else "xb")
        except OSError as exc:
            raise write_error(exc, self.path, "cannot create") from exc

    def begin(self, info: RecordingInfo) -> None:
        import tifffile

        assert self._raw is not None, "open() first"
        self.info = info
        bigtiff = self.expected_frames is None or (
            self.expected_frames * (info.frame_bytes + 4096) + DESCRIPTION_RESERVE >= CLASSIC_TIFF_LIMIT
        )
        try:
            self._tif = tifffile.TiffWriter(self._raw, bigtiff=bigtiff, ome=False, shaped=False)
        except OSError as exc:
            raise write_error(exc, self.path, "cannot write") from exc
        kwargs: dict[str, Any] = {
            "photometric": "rgb" if info.samples == 3 else "minisblack",
            "software": "labcam",
            "metadata": None,
            "contiguous": False,
        }
        if info.pixel_size_um:
            # TIFF resolution in pixels per centimetre, for readers that ignore OME-XML.
            kwargs["resolution"] = (1e4 / info.pixel_size_um, 1e4 / info.pixel_size_um)
            kwargs["resolutionunit"] = "CENTIMETER"
        self._write_kwargs = kwargs

    # The part of the OME-XML that says how many frames there are, at a fixed width, so it can be
    # rewritten in place after every frame (one pwrite, so the two numbers never disagree).
    def _count_region(self, n: int) -> str:
        return self._count_template.format(size_t=f'SizeT="{n}"'.ljust(22), tiffdata=f'<TiffData IFD="0" PlaneCount="{n}"/>'.ljust(48))

    def write(self, array: np.ndarray, meta: dict[str, Any]) -> None:
        assert self._tif is not None and self._raw is not None and self.info is not None, "begin() first"
        first = self.frames_written == 0
        kwargs = dict(self._write_kwargs)
        kwargs["extratags"] = [(FRAME_TAG, "s", 0, json.dumps(meta, separators=(",", ":")), False)]
        description = b""
        if first:
            description = self._initial_description().encode("utf-8")
            kwargs["description"] = description
        try:
            self._tif.write(array, **kwargs)
            self._raw.commit()
            if first:
                self._locate_description(len(description))
            else:
                self._patch_count(self.frames_written + 1)
        except Exception as exc:
            self._raw.discard()
            self.failed = exc
            if isinstance(exc, OSError):
                raise write_error(exc, self.path, "cannot write frame to") from exc
            raise
        self.frames_written += 1
        self.bytes_written += array.nbytes
        self._metas.append(meta)

    def close(self, summary: dict[str, Any]) -> None:
        if self._tif is not None:
            try:
                self._tif.close()  # nothing left to write for non-contiguous pages; releases tifffile
            except Exception:  # noqa: BLE001 - the file is complete up to the last committed page
                pass
            self._tif = None
        if self._raw is not None:
            if self.fsync and self.frames_written:
                try:
                    self._raw.sync()
                except OSError:
                    pass
            self._raw.close()
            self._raw = None
        if not self.frames_written:
            # A TIFF without pages is not a valid image: leave nothing behind.
            try:
                self.path.unlink()
            except OSError:
                pass
            return
        self._finish_description(summary)

    # -- OME-XML -----------------------------------------------------------------------------------
    def _initial_description(self) -> str:
        xml, start, template = self._xml_with_count_region(summary=None, planes=False)
        self._count_template = template
        region = self._count_region(1)
        self._count_field = (len(xml[:start].encode("utf-8")), len(region.encode("utf-8")))
        xml = xml[:start] + region + xml[start:]
        # Room for the closing XML to be written in place: whitespace before the closing tag
        # (readers, tifffile among them, look for "OME>" at the very end).
        return _pad_before_closing_tag(xml, len(xml.encode("utf-8")) + DESCRIPTION_RESERVE)

    def _xml_with_count_region(self, summary: dict[str, Any] | None, planes: bool) -> tuple[str, int, str]:
        """The OME-XML without its counting region, where that region goes, and its template."""
        head, tail = self._ome_xml_parts(summary, planes)
        xml = head + tail
        start, end = xml.index("\x02"), xml.index("\x03")
        template = xml[start + 1 : end].replace("{", "{{").replace("}", "}}")
        template = template.replace("@SIZE_T@", "{size_t}").replace("@TIFFDATA@", "{tiffdata}")
        return xml[:start] + xml[end + 1 :], start, template

    def _ome_xml_parts(self, summary: dict[str, Any] | None, planes: bool) -> tuple[str, str]:
        info = self.info
        assert info is not None
        ome_type = {"uint8": "uint8", "uint16": "uint16"}.get(info.dtype, info.dtype)
        cam = info.camera
        physical = ""
        if info.pixel_size_um:
            physical = f' PhysicalSizeX="{info.pixel_size_um:.6g}" PhysicalSizeY="{info.pixel_size_um:.6g}"'
        detector = ""
        instrument = ""
        if cam:
            instrument = (
                '<Instrument ID="Instrument:0">'
                f'<Detector ID="Detector:0:0" Model={quoteattr(str(cam.get("model", "")))} '
                f'SerialNumber={quoteattr(str(cam.get("serial", "")))} '
                f'Manufacturer={quoteattr(str(cam.get("driver", "")))}/>'
                "</Instrument>"
            )
            gain = info.settings.get("gain_db")
            gain_attr = f' Gain="{float(gain):.6g}"' if isinstance(gain, (int, float)) else ""
            detector = f'<DetectorSettings ID="Detector:0:0"{gain_attr}/>'
        channel = (
            f'<Channel ID="Channel:0:0" SamplesPerPixel="{info.samples}"'
            + (' Name="RGB"' if info.samples == 3 else "")
            + f">{detector}</Channel>"
        )
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(info.started))
        name = info.name or self.path.name
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<OME xmlns="{OME_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{OME_NS} {OME_NS}/ome.xsd" UUID="{self._uuid}" Creator={quoteattr(info.software)}>'
            f"{instrument}"
            f'<Image ID="Image:0" Name={quoteattr(name)}>'
            f"<AcquisitionDate>{started}</AcquisitionDate>"
            + ('<InstrumentRef ID="Instrument:0"/>' if instrument else "")
            + f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="{ome_type}" SignificantBits="{info.bit_depth}" '
            f'BigEndian="false" Interleaved="{"true" if info.samples == 3 else "false"}" '
            f'SizeX="{info.width}" SizeY="{info.height}" SizeZ="1" SizeC="{info.samples}"{physical} '
            f"\x02@SIZE_T@>{channel}@TIFFDATA@\x03"
        )
        plane_xml = ""
        if planes and self._metas:
            t0 = self._metas[0]["timestamp"]
            plane_xml = "".join(
                f'<Plane TheZ="0" TheC="0" TheT="{i}" DeltaT="{m["timestamp"] - t0:.6f}" DeltaTUnit="s" '
                f'ExposureTime="{m["exposure_ms"]:.6g}" ExposureTimeUnit="ms"/>'
                for i, m in enumerate(self._metas)
            )
        annotations = ""
        image_ref = ""
        if summary is not None:
            entries = "".join(
                f"<M K={quoteattr(str(k))}>{escape(v if isinstance(v, str) else json.dumps(v))}</M>"
                for k, v in summary.items()
            )
            annotations = (
                "<StructuredAnnotations>"
                f'<MapAnnotation ID="Annotation:0" Namespace="{SUMMARY_NAMESPACE}"><Value>{entries}</Value></MapAnnotation>'
                "</StructuredAnnotations>"
            )
            image_ref = '<AnnotationRef ID="Annotation:0"/>'
        tail = f"{plane_xml}</Pixels>{image_ref}</Image>{annotations}</OME>"
        return head, tail

    def _final_xml(self, summary: dict[str, Any] | None, planes: bool) -> bytes:
        xml, start, template = self._xml_with_count_region(summary, planes)
        n = self.frames_written
        region = template.format(size_t=f'SizeT="{n}"', tiffdata=f'<TiffData IFD="0" PlaneCount="{n}"/>')
        return (xml[:start] + region + xml[start:]).encode("utf-8")

    def _locate_description(self, length: int) -> None:
        import tifffile

        # The first page is complete and linked: read where tifffile put the description.
        with tifffile.TiffFile(self.path) as tif:
            tag = tif.pages.first.tags[270]
            self._desc_offset = int(tag.valueoffset)
        self._desc_len = length

    def _patch_count(self, n: int) -> None:
        assert self._raw is not None and self._desc_offset is not None
        region = self._count_region(n).encode("utf-8")
        if len(region) != self._count_field[1]:  # pragma: no cover - needs > 10**13 frames
            return
        self._raw.pwrite(region, self._desc_offset + self._count_field[0])

    def _finish_description(self, summary: dict[str, Any]) -> None:
        """Rewrite the OME-XML with every frame's Plane and the summary; never lose what is on disk."""
        import tifffile

        full = self._final_xml(summary, planes=True)
        try:
            if self._desc_offset is not None and len(full) <= self._desc_len:
                self._overwrite_description(full)
            else:
                # Longer than the space in the file: tifffile appends it at the end and repoints the tag.
                tifffile.tiffcomment(self.path, comment=full)
            return
        except OSError as exc:
            if not _is_disk_full(exc):
                raise write_error(exc, self.path, "cannot finish") from exc
        # Full disk: the compact XML (no Plane elements; per-frame metadata stays in each page's
        # tag) fits in the space reserved in the first page.
        compact = self._final_xml(summary, planes=False)
        if len(compact) > self._desc_len:
            compact = self._final_xml({k: v for k, v in summary.items() if k != "error"}, planes=False)
        if len(compact) <= self._desc_len:
            self._overwrite_description(compact)

    def _overwrite_description(self, xml: bytes) -> None:
        assert self._desc_offset is not None
        padded = _pad_before_closing_tag(xml.decode("utf-8"), self._desc_len).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            _pwrite_all(fd, padded, self._desc_offset)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


# -- OME-Zarr -----------------------------------------------------------------------------------


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
            _make_reserve(self.path / RESERVE_NAME, ZARR_RESERVE)
        except OSError as exc:
            raise write_error(exc, self.path, "cannot create") from exc

    def begin(self, info: RecordingInfo) -> None:
        import zarr
        from zarr.storage import LocalStore

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
            _atomic_write_bytes(self._array_json, text)
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
            _write_all(fd, memoryview(data).cast("B"))
            os.close(fd)
            fd = -1
            os.write(self._jsonl_fd, (json.dumps(meta, separators=(",", ":")) + "\n").encode())
            # Only now make the frame part of the array: readers never see a missing chunk.
            _pwrite_all(self._array_json_fd, str(i + 1).encode().ljust(_COUNT_WIDTH), self._count_offset)
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
            _atomic_write_json(group_json, doc)
        except OSError as exc:
            if not _is_disk_full(exc):
                raise write_error(exc, self.path, "cannot finish") from exc
            # Still full: the summary alone (per-frame metadata stays in labcam-frames.jsonl).
            doc["attributes"] = self._attributes(summary)
            try:
                _atomic_write_json(group_json, doc)
            except OSError:
                pass
        if self.fsync:
            _fsync_tree(self.path)


_LITTLE_ENDIAN = sys.byteorder == "little"
_COUNT_WIDTH = 20  # digits + padding of the in-place frame count in 0/zarr.json


def _write_all(fd: int, view: memoryview) -> None:
    """``os.write`` until all is written; a short write on a full disk becomes ENOSPC."""
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - the next write raises
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _atomic_write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` by ``doc`` so that a reader (or a crash) sees the old or the new, never half."""
    _atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, memoryview(data))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _make_reserve(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except (AttributeError, OSError):
            f.write(b"\0" * size)


def _fsync_tree(root: Path) -> None:
    """Make the store durable before ``close`` returns.

    One ``syncfs`` of the store's file system (Linux) instead of an open + fsync per chunk file;
    elsewhere the metadata files are fsynced and the chunks left to the OS's write-back.
    """
    try:
        import ctypes
        import ctypes.util

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


# -- reading back -----------------------------------------------------------------------------------


def read_recording_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The labcam metadata of a recording: ``{"summary": {...}, "frames": [{...}, ...]}``.

    ``frames`` has one dict per frame in the file (``FRAME_FIELDS``). Works on files from a
    recording that was killed (then ``summary`` is empty): the per-frame metadata is read from
    where it is written with each frame (TIFF page tags; the Zarr store's JSON-lines file).
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        return _read_zarr_metadata(p)
    return _read_tiff_metadata(p)


def _read_tiff_metadata(path: Path) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        # As many frames as the OME-XML declares (a killed recording may have one more page).
        n = int(tif.series[0].shape[0]) if tif.series and len(tif.series[0].shape) > 2 else 1
        xml = tif.pages.first.description
    with tifffile.TiffFile(path) as tif:
        tif.pages.useframes = False  # the per-frame JSON is a tag, and TiffFrames have no tags
        frames = []
        for i in range(n):
            tag = tif.pages[i].tags.get(FRAME_TAG)
            frames.append(json.loads(tag.value) if tag is not None else {})
    summary: dict[str, Any] = {}
    try:
        root = ET.fromstring(xml)
        for ann in root.iter(f"{{{OME_NS}}}MapAnnotation"):
            if ann.get("Namespace") != SUMMARY_NAMESPACE:
                continue
            for m in ann.iter(f"{{{OME_NS}}}M"):
                text = m.text or ""
                try:
                    summary[m.get("K", "")] = json.loads(text)
                except ValueError:
                    summary[m.get("K", "")] = text
    except ET.ParseError:
        pass
    return {"summary": summary, "frames": frames}


def _read_zarr_metadata(path: Path) -> dict[str, Any]:
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


__all__ = [
    "FRAME_FIELDS",
    "FRAME_TAG",
    "FrameWriter",
    "OmeTiffWriter",
    "OmeZarrWriter",
    "RecordingInfo",
    "RecordingWriteError",
    "open_writer",
    "read_recording_metadata",
]
