"""``RemoteCamera``: the scripted camera API of ``labcam.Camera``, for a camera another process serves.

Frames come over the raw WebSocket (``FrameSocket``): ``acquire(n)`` reads every frame in order
(``mode=all``), ``snap``/``frames``/``timelapse`` pull the newest (``mode=latest``). Settings and
descriptions go over REST (``api/camera...``), recordings too (``RemoteRecording``). The server's
JSON answers become labcam's value types here (``Settings``, ``SettingSpecs``, ``CameraDescription``,
``EngineStatus``).
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, overload

import numpy as np

from ..camera_api import CameraAPI, FrameStreamBase, RecordingRequest, Stack, StackFill, positive_int, progress_bar
from ..camera_info import CameraDescription, EngineStatus
from ..errors import CameraError, LabcamError
from ..frame import Frame
from ..settings import Settings, SettingSpec, SettingSpecs
from .preview import RemotePreview
from .recording import RemoteRecording
from .transport import NETWORK_SLACK_S, FrameSocket, HttpClient, IOThread

# How often a waiting acquisition updates its progress bar.
PROGRESS_INTERVAL_S = 0.1
_SETTING_FIELDS = ("exposure_ms", "gain_db", "fps", "roi", "pixel_format", "trigger_mode")


class RemoteFrameStream(FrameStreamBase):
    """Frames as they arrive from a remote camera, for ``for`` and ``async for`` loops.

    Like ``labcam.FrameStream``: latest frame wins (a slow loop skips frames, counted in
    ``missed``), iteration ends after ``limit`` frames, a gap longer than ``timeout`` raises
    ``FrameTimeout``. Close it (or leave the ``with`` block) to release the connection.
    """

    def __init__(self, camera: RemoteCamera, timeout: float | None, limit: int | None) -> None:
        super().__init__(timeout, limit)
        self._camera = camera
        self._sock: FrameSocket | None = None
        self._closed = False
        self.missed = 0

    async def _receive(self) -> Frame:
        if self._closed:
            raise CameraError("this frame stream is closed")
        if self._sock is None:
            self._sock = await FrameSocket.open(self._camera._http, {"mode": "latest"})
        if self._sock.outstanding == 0:
            await self._sock.request()
        frame, header = await self._sock.receive(self._timeout)
        self.missed += int(header.get("missed", 0))
        return frame

    def _next_frame(self) -> Frame:
        return self._camera._io.run(self._receive(), None)

    async def _anext_frame(self) -> Frame:
        return await self._camera._io.run_async(self._receive())

    def close(self) -> None:
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            self._camera._io.loop.call_soon_threadsafe(sock.close)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the loop may be gone already
            pass


class RemoteCamera(CameraAPI[RemoteRecording]):
    """A camera served by another process, with the API of ``labcam.Camera``. Create with
    ``labcam.connect()``.

    >>> cam = labcam.connect()                        # doctest: +SKIP
    >>> img = cam.snap()                              # full bit depth numpy array
    >>> stack = cam.acquire(100)                      # every frame, in order, with metadata
    >>> cam.exposure_ms = 5                           # SettingError names the allowed range

    ``url`` is the labcam root (``.../labcam/`` inside Jupyter); ``token`` the one used.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout = timeout
        self._http = HttpClient(self.url, token, timeout)
        self._io = IOThread.get()
        self._description: CameraDescription | None = None
        self._specs: SettingSpecs | None = None
        self._live: FrameSocket | None = None
        self._closed = False

    # -- what it is ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``GET api/camera``: description, settings, specs and state in one answer."""
        return dict(self._http.request("GET", "api/camera"))

    @property
    def description(self) -> CameraDescription:
        if self._description is None:  # never changes while the camera is open
            self._description = _description_from_dict(self.info()["camera"])
        return self._description

    @property
    def status(self) -> EngineStatus:
        """The server's engine status (state, frames, dropped, measured fps)."""
        stats = self._http.request("GET", "api/camera/stats")
        cam = dict(stats.get("camera", {}))
        return EngineStatus(
            state=str(cam.get("state", "unknown")),
            frames=int(cam.get("frames", 0)),
            dropped=int(cam.get("dropped", 0)),
            timeouts=int(cam.get("timeouts", 0)),
            fps=float(cam.get("fps", 0.0)),
            consumers=int(cam.get("consumers", 0)),
            message=str(cam.get("message", "")),
        )

    # -- settings -------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return _settings_from_dict(self._http.request("GET", "api/camera/settings"))

    @property
    def specs(self) -> SettingSpecs:
        """What each setting allows (ranges, choices)."""
        if self._specs is None:
            self._specs = _specs_from_dict(self.info().get("specs", {}))
        return self._specs

    def set(self, **changes: Any) -> Settings:
        """Change several settings at once; all are validated (by the server) before any is applied.

        Raises ``SettingError`` naming the setting, the value and the allowed range.
        """
        if "roi" in changes and changes["roi"] is not None and not isinstance(changes["roi"], str):
            try:
                changes["roi"] = [int(v) if isinstance(v, (int, np.integer)) else v for v in changes["roi"]]
            except TypeError:
                pass  # not a sequence: let the server say what is allowed
        return _settings_from_dict(self._http.request("PATCH", "api/camera/settings", changes))

    # -- acquisition ----------------------------------------------------------------------------
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def snap(self, *, timeout: float = ..., meta: Literal[True]) -> Frame: ...

    def snap(self, *, timeout: float = 5.0, meta: bool = False) -> np.ndarray | Frame:
        """The next full-resolution frame captured after this call, at full bit depth.

        Works while live views stream, without disturbing them. The array is read-only, like an
        in-process snap: ``.copy()`` it to modify.
        """
        self._check_open()

        async def one() -> Frame:
            sock = await FrameSocket.open(self._http, {"mode": "latest", "count": 1})
            try:
                return await sock.next_latest(timeout)
            finally:
                sock.close()

        frame = self._io.run(one(), timeout + self.timeout + NETWORK_SLACK_S)
        return frame if meta else frame.array

    def frames(self, *, timeout: float | None = 5.0, limit: int | None = None) -> RemoteFrameStream:
        """Iterate over frames as they arrive (newest first when the loop is slow), sync or async.

        >>> for frame in cam.frames(limit=100):            # doctest: +SKIP
        ...     process(frame.array)
        """
        self._check_open()
        if limit is not None:
            limit = positive_int("limit", limit)
        return RemoteFrameStream(self, timeout, limit)

    def acquire(self, n: int, *, timeout: float = 5.0, progress: bool | None = None) -> Stack:
        """``n`` consecutive frames as a ``Stack`` (every frame the camera delivers, in order).

        Frames the camera skipped, or that the server could not buffer for this connection, are
        counted in ``Stack.dropped``, never hidden. Raises ``FrameTimeout`` if no frame comes for
        ``timeout`` seconds.
        """
        self._check_open()
        n = positive_int("n", n)
        done = [0]  # frames in the stack so far, for the progress bar
        # The whole acquisition runs on the IO thread: receiving and copying into the stack in one
        # place avoids a thread hand-off (and GIL ping-pong) per frame, which halved the rate.
        fut = self._io.submit(self._acquire(n, timeout, done))
        try:
            with progress_bar(n, progress, "acquire") as bar:
                shown = 0
                while True:
                    finished, _ = concurrent.futures.wait([fut], timeout=PROGRESS_INTERVAL_S)
                    if done[0] > shown:
                        bar.update(done[0] - shown)
                        shown = done[0]
                    if finished:
                        return fut.result()
        except BaseException:
            fut.cancel()  # Ctrl-C in a notebook: stop reading, which closes the connection
            raise

    async def _acquire(self, n: int, timeout: float, done: list[int]) -> Stack:
        sock = await FrameSocket.open(self._http, {"mode": "all", "count": n})
        try:
            # The first frame may wait for the camera to start; later ones come at the camera's rate.
            first, header = await sock.receive(timeout + NETWORK_SLACK_S)
            fill = StackFill(n, first)
            done[0] = fill.count
            dropped = 0
            while not fill.full:
                frame, header = await sock.receive(timeout)
                dropped += frame.meta.dropped_before + int(header.get("missed", 0))
                fill.add(frame)
                done[0] = fill.count
        finally:
            sock.close()
        return fill.stack(dropped)

    @contextmanager
    def _timelapse_frames(self, timeout: float) -> Iterator[Callable[[float], Frame]]:
        # One connection for the whole series keeps the camera streaming in between.
        io = self._io
        sock = io.run(FrameSocket.open(self._http, {"mode": "latest"}), self.timeout + NETWORK_SLACK_S)

        def first_frame_at(due: float) -> Frame:
            # "fresh": the server answers with a frame captured after this request, so after ``due``.
            return io.run(sock.next_latest(timeout, fresh=True))

        try:
            yield first_frame_at
        finally:
            io.loop.call_soon_threadsafe(sock.close)

    # -- recording ------------------------------------------------------------------------------
    def _start_recording(self, path: str | os.PathLike[str], request: RecordingRequest) -> RemoteRecording:
        self._check_open()
        return RemoteRecording.start(self._http, path, request)

    # -- live -----------------------------------------------------------------------------------
    def live(self, **options: Any) -> Any:
        """The live view of this camera in a notebook: the browser opens the server's stream itself,
        so frames never pass through the kernel (when the page cannot reach the stream, the view
        falls back to frames through this connection)."""
        try:
            from ..widget import LiveView
        except ImportError as exc:
            raise LabcamError(f"the live view needs labcam.widget and the [jupyter] extra: {exc}") from exc
        return LiveView(self, **options)

    def preview(
        self,
        *,
        view: tuple[int, int, int, int] | str | None = None,
        size: tuple[int, int] | None = None,
        encoding: Literal["raw", "jpeg", "h264"] = "raw",
        compression: Literal["deflate", "zstd", "lz4", "none"] | None = None,
        quality: int | None = None,
        display: tuple[int, int] | str | None = None,
        fps: float | None = None,
        timeout: float | None = 5.0,
    ) -> RemotePreview:
        """The live preview stream, as the browser's viewers get it: a region of the sensor
        (``view``: (x, y, w, h) in sensor pixels, default the whole sensor), reduced by the server to
        fit ``size`` (w, h) if given, as raw counts at full bit depth (``encoding="raw"``, exact),
        the 8-bit JPEG viewers see, or H.264 decoded with PyAV to the 8-bit luma (``"h264"``: the whole
        sensor, fewest bytes; ``view``/``size`` do not apply). Latest frame wins.

        >>> with cam.preview(view=(1000, 800, 256, 256)) as stream:   # doctest: +SKIP
        ...     f = stream.next()
        ...     f.array, f.view, f.saturated, f.histogram

        A bad option raises ``ValueError`` naming it (from the server, on the first frame or at once
        in ``configure``). For every frame at full resolution and in order, use ``acquire``.
        """
        self._check_open()
        options = {
            "view": view, "size": size, "encoding": encoding, "compression": compression,
            "quality": quality, "display": display, "fps": fps,
        }
        return RemotePreview(self._http, self._io, options, timeout)

    def start_live(self) -> None:
        """Keep the camera streaming (a connection that asks for nothing). ``stop_live`` undoes it."""
        self._check_open()
        if self._live is None:
            self._live = self._io.run(FrameSocket.open(self._http, {"mode": "latest"}), self.timeout + NETWORK_SLACK_S)

    def stop_live(self) -> None:
        sock, self._live = self._live, None
        if sock is not None:
            self._io.loop.call_soon_threadsafe(sock.close)

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Drop this process's hold on the camera; the server and its other clients carry on."""
        self.stop_live()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise CameraError("this RemoteCamera is closed")

    def __repr__(self) -> str:
        try:
            d, s = self.description, self.settings
        except LabcamError as exc:
            return f"<labcam.RemoteCamera {self.url} (unreachable: {exc})>"
        x, y, w, h = s.roi
        return (
            f"<labcam.RemoteCamera {self.url} {d.driver} {d.model!r} serial={d.serial} {w}x{h} "
            f"{s.pixel_format} exposure={s.exposure_ms:g} ms gain={s.gain_db:g} dB fps={s.fps:g}>"
        )


# -- the server's JSON as value types ------------------------------------------------------------
def _settings_from_dict(d: dict[str, Any]) -> Settings:
    values = {k: d[k] for k in _SETTING_FIELDS if k in d}
    if "roi" in values:
        values["roi"] = tuple(int(v) for v in values["roi"])
    # A camera without a feature leaves its setting out (Settings.absent): hold a neutral value.
    neutral = {"gain_db": 0.0, "fps": 1000.0 / float(values.get("exposure_ms") or 1000.0),
               "roi": (0, 0, 0, 0), "trigger_mode": "free_running"}
    absent = frozenset(k for k in neutral if k not in values)
    return Settings(**{**{k: neutral[k] for k in absent}, **values}, absent=absent)


def _description_from_dict(d: dict[str, Any]) -> CameraDescription:
    known = {
        "driver", "model", "serial", "sensor_width", "sensor_height", "pixel_formats", "max_bit_depth",
        "firmware", "pixel_size_um",
    }
    values = {k: d[k] for k in known if k in d}
    values["pixel_formats"] = tuple(values.get("pixel_formats", ()))
    extra = {k: str(v) for k, v in d.items() if k not in known}
    return CameraDescription(**values, extra=extra)


def _specs_from_dict(d: dict[str, Any]) -> SettingSpecs:
    specs = {}
    for name, s in d.items():
        specs[name] = SettingSpec(
            name=name,
            kind=s["kind"],
            unit=s.get("unit", ""),
            minimum=s.get("minimum"),
            maximum=s.get("maximum"),
            choices=tuple(s.get("choices", ())),
            sensor=tuple(s.get("sensor", (0, 0))),  # type: ignore[arg-type]
            step=int(s.get("step", 1)),
            settable_while_streaming=bool(s.get("settable_while_streaming", True)),
        )
    return SettingSpecs(specs)


__all__ = ["RemoteCamera", "RemoteFrameStream"]
