"""The simulated camera: a live-looking microscope specimen, paced and numbered like a real camera.

It stands in for a real camera whenever none is present (in the lab, in tests, in benchmarks), so
it has to look and behave like one while costing as little CPU as possible.

What it shows
    Mono formats show a fluorescence view (dark background with haze, bright fibres and vesicles,
    cells with brighter textured nuclei); rgb8 shows the same specimen as an H&E-stained brightfield
    section (white glass, pink stroma and fibres, purple nuclei). The stage drifts slowly, the cells
    crawl as a sheet over the tissue below them, and the fluorescence "breathes" by a few percent.
    Vignetting falls off towards the corners.

How bright and how noisy (the sensor model)
    A pixel collects electrons in proportion to the exposure time (shot noise: Poisson), holds at
    most ``FULL_WELL_E`` of them, adds ``READ_NOISE_E`` of read noise, and the analogue gain
    (``gain_db``) scales electrons to counts on top of a dark offset of ``DARK_OFFSET`` of the
    range. So: more exposure gives a brighter image with relatively less noise; more gain gives a
    brighter image with proportionally more noise; both saturate (clip) at the top of the range.
    The noise is Gaussian with the Poisson + read-noise variance (exact to first order; see below).
    rgb8 beyond ~6 full wells (very long exposures) is white but not physically scaled.

How it is fast
    Everything that does not change per frame is computed once. The specimen is rendered once per
    (seed, sensor size, mono/rgb) into textures larger than the sensor, and stored in the
    *square-root domain*: ``u = U_SCALE * sqrt(electrons + read_noise**2)``. In that domain shot
    noise plus read noise has a constant standard deviation (``U_SCALE / 2``), whatever the signal,
    so a single precomputed field of Gaussian noise serves every pixel, exposure and frame: each
    frame takes a window of it at a frame-dependent offset. A frame is then two integer additions
    (tissue layer + cell layer + noise, all uint16 views at drift-dependent offsets) and one table
    look-up (``np.take``) that squares back to electrons and applies gain, dark offset, breathing,
    saturation and the bit depth, written straight into a new output array. The work is done in row
    blocks that stay in the CPU cache. Changing the exposure rescales the textures (once, not per
    frame); changing the gain or the format only changes the look-up table. Memory: about 10 bytes
    per sensor pixel for mono, 30 for rgb8 (textures are shared by cameras with the same seed and
    size; ``clear_caches()`` frees them).

Determinism
    The pixels of frame ``n`` are a function of (seed, sensor size, settings, n) only, never of
    wall time: drift, crawl, breathing and the noise window are all functions of the frame number.
    ``SimulatedCamera.expected_frame(n)`` recomputes any frame; a ROI frame is exactly the crop of
    the full frame with the same number.

Timing (free-running mode)
    Frame ``k`` after ``start()`` is due at ``t0 + k / fps`` (absolute deadlines, so sleep errors
    do not accumulate), and its timestamp is the epoch time of that deadline. The simulated sensor
    has no frame buffer: a frame is "exposed" when it is read. If the reader is late by less than a
    frame period the schedule holds; if it is later than that (or rendering cannot keep up with
    ``fps``) the frame is produced at once, stamped with the current time, and the schedule is
    re-anchored there -- there is no burst of catch-up frames and no frame numbers are skipped,
    because such frames were never taken. Frame numbers count from ``open()`` and continue across
    ``stop()``/``start()`` and reconnects, like the counter of a USB camera that stays powered;
    gaps appear only through ``faults.drop_frames`` (or a hardware-trigger overflow).

Timing (triggered modes)
    ``software``: each ``read_frame`` triggers one exposure and returns ``exposure_ms`` later.
    ``hardware``: each ``trigger()`` call (while streaming) exposes one frame, delivered
    ``exposure_ms`` after the trigger and stamped then; ``read_frame`` waits for triggers.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..camera_info import CameraDescription
from ..errors import CameraDisconnected, CameraError, CameraUnavailable, FrameTimeout, StreamStopped
from ..frame import PIXEL_FORMATS, Frame, FrameMeta
from ..settings import TRIGGER_MODES, Settings, SettingSpec, SettingSpecs, validate_changes
from .base import CameraDriver

__all__ = ["SimulatedCamera", "SimulatedFaults", "clear_caches"]

# -- the sensor ---------------------------------------------------------------------------------
FULL_WELL_E = 10_000.0  # electrons a pixel holds before it saturates
READ_NOISE_E = 3.0  # rms read noise, electrons
DARK_OFFSET = 0.02  # black level, as a fraction of the output range
REFERENCE_EXPOSURE_MS = 10.0  # the specimen's brightness is defined (in full wells) at this exposure

# Limits of the settings.
EXPOSURE_RANGE_MS = (0.01, 2000.0)
GAIN_RANGE_DB = (0.0, 24.0)
MIN_FPS = 0.1
ROI_STEP = 2
ROI_MIN = 16
MAX_SENSOR_SIDE = 8192

# -- the square-root domain (see the module docstring) ------------------------------------------
U_SCALE = 64  # u units per sqrt(electron): fine enough that quantisation is far below shot noise
NOISE_OFFSET = 256  # noise samples are stored as NOISE_OFFSET + N(0, U_SCALE/2), i.e. +-8 sigma
LUT_SIZE = 16_384  # 14-bit table: small enough to stay in L1/L2 cache
U_MAX = LUT_SIZE - 2 * NOISE_OFFSET - 1  # the largest tissue + cell value that cannot overflow
# sqrt-domain noise makes the squared value biased by var = (1/2)**2 electrons; the table removes it
_SQRT_NOISE_BIAS_E = 0.25

# -- motion -------------------------------------------------------------------------------------
DRIFT_PX = 40  # stage drift amplitude (pixels, each axis)
CRAWL_PX = 14  # cell-sheet motion relative to the tissue (pixels, each axis)
MARGIN = DRIFT_PX + CRAWL_PX + 2  # texture border around the sensor, so every window is a view
NOISE_MARGIN = 64  # the noise field is this much larger than the sensor: 64*64 noise windows
BREATHING_MONO = 0.08  # relative amplitude of the fluorescence "breathing"
BREATHING_RGB = 0.01  # brightfield lamp flicker
BREATHING_STEPS = 512  # breathing is quantised to 1/512 so its look-up tables can be cached

# Row blocks of about this many samples keep the temporary index buffer in cache.
CHUNK_SAMPLES = 80_000

MAX_PENDING_TRIGGERS = 64  # hardware triggers beyond this overwrite the oldest (a dropped frame)

_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a cheap, well-mixed hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent random stream per (seed, purpose), so adding one purpose changes no other."""
    return np.random.default_rng([seed & _MASK64, stream])


def clear_caches() -> None:
    """Free the rendered specimens, noise fields and scaled layers shared by simulated cameras."""
    _specimen.cache_clear()
    _noise_field.cache_clear()
    _exposure_layers.cache_clear()


# =================================================================================================
# Motion: functions of the frame number only
# =================================================================================================
@dataclass(frozen=True)
class _Motion:
    """Where the specimen is, how bright it glows and which noise window is used, per frame."""

    seed: int
    phases: tuple[float, ...]

    @classmethod
    def for_seed(cls, seed: int) -> _Motion:
        return cls(seed, tuple(float(p) for p in _rng(seed, 1).uniform(0, 2 * math.pi, 9)))

    @staticmethod
    def _wave(n: int, amp: float, p1: float, p2: float, period1: float, period2: float) -> int:
        # Two incommensurate sines: smooth, bounded by amp, and never visibly periodic.
        v = 0.7 * math.sin(2 * math.pi * n / period1 + p1) + 0.3 * math.sin(2 * math.pi * n / period2 + p2)
        return int(round(amp * v))

    def stage(self, n: int) -> tuple[int, int]:
        """Stage drift of frame ``n`` as (dx, dy) pixels, within +-DRIFT_PX."""
        p = self.phases
        return (
            self._wave(n, DRIFT_PX, p[0], p[1], 3001.0, 1103.0),
            self._wave(n, DRIFT_PX, p[2], p[3], 2503.0, 887.0),
        )

    def crawl(self, n: int) -> tuple[int, int]:
        """Offset of the cell sheet relative to the tissue, within +-CRAWL_PX."""
        p = self.phases
        return (
            self._wave(n, CRAWL_PX, p[4], p[5], 1999.0, 701.0),
            self._wave(n, CRAWL_PX, p[6], p[7], 1601.0, 557.0),
        )

    def breathing_key(self, n: int, amplitude: float) -> int:
        """Breathing factor of frame ``n`` as an integer key: factor = 1 + key / BREATHING_STEPS."""
        b = amplitude * math.sin(2 * math.pi * n / 173.0 + self.phases[8])
        return int(round(b * BREATHING_STEPS))

    def noise_offset(self, n: int) -> tuple[int, int]:
        """The (y, x) corner of frame ``n``'s window in the noise field."""
        h = _mix64(_mix64(self.seed & _MASK64) ^ (n & _MASK64))
        return (h % NOISE_MARGIN, (h >> 32) % NOISE_MARGIN)


# =================================================================================================
# The specimen: rendered once per (seed, sensor size, kind)
# =================================================================================================
def _smooth_upsample(grid: np.ndarray, h: int, w: int, cell: float) -> np.ndarray:
    """Interpolate ``grid`` (one node every ``cell`` pixels) to (h, w), separably, with smoothstep
    weights (C1-smooth, no bilinear creases). ``grid`` needs (h-1)/cell + 2 rows and likewise
    columns."""

    def axis(n: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.arange(n, dtype=np.float64) / cell
        i0 = np.floor(pos).astype(np.intp)
        f = (pos - i0).astype(np.float32)
        return i0, f * f * (3 - 2 * f)

    yi, fy = axis(h)
    xi, fx = axis(w)
    g = grid.astype(np.float32, copy=False)
    rows = g[:, xi] * (1 - fx) + g[:, xi + 1] * fx  # (grid rows, w): small
    out = np.empty((h, w), np.float32)
    step = max(1, 65_536 // w)  # row blocks, so the temporaries stay in cache
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        top = rows[yi[r0:r1]]
        block = out[r0:r1]
        np.take(rows, yi[r0:r1] + 1, axis=0, out=block)
        block -= top
        block *= fy[r0:r1, None]
        block += top
    return out


def _fractal_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int) -> np.ndarray:
    """Smooth value noise with ``octaves`` octaves, the coarsest with nodes every ``cell`` pixels,
    stretched to about [0, 1]."""
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        c = cell / 2**o
        grid = rng.random((int(h / c) + 3, int(w / c) + 3), dtype=np.float32)
        total += amp * _smooth_upsample(grid, h, w, c)
        norm += amp
        amp *= 0.5
    lo, hi = np.percentile(total, [1.0, 99.0])
    total -= lo
    total *= 1.0 / max(float(hi - lo), 1e-6)
    return np.clip(total, 0.0, 1.0, out=total)


def _low_frequency(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int) -> np.ndarray:
    """Fractal noise for features much larger than a pixel: rendered at 1/8 resolution and smoothly
    upsampled, which is ~50x cheaper than rendering every octave at full resolution."""
    low = _fractal_noise(rng, h // 8 + 3, w // 8 + 3, cell / 8, octaves)
    return _smooth_upsample(low, h, w, 8.0)


def _splat_gaussians(
    img: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: np.ndarray | float, amp: np.ndarray, radius: int
) -> None:
    """Add Gaussian spots (centres ys, xs; sub-pixel) to ``img`` in place, each cut at ``radius``."""
    h, w = img.shape
    flat = img.reshape(-1)
    yc = np.rint(ys).astype(np.intp)
    xc = np.rint(xs).astype(np.intp)
    fy = (ys - yc).astype(np.float32)
    fx = (xs - xc).astype(np.float32)
    inv = (1.0 / (2.0 * np.asarray(sigma, np.float32) ** 2)).astype(np.float32)
    for dy in range(-radius, radius + 1):
        yy = yc + dy
        for dx in range(-radius, radius + 1):
            xx = xc + dx
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            wgt = amp * np.exp(-((dy - fy) ** 2 + (dx - fx) ** 2) * inv)
            np.add.at(flat, (yy * w + xx)[ok], wgt[ok])


def _render_fibres(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Thin, gently curving filaments (collagen / cytoskeleton bundles) with beaded brightness."""
    img = np.zeros((h, w), np.float32)
    count = max(2, int(h * w / 45_000))
    step = 0.7  # sample spacing along a fibre, below a pixel so it draws as a continuous line
    ys_all, xs_all, amp_all = [], [], []
    for _ in range(count):
        npts = int(rng.uniform(150, 650) / step)
        theta = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.03, npts))
        xs = rng.uniform(-50, w + 50) + np.cumsum(step * np.cos(theta))
        ys = rng.uniform(-50, h + 50) + np.cumsum(step * np.sin(theta))
        beads = np.sin(np.linspace(0, rng.uniform(6, 20), npts) + rng.uniform(0, 6.3)) ** 2
        ys_all.append(ys)
        xs_all.append(xs)
        amp_all.append((rng.uniform(0.35, 1.0) * (0.55 + 0.45 * beads)).astype(np.float32))
    ys, xs, amp = np.concatenate(ys_all), np.concatenate(xs_all), np.concatenate(amp_all)
    # sigma 0.9 px: a 2-3 px wide line; weights scaled so a line's peak is about its amplitude
    _splat_gaussians(img, ys, xs, 0.9, amp * (step / (math.sqrt(2 * math.pi) * 0.9)), 2)
    return np.clip(img, 0.0, 1.0, out=img)


def _render_blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Vesicles, beads and debris: small round spots of assorted size and brightness."""
    img = np.zeros((h, w), np.float32)
    count = max(1, int(h * w / 2500))
    ys, xs = rng.uniform(0, h, count), rng.uniform(0, w, count)
    sigma = rng.uniform(0.7, 2.4, count).astype(np.float32)
    amp = (rng.uniform(0.15, 1.0, count) ** 2).astype(np.float32)
    small = sigma < 1.3  # small spots need a smaller footprint: cheaper
    _splat_gaussians(img, ys[small], xs[small], sigma[small], amp[small], 3)
    _splat_gaussians(img, ys[~small], xs[~small], sigma[~small], amp[~small], 6)
    return np.clip(img, 0.0, 1.0, out=img)


def _cell_sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One cell shape, centred in its own square patch: (body, nucleus) maps in [0, 1], untextured.

    The body is a lobed ellipse with a soft edge, thicker (brighter) in the middle; the nucleus is
    its own, slightly off-centre ellipse with one to three nucleoli.
    """
    rx, ry = rng.uniform(15, 27), rng.uniform(13, 24)
    angle = rng.uniform(0, math.pi)
    (a2, a3, a5) = (rng.uniform(0, 1, 3) * np.array([0.12, 0.08, 0.04])).tolist()  # 2-, 3-, 5-fold lobes
    (p2, p3, p5) = rng.uniform(0, 2 * math.pi, 3).tolist()
    reach = int(1.3 * max(rx, ry)) + 3
    yy = np.arange(-reach, reach + 1, dtype=np.float32)[:, None]
    xx = np.arange(-reach, reach + 1, dtype=np.float32)[None, :]
    c, s = math.cos(angle), math.sin(angle)
    u = xx * (c / rx) + yy * (s / rx)
    v = yy * (c / ry) - xx * (s / ry)
    rho = np.sqrt(u * u + v * v)
    # Outline r(phi) = 1 + sum a_k cos(k phi + p_k), with cos/sin(k phi) from the unit vector by
    # angle addition (no arctan2 per pixel).
    inv = 1.0 / np.maximum(rho, np.float32(1e-6))
    c1, s1 = u * inv, v * inv
    c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
    c3, s3 = c2 * c1 - s2 * s1, s2 * c1 + c2 * s1
    c5, s5 = c3 * c2 - s3 * s2, s3 * c2 + c3 * s2
    edge = 1 + (c2 * (a2 * math.cos(p2)) - s2 * (a2 * math.sin(p2)))
    edge += c3 * (a3 * math.cos(p3)) - s3 * (a3 * math.sin(p3))
    edge += c5 * (a5 * math.cos(p5)) - s5 * (a5 * math.sin(p5))
    rmin = min(rx, ry)
    body = np.clip((edge - rho) * (rmin / 1.5), 0.0, 1.0)  # ~1.5 px soft edge
    rel = rho / edge
    body *= 0.55 + 0.45 * np.maximum(1 - rel * rel, 0.0)
    nr = rng.uniform(0.38, 0.55) * rmin
    ox, oy = (rng.uniform(-0.15, 0.15, 2) * rmin).tolist()
    na = rng.uniform(0, math.pi)
    cn, sn = math.cos(na) / nr, math.sin(na) / nr
    xo, yo = xx - ox, yy - oy
    un = (xo * cn + yo * sn) / 1.15
    vn = (yo * cn - xo * sn) / 0.9
    nucleus = np.clip((1 - np.sqrt(un * un + vn * vn)) * (nr / 1.2), 0.0, 1.0)
    for _ in range(int(rng.integers(1, 4))):
        py, px = (rng.uniform(-0.5, 0.5, 2) * nr).tolist()
        nucleus += (nucleus > 0) * (0.6 * np.exp(-((xo - px) ** 2 + (yo - py) ** 2) / 3.0))
    return body, np.minimum(nucleus, 1.0, out=nucleus)


def _render_cells(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells on a jittered grid: irregular soft-edged bodies with granular cytoplasm, and off-centre
    nuclei with chromatin texture and nucleoli. Returns (cytoplasm, nuclei) maps in [0, 1].

    Shapes come from a bank of sprites shown in 8 orientations, and the texture is applied where a
    cell lands: ~5x cheaper than drawing every cell, and no two cells look alike.
    """
    cyto = np.zeros((h, w), np.float32)
    nuc = np.zeros((h, w), np.float32)
    # A periodic tile of fine texture, indexed per cell: full-resolution texture for the price of a
    # 512x512 one (its 256-pixel period is invisible under cells of ~40 px).
    nodes = np.pad(rng.random((100, 100), dtype=np.float32), ((0, 3), (0, 3)), mode="wrap")
    tile = np.tile(_smooth_upsample(nodes, 256, 256, 2.56), (2, 2))  # 100 nodes per 256 px: seamless
    granules = 0.7 + 0.6 * tile  # cytoplasm
    chromatin = 0.55 + 0.9 * tile * tile  # nuclei: sparser, brighter clumps
    sprites = [_cell_sprite(rng) for _ in range(64)]
    spacing = 52.0
    gy, gx = np.mgrid[-1 : int(h / spacing) + 2, -1 : int(w / spacing) + 2]
    keep = rng.random(gy.shape) < 0.72
    n = int(keep.sum())
    cy = np.rint((gy[keep] + rng.uniform(0.1, 0.9, n)) * spacing).astype(int).tolist()
    cx = np.rint((gx[keep] + rng.uniform(0.1, 0.9, n)) * spacing).astype(int).tolist()
    which = rng.integers(0, len(sprites), n).tolist()
    orient = rng.integers(0, 8, n).tolist()
    body_amp = rng.uniform(0.5, 1.0, n).tolist()
    nuc_amp = rng.uniform(0.6, 1.0, n).tolist()
    for i in range(n):
        body, nucleus = sprites[which[i]]
        o = orient[i]
        if o & 4:  # the 8 symmetries of the square: views, no copies
            body, nucleus = body.T, nucleus.T
        if o & 1:
            body, nucleus = body[::-1], nucleus[::-1]
        if o & 2:
            body, nucleus = body[:, ::-1], nucleus[:, ::-1]
        r = body.shape[0] // 2
        y0, x0 = cy[i] - r, cx[i] - r
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + 2 * r + 1, h), min(x0 + 2 * r + 1, w)
        if yb <= ya or xb <= xa:
            continue
        sy, sx = slice(ya - y0, yb - y0), slice(xa - x0, xb - x0)
        ty, tx = ya % 256, xa % 256
        tex = granules[ty : ty + (yb - ya), tx : tx + (xb - xa)]
        view = cyto[ya:yb, xa:xb]
        np.maximum(view, body[sy, sx] * tex * body_amp[i], out=view)
        ty, tx = (ya + 97) % 256, (xa + 53) % 256
        tex = chromatin[ty : ty + (yb - ya), tx : tx + (xb - xa)]
        view = nuc[ya:yb, xa:xb]
        np.maximum(view, nucleus[sy, sx] * tex * nuc_amp[i], out=view)
    return cyto, nuc


@dataclass(frozen=True)
class _Specimen:
    """One specimen as two layers of amplitudes ``A = sqrt(electrons per ms)``, quantised to 16 bits.

    ``bg`` (uint16, >= 0) is the tissue that drifts with the stage; ``cells`` (uint16 for mono,
    int16 and <= 0 for rgb, where cells absorb light) is the cell sheet that also crawls. Shape
    (TH, TW) or (TH, TW, 3), TH/TW = sensor + 2 * MARGIN.
    """

    kind: str  # "mono" | "rgb"
    bg: np.ndarray
    bg_scale: float
    bg_max: float
    cells: np.ndarray
    cells_scale: float


def _quantise(a: np.ndarray, signed: bool) -> tuple[np.ndarray, float]:
    """``a`` (consumed: scaled in place) as 16-bit integers, and the scale back to amplitudes."""
    top = max(float(a.max()), -float(a.min())) or 1.0
    scale = top / (32767 if signed else 65535)
    a *= np.float32(1.0 / scale)
    np.rint(a, out=a)
    q = a.astype(np.int16 if signed else np.uint16)
    q.flags.writeable = False
    return q, scale


@functools.lru_cache(maxsize=4)
def _specimen(seed: int, sensor_w: int, sensor_h: int, kind: str) -> _Specimen:
    """Render the specimen for a sensor (textures with a MARGIN border for drift and crawl)."""
    th, tw = sensor_h + 2 * MARGIN, sensor_w + 2 * MARGIN
    haze = _low_frequency(_rng(seed, 10), th, tw, 256.0, 4)
    fibres = _render_fibres(_rng(seed, 11), th, tw)
    blobs = _render_blobs(_rng(seed, 12), th, tw)
    cyto, nuc = _render_cells(_rng(seed, 13), th, tw)
    # Vignetting belongs to the optics, not the specimen, but drift is small next to the falloff
    # (40 px against a sensor-wide Gaussian), so baking it into the texture is invisible and free.
    radius = 0.5 * math.hypot(sensor_w, sensor_h)
    k = 0.36 if kind == "mono" else 0.2
    vy = np.exp(-k * ((np.arange(th, dtype=np.float32) - th / 2) / radius) ** 2).astype(np.float32)
    vx = np.exp(-k * ((np.arange(tw, dtype=np.float32) - tw / 2) / radius) ** 2).astype(np.float32)
    vig = vy[:, None] * vx[None, :]
    per_ms = FULL_WELL_E / REFERENCE_EXPOSURE_MS  # electrons/ms of a signal of "1 full well"
    if kind == "mono":
        # Fluorescence, in full wells at the reference exposure.
        # (In-place arithmetic: these maps are 50 MB each at 4096x3000.)
        vig *= np.float32(per_ms)
        bg = haze
        bg *= 0.09
        bg += 0.035
        fibres *= 0.30
        bg += fibres
        blobs *= 0.55
        bg += blobs
        bg *= vig
        cells = cyto
        cells *= 0.16
        nuc *= 0.42
        cells += nuc
        cells *= vig
        np.sqrt(bg, out=bg)
        np.sqrt(cells, out=cells)
        bg_max = float(bg.max())
        bg_q, bg_scale = _quantise(bg, signed=False)
        cells_q, cells_scale = _quantise(cells, signed=False)
        return _Specimen(kind, bg_q, bg_scale, bg_max, cells_q, cells_scale)
    # Brightfield H&E: optical densities of haematoxylin (purple) and eosin (pink) per R, G, B
    # channel (Ruifrok & Johnston's stain vectors).
    hema = np.array([0.650, 0.704, 0.286], np.float32)
    eosin = np.array([0.072, 0.990, 0.105], np.float32)
    tissue = _low_frequency(_rng(seed, 14), th, tw, 384.0, 3)
    tissue = np.clip((tissue - 0.25) * 3.0, 0.0, 1.0)  # tissue with gaps of bare glass
    od_e = tissue * (0.12 + 0.25 * haze) + 0.45 * fibres + 0.5 * blobs
    od_h = 0.05 * tissue * haze
    light = np.sqrt(0.85 * per_ms * vig)[..., None]  # sqrt of the white level: 85% full well at 10 ms
    # The two layers add in the sqrt domain, so transmissions become subtractions of
    # (1 - sqrt(T)); the clips keep tissue >= 0.53 and cells <= 0.45 of the light, so the sum can
    # never go negative wherever the cell sheet crawls.
    od_bg = np.minimum(od_e[..., None] * eosin + od_h[..., None] * hema, 0.55)
    bg = light * np.power(10.0, -od_bg / 2, dtype=np.float32)
    od_c = np.minimum((0.30 * cyto)[..., None] * eosin + (0.95 * nuc + 0.05 * cyto)[..., None] * hema, 0.52)
    cells = -light * (1 - np.power(10.0, -od_c / 2, dtype=np.float32))
    bg_max = float(bg.max())
    bg_q, bg_scale = _quantise(bg, signed=False)
    cells_q, cells_scale = _quantise(cells, signed=True)
    return _Specimen(kind, bg_q, bg_scale, bg_max, cells_q, cells_scale)


@functools.lru_cache(maxsize=2)
def _exposure_layers(
    seed: int, sensor_w: int, sensor_h: int, kind: str, exposure_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """The specimen's layers in the sqrt domain for one exposure, as uint16 (the cell layer of rgb
    holds two's-complement negatives: uint16 addition wraps, so adding it subtracts exactly)."""
    spec = _specimen(seed, sensor_w, sensor_h, kind)
    t = exposure_ms
    r2 = READ_NOISE_E**2
    if kind == "mono":
        gain, cap_bg, cap_c = 1.0, U_MAX // 2, U_MAX // 2
    else:
        # Beyond ~6 full wells the picture is white anyway; scale so the brightest glass fits.
        top = U_SCALE * math.sqrt(t * spec.bg_max**2 + r2)
        gain, cap_bg, cap_c = min(1.0, U_MAX / top), U_MAX, U_MAX
    bg = np.empty(spec.bg.shape, np.uint16)
    cells = np.empty(spec.cells.shape, np.uint16 if kind == "mono" else np.int16)
    rows = max(1, 1_000_000 // (spec.bg[0].size))  # bounded float temporaries
    cells_factor = U_SCALE * gain * math.sqrt(t) * spec.cells_scale
    for r0 in range(0, spec.bg.shape[0], rows):
        a = spec.bg[r0 : r0 + rows].astype(np.float32) * np.float32(spec.bg_scale)
        u = np.sqrt(t * a * a + r2) * np.float32(U_SCALE * gain)
        bg[r0 : r0 + rows] = np.rint(np.minimum(u, cap_bg, out=u))
        c = spec.cells[r0 : r0 + rows].astype(np.float32) * np.float32(cells_factor)
        cells[r0 : r0 + rows] = np.rint(np.clip(c, -cap_c, cap_c, out=c))
    cells_u = cells.view(np.uint16)
    bg.flags.writeable = False
    cells_u.flags.writeable = False
    return bg, cells_u


@functools.lru_cache(maxsize=3)
def _noise_field(seed: int, sensor_w: int, sensor_h: int, channels: int) -> np.ndarray:
    """Gaussian noise of the sqrt domain (sd U_SCALE/2, offset NOISE_OFFSET), a bit larger than the
    sensor so each frame can take its own window."""
    shape: tuple[int, ...] = (sensor_h + NOISE_MARGIN, sensor_w + NOISE_MARGIN)
    if channels > 1:
        shape += (channels,)
    rng = _rng(seed, 20)
    out = np.empty(shape, np.uint16)
    rows = max(1, 1_000_000 // int(np.prod(shape[1:])))
    for r0 in range(0, shape[0], rows):
        z = rng.standard_normal((min(rows, shape[0] - r0), *shape[1:]), dtype=np.float32)
        z *= U_SCALE / 2
        z += NOISE_OFFSET
        np.clip(z, 0, 2 * NOISE_OFFSET - 1, out=z)
        out[r0 : r0 + rows] = np.rint(z)
    out.flags.writeable = False
    return out


def _build_lut(pixel_format: str, gain_db: float, breathing: float) -> np.ndarray:
    """The table from sqrt-domain value (+ NOISE_OFFSET) to output counts."""
    bits = PIXEL_FORMATS[pixel_format]
    top = 2**bits - 1
    u = np.maximum(np.arange(LUT_SIZE, dtype=np.float64) - NOISE_OFFSET, 0.0) / U_SCALE
    electrons = (u * u - READ_NOISE_E**2 - _SQRT_NOISE_BIAS_E) * breathing
    electrons = np.minimum(electrons, FULL_WELL_E)  # the pixel's well saturates (negative: read noise)
    offset = DARK_OFFSET * top
    counts_per_e = 10 ** (gain_db / 20) * (top - offset) / FULL_WELL_E  # 0 dB: full well = top
    counts = np.clip(np.rint(offset + electrons * counts_per_e), 0, top)
    lut = counts.astype(np.uint8 if bits == 8 else np.uint16)
    lut.flags.writeable = False
    return lut


class _RenderState:
    """Everything needed to turn a frame number into pixels for one set of settings.

    Immutable apart from its look-up-table cache, so the capture thread can keep using an old one
    while another thread builds the next after a settings change.
    """

    def __init__(self, seed: int, sensor: tuple[int, int], settings: Settings) -> None:
        self.settings = settings
        self.kind = "rgb" if settings.pixel_format == "rgb8" else "mono"
        sw, sh = sensor
        self.motion = _Motion.for_seed(seed)
        self.bg, self.cells = _exposure_layers(seed, sw, sh, self.kind, settings.exposure_ms)
        self.noise = _noise_field(seed, sw, sh, 3 if self.kind == "rgb" else 1)
        self.breathing = BREATHING_RGB if self.kind == "rgb" else BREATHING_MONO
        self.dtype = np.uint8 if PIXEL_FORMATS[settings.pixel_format] == 8 else np.uint16
        self._luts: dict[int, np.ndarray] = {}

    def lut(self, key: int) -> np.ndarray:
        table = self._luts.get(key)
        if table is None:  # a race only builds the same table twice
            table = _build_lut(self.settings.pixel_format, self.settings.gain_db, 1.0 + key / BREATHING_STEPS)
            self._luts[key] = table
        return table

    def render(self, n: int, noise: bool = True) -> np.ndarray:
        """Frame ``n`` as a new array (``noise=False``: the noise-free expectation)."""
        x, y, w, h = self.settings.roi
        m = self.motion
        sdx, sdy = m.stage(n)
        cdx, cdy = m.crawl(n)
        by, bx = MARGIN + sdy + y, MARGIN + sdx + x
        cy, cx = by + cdy, bx + cdx
        bg = self.bg[by : by + h, bx : bx + w]
        cells = self.cells[cy : cy + h, cx : cx + w]
        nz = None
        if noise:
            oy, ox = m.noise_offset(n)
            nz = self.noise[oy + y : oy + y + h, ox + x : ox + x + w]
        lut = self.lut(m.breathing_key(n, self.breathing))
        tail = bg.shape[2:]
        out = np.empty((h, w, *tail), self.dtype)
        rows = max(1, CHUNK_SAMPLES // (w * (tail[0] if tail else 1)))
        buf = np.empty((rows, w, *tail), np.uint16)
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            b = buf[: r1 - r0]
            np.add(bg[r0:r1], cells[r0:r1], out=b)
            if nz is not None:
                np.add(b, nz[r0:r1], out=b)
            else:
                np.add(b, NOISE_OFFSET, out=b)
            # mode="clip" is also faster than the default bounds-checking mode
            np.take(lut, b, out=out[r0:r1], mode="clip")
        return out


# =================================================================================================
# Faults
# =================================================================================================
class SimulatedFaults:
    """Camera misbehaviour on demand, for tests of what sits on top of a camera. Thread-safe.

    >>> cam = SimulatedCamera(width=64, height=48); cam.open(); cam.start()
    >>> cam.faults.drop_frames(3)   # the next frame arrives with frame_number 3 higher than usual
    >>> cam.faults.disconnect()     # reads raise CameraDisconnected; reconnect() is False ...
    >>> cam.reconnect()
    False
    >>> cam.faults.replug()         # ... until the camera is plugged back in
    >>> cam.reconnect(), cam.streaming
    (True, True)
    >>> cam.close()
    """

    def __init__(self, camera: SimulatedCamera) -> None:
        self._cam = camera

    def timeouts(self, n: int = 1) -> None:
        """The next ``n`` reads raise ``FrameTimeout``, at once (they do not wait the timeout)."""
        with self._cam._cond:
            self._cam._pending_timeouts += max(0, int(n))
            self._cam._cond.notify_all()

    def drop_frames(self, k: int = 1) -> None:
        """Lose the next ``k`` frames: they are exposed (numbers and time slots pass) but never
        delivered, so the next delivered frame shows a gap of ``k`` frame numbers."""
        with self._cam._cond:
            self._cam._pending_drops += max(0, int(k))
            self._cam._cond.notify_all()

    def stall(self, seconds: float) -> None:
        """Hang the camera: no frame is delivered for ``seconds`` from now (reads with a shorter
        timeout really wait and raise ``FrameTimeout``); afterwards the schedule restarts."""
        with self._cam._cond:
            self._cam._stall_until = max(self._cam._stall_until, time.monotonic() + max(0.0, seconds))
            self._cam._cond.notify_all()

    def disconnect(self, *, reconnect_after: int | None = None) -> None:
        """Unplug the camera: a blocked read and every later one raise ``CameraDisconnected``,
        ``start``/settings changes raise it too, and ``open`` raises ``CameraUnavailable``.

        ``reconnect()`` returns False until ``replug()`` is called, or, with ``reconnect_after=n``,
        for the next ``n`` attempts and then succeeds by itself.
        """
        cam = self._cam
        with cam._cond:
            if cam._plugged:
                cam._plugged = False
                cam._resume_after_replug = cam._streaming
                cam._streaming = False
                cam._schedule.triggers.clear()
            cam._replug_ready = reconnect_after is not None and reconnect_after <= 0
            cam._replug_countdown = reconnect_after if reconnect_after and reconnect_after > 0 else None
            cam._cond.notify_all()

    def replug(self) -> None:
        """Plug the camera back in: the next ``reconnect()`` returns True (same settings, and
        streaming again if it was streaming when it went away). Before ``open()``, lets it open."""
        with self._cam._cond:
            self._cam._replug_ready = True
            self._cam._replug_countdown = None
            if not self._cam._is_open:
                self._cam._plugged = True
            self._cam._cond.notify_all()

    def clear(self) -> None:
        """Cancel pending timeouts, drops and stalls (an unplugged camera stays unplugged)."""
        with self._cam._cond:
            self._cam._pending_timeouts = 0
            self._cam._pending_drops = 0
            self._cam._stall_until = 0.0
            self._cam._cond.notify_all()

    @property
    def connected(self) -> bool:
        """False between ``disconnect()`` and a successful ``reconnect()``."""
        return self._cam._plugged

    @property
    def pending(self) -> dict[str, float]:
        """What is still to happen: {"timeouts": n, "drops": k, "stall_s": seconds left}."""
        with self._cam._cond:
            return {
                "timeouts": self._cam._pending_timeouts,
                "drops": self._cam._pending_drops,
                "stall_s": max(0.0, self._cam._stall_until - time.monotonic()),
            }


# =================================================================================================
# The camera
# =================================================================================================
@dataclass
class _Schedule:
    """Free-running deadlines: the next frame is due at ``anchor + k / fps`` (monotonic clock)."""

    anchor: float = 0.0
    k: int = 1
    last: float = 0.0  # when the last frame was taken (or the stream started)
    triggers: deque[float] = field(default_factory=deque)  # hardware trigger times, oldest first


class SimulatedCamera(CameraDriver):
    """A simulated microscope camera (see the module docstring for what it shows and how).

    >>> cam = SimulatedCamera(width=640, height=480, seed=1)
    >>> cam.open(); cam.start()
    >>> frame = cam.read_frame(timeout=1.0)
    >>> bool((frame.array == cam.expected_frame(frame.meta.frame_number)).all())
    True
    >>> cam.close()

    Beyond the driver interface: ``trigger()`` (hardware trigger mode), ``faults`` (misbehaviour
    for tests, see ``SimulatedFaults``), ``expected_frame(n)`` and ``stage_drift(n)``.
    """

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 1024,
        pixel_format: str = "mono8",
        fps: float = 30.0,
        exposure_ms: float = 10.0,
        gain_db: float = 0.0,
        seed: int = 0,
        serial: str = "SIM-0001",
        max_fps: float = 1000.0,
        trigger_mode: str = "free_running",
        roi: tuple[int, int, int, int] | None = None,
        pixel_size_um: float = 0.65,
    ) -> None:
        super().__init__()
        for name, side in (("width", width), ("height", height)):
            ok = isinstance(side, int) and not isinstance(side, bool) and ROI_MIN <= side <= MAX_SENSOR_SIDE
            if not ok or side % ROI_STEP:
                raise ValueError(
                    f"{name}={side!r}: the sensor side must be an even number of pixels "
                    f"from {ROI_MIN} to {MAX_SENSOR_SIDE}"
                )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed={seed!r}: must be an integer")
        if not (isinstance(max_fps, (int, float)) and math.isfinite(max_fps) and max_fps >= MIN_FPS):
            raise ValueError(f"max_fps={max_fps!r}: must be a number of frames/s >= {MIN_FPS}")
        self._seed = seed
        self._sensor = (width, height)
        self._description = CameraDescription(
            driver="simulated",
            model="labcam simulated microscope",
            serial=serial,
            sensor_width=width,
            sensor_height=height,
            pixel_formats=tuple(PIXEL_FORMATS),
            max_bit_depth=16,
            pixel_size_um=pixel_size_um,
        )
        self._specs = SettingSpecs(
            {
                "exposure_ms": SettingSpec("exposure_ms", "float", "ms", *EXPOSURE_RANGE_MS),
                "gain_db": SettingSpec("gain_db", "float", "dB", *GAIN_RANGE_DB),
                "fps": SettingSpec("fps", "float", "frames/s", MIN_FPS, float(max_fps)),
                "roi": SettingSpec(
                    "roi", "roi", "px", minimum=ROI_MIN, sensor=(width, height), step=ROI_STEP,
                    settable_while_streaming=False,
                ),
                "pixel_format": SettingSpec(
                    "pixel_format", "choice", choices=tuple(PIXEL_FORMATS), settable_while_streaming=False
                ),
                "trigger_mode": SettingSpec("trigger_mode", "choice", choices=TRIGGER_MODES),
            }
        )
        initial: dict[str, Any] = {
            "exposure_ms": exposure_ms,
            "gain_db": gain_db,
            "fps": fps,
            "roi": (0, 0, width, height) if roi is None else roi,
            "pixel_format": pixel_format,
            "trigger_mode": trigger_mode,
        }
        # Raises SettingError (a ValueError) naming the bad value, like update_settings would.
        self._settings: Settings = validate_changes(self._specs, Settings(**initial), initial)

        # Everything below is guarded by _lock; _cond wakes a waiting read_frame.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state: _RenderState | None = None
        self._is_open = False
        self._streaming = False
        self._plugged = True
        self._replug_ready = False
        self._replug_countdown: int | None = None
        self._resume_after_replug = False
        self._next_number = 0
        self._schedule = _Schedule()
        self._pending_timeouts = 0
        self._pending_drops = 0
        self._stall_until = 0.0
        self._reads_waiting = 0
        # Timestamps are derived from the monotonic clock (deadlines), mapped once to epoch seconds.
        self._epoch_minus_mono = time.time() - time.monotonic()
        self.faults = SimulatedFaults(self)

    # -- identity -----------------------------------------------------------------------------
    @property
    def description(self) -> CameraDescription:
        return self._description

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def specs(self) -> SettingSpecs:
        return self._specs

    @property
    def seed(self) -> int:
        return self._seed

    def __repr__(self) -> str:
        w, h = self._sensor
        s = self._settings
        serial = self._description.serial
        return f"SimulatedCamera({w}x{h}, {s.pixel_format}, seed={self._seed}, serial={serial!r})"

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Render the specimen for the current settings (once per process and sensor size: the
        rendering is cached) and make the camera ready to start."""
        with self._cond:
            if self._is_open:
                return
            if not self._plugged:
                serial = self._description.serial
                raise CameraUnavailable(f"simulated camera {serial} is unplugged (faults.disconnect())")
        state = self._state_for(self._settings)  # slow the first time: outside the lock
        with self._cond:
            self._state = state
            self._is_open = True
            self._next_number = 0

    def close(self) -> None:
        """Stop and release the camera (the shared specimen cache stays). Safe to call twice."""
        with self._cond:
            self._streaming = False
            self._resume_after_replug = False
            self._is_open = False
            self._state = None
            self._schedule.triggers.clear()
            self._cond.notify_all()

    def start(self) -> None:
        """Start streaming: the first frame is due one frame period from now."""
        with self._cond:
            if not self._plugged:
                raise CameraDisconnected(f"simulated camera {self._description.serial} is unplugged")
            if not self._is_open:
                raise CameraError("the simulated camera is not open: call open() first")
            if self._streaming:
                return
            self._streaming = True
            self._restart_schedule(time.monotonic())
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop streaming; a ``read_frame`` waiting in another thread raises ``StreamStopped``."""
        with self._cond:
            self._streaming = False
            self._resume_after_replug = False
            self._schedule.triggers.clear()
            self._cond.notify_all()

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def reads_waiting(self) -> int:
        """How many ``read_frame`` calls are blocked waiting right now (lets tests act on a
        blocked read without sleeping)."""
        return self._reads_waiting

    def reconnect(self) -> bool:
        """Get an unplugged camera back (see ``SimulatedFaults.disconnect``): True when it is back,
        with the same settings and streaming again if it was streaming when it went away."""
        with self._cond:
            if not self._is_open:
                return False
            if self._plugged:
                return True
            if self._replug_countdown is not None:
                if self._replug_countdown > 0:
                    self._replug_countdown -= 1
                    return False
                self._replug_countdown = None
                self._replug_ready = True
            if not self._replug_ready:
                return False
            return self._replugged()

    def _replugged(self) -> bool:
        # Called with the lock held. Settings never changed while unplugged (changes were refused),
        # so the camera is back exactly as it was; frame numbers continue.
        self._plugged = True
        self._replug_ready = False
        if self._resume_after_replug:
            self._streaming = True
            self._restart_schedule(time.monotonic())
        self._resume_after_replug = False
        self._cond.notify_all()
        return True

    # -- frames -------------------------------------------------------------------------------
    def trigger(self) -> bool:
        """Send a hardware trigger: in ``hardware`` trigger mode while streaming, one frame is
        exposed now and delivered ``exposure_ms`` later. Ignored (False) otherwise, as a camera
        ignores trigger pulses it is not waiting for."""
        with self._cond:
            if not (self._streaming and self._settings.trigger_mode == "hardware"):
                return False
            triggers = self._schedule.triggers
            if len(triggers) >= MAX_PENDING_TRIGGERS:
                triggers.popleft()  # its frame was overwritten in the camera's buffer
                self._pending_drops += 1
            triggers.append(time.monotonic())
            self._cond.notify_all()
            return True

    def read_frame(self, timeout: float) -> Frame:
        """Wait until the next frame is due (interruptibly) and return it.

        Raises ``FrameTimeout`` when it is not due within ``timeout`` seconds (after waiting that
        long), ``StreamStopped`` when not streaming or ``stop()`` is called meanwhile, and
        ``CameraDisconnected`` when the camera is unplugged.
        """
        call_deadline = time.monotonic() + max(0.0, float(timeout))
        software_start: float | None = None
        with self._cond:
            while True:
                if not self._plugged:
                    raise CameraDisconnected(f"simulated camera {self._description.serial} was unplugged")
                if not self._streaming:
                    raise StreamStopped("the simulated camera is not streaming")
                if self._pending_timeouts:
                    self._pending_timeouts -= 1
                    left = self._pending_timeouts
                    raise FrameTimeout(f"simulated timeout (faults.timeouts), {left} more to come")
                now = time.monotonic()
                settings = self._settings
                exposure_s = settings.exposure_ms / 1000.0
                sched = self._schedule
                if settings.trigger_mode == "free_running":
                    due = sched.anchor + (sched.k + self._pending_drops) / settings.fps
                elif settings.trigger_mode == "software":
                    if software_start is None:  # the read itself is the software trigger
                        software_start = max(now, self._stall_until)
                    due = software_start + exposure_s
                else:
                    due = sched.triggers[0] + exposure_s if sched.triggers else math.inf
                target = max(due, self._stall_until)
                if now >= target:
                    break
                if now >= call_deadline:
                    what = "trigger" if due == math.inf else "frame"
                    raise FrameTimeout(f"no {what} within {timeout:g} s ({settings.trigger_mode})")
                # Wakes early on stop(), faults, triggers and settings changes: then re-evaluate.
                self._reads_waiting += 1
                try:
                    self._cond.wait(min(target, call_deadline) - now)
                finally:
                    self._reads_waiting -= 1
            stamp = self._take(settings, due, target, now)
            number = self._next_number + self._pending_drops
            self._next_number = number + 1
            self._pending_drops = 0
            state = self._state
        if state is None or state.settings != settings:  # closed meanwhile, or settings just swapped
            state = self._state_for(settings)
        # Rendering happens outside the lock: stop() and settings changes never wait for it.
        array = state.render(number)
        meta = FrameMeta(
            frame_number=number,
            timestamp=stamp + self._epoch_minus_mono,
            exposure_ms=settings.exposure_ms,
            gain_db=settings.gain_db,
            roi=settings.roi,
            pixel_format=settings.pixel_format,
            camera_serial=self._description.serial,
        )
        return Frame(array, meta)

    def _take(self, settings: Settings, due: float, target: float, now: float) -> float:
        """Advance the schedule for the frame being taken (lock held); return its monotonic time."""
        sched = self._schedule
        mode = settings.trigger_mode
        if mode == "hardware":
            sched.triggers.popleft()
        if mode != "free_running":
            sched.last = target
            return target
        period = 1.0 / settings.fps
        if now - target >= period:
            # A frame period or more late (slow reader or rendering slower than fps): take it now
            # and count the next deadlines from here -- no burst of catch-up frames.
            stamp = now
            sched.anchor, sched.k = now, 1
        elif target > due:  # after a stall: restart the schedule from its end
            stamp = target
            sched.anchor, sched.k = target, 1
        else:  # on schedule (dropped frames used up their time slots too)
            stamp = due
            sched.k += self._pending_drops + 1
        sched.last = stamp
        return stamp

    def _restart_schedule(self, start: float) -> None:
        sched = self._schedule
        sched.anchor, sched.k, sched.last = start, 1, start
        sched.triggers.clear()

    # -- settings -----------------------------------------------------------------------------
    def _apply_settings(self, new: Settings, changed: frozenset[str]) -> Settings:
        if not self._plugged:
            raise CameraDisconnected(f"simulated camera {self._description.serial} is unplugged")
        # Build the new render state first (exposure changes rescale the textures; may take a
        # moment on large sensors) while frames keep coming from the old one.
        state = self._state_for(new) if self._is_open else None
        with self._cond:
            self._settings = new
            if self._is_open:
                self._state = state
            if changed & {"fps", "trigger_mode"}:
                # New period or mode: deadlines count from the last frame, not from the stream start.
                sched = self._schedule
                sched.anchor, sched.k = sched.last, 1
                if "trigger_mode" in changed:
                    sched.triggers.clear()
            self._cond.notify_all()
        return new

    def _state_for(self, settings: Settings) -> _RenderState:
        current = self._state
        if current is not None and current.settings == settings:
            return current
        return _RenderState(self._seed, self._sensor, settings)

    # -- for tests and analysis ---------------------------------------------------------------
    def expected_frame(
        self, frame_number: int, *, settings: Settings | Mapping[str, Any] | None = None, noise: bool = True
    ) -> np.ndarray:
        """The pixels frame ``frame_number`` has (or would have) with ``settings``.

        ``settings``: None for the current settings, a ``Settings``, or a mapping of changes to the
        current settings (validated like ``update_settings``, e.g. ``{"gain_db": 6}``).
        ``noise=False`` gives the noise-free image (the mean the noisy frames scatter around).
        Works whether or not the camera is open; returns a new, writable array.
        """
        if settings is None:
            s = self._settings
        elif isinstance(settings, Settings):
            s = settings
        else:
            s = validate_changes(self._specs, self._settings, settings)
        return self._state_for(s).render(int(frame_number), noise=noise)

    def stage_drift(self, frame_number: int) -> tuple[int, int]:
        """The stage position (dx, dy) in pixels for frame ``frame_number``: tissue seen at sensor
        pixel (x, y) in frame a is at (x - (dx_b - dx_a), y - (dy_b - dy_a)) in frame b. The cell
        sheet moves up to CRAWL_PX more (it crawls over the tissue)."""
        return _Motion.for_seed(self._seed).stage(int(frame_number))

    # -- convenience --------------------------------------------------------------------------
    def __enter__(self) -> SimulatedCamera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
