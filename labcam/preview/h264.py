"""H.264 previews: 8-bit display images → Annex-B access units, with PyAV's libx264.

One ``H264Encoder`` per preview variant, fed the images ``DisplayMapper`` makes (12/16-bit frames
are mapped to 8 bits first, as for JPEG). What the stream promises a viewer (WebCodecs'
``VideoDecoder`` or PyAV), and how:

- **One access unit per frame, at once.** Preset ``ultrafast``, tune ``zerolatency`` (no lookahead,
  no frame threads) and no B-frames: each ``encode()`` returns the frame it was given.
- **Keyframes.** ``keyframe`` is true exactly on IDR access units, and each carries SPS and PPS
  in-band (x264 repeats the headers; no global header), so a viewer can start at any keyframe.
  Keyframes come every ``gop`` frames, or on ``request_keyframe()`` (at most one per
  ``keyframe_spacing`` frames: a request sooner is kept and served when the spacing has passed),
  or both. The first frame is always one.
- **Colour.** Mono images are the luma plane as they are, with neutral chroma (128); RGB images are
  converted to full-range BT.601 Y'CbCr. Both are full range, and the stream says so in the SPS VUI
  (``video_full_range_flag = 1``): without the flag a browser stretches 16..235 to 0..255 and the
  picture is off by about 26 dB (measured in Chromium).
- **Codec string.** ``codec`` is WebCodecs' ``avc1.PPCCLL``, read from the stream's own SPS
  (profile_idc, constraint flags, level_idc), never assumed.
- **Rate control.** Constant quality (``crf``, default ``DEFAULT_CRF``) or a bitrate (bits/s, with a VBV buffer
  of ``VBV_SECONDS`` so no access unit is much larger than the rate allows). Changing it means a
  new encoder (whose first frame is an IDR).

x264 needs an even width and height (4:2:0): an odd last column or row is left out.

``H264Decoder`` and ``luma`` decode such a stream with PyAV, for Python viewers and for checks.
The small Annex-B/SPS reader at the end (``split_nal_units``, ``parse_sps``) is the format's
definition (ITU-T H.264 7.3.2.1.1), used to derive the codec string and to check streams in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

CRF_RANGE = (0.0, 51.0)
DEFAULT_CRF = 23.0  # constant quality unless a bitrate is given
BITRATE_RANGE = (50_000, 100_000_000)  # bits/s
GOP_RANGE = (1, 3600)  # frames
KEYFRAME_SPACING_RANGE = (1, 3600)  # frames
FPS_RANGE = (1.0, 1000.0)
SIZE_RANGE = (16, 8192)  # pixels; 8192 is H.264's largest level (6.2) width
VBV_SECONDS = 0.1  # bitrate mode: the most the encoder may burst above the rate, in seconds of it

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


@dataclass(frozen=True)
class AccessUnit:
    """One encoded frame: ``data`` is Annex-B (start codes, SPS and PPS in-band on keyframes)."""

    data: bytes
    keyframe: bool
    codec: str  # WebCodecs codec string, e.g. "avc1.42C01F"
    index: int  # 0, 1, 2... in encoding order (= presentation order: there are no B-frames)


def _check_range(name: str, value: float, bounds: tuple[float, float], *, whole: bool = False) -> None:
    lo, hi = bounds
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not lo <= value <= hi:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"{name}={value!r} is out of range: {what} from {lo:g} to {hi:g}")


class H264Encoder:
    """Encodes 8-bit images of one size, (H, W) mono or (H, W, 3) RGB, to H.264 access units.

    One thread encodes at a time (one encoder per variant); ``request_keyframe`` may come from any
    thread. Raises ``ValueError`` naming the setting and its range for bad settings, and
    ``RuntimeError`` when PyAV (the ``h264`` extra) or its libx264 is missing.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        fps: float = 30.0,
        crf: float | None = None,
        bitrate: int | None = None,
        gop: int | None = None,
        keyframe_spacing: int = 15,
        threads: int = 1,
    ) -> None:
        _check_range("width", width, SIZE_RANGE, whole=True)
        _check_range("height", height, SIZE_RANGE, whole=True)
        _check_range("fps", fps, FPS_RANGE)
        if bitrate is not None:
            if crf is not None:
                raise ValueError("give either crf (constant quality) or bitrate, not both")
            _check_range("bitrate", bitrate, BITRATE_RANGE, whole=True)
        else:
            crf = DEFAULT_CRF if crf is None else crf
            _check_range("crf", crf, CRF_RANGE)
        if gop is not None:
            _check_range("gop", gop, GOP_RANGE, whole=True)
        _check_range("keyframe_spacing", keyframe_spacing, KEYFRAME_SPACING_RANGE, whole=True)
        _check_range("threads", threads, (1, 16), whole=True)

        try:
            import av
        except ImportError as exc:  # the h264 extra is optional
            raise RuntimeError('H.264 needs PyAV: pip install "labcam[h264]"') from exc
        if "libx264" not in av.codecs_available:
            raise RuntimeError("this PyAV build has no libx264 encoder")

        self.width, self.height = int(width), int(height)
        self.encoded_size = (self.width & ~1, self.height & ~1)
        self.fps, self.crf, self.bitrate, self.gop = float(fps), crf, bitrate, gop
        self.keyframe_spacing = int(keyframe_spacing)
        self.codec: str | None = None  # known after the first frame

        w, h = self.encoded_size
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
        rate = Fraction(fps).limit_denominator(1001)
        ctx.time_base, ctx.framerate = 1 / rate, rate
        ctx.thread_count = threads
        ctx.color_range = av.video.reformatter.ColorRange.JPEG  # → VUI video_full_range_flag = 1
        ctx.colorspace = av.video.reformatter.Colorspace.ITU601
        # keyint: x264's largest is "infinite" (IDRs only when asked); scenecut off so IDRs come
        # only when the GOP or a request says (ultrafast has it off too).
        x264_params = [f"keyint={gop if gop else 'infinite'}", "scenecut=0", "repeat-headers=1", "bframes=0"]
        options = {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1", "x264-params": ":".join(x264_params)}
        if bitrate is not None:
            ctx.bit_rate = int(bitrate)
            options.update(maxrate=str(int(bitrate)), bufsize=str(int(bitrate * VBV_SECONDS)))
        else:
            options["crf"] = f"{crf:g}"
        ctx.options = options
        ctx.open()
        self._ctx = ctx
        self._av = av
        self._yuv = np.empty((h * 3 // 2, w), dtype=np.uint8)
        self._yuv[h:] = 128  # neutral chroma for mono images, written once
        self._rgb_to_yuv = av.video.reformatter.VideoReformatter()
        self._index = 0
        self._last_keyframe = -(10**9)
        # Requests count up; an IDR serves those made before its encode began. A counter, not a
        # flag, so a request from another thread during an encode is never lost.
        self._requests = 0
        self._served = 0

    def request_keyframe(self) -> None:
        """Make an upcoming frame an IDR: the next one, or, if the last IDR is fewer than
        ``keyframe_spacing`` frames back, the first one that far from it. Requests before that IDR
        are served by it together. May be called from any thread."""
        self._requests += 1

    def encode(self, image: np.ndarray) -> AccessUnit:
        """Encode one image (uint8, (H, W) or (H, W, 3), of the encoder's size)."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"image must be uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, the encoder {self.width}x{self.height}")
        w, h = self.encoded_size
        image = image[:h, :w]
        VideoFrame = self._av.VideoFrame
        if image.ndim == 2:
            self._yuv[:h] = image
            frame = VideoFrame.from_ndarray(self._yuv, format="yuv420p")
        else:
            rgb = VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = self._rgb_to_yuv.reformat(
                rgb, format="yuv420p", dst_colorspace="ITU601", dst_color_range=self._av.video.reformatter.ColorRange.JPEG
            )
        frame.pts = self._index
        requests = self._requests
        force = requests > self._served and self._index - self._last_keyframe >= self.keyframe_spacing
        if force:
            frame.pict_type = self._av.video.frame.PictureType.I
        packets = self._ctx.encode(frame)
        if len(packets) != 1:  # zerolatency, no B-frames: x264 returns each frame as it gets it
            raise RuntimeError(f"libx264 returned {len(packets)} packets for one frame")
        packet = packets[0]
        data = bytes(packet)
        keyframe = bool(packet.is_keyframe)
        if keyframe:
            self._last_keyframe = self._index
            self._served = requests
            if self.codec is None:
                self.codec = codec_string(next(n for n in split_nal_units(data) if n[0] & 0x1F == NAL_SPS))
        assert self.codec is not None  # the first frame is an IDR
        unit = AccessUnit(data, keyframe, self.codec, self._index)
        self._index += 1
        return unit


class H264Decoder:
    """Decodes a stream of access units with PyAV (FFmpeg's h264 decoder), one unit at a time, as
    a Python viewer of a remote preview would. Start it at a keyframe."""

    def __init__(self) -> None:
        try:
            import av
        except ImportError as exc:
            raise RuntimeError('H.264 needs PyAV: pip install "labcam[h264]"') from exc
        self._av = av
        self._ctx = av.CodecContext.create("h264", "r")

    def decode(self, data: bytes | None) -> list[Any]:
        """The pictures (``av.VideoFrame``) ``data`` completes; ``None`` flushes the last ones."""
        return list(self._ctx.decode(None if data is None else self._av.Packet(data)))


def luma(picture: Any) -> np.ndarray:
    """The Y plane of a decoded ``av.VideoFrame`` as an (H, W) uint8 view (FFmpeg pads its rows)."""
    plane = picture.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: picture.height, : picture.width]


# ==================================================================================================
# Annex-B and the SPS, as ITU-T H.264 defines them
# ==================================================================================================
def split_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (start codes 00 00 01 / 00 00 00 01 removed)."""
    units: list[bytes] = []
    start = -1
    i, n = 0, len(data)
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        if start >= 0:
            end = j - 1 if j > 0 and data[j - 1] == 0 else j  # a 4-byte start code's leading zero
            units.append(data[start:end])
        start = i = j + 3
    if start >= 0 and start < n:
        units.append(data[start:])
    return [u for u in units if u]


def nal_types(data: bytes) -> list[int]:
    """``nal_unit_type`` of each NAL unit in an Annex-B access unit (5 IDR, 7 SPS, 8 PPS, 1 slice...)."""
    return [u[0] & 0x1F for u in split_nal_units(data)]


def codec_string(sps: bytes) -> str:
    """WebCodecs' ``avc1.PPCCLL`` of an SPS NAL unit: profile_idc, constraint flags, level_idc."""
    if len(sps) < 4 or sps[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    return f"avc1.{sps[1]:02X}{sps[2]:02X}{sps[3]:02X}"


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    full_range: bool | None  # None: no VUI video signal type (decoders assume limited range)


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self.data, self.pos = rbsp, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """The payload with emulation-prevention bytes (00 00 03) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def parse_sps(nal: bytes) -> SpsInfo:
    """The fields of an SPS NAL unit a viewer needs: profile, level, size and colour range."""
    if not nal or nal[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    b = _Bits(_rbsp(nal[1:]))
    profile, constraints, level = b.u(8), b.u(8), b.u(8)
    b.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = b.ue()
        if chroma_format == 3:
            b.u(1)  # separate_colour_plane_flag
        b.ue()
        b.ue()  # bit depths
        b.u(1)  # qpprime_y_zero_transform_bypass_flag
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if b.u(1):
                    size, last, nxt = (16 if i < 6 else 64), 8, 8
                    for _ in range(size):
                        if nxt:
                            nxt = (last + b.se() + 256) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)  # direct_8x8_inference_flag
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if b.u(1):  # frame_cropping_flag
        crop_x = 2 if chroma_format in (1, 2) else 1
        crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    full_range: bool | None = None
    if b.u(1):  # vui_parameters_present_flag
        if b.u(1):  # aspect_ratio_info_present_flag
            if b.u(8) == 255:  # Extended_SAR
                b.u(16)
                b.u(16)
        if b.u(1):  # overscan_info_present_flag
            b.u(1)
        if b.u(1):  # video_signal_type_present_flag
            b.u(3)  # video_format
            full_range = bool(b.u(1))
    return SpsInfo(profile, constraints, level, width, height, full_range)


__all__ = [
    "AccessUnit",
    "H264Decoder",
    "H264Encoder",
    "SpsInfo",
    "codec_string",
    "luma",
    "nal_types",
    "parse_sps",
    "split_nal_units",
]
