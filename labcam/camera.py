"""The scripted acquisition API: what an analysis notebook types.

``Camera`` is a thin facade over an ``Engine``: snapping, stacks, frame iteration and time-lapses
are all consumers of the engine, so they work while a live view streams and never stop it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from .camera_api import CameraAPI, FrameStreamBase, RecordingRequest, Stack, StackFill, positive_int, progress_bar
from .camera_info import CameraDescription, EngineStatus
from .engine import Engine, EngineEvents, Subscription
from .errors import FrameTimeout
from .frame import Frame
from .recording import Recording, start_recording
from .settings import Settings, SettingSpecs

if TYPE_CHECKING:
    from .widget import LiveView

# Frames a stack acquisition may fall behind the camera before it loses frames: copying a frame
# into the stack is far faster than any camera, so this only matters when the machine is starved.
ACQUIRE_BUFFER = 64


class FrameStream(FrameStreamBase):
    """Frames as they arrive, for ``for`` and ``async for`` loops. Create with ``Camera.frames``.

    Iteration ends after ``limit`` frames (if given); a gap longer than ``timeout`` raises
    ``FrameTimeout``. Close it (or leave the ``with`` block) to release the camera.
    """

    def __init__(self, sub: Subscription, timeout: float | None, limit: int | None) -> None:
        super().__init__(timeout, limit)
        self._sub = sub

    @property
    def missed(self) -> int:
        """Frames that arrived while this loop was busy and were skipped (latest frame wins)."""
        return self._sub.missed

    def _next_frame(self) -> Frame:
        return self._sub.next(self._timeout)

    async def _anext_frame(self) -> Frame:
        return await self._sub.anext(self._timeout)

    def close(self) -> None:
        self._sub.close()

    def __del__(self) -> None:
        self._sub.close()


class Camera(CameraAPI[Recording]):
    """A camera for scripts and notebooks. Create with ``labcam.open()``.

    >>> import labcam
    >>> with labcam.open("simulated", width=320, height=240, seed=1) as cam:
    ...     img = cam.snap()                      # numpy array
    ...     frame = cam.snap(meta=True)           # Frame: .array and .meta
    ...     stack = cam.acquire(10, progress=False)
    ...     cam.exposure_ms = 5                   # validated; SettingError names the range
    >>> img.shape, stack.shape
    ((240, 320), (10, 240, 320))
    """

    def __init__(self, engine: Engine, *, owns_engine: bool = True) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._live_held = False
        self._recordings: list[Recording] = []  # stopped properly by close()

    # -- what it is ---------------------------------------------------------------------------
    @property
    def description(self) -> CameraDescription:
        return self.engine.description

    @property
    def status(self) -> EngineStatus:
        return self.engine.status

    @property
    def events(self) -> EngineEvents:
        """State-change signals (psygnal): ``cam.events.settings_changed.connect(print)``."""
        return self.engine.events

    # -- settings -------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def specs(self) -> SettingSpecs:
        """What each setting allows (ranges, choices)."""
        return self.engine.specs

    def set(self, **changes: Any) -> Settings:
        """Change several settings at once; all are validated before any is applied."""
        return self.engine.update_settings(changes)

    # -- acquisition ----------------------------------------------------------------------------
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[True]) -> Frame: ...

    def snap(self, *, timeout: float = 5.0, meta: bool = False) -> np.ndarray | Frame:
        """The next full-resolution frame, as a numpy array (``meta=True``: a ``Frame``).

        Works while a live view streams, without stopping it. The array is read-only (it is shared
        with other consumers): ``.copy()`` it to modify.
        """
        frame = self.engine.snap(timeout)
        return frame if meta else frame.array

    def frames(self, *, timeout: float | None = 5.0, limit: int | None = None) -> FrameStream:
        """Iterate over frames as they arrive (newest first when the loop is slow).

        >>> for frame in cam.frames(limit=100):            # doctest: +SKIP
        ...     process(frame.array)
        >>> async for frame in cam.frames(timeout=2):      # doctest: +SKIP
        ...     ...
        """
        return FrameStream(self.engine.subscribe("frames"), timeout, limit)

    def acquire(self, n: int, *, timeout: float = 5.0, progress: bool | None = None) -> Stack:
        """``n`` consecutive frames as a ``Stack`` (every frame the camera delivers, in order).

        Frames the camera skipped are counted in ``Stack.dropped``, never hidden. Raises
        ``FrameTimeout`` if the camera stops delivering for ``timeout`` seconds.
        """
        n = positive_int("n", n)
        with self.engine.subscribe("acquire", buffer=ACQUIRE_BUFFER) as sub:
            fill = StackFill(n, sub.next(timeout))
            with progress_bar(n, progress, "acquire") as bar:
                bar.update(1)
                while not fill.full:
                    fill.add(sub.next(timeout))
                    bar.update(1)
        # A frame number missing between two frames of the stack was dropped, by the camera or
        # because this loop fell a whole buffer behind. (Numbers restart after a replug: no gap.)
        numbers = [m.frame_number for m in fill.meta]
        dropped = sum(max(0, b - a - 1) for a, b in zip(numbers, numbers[1:]))
        return fill.stack(dropped)

    @contextmanager
    def _timelapse_frames(self, timeout: float) -> Iterator[Callable[[float], Frame]]:
        # One latest-frame subscription for the whole series keeps the camera streaming in
        # between (other views stay live) and costs nothing while the time-lapse sleeps.
        with self.engine.subscribe("timelapse") as sub:

            def first_frame_at(due: float) -> Frame:
                # The newest frame may have been exposed before the deadline: wait for one
                # exposed at or after it, judged by its own capture timestamp.
                frame = sub.next(timeout)
                while frame.meta.timestamp < due:
                    frame = sub.next(timeout)
                return frame

            yield first_frame_at

    def _start_recording(
        self, path: str | os.PathLike[str], request: RecordingRequest, *, progress: bool | None = None
    ) -> Recording:
        rec = start_recording(self.engine, path, progress=progress, **request)
        # Keep only recordings still running, so the list stays as short as what is in progress.
        self._recordings = [r for r in self._recordings if not r.wait(0, raise_error=False)]
        self._recordings.append(rec)
        return rec

    # -- live -----------------------------------------------------------------------------------
    def start_live(self) -> None:
        """Keep the camera streaming (viewers attach and detach freely). ``stop_live`` undoes it."""
        if not self._live_held:
            self.engine.hold()
            self._live_held = True

    def stop_live(self) -> None:
        if self._live_held:
            self.engine.release()
            self._live_held = False

    def live(self, **options: Any) -> LiveView:
        """An inline live view of this camera for Jupyter (``labcam.widget.LiveView``).

        The camera lives in this kernel, so frames reach the page through the widget's comm, with
        flow control. Options: ``fps``, ``quality``, ``max_width``. Needs the ``[jupyter]`` extra.
        """
        from .widget import LiveView  # lazy: scripts and servers never import widget code

        return LiveView(self, **options)

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the camera (and stop it if this object opened it).

        Recordings started here are stopped first: every frame they queued is written and their
        files are closed normally.
        """
        for rec in self._recordings:
            rec.stop(wait=True)
        self._recordings.clear()
        self.stop_live()
        if self._owns_engine:
            self.engine.close()

    def __repr__(self) -> str:
        d, s = self.description, self.settings
        x, y, w, h = s.roi
        return (
            f"<labcam.Camera {d.driver} {d.model!r} serial={d.serial} {w}x{h} {s.pixel_format} "
            f"exposure={s.exposure_ms:g} ms gain={s.gain_db:g} dB fps={s.fps:g} [{self.status.state}]>"
        )


__all__ = ["Camera", "FrameStream", "Stack", "FrameTimeout"]
