"""The OME-TIFF writer (tifffile): one page per frame, the file valid after every frame.

A page is linked into the file's IFD chain only after its pixels and IFD are completely written
(``_LinkLastFile`` holds back tifffile's in-place pointer update until then), and the OME-XML's
frame count (``SizeT``/``PlaneCount``, written into a fixed-width field) is patched in place right
after. Per-frame metadata (frame number, timestamp, exposure, gain, drops) is a small JSON text in
a private tag of each page (``FRAME_TAG``), so it survives a crash along with its pixels. On a
clean close the OME-XML is rewritten with one ``Plane`` per frame (``DeltaT``, ``ExposureTime``)
and a ``MapAnnotation`` with the recording summary (frames, drops, why it stopped).
"""

from __future__ import annotations

import errno
import io
import json
import os
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import tifffile

from .files import FRAME_TAG, FrameWriter, RecordingInfo, is_disk_full, pwrite_all, write_error

# Bytes kept free in the first page's ImageDescription so the closing OME-XML (at least its
# compact form: counts, drops, error) can always be written in place, even on a full disk.
DESCRIPTION_RESERVE = 16 * 1024
# A classic (32-bit offset) TIFF is used only when the whole recording is known to stay below
# this; everything else is BigTIFF. Classic files open in more (older) software.
CLASSIC_TIFF_LIMIT = 2**31
OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
SUMMARY_NAMESPACE = "labcam.recording"


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
            pwrite_all(self._fd, data, pos)
        self._pending.clear()

    def pwrite(self, data: bytes, pos: int) -> None:
        """Overwrite bytes at ``pos`` now (not deferred), leaving the file position alone."""
        pwrite_all(self._fd, data, pos)

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
        full = self._final_xml(summary, planes=True)
        try:
            if self._desc_offset is not None and len(full) <= self._desc_len:
                self._overwrite_description(full)
            else:
                # Longer than the space in the file: tifffile appends it at the end and repoints the tag.
                tifffile.tiffcomment(self.path, comment=full)
            return
        except OSError as exc:
            if not is_disk_full(exc):
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
            pwrite_all(fd, padded, self._desc_offset)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def read_tiff_metadata(path: Path) -> dict[str, Any]:
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


__all__ = ["OmeTiffWriter", "read_tiff_metadata"]
