"""What the fake sensor sees, and how the camera lays it out in a frame buffer.

The scene is a deterministic function of the sensor position and the frame number, so a test can
compute the exact pixels a driver must return. Encodings follow the PixeLINK data formats:
MONO16/BAYER16 are big-endian and MSB-aligned (the ADC value sits in the top bits, the low bits are
zero), MONO12_PACKED packs two 12-bit pixels in three bytes.
"""

from __future__ import annotations

import numpy as np

from ._abi import ImageFormat, PixelFormat

BAYER8_FORMATS = frozenset(
    {PixelFormat.BAYER8_GRBG, PixelFormat.BAYER8_RGGB, PixelFormat.BAYER8_GBRG, PixelFormat.BAYER8_BGGR}
)
_SAMPLE16 = {"big": ">u2", "little": "<u2"}

BAYER16_FORMATS = frozenset(
    {PixelFormat.BAYER16_GRBG, PixelFormat.BAYER16_RGGB, PixelFormat.BAYER16_GBRG, PixelFormat.BAYER16_BGGR}
)


def sensor_values(
    frame_number: int, roi: tuple[int, int, int, int], decimation: tuple[int, int], adc_bits: int
) -> np.ndarray:
    """The ADC values (``adc_bits`` wide) of frame ``frame_number`` inside ``roi``, decimated.

    Returned as uint16 of shape (height // dy, width // dx); positions are sensor coordinates, so
    the pattern moves with the ROI's offset, and it changes with every frame.
    """
    x0, y0, w, h = roi
    dx, dy = decimation
    xs = np.arange(x0, x0 + w, dx, dtype=np.int64)[: w // dx]
    ys = np.arange(y0, y0 + h, dy, dtype=np.int64)[: h // dy]
    values = (xs[None, :] * 37 + ys[:, None] * 101 + int(frame_number) * 997) % (1 << adc_bits)
    return values.astype(np.uint16)


def encode(values: np.ndarray, pixel_format: int, adc_bits: int, mono16_byte_order: str = "big") -> bytes:
    """Lay ADC ``values`` out the way the camera sends them in ``pixel_format``."""
    if pixel_format in (PixelFormat.MONO8, *BAYER8_FORMATS):
        return (values >> (adc_bits - 8)).astype(np.uint8).tobytes()
    if pixel_format in (PixelFormat.MONO16, *BAYER16_FORMATS):
        return (values.astype(np.uint32) << (16 - adc_bits)).astype(_SAMPLE16[mono16_byte_order]).tobytes()
    if pixel_format == PixelFormat.MONO12_PACKED:
        twelve = (values.astype(np.uint32) << 12 >> adc_bits).ravel()  # rescale to 12 bits
        p1, p2 = twelve[0::2], twelve[1::2]
        packed = np.empty((p1.size, 3), np.uint8)
        packed[:, 0] = p1 >> 4
        packed[:, 1] = (p1 & 0xF) | ((p2 & 0xF) << 4)
        packed[:, 2] = p2 >> 4
        return packed.tobytes()
    raise ValueError(f"the fake camera cannot produce pixel format {pixel_format}")


def demosaic_rgb(mosaic: np.ndarray, pixel_format: int) -> np.ndarray:
    """Nearest-neighbour demosaic of an 8-bit Bayer ``mosaic`` into (h, w, 3) RGB.

    Each 2x2 cell gives one colour to its four pixels: R and B from their sites, G the mean of the
    two green sites. Crude, but exact and easy to recompute in a test.
    """
    h, w = mosaic.shape
    cells = mosaic.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).astype(np.uint16)
    # Site of (R, B) inside a cell [[0,0],[0,1]],[[1,0],[1,1]] for each CFA order.
    red, blue = {
        PixelFormat.BAYER8_GRBG: ((0, 1), (1, 0)),
        PixelFormat.BAYER8_RGGB: ((0, 0), (1, 1)),
        PixelFormat.BAYER8_GBRG: ((1, 0), (0, 1)),
        PixelFormat.BAYER8_BGGR: ((1, 1), (0, 0)),
    }[pixel_format]
    greens = [(r, c) for r in (0, 1) for c in (0, 1) if (r, c) not in (red, blue)]
    r = cells[:, :, red[0], red[1]]
    b = cells[:, :, blue[0], blue[1]]
    g = (cells[:, :, greens[0][0], greens[0][1]] + cells[:, :, greens[1][0], greens[1][1]]) // 2
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint8)
    return rgb.repeat(2, axis=0).repeat(2, axis=1)


def convert(
    raw: bytes, width: int, height: int, pixel_format: int, output_format: int, mono16_byte_order: str = "big"
) -> bytes | None:
    """What ``formatImage`` makes of a raw frame; None when the fake does not do that conversion."""
    if pixel_format in BAYER8_FORMATS:
        mosaic = np.frombuffer(raw, np.uint8, count=width * height).reshape(height, width)
        rgb = demosaic_rgb(mosaic, pixel_format)
        if output_format == ImageFormat.RAW_RGB24_NON_DIB:
            return rgb.tobytes()
        if output_format == ImageFormat.RAW_BGR24_NON_DIB:
            return rgb[:, :, ::-1].tobytes()
        if output_format == ImageFormat.RAW_MONO8:
            return rgb.mean(axis=-1).astype(np.uint8).tobytes()
        return None
    if pixel_format == PixelFormat.MONO8:
        mono = np.frombuffer(raw, np.uint8, count=width * height)
    elif pixel_format == PixelFormat.MONO16:
        mono = (np.frombuffer(raw, _SAMPLE16[mono16_byte_order], count=width * height) >> 8).astype(np.uint8)
    else:
        return None
    if output_format == ImageFormat.RAW_MONO8:
        return mono.tobytes()
    if output_format in (ImageFormat.RAW_RGB24_NON_DIB, ImageFormat.RAW_BGR24_NON_DIB):
        return np.repeat(mono, 3).tobytes()
    return None
