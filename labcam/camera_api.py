"""What every labcam camera offers a script, in-process (``Camera``) or remote (``RemoteCamera``).

``CameraAPI`` holds the parts that do not depend on where the camera lives (settings as
attributes, the context manager) and names the rest, so both facades keep one surface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .camera_info import CameraDescription, EngineStatus
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


_Stream = TypeVar("_Stream", bound="FrameStreamBase")


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


class CameraAPI(ABC):
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

    @abstractmethod
    def timelapse(
        self, n: int, interval_s: float, *, timeout: float = 5.0, progress: bool | None = None
    ) -> Stack: ...

    @abstractmethod
    def frames(self, *, timeout: float | None = 5.0, limit: int | None = None) -> Any: ...

    @abstractmethod
    def live(self, **options: Any) -> Any: ...

    @abstractmethod
    def close(self) -> None: ...

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
