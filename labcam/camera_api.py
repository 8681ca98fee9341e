"""What every labcam camera offers a script, in-process (``Camera``) or remote (``RemoteCamera``).

``CameraAPI`` holds the parts that do not depend on where the camera lives (settings as
attributes, the time-lapse pacing, the ``record`` front, the context manager) and names the rest,
so both facades keep one surface. ``StackFill`` is the one way an acquisition fills its ``Stack``.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar

import numpy as np

from .camera_info import CameraDescription, EngineStatus
from .errors import CameraError
from .frame import Frame, FrameMeta
from .settings import Settings, SettingSpecs

# Show a progress bar by default for acquisitions at least this long (frames).
PROGRESS_MIN_FRAMES = 100


@dataclass
class Stack:
    """Frames acquired together: ``array`` is (n, H, W) or (n, H, W, 3); ``meta`` one per frame.

    ``dropped`` counts frames the camera took during the acquisition that are not in the stack
    (camera-side gaps and frames the acquisition could not keep up with). ``np.asarray(stack)``
    gives the array.
    """

    array: np.ndarray
    meta: list[FrameMeta] = field(repr=False)
    dropped: int = 0

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype)

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int) -> Frame:
        return Frame(self.array[i], self.meta[i])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.array.dtype

    @property
    def frame_numbers(self) -> np.ndarray:
        return np.array([m.frame_number for m in self.meta], dtype=np.int64)

    @property
    def timestamps(self) -> np.ndarray:
        """Capture times, epoch seconds."""
        return np.array([m.timestamp for m in self.meta], dtype=np.float64)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.array.shape)
        return f"Stack({shape} {self.array.dtype}, dropped={self.dropped})"


class StackFill:
    """A ``Stack`` of ``n`` frames being filled, in arrival order, starting with ``first``.

    The array is allocated once, from the first frame; every later frame must have its shape and
    dtype (one stack holds one image shape), else ``add`` raises ``CameraError``.
    """

    def __init__(self, n: int, first: Frame) -> None:
        self._array = np.empty((n, *first.array.shape), dtype=first.array.dtype)
        self._meta: list[FrameMeta] = []
        self.add(first)

    @property
    def count(self) -> int:
        return len(self._meta)

    @property
    def full(self) -> bool:
        return len(self._meta) == len(self._array)

    @property
    def meta(self) -> list[FrameMeta]:
        return self._meta

    def add(self, frame: Frame) -> None:
        if frame.array.shape != self._array.shape[1:] or frame.array.dtype != self._array.dtype:
            raise CameraError(
                "the frame size or pixel format changed during the acquisition "
                f"({self._array.shape[1:]} {self._array.dtype} -> {frame.array.shape} {frame.array.dtype})"
            )
        self._array[len(self._meta)] = frame.array
        self._meta.append(frame.meta)

    def stack(self, dropped: int) -> Stack:
        return Stack(self._array, self._meta, dropped)


class RecordingRequest(TypedDict):
    """What ``record`` was asked for, as each kind of camera hands it on: when to stop, the format,
    and whether an existing file may be replaced."""

    frames: int | None
    duration: float | None
    format: str | None
    overwrite: bool


_Stream = TypeVar("_Stream", bound="FrameStreamBase")
# The handle ``record`` returns: ``labcam.recording.Recording`` in-process, ``RemoteRecording``.
_Recording = TypeVar("_Recording")


class FrameStreamBase(ABC):
    """The loop side of ``FrameStream`` and ``RemoteFrameStream``: ``for`` and ``async for``, ending
    (and closing) after ``limit`` frames if given, and the ``with`` block that closes it.

    Subclasses say how to wait for the next frame (``_next_frame``/``_anext_frame``, honouring
    ``self._timeout``) and how to ``close``.
    """

    def __init__(self, timeout: float | None, limit: int | None) -> None:
        self._timeout = timeout
        self._remaining = limit

    @abstractmethod
    def _next_frame(self) -> Frame: ...

    @abstractmethod
    async def _anext_frame(self) -> Frame: ...

    @abstractmethod
    def close(self) -> None: ...

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._remaining == 0:
            self.close()
            raise StopIteration
        frame = self._next_frame()
        if self._remaining is not None:
            self._remaining -= 1
        return frame

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        if self._remaining == 0:
            self.close()
            raise StopAsyncIteration
        frame = await self._anext_frame()
        if self._remaining is not None:
            self._remaining -= 1
        return frame

    def __enter__(self: _Stream) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CameraAPI(ABC, Generic[_Recording]):
    """The scripted acquisition API shared by ``labcam.open()`` and ``labcam.connect()`` cameras."""

    @property
    @abstractmethod
    def description(self) -> CameraDescription: ...

    @property
    @abstractmethod
    def status(self) -> EngineStatus: ...

    @property
    @abstractmethod
    def settings(self) -> Settings: ...

    @property
    @abstractmethod
    def specs(self) -> SettingSpecs:
        """What each setting allows (ranges, choices)."""

    @abstractmethod
    def set(self, **changes: Any) -> Settings:
        """Change several settings at once; all are validated before any is applied."""

    @abstractmethod
    def snap(self, *, timeout: float = 5.0, meta: bool = False) -> np.ndarray | Frame: ...

    @abstractmethod
    def acquire(self, n: int, *, timeout: float = 5.0, progress: bool | None = None) -> Stack: ...

    def timelapse(
        self, n: int, interval_s: float, *, timeout: float = 5.0, progress: bool | None = None
    ) -> Stack:
        """``n`` frames, one every ``interval_s`` seconds (the first now), paced by absolute deadlines.

        Each is the first frame captured at or after its deadline. The camera keeps streaming in
        between (one subscription, or one connection, stays open for the whole series), so other
        views stay live.
        """
        self._check_open()
        n = positive_int("n", n)
        if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r} is not allowed: a number of seconds > 0")
        frames: list[Frame] = []
        with self._timelapse_frames(timeout) as first_frame_at:
            start_wall, start = time.time(), time.monotonic()
            with progress_bar(n, progress if progress is not None else n >= 10, "time-lapse") as bar:
                for i in range(n):
                    delay = start + i * interval_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing the time-lapse itself, not synchronisation
                    frames.append(first_frame_at(start_wall + i * interval_s))
                    bar.update(1)
        array = np.stack([f.array for f in frames])
        return Stack(array, [f.meta for f in frames], dropped=0)

    @abstractmethod
    def _timelapse_frames(self, timeout: float) -> AbstractContextManager[Callable[[float], Frame]]:
        """The frame source of a time-lapse, open for the whole series: a function that waits for
        the first frame captured at or after a time (epoch seconds), ``FrameTimeout`` after ``timeout``."""

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        frames: int | None = None,
        duration: float | None = None,
        format: str | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> _Recording:
        """Record every frame to an OME-TIFF or OME-Zarr file, in the background; returns at once.

        The format follows the suffix (``.ome.tif``/``.ome.tiff``, ``.ome.zarr``) unless ``format``
        says ("ome-tiff", "ome-zarr"). Stops after ``frames`` frames, ``duration`` seconds, or
        ``rec.stop()``; an existing file is refused unless ``overwrite=True``. The handle has
        ``wait()``, ``stop()``, ``progress``, ``status()`` and ``error``; a live view keeps running
        meanwhile. See ``labcam.recording``.

        - ``labcam.open()`` camera: ``path`` is a file here. ``progress=True``/``False`` chooses the
          progress bar (default: shown for long recordings). The handle also has ``events``.
        - ``labcam.connect()`` camera: the **server** writes the file, at the camera's full rate,
          whatever this connection does. ``path`` is a name inside its recordings folder
          (``labcam serve --recordings-dir``, ``LabcamApp.recordings_dir``), such as
          ``"run1.ome.tif"`` or ``"day1/run1.ome.zarr"`` (sub-folders are created); absolute paths,
          ``..`` and names that lead out of the folder are refused with a ``ValueError`` saying why,
          and ``format`` adds its suffix to a bare name. The handle asks the server over REST.
          ``RecordingError`` when the server cannot record now (too many recordings running, folder
          not writable, camera lost).

        >>> rec = cam.record("run1.ome.tif", frames=500)   # doctest: +SKIP
        >>> rec.wait()                                     # doctest: +SKIP
        """
        request = RecordingRequest(frames=frames, duration=duration, format=format, overwrite=overwrite)
        return self._start_recording(path, request, **options)

    @abstractmethod
    def _start_recording(self, path: str | os.PathLike[str], request: RecordingRequest, **options: Any) -> _Recording:
        """Start the recording ``record`` was asked for and return its handle (``options``: the
        camera's own, such as an in-process camera's ``progress``)."""

    @abstractmethod
    def frames(self, *, timeout: float | None = 5.0, limit: int | None = None) -> Any: ...

    @abstractmethod
    def live(self, **options: Any) -> Any: ...

    @abstractmethod
    def close(self) -> None: ...

    def _check_open(self) -> None:
        """Raise ``CameraError`` if this camera was closed (an in-process engine checks by itself)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings as attributes ------------------------------------------------------------------
    @property
    def exposure_ms(self) -> float:
        return self.settings.exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        self.set(exposure_ms=value)

    @property
    def gain_db(self) -> float:
        return self.settings.gain_db

    @gain_db.setter
    def gain_db(self, value: float) -> None:
        self.set(gain_db=value)

    @property
    def fps(self) -> float:
        return self.settings.fps

    @fps.setter
    def fps(self, value: float) -> None:
        self.set(fps=value)

    @property
    def roi(self) -> tuple[int, int, int, int]:
        return self.settings.roi

    @roi.setter
    def roi(self, value: Sequence[int]) -> None:
        self.set(roi=tuple(value))

    @property
    def pixel_format(self) -> str:
        return self.settings.pixel_format

    @pixel_format.setter
    def pixel_format(self, value: str) -> None:
        self.set(pixel_format=value)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: a whole number >= 1")
    return int(value)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(total: int, show: bool | None, what: str) -> Any:
    """A tqdm progress bar (notebook-aware) when asked for or when ``total`` is large."""
    if show is None:
        show = total >= PROGRESS_MIN_FRAMES
    if not show:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the [jupyter] extra; scripts do fine without a bar
        return _NoProgress()
    return tqdm(total=total, desc=what, unit="frame", leave=False)
