"""The preview fan-out: one engine subscription, one encode per frame per variant, shared messages.

A *variant* is what makes two clients' preview bytes differ: JPEG quality, maximum width, display
range, and for the view-aware stream the region (``view``), the box it must fit (``size``), the
``encoding`` (JPEG or raw) and the raw ``compression``. (The wire format, JSON or binary, is not part
of it: both messages are built from the same payload, each at most once, when the first client of
that format asks.) Variants that ask differently but come to the same pixels for a frame (the same
clamped and aligned region and reduction factor, encoding, quality and display) share that frame's
encode too: the hub keys each encode by what it produces (``render_key``), not by what was asked.

``PreviewHub`` runs on an asyncio loop. While any listener is registered it pulls the newest frame
from a single *latest* engine subscription and hands it to each active variant; a variant encodes
on a small thread pool (simplejpeg releases the GIL, so encodes, and the loop, really run in
parallel) with at most as many encodes in flight as there are workers, each with its own
preallocated buffers: a big frame (5 MP takes ~19 ms) can then use every core. A frame that arrives
while its variant is busy waits in a one-frame slot and is replaced by a newer one (latest frame
wins, counted in ``skipped``); an encode that finishes after a newer frame's is dropped. Encoded frames are immutable ``EncodedFrame`` objects passed to every listener of
the variant, with nothing per client inside. When the last listener of a variant leaves, the
variant and its buffers are dropped; when the last listener of all leaves, the subscription is
closed, encoding stops and the engine may stop the camera.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..engine import Engine, Subscription
from ..errors import CameraError, FrameTimeout
from ..frame import Frame
from ..wire import SizeBox, ViewRect, json_frame_message, pack_binary, preview_header
from ..wire.rawcodec import encode_raw
from .display import AutoRange, DisplayMapper, DisplayRange, auto_range, clamp_range
from .h264_variant import H264VariantEncoder
from .jpeg import encode_jpeg
from .views import ViewPlan, count_histogram, crop_reduce, plan_view

log = logging.getLogger("labcam.preview")

# A client joining a variant gets its newest encoded frame at once if it is this recent (seconds),
# so a page (re)connecting shows a picture without waiting for the next capture.
RECENT_FRAME_S = 1.0
# How long one wait for a frame lasts before the pump checks whether anybody still watches.
PUMP_WAIT_S = 1.0
# Weight of the newest sample in the encode-time moving averages.
EMA_WEIGHT = 0.1


@dataclass(frozen=True)
class Variant:
    """What a client's preview looks like; clients with equal variants share every encoded frame.

    ``display`` is None for auto contrast or a (low, high) window in camera counts. ``view`` None is
    the full frame; ``size`` None no box (``max_width`` alone bounds the width, as before).
    ``compression`` is for raw frames only (None: the default, deflate).
    """

    quality: int = 80
    max_width: int | None = None
    display: DisplayRange | None = None
    view: ViewRect | None = None
    size: SizeBox | None = None
    encoding: str = "jpeg"
    compression: str | None = None
    # encoding=h264 (labcam.preview.h264_variant): quality is unused; bitrate None is constant quality
    bitrate: int | None = None
    gop: int | None = None

    def plan(self, width: int, height: int) -> ViewPlan:
        """The region, factor and clamping of this variant on a ``width`` x ``height`` frame."""
        return plan_view(self.view, self.size, self.max_width, width, height)

    def render_key(self, plan: ViewPlan) -> tuple[Any, ...]:
        """What an encode with ``plan`` produces: equal keys, equal bytes (so one encode serves both)."""
        if self.encoding == "raw":
            return ("raw", self.compression or "deflate", plan.view, plan.step, plan.clamped, self.display)
        return ("jpeg", self.quality, plan.view, plan.step, plan.clamped, self.display)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quality": self.quality,
            "max_width": self.max_width,
            "display": "auto" if self.display is None else list(self.display),
            "view": "full" if self.view is None else list(self.view),
            "size": None if self.size is None else list(self.size),
            "encoding": self.encoding,
            "compression": (self.compression or "deflate") if self.encoding == "raw" else None,
        }
        if self.encoding == "h264":
            out.update(encoding="h264", bitrate=self.bitrate, gop=self.gop)
        return out


class EncodedFrame:
    """One frame encoded for one variant: the payload (JPEG bytes, or a raw payload; ``jpeg`` is its
    historical name) plus the two wire messages built from it.

    Immutable and shared by every client of the variant (and of variants with the same render key).
    ``json_message`` (base64 payload in JSON text) and ``binary_message`` (the wire's envelope:
    header, then the payload) are each built at most once, on first use, on the event loop.
    """

    __slots__ = ("variant", "jpeg", "_header", "encode_ms", "_json", "_binary")

    def __init__(self, variant: Variant, jpeg: bytes, header: dict[str, Any], encode_ms: float) -> None:
        self.variant = variant
        self.jpeg = jpeg
        self._header = header
        self.encode_ms = encode_ms
        self._json: str | None = None
        self._binary: bytes | None = None

    @property
    def payload(self) -> bytes:
        return self.jpeg

    @property
    def header(self) -> dict[str, Any]:
        """The frame message's fields (a copy), without ``data``."""
        return dict(self._header)

    @property
    def frame_number(self) -> int:
        return int(self._header["frame_number"])

    @property
    def keyframe(self) -> bool:
        """An H.264 IDR access unit (a viewer may start here); every JPEG frame is one."""
        return bool(self._header.get("keyframe", True))

    @property
    def timestamp(self) -> float:
        return float(self._header["timestamp"])

    @property
    def json_message(self) -> str:
        if self._json is None:
            self._json = json_frame_message(self._header, self.jpeg)
        return self._json

    @property
    def binary_message(self) -> bytes:
        if self._binary is None:
            self._binary = pack_binary(self._header, self.jpeg)
        return self._binary

    def __repr__(self) -> str:
        h = self._header
        return f"<EncodedFrame #{h['frame_number']} {h['width']}x{h['height']} {len(self.jpeg)} B q{self.variant.quality}>"


def encode_frame(frame: Frame, variant: Variant, mapper: DisplayMapper, plan: ViewPlan | None = None) -> EncodedFrame:
    """Crop, reduce, count, map and encode one frame for one variant (runs on a worker thread).

    ``plan``: the variant's plan for this frame (the hub computes it to share encodes), else made here.
    """
    t0 = time.perf_counter()
    bit_depth = frame.meta.bit_depth
    if plan is None:
        plan = variant.plan(frame.width, frame.height)
    pixels = crop_reduce(frame.array, plan)  # a strided view: no copy
    histogram, saturated = count_histogram(pixels, bit_depth)
    raw_fields: dict[str, Any] | None = None
    if variant.encoding == "raw":
        payload, raw = encode_raw(pixels, bit_depth, compression=variant.compression or "deflate")  # type: ignore[arg-type]
        data = bytes(payload) if isinstance(payload, memoryview) else payload  # "none": it may share the frame
        # The range a JPEG of this view would show: a starting point for the viewer's own contrast.
        if variant.display is not None:
            lo, hi = clamp_range(variant.display, bit_depth)
        else:
            lo, hi = mapper.auto.update(auto_range(pixels, bit_depth))
        width, height = raw["width"], raw["height"]
        raw_fields = {k: raw[k] for k in ("dtype", "shuffle", "compression", "level", "channels")}  # type: ignore[literal-required]
    else:
        image, (lo, hi) = mapper.map(pixels, bit_depth)
        data = encode_jpeg(image, variant.quality)
        width, height = image.shape[1], image.shape[0]
    encode_ms = (time.perf_counter() - t0) * 1000.0
    header = preview_header(
        frame, width, height, (lo, hi), encoding=variant.encoding, view=plan.view, clamped=plan.clamped,
        histogram=histogram, saturated=saturated, raw=raw_fields,
    )
    return EncodedFrame(variant, data, header, encode_ms)


def encode_h264_frame(frame: Frame, variant: Variant, mapper: DisplayMapper, encoder: H264VariantEncoder) -> EncodedFrame:
    """Map and encode one frame of an H.264 variant, in order (runs on a worker thread)."""
    unit, header, encode_ms = encoder.encode(frame, mapper)
    return EncodedFrame(variant, unit, header, encode_ms)


FrameListener = Callable[[EncodedFrame], None]


class _VariantState:
    """One active variant: its listeners, its free mappers (buffers) and its one-frame pending slot."""

    __slots__ = (
        "variant", "listeners", "free", "pending", "latest", "delivered_seq", "encoded", "skipped", "encode_ms",
        "shared",
        "h264",
    )

    def __init__(self, variant: Variant, parallel: int) -> None:
        self.variant = variant
        self.h264: H264VariantEncoder | None = None
        if variant.encoding == "h264":  # a stateful encoder: one frame in flight, in order
            self.h264 = H264VariantEncoder(bitrate=variant.bitrate, gop=variant.gop)
            parallel = 1
        self.listeners: list[FrameListener] = []
        auto = AutoRange()  # one contrast state for the variant, whichever mapper encodes
        self.free = [DisplayMapper(variant.max_width, variant.display, auto) for _ in range(parallel)]
        self.pending: tuple[int, Frame] | None = None
        self.latest: EncodedFrame | None = None
        self.delivered_seq = 0  # hub sequence number of the newest frame handed to the listeners
        self.encoded = 0
        self.skipped = 0  # frames replaced in the pending slot, or encoded after a newer one
        self.encode_ms = 0.0
        self.shared = 0  # frames whose encode another variant with the same render key did


class PreviewHub:
    """Encodes the engine's frames once per active variant and hands them to listeners.

    Every method must be called on the event loop the hub runs on (the first ``add_listener``
    binds it). Listeners are called on that loop and must not block.
    """

    def __init__(self, engine: Engine, *, workers: int = 2) -> None:
        self.engine = engine
        self._workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="labcam-encode")
        self._variants: dict[Variant, _VariantState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._closed = False
        self.frames_in = 0  # frames the pump took from the engine
        self.frames_missed = 0  # frames the pump's subscription skipped (the pump was slower)
        self.encode_ms = 0.0  # moving average over every variant
        self.encodes = 0  # encodes started: one per frame per distinct render key
        # The encodes of recent frames by (hub sequence number, render key), so that variants whose
        # plans agree share one; an entry lives while its encode runs.
        self._running: dict[tuple[int, tuple[Any, ...]], asyncio.Future[EncodedFrame]] = {}
        self._errors_logged: set[Variant] = set()

    # -- listeners ------------------------------------------------------------------------------
    def add_listener(self, variant: Variant, listener: FrameListener) -> None:
        """Start calling ``listener(encoded)`` with each new frame of ``variant``."""
        if self._closed:
            raise CameraError("the preview hub is closed")
        self._loop = asyncio.get_running_loop()
        state = self._variants.get(variant)
        if state is None:
            state = self._variants[variant] = _VariantState(variant, self._workers)
        state.listeners.append(listener)
        latest = state.latest
        if latest is not None and time.time() - latest.timestamp < RECENT_FRAME_S:
            self._loop.call_soon(self._deliver_one, state, listener, latest)
        self._ensure_pump()

    def remove_listener(self, variant: Variant, listener: FrameListener) -> None:
        """Stop calling ``listener``; drops the variant when it was the last one. Safe to repeat."""
        state = self._variants.get(variant)
        if state is None:
            return
        try:
            state.listeners.remove(listener)
        except ValueError:
            return
        if not state.listeners:
            del self._variants[variant]
            self._errors_logged.discard(variant)
        if not self._variants and self._sub is not None:
            # Wakes the pump, which sees nobody watching and ends: encoding pauses and the engine
            # may stop the camera after its grace period.
            self._sub.close()

    def request_keyframe(self, variant: Variant) -> None:
        """An H.264 variant's viewer joined or fell behind: an IDR soon (rate-limited by the encoder)."""
        state = self._variants.get(variant)
        if state is not None and state.h264 is not None:
            state.h264.request_keyframe()

    @property
    def active(self) -> bool:
        """True while any variant has a listener."""
        return bool(self._variants)

    @property
    def variants(self) -> list[Variant]:
        return list(self._variants)

    def listeners(self, variant: Variant) -> int:
        state = self._variants.get(variant)
        return len(state.listeners) if state else 0

    # -- the pump -------------------------------------------------------------------------------
    def _ensure_pump(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # subscribe() may wait for the engine's control lock (a settings change restarting the
            # capture): keep that off the loop.
            sub = await loop.run_in_executor(None, self.engine.subscribe, "preview")
        except CameraError as exc:
            log.error("preview: cannot subscribe to the camera: %s", exc)
            self._task = None
            return
        self._sub = sub
        try:
            while self._variants and not self._closed:
                try:
                    frame = await sub.anext(PUMP_WAIT_S)
                except FrameTimeout:
                    continue  # camera idle, stalled or lost: keep waiting while somebody watches
                except CameraError:
                    break  # our subscription or the engine was closed
                self.frames_in += 1
                for state in list(self._variants.values()):
                    self._offer(state, self.frames_in, frame)
        except asyncio.CancelledError:
            pass
        finally:
            self.frames_missed += sub.missed
            sub.close()
            self._sub = None
            self._task = None
            if self._variants and not self._closed:
                self._ensure_pump()  # a listener arrived while this pump was ending

    def _offer(self, state: _VariantState, seq: int, frame: Frame) -> None:
        """Encode ``frame`` (the hub's ``seq``-th) for ``state`` now, or keep it as the pending one."""
        if not state.free:
            if state.pending is not None:
                state.skipped += 1
            state.pending = (seq, frame)
            return
        mapper = state.free.pop()  # also this variant's in-flight bound, shared encode or not
        assert self._loop is not None
        if state.h264 is not None:
            fut = self._loop.run_in_executor(self._executor, encode_h264_frame, frame, state.variant, mapper, state.h264)
        else:
            plan = state.variant.plan(frame.width, frame.height)
            key = (seq, state.variant.render_key(plan))
            fut = self._running.get(key)
            if fut is None:
                fut = self._loop.run_in_executor(self._executor, encode_frame, frame, state.variant, mapper, plan)
                self._running[key] = fut
                fut.add_done_callback(lambda f: self._running.pop(key, None))
                self.encodes += 1
            else:
                state.shared += 1
        fut.add_done_callback(lambda f: self._encoded(state, mapper, seq, f))

    def _encoded(
        self, state: _VariantState, mapper: DisplayMapper, seq: int, fut: asyncio.Future[EncodedFrame]
    ) -> None:
        state.free.append(mapper)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            if state.variant not in self._errors_logged:  # once per variant, not 30 times a second
                self._errors_logged.add(state.variant)
                log.error("preview: encoding failed for %s", state.variant, exc_info=exc)
        elif seq < state.delivered_seq:
            state.skipped += 1  # a newer frame's encode finished first: never go back in time
        else:
            encoded = fut.result()
            state.delivered_seq = seq
            state.latest = encoded
            state.encoded += 1
            state.encode_ms += EMA_WEIGHT * (encoded.encode_ms - state.encode_ms) if state.encoded > 1 else encoded.encode_ms
            self.encode_ms = encoded.encode_ms if self.encode_ms == 0 else self.encode_ms + EMA_WEIGHT * (encoded.encode_ms - self.encode_ms)
            for listener in list(state.listeners):
                self._call(listener, encoded)
        pending, state.pending = state.pending, None
        if pending is not None and self._variants.get(state.variant) is state and not self._closed:
            self._offer(state, *pending)

    def _deliver_one(self, state: _VariantState, listener: FrameListener, encoded: EncodedFrame) -> None:
        if listener in state.listeners:
            self._call(listener, encoded)

    @staticmethod
    def _call(listener: FrameListener, encoded: EncodedFrame) -> None:
        try:
            listener(encoded)
        except Exception:  # one broken client must not stop the others' frames
            log.exception("preview: a frame listener failed")

    # -- figures and life cycle -----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "encode_ms": round(self.encode_ms, 3),
            "frames_in": self.frames_in,
            "frames_missed": self.frames_missed + (self._sub.missed if self._sub else 0),
            "encodes": self.encodes,
            "variants": [
                {
                    **s.variant.to_dict(),
                    "clients": len(s.listeners),
                    "encoded": s.encoded,
                    "shared": s.shared,
                    "skipped": s.skipped,
                    "encode_ms": round(s.encode_ms, 3),
                    "jpeg_bytes": len(s.latest.jpeg) if s.latest else None,
                }
                for s in self._variants.values()
            ],
        }

    async def aclose(self) -> None:
        """Stop encoding and release the subscription and the worker threads."""
        self._closed = True
        self._variants.clear()
        if self._sub is not None:
            self._sub.close()
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Synchronous close for when no loop runs any more (the pump, if any, is abandoned)."""
        self._closed = True
        self._variants.clear()
        if self._sub is not None:
            self._sub.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["EncodedFrame", "FrameListener", "PreviewHub", "Variant", "encode_frame"]
