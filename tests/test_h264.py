"""labcam.preview.h264: the stream a viewer gets decodes, to the source, from any keyframe.

Real PyAV on both sides (libx264 to encode, FFmpeg's h264 decoder to decode), frames of the
simulated specimen.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from labcam.cameras.simulated import SimulatedCamera
from labcam.preview.display import DisplayMapper
from labcam.preview.h264 import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    AccessUnit,
    H264Decoder,
    H264Encoder,
    luma,
    nal_types,
    parse_sps,
    split_nal_units,
)

W, H = 640, 512


def specimen(n: int, pixel_format: str = "mono8", width: int = W, height: int = H) -> list[np.ndarray]:
    cam = SimulatedCamera(width=width, height=height, pixel_format=pixel_format, seed=3)
    return [cam.expected_frame(i) for i in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decode(units: list[AccessUnit]) -> list[av.VideoFrame]:
    """Every picture FFmpeg's decoder makes of ``units``, fed one access unit at a time."""
    decoder = H264Decoder()
    return [p for unit in units for p in decoder.decode(unit.data)] + decoder.decode(None)


def test_crf_23_decodes_close_to_the_source() -> None:
    frames = specimen(20)
    enc = H264Encoder(W, H, crf=23)
    units = [enc.encode(f) for f in frames]
    pictures = decode(units)
    assert len(pictures) == len(frames)
    scores = [psnr(luma(p), f) for p, f in zip(pictures, frames)]
    assert min(scores) > 35.0, scores
    # And it is compressed: far fewer bytes than the raw frames.
    assert sum(len(u.data) for u in units) < 0.2 * sum(f.nbytes for f in frames)


def test_keyframe_flags_are_exactly_the_idr_units_and_each_carries_sps_and_pps() -> None:
    enc = H264Encoder(W, H, gop=7, keyframe_spacing=3)
    units = []
    for i, frame in enumerate(specimen(30)):
        if i in (10, 11, 20):
            enc.request_keyframe()
        units.append(enc.encode(frame))
    keyframes = [u.index for u in units if u.keyframe]
    assert keyframes[0] == 0 and len(keyframes) >= 5
    for u in units:
        types = nal_types(u.data)
        assert (NAL_IDR in types) == u.keyframe, (u.index, types)
        if u.keyframe:
            assert NAL_SPS in types and NAL_PPS in types
            assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR)
        else:
            assert NAL_SPS not in types
    # FFmpeg's decoder agrees on which pictures are key pictures.
    assert [p.key_frame for p in decode(units)] == [u.keyframe for u in units]


def test_joining_at_any_keyframe_decodes_cleanly() -> None:
    frames = specimen(24)
    enc = H264Encoder(W, H, gop=8)
    units = [enc.encode(f) for f in frames]
    for join in (u.index for u in units if u.keyframe and u.index > 0):
        pictures = decode(units[join:])  # a fresh decoder, as a viewer that joins there
        assert len(pictures) == len(frames) - join
        scores = [psnr(luma(p), f) for p, f in zip(pictures, frames[join:])]
        assert min(scores) > 35.0, (join, scores)


def test_a_keyframe_request_is_served_within_the_spacing_and_only_then() -> None:
    enc = H264Encoder(W, H, gop=None, keyframe_spacing=5)
    frames = specimen(30)
    flags = []
    for i, frame in enumerate(frames):
        if i in (2, 3, 12, 14):  # 2 and 3: too soon after frame 0's IDR, so one request
            enc.request_keyframe()
        flags.append(enc.encode(frame).keyframe)
    # Without a GOP, IDRs come only first and when asked: frame 5 (the spacing after 0), 12 at
    # once, and 14's request (after that IDR, so a new one) the spacing after 12.
    assert [i for i, k in enumerate(flags) if k] == [0, 5, 12, 17]


def test_the_stream_signals_full_range_and_its_codec_string() -> None:
    enc = H264Encoder(1280, 1024)
    unit = enc.encode(specimen(1, width=1280, height=1024)[0])
    sps = next(n for n in split_nal_units(unit.data) if n[0] & 0x1F == NAL_SPS)
    info = parse_sps(sps)
    assert info.full_range is True
    assert (info.width, info.height) == (1280, 1024)
    assert unit.codec == enc.codec == f"avc1.{info.profile_idc:02X}{info.constraint_flags:02X}{info.level_idc:02X}"
    # ultrafast uses no CABAC, 8x8 transforms or B-frames: Constrained Baseline, what every
    # WebCodecs H.264 decoder takes; the level must allow 1280x1024 at 30 fps (3.2 or more).
    assert info.profile_idc == 66 and info.constraint_flags & 0x40
    assert info.level_idc >= 32
    (picture,) = decode([unit])
    assert picture.color_range == av.video.reformatter.ColorRange.JPEG


def test_rgb_frames_keep_their_luma() -> None:
    frames = specimen(6, pixel_format="rgb8")
    enc = H264Encoder(W, H)
    pictures = decode([enc.encode(f) for f in frames])
    for picture, frame in zip(pictures, frames):
        rgb = frame.astype(np.float64)
        want = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]  # full-range BT.601
        assert psnr(luma(picture), want) > 35.0


def test_12_bit_frames_go_through_the_display_mapping_first() -> None:
    frames = specimen(4, pixel_format="mono12")
    mapper = DisplayMapper(max_width=320)
    images = []
    enc: H264Encoder | None = None
    units = []
    for f in frames:
        image, _ = mapper.map(f, 12)
        images.append(image.copy())
        enc = enc or H264Encoder(image.shape[1], image.shape[0])
        units.append(enc.encode(image))
    pictures = decode(units)
    assert [(p.width, p.height) for p in pictures] == [(320, 256)] * 4
    assert min(psnr(luma(p), i) for p, i in zip(pictures, images)) > 35.0


def test_odd_sizes_drop_the_last_column_and_row() -> None:
    frame = np.ascontiguousarray(specimen(1, width=322, height=256)[0][:255, :321])
    enc = H264Encoder(321, 255)
    assert enc.encoded_size == (320, 254)
    (picture,) = decode([enc.encode(frame)])
    assert (picture.width, picture.height) == (320, 254)
    assert psnr(luma(picture), frame[:254, :320]) > 35.0


def test_bitrate_mode_holds_the_rate() -> None:
    rate = 1_500_000
    enc = H264Encoder(W, H, bitrate=rate, gop=30)
    units = [enc.encode(f) for f in specimen(60)]
    sent = sum(len(u.data) for u in units) * 8
    assert sent <= 1.5 * rate * 60 / 30.0, f"{sent / 2:.0f} bit/s asked {rate}"
    assert min(psnr(luma(p), f) for p, f in zip(decode(units), specimen(60))) > 25.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crf": 52}, r"crf=52 is out of range: a number from 0 to 51"),
        ({"crf": -1}, r"crf=-1 is out of range"),
        ({"bitrate": 1000}, r"bitrate=1000 is out of range: a whole number from 50000 to 1e\+08"),
        ({"bitrate": 2_000_000, "crf": 20}, r"either crf .* or bitrate"),
        ({"gop": 0}, r"gop=0 is out of range: a whole number from 1 to 3600"),
        ({"keyframe_spacing": 0}, r"keyframe_spacing=0 is out of range"),
        ({"fps": 0}, r"fps=0 is out of range"),
        ({"width": 8}, r"width=8 is out of range: a whole number from 16 to 8192"),
        ({"height": 10_000}, r"height=10000 is out of range"),
        ({"gop": 2.5}, r"gop=2.5 is out of range: a whole number"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict, message: str) -> None:
    args = {"width": W, "height": H, **kwargs}
    width, height = args.pop("width"), args.pop("height")
    with pytest.raises(ValueError, match=message):
        H264Encoder(width, height, **args)


def test_bad_images_are_refused_and_change_nothing() -> None:
    enc = H264Encoder(W, H)
    good = specimen(2)
    first = enc.encode(good[0])
    for bad in (good[1].astype(np.uint16), good[1][:, :-2], np.zeros((H, W, 4), np.uint8)):
        with pytest.raises(ValueError, match="image"):
            enc.encode(bad)
    second = enc.encode(good[1])
    assert (first.index, second.index) == (0, 1) and not second.keyframe
    assert len(decode([first, second])) == 2


def test_split_nal_units_reads_both_start_code_lengths() -> None:
    stream = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\xcc\x00\x00\x00\x01\x65\x00\x00\x03\x01"
    assert split_nal_units(stream) == [b"\x67\xaa", b"\x68\xbb\xcc", b"\x65\x00\x00\x03\x01"]
    assert nal_types(stream) == [NAL_SPS, NAL_PPS, NAL_IDR]
