"""A viewer's region of the sensor: clamp, align, crop (a view), reduce (decimation), and the counts.

The data path of one view-aware preview frame, top to bottom:

1. ``plan_view``: the asked ``view`` (None: the full frame) clamped to the frame the camera sends
   now (its ROI), the reduction factor ``step`` that fits it into ``size`` (and ``max_width``),
   and the region aligned to multiples of ``step`` where the frame allows. Pure arithmetic, so the
   hub can tell which viewers would get the same pixels before it encodes anything.
2. ``crop_reduce``: one strided numpy view of the frame, ``array[y:y+h:step, x:x+w:step]``: no
   copy. Decimation, not mean binning: measured in ``benchmarks/bench_views.py`` (docs/tuning.md),
   binning a 12 MP frame costs more than the JPEG encode of the result, while decimation is free, and
   decimated pixels are the camera's own counts (a raw frame's values, its saturated pixels) where
   means are not.
3. ``count_histogram``: the camera's counts of the pixels sent, on a strided sample of at most
   ``HISTOGRAM_SAMPLE_PIXELS``, in ``HISTOGRAM_BINS`` bins over [0, 2**bit_depth), and the number of
   saturated pixels (at 2**bit_depth - 1), counted exactly on every pixel sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..wire import SizeBox, ViewRect

HISTOGRAM_BINS = 64
# The histogram reads a strided sample of at most this many of the pixels sent (cost measured in
# benchmarks/bench_views.py: about 0.1 ms, against ~1 ms for every pixel of a 1280x1024 view).
HISTOGRAM_SAMPLE_PIXELS = 65536


@dataclass(frozen=True)
class ViewPlan:
    """What one frame's view becomes: the sensor region sent, the reduction factor, and whether the
    asked view had to be clamped (to the frame) or realigned (to the factor)."""

    view: ViewRect
    step: int
    clamped: bool

    @property
    def out_size(self) -> tuple[int, int]:
        """(width, height) of the reduced image."""
        _, _, w, h = self.view
        return -(-w // self.step), -(-h // self.step)


def _clamp(view: ViewRect | None, width: int, height: int) -> ViewRect:
    if view is None:
        return 0, 0, width, height
    x, y, w, h = view
    x = min(max(x, 0), width - 1)
    y = min(max(y, 0), height - 1)
    return x, y, max(1, min(w, width - x)), max(1, min(h, height - y))


def _align(lo: int, length: int, step: int, limit: int) -> tuple[int, int]:
    """[lo, lo + length) widened to multiples of ``step`` where [0, limit) allows."""
    start = (lo // step) * step
    end = min(-(-(lo + length) // step) * step, limit)
    return start, end - start


def plan_view(
    view: ViewRect | None, size: SizeBox | None, max_width: int | None, width: int, height: int
) -> ViewPlan:
    """The region of a ``width`` x ``height`` frame to send for an asked ``view`` and box.

    The factor is the smallest integer that fits the (aligned) region into ``size`` and
    ``max_width``; never below 1 (no upsampling). With neither, 1: the whole view at full resolution.
    """
    x, y, w, h = _clamp(view, width, height)
    clamped = view is not None and (x, y, w, h) != tuple(view)
    step = 1
    if size is not None:
        step = max(step, -(-w // size[0]), -(-h // size[1]))
    if max_width is not None:
        step = max(step, -(-w // max_width))
    while True:
        ax, aw = _align(x, w, step, width)
        ay, ah = _align(y, h, step, height)
        out_w, out_h = -(-aw // step), -(-ah // step)
        fits = (size is None or (out_w <= size[0] and out_h <= size[1])) and (max_width is None or out_w <= max_width)
        if fits or step >= max(width, height):
            break
        step += 1  # widening to the grid added a column or row beyond the box
    aligned = (ax, ay, aw, ah)
    return ViewPlan(aligned, step, clamped or (view is not None and aligned != (x, y, w, h)))


def crop_reduce(array: np.ndarray, plan: ViewPlan) -> np.ndarray:
    """The plan's pixels as a strided view of ``array`` (no copy): (H', W') or (H', W', 3)."""
    x, y, w, h = plan.view
    s = plan.step
    return array[y : y + h : s, x : x + w : s]


def count_histogram(pixels: np.ndarray, bit_depth: int) -> tuple[dict[str, Any], int]:
    """``({"bins": [...64 counts], "range": [0, 2**bit_depth]}, saturated)`` of ``pixels``.

    The histogram is of a strided sample (at most ``HISTOGRAM_SAMPLE_PIXELS`` pixels; every channel
    of an RGB pixel counts); ``saturated`` counts the pixels at 2**bit_depth - 1 among all of
    ``pixels`` (an RGB pixel when any channel is).
    """
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    stride = max(1, math.ceil(math.sqrt(h * w / HISTOGRAM_SAMPLE_PIXELS)))
    sample = pixels[::stride, ::stride]
    shift = max(bit_depth - 6, 0)  # 64 bins: the top 6 bits of each count
    bins = np.bincount((sample >> shift).ravel(), minlength=HISTOGRAM_BINS)[:HISTOGRAM_BINS]
    top = (1 << bit_depth) - 1
    at_top = pixels == top
    saturated = int(np.count_nonzero(at_top.any(axis=2) if pixels.ndim == 3 else at_top))
    return {"bins": bins.tolist(), "range": [0, 1 << bit_depth]}, saturated


__all__ = [
    "HISTOGRAM_BINS",
    "HISTOGRAM_SAMPLE_PIXELS",
    "ViewPlan",
    "count_histogram",
    "crop_reduce",
    "plan_view",
]
