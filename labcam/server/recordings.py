"""Recordings started over the network: the service's ``RecordingManager`` and the ``record`` message's answers.

A recording is the recorder of ``labcam.recording`` (every frame, full bit depth, its own thread and
bounded buffer) started by a remote client. What the network adds, and where it lives:

- ``RecordingManager`` (one per ``LabcamService``): owns the recordings the server started — at most
  ``max_active`` at once (409 beyond), finished ones kept in a bounded history so a client can read
  how its recording ended. Every name goes through ``resolve_recording_path``: it must stay inside
  the recordings folder (absolute paths, ``..``, links out of it and existing files without
  ``overwrite`` are refused with a ``ValueError`` whose message the client sees). Progress is
  announced to every stream client as ``recording`` messages about once a second and when a
  recording starts and ends (the recorder's events come on its own thread; the manager only hands
  a text to ``notify``, which the service moves onto the event loop).
- ``answer_record``: the answer to the stream's ``{"type": "record", "action": "start" | "stop" |
  "status"}`` message (``StreamHandler`` queues them per client, so they are answered in order).

No tornado here: the REST handlers over the manager are ``labcam.server.recording_handlers``.

The folder is created when the first recording starts, not when the server starts, so a server
that never records leaves no empty folder behind.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..errors import CameraError, LabcamError
from ..recording import Recorder, RecordingError, RecordingProgress, resolve_recording_path
from ..recording.paths import DEFAULT_SUFFIX, format_from_suffix, normalize_format
from ..wire import only_fields, record_error_message, recording_message, recordings_message

log = logging.getLogger("labcam.server.recordings")

# Recordings running at once. Each holds a buffer of up to 1 GiB / 25 % of memory and one disk
# stream; a few are plenty for a lab camera and keep a client from exhausting either.
MAX_ACTIVE = 4
# Finished recordings whose final status stays readable (GET api/recordings/<id>).
HISTORY = 32
# How often progress is announced to stream clients while a recording runs (plus start and end).
NOTICE_INTERVAL_S = 1.0
# How long a stop request waits for the recording to write its queued frames and close the file
# before answering with the state it has reached (it finishes anyway; a later status says so).
# Shorter than HTTP clients' usual 10 s timeout (labcam.connect's default).
STOP_WAIT_S = 5.0
# ``record`` messages one stream client may have waiting (each is answered in order).
MAX_RECORD_WAITING = 8
START_FIELDS = ("name", "frames", "duration", "format", "overwrite")
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"


class RecordingConflict(LabcamError):
    """A recording cannot start now (too many running, the same file is being recorded): HTTP 409."""


# -- requests ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartRequest:
    """What a client asked to record; ``parse`` validates a REST body or a ``record`` message."""

    name: str
    frames: int | None = None
    duration: float | None = None
    format: str | None = None
    overwrite: bool = False

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> StartRequest:
        """Raises ``ValueError`` naming the field, the value and what is allowed."""
        unknown = [k for k in body if k not in START_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(map(repr, unknown))}: a recording takes {', '.join(START_FIELDS)}"
            )
        if "name" not in body or body["name"] is None:
            raise ValueError(
                "a recording needs a 'name', such as 'run1.ome.tif' or 'day1/run1.ome.zarr' "
                "(a file in the server's recordings folder)"
            )
        name = body["name"]
        if not isinstance(name, str):
            raise ValueError(f"name={name!r} is not allowed: a text such as 'run1.ome.tif'")
        frames = _whole_or_none("frames", body.get("frames"))
        duration = _seconds_or_none("duration", body.get("duration"))
        fmt = body.get("format")
        if fmt is not None:
            fmt = normalize_format(fmt)  # ValueError: 'ome-tiff' or 'ome-zarr'
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise ValueError(f"overwrite={overwrite!r} is not allowed: true or false")
        return cls(name, frames, duration, fmt, overwrite)

    def file_name(self) -> str:
        """The name to resolve: with the format's suffix added when the name has no known suffix."""
        if self.format is not None and format_from_suffix(self.name) is None:
            return self.name + DEFAULT_SUFFIX[self.format]  # type: ignore[index]
        return self.name


def _whole_or_none(name: str, value: Any) -> int | None:
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and value == int(value)
    if not ok or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: a whole number >= 1 (or leave it out)")
    return int(value)


def _seconds_or_none(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed: a number of seconds > 0 (or leave it out)")
    return float(value)


# -- the manager ----------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Entry:
    """One recording the manager started (while it runs)."""

    manager: RecordingManager
    id: str
    name: str  # relative to the recordings folder, as stored
    recorder: Recorder
    started_at: float  # epoch seconds
    last_notice: float = field(default=0.0)

    def status(self) -> dict[str, Any]:
        return network_status(self.id, self.name, self.started_at, self.recorder.status())

    # psygnal calls these on the recorder thread: keep them short (a text to hand on).
    def on_progress(self, progress: RecordingProgress) -> None:
        now = time.monotonic()
        if now - self.last_notice >= NOTICE_INTERVAL_S:
            self.last_notice = now
            self.manager._announce(self.status(), "progress")

    def on_finished(self, progress: RecordingProgress) -> None:
        self.manager._finished(self)


def network_status(rec_id: str, name: str, started_at: float, status: Mapping[str, Any]) -> dict[str, Any]:
    """A recorder's ``status()`` as clients see it: with ``id`` and ``name``, without the server's
    absolute ``path`` (a client names files relative to the recordings folder)."""
    out: dict[str, Any] = {"id": rec_id, "name": name, "started_at": round(started_at, 3)}
    out.update((k, v) for k, v in status.items() if k != "path")
    return out


class RecordingManager:
    """The recordings a server started: start (confined to ``root``), stop, status, history.

    Thread-safe: REST and stream handlers call the blocking methods (``start``, ``stop``, ``close``)
    off the event loop; the recorders' events arrive on their own threads. ``notify(text)`` receives
    each ``recording`` broadcast (a JSON text) from any thread: the service hops it onto the loop.
    """

    def __init__(
        self,
        engine: Engine,
        root: str | os.PathLike[str] = "recordings",
        *,
        max_active: int = MAX_ACTIVE,
        history: int = HISTORY,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 1:
            raise ValueError(f"max_recordings={max_active!r} is not allowed: a whole number >= 1")
        self.engine = engine
        # Absolute now: a relative folder must not move if the process changes directory later.
        self.root = Path(os.path.abspath(Path(os.fspath(root)).expanduser()))
        self.max_active = max_active
        self.history = max(0, int(history))
        self._notify = notify
        self._lock = threading.RLock()
        self._active: dict[str, _Entry] = {}
        self._done: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ids = itertools.count(1)
        self._closed = False

    # -- queries ----------------------------------------------------------------------------------
    @property
    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    def list(self) -> list[dict[str, Any]]:
        """Every recording known, oldest first: the finished ones kept, then those running."""
        with self._lock:
            done = list(self._done.values())
            running = list(self._active.values())
        return done + [e.status() for e in running]

    def status(self, rec_id: str) -> dict[str, Any]:
        """One recording's status; ``KeyError`` for an unknown (or forgotten) id."""
        with self._lock:
            entry = self._active.get(rec_id)
            if entry is None:
                return dict(self._done[rec_id])
        return entry.status()

    def wait(self, rec_id: str, timeout: float | None = None) -> bool:
        """Block until a recording has finished and its file is closed (False after ``timeout`` s).

        For code in the server's process (and tests); clients follow ``recording`` messages or poll
        ``GET api/recordings/<id>``. ``KeyError`` for an unknown id.
        """
        with self._lock:
            entry = self._active.get(rec_id)
            if entry is None:
                if rec_id not in self._done:
                    raise KeyError(rec_id)
                return True
        return entry.recorder.wait(timeout, raise_error=False)

    # -- start and stop ---------------------------------------------------------------------------
    def start(self, request: StartRequest) -> dict[str, Any]:
        """Create the file and start recording; returns the status. Blocking (creates the file).

        Raises ``ValueError`` (a bad or refused name; nothing is created), ``RecordingConflict``
        (too many running, or that file is being recorded), ``RecordingError`` (the folder or file
        cannot be written, the camera cannot start).
        """
        with self._lock:  # one start at a time: two requests for one name cannot both pass the checks
            if self._closed:
                raise RecordingConflict("the server is shutting down: no new recordings")
            if len(self._active) >= self.max_active:
                running = ", ".join(f"{e.id} ({e.name})" for e in self._active.values())
                raise RecordingConflict(
                    f"{len(self._active)} recordings are running already (at most {self.max_active}): {running}; "
                    "stop one first"
                )
            self._ensure_root()
            path = resolve_recording_path(self.root, request.file_name(), overwrite=request.overwrite)
            name = path.relative_to(Path(os.path.realpath(self.root))).as_posix()
            for other in self._active.values():
                if Path(other.recorder.path) == path:
                    raise RecordingConflict(f"{name!r} is being recorded right now ({other.id}); choose another name")
            # Recorder creates the file (errors surface here, not later on its thread); events are
            # connected before start() so a very short recording cannot finish unseen.
            rec = Recorder(
                self.engine, path, frames=request.frames, duration=request.duration,
                format=request.format, overwrite=request.overwrite,
            )
            entry = _Entry(self, f"r{next(self._ids)}-{secrets.token_hex(2)}", name, rec, time.time())
            rec.events.progress.connect(entry.on_progress)
            rec.events.finished.connect(entry.on_finished)
            self._active[entry.id] = entry
            try:
                rec.start()  # a camera that cannot start: RecordingError, the (empty) file closed
            except BaseException:
                self._active.pop(entry.id, None)
                raise
        log.info("recording %s started: %s (frames=%s, duration=%s)", entry.id, name, request.frames, request.duration)
        status = entry.status()
        self._announce(status, "started")
        return status

    def stop(self, rec_id: str, timeout: float | None = STOP_WAIT_S) -> dict[str, Any]:
        """Stop a recording (queued frames are still written) and wait up to ``timeout`` s for its
        file to close; returns its status then. A finished recording answers with its final status.
        ``KeyError`` for an unknown id. Blocking."""
        with self._lock:
            entry = self._active.get(rec_id)
            if entry is None:
                return dict(self._done[rec_id])
        entry.recorder.stop(wait=True, timeout=timeout)
        return self.status(rec_id)

    def close(self, timeout: float = 30.0) -> None:
        """Stop every recording and wait for their files to close (server shutdown). Blocking."""
        with self._lock:
            self._closed = True
            entries = list(self._active.values())
        deadline = time.monotonic() + timeout
        for entry in entries:
            entry.recorder.stop(wait=True, timeout=max(0.0, deadline - time.monotonic()))

    # -- internals ----------------------------------------------------------------------------------
    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create the recordings folder {str(self.root)!r}: {exc}", "disk") from exc

    def _finished(self, entry: _Entry) -> None:
        status = entry.status()
        with self._lock:
            self._active.pop(entry.id, None)
            self._done[entry.id] = status
            while len(self._done) > self.history:
                self._done.popitem(last=False)
        if status.get("error"):
            log.warning("recording %s (%s) failed after %d frames: %s", entry.id, entry.name, status["frames_written"], status["error"])
        else:
            log.info("recording %s (%s) done: %d frames", entry.id, entry.name, status["frames_written"])
        self._announce(status, "finished")

    def _announce(self, status: Mapping[str, Any], event: str) -> None:
        if self._notify is None:
            return
        try:
            self._notify(recording_message(status, event=event))
        except Exception:  # noqa: BLE001 - telling viewers must never break a recording
            log.exception("announcing recording %s failed", status.get("id"))


# -- the stream's record message ---------------------------------------------------------------------------
async def answer_record(manager: RecordingManager, msg: dict[str, Any], request_id: Any = None) -> str:
    """The answer to ``{"type": "record", "action": ...}`` from a stream client.

    ``start`` (with ``name`` and optionally ``frames``, ``duration``, ``format``, ``overwrite``),
    ``stop`` (``id``) and ``status`` (``id``, or none for every recording) are answered with a
    ``recording`` (``recordings``) message carrying ``"reply": action``; a request that cannot be
    done with an ``error`` whose ``request`` is ``"record"``. The blocking manager calls run off the
    loop.
    """
    try:
        return await _record_reply(manager, msg, request_id)
    except (ValueError, RecordingConflict, RecordingError, CameraError) as exc:  # ProtocolError is a ValueError
        return record_error_message(str(exc), msg.get("action"), request_id)


async def _record_reply(manager: RecordingManager, msg: dict[str, Any], request_id: Any) -> str:
    action = msg.get("action")
    loop = asyncio.get_running_loop()
    if action == "start":
        only_fields(msg, ("action", *START_FIELDS))
        request = StartRequest.parse({k: msg[k] for k in START_FIELDS if k in msg})
        status = await loop.run_in_executor(None, manager.start, request)
        return recording_message(status, reply="start", request_id=request_id)
    if action in ("stop", "status"):
        only_fields(msg, ("action", "id"))
        rec_id = msg.get("id")
        if action == "status" and rec_id is None:
            return recordings_message(manager.list(), manager.max_active, request_id)
        if not isinstance(rec_id, str) or not rec_id:
            raise ValueError(f"id={rec_id!r} is not allowed: the id of a recording (from its 'recording' message)")
        try:
            if action == "stop":
                status = await loop.run_in_executor(None, manager.stop, rec_id)
            else:
                status = manager.status(rec_id)
        except KeyError:
            raise ValueError(f"no recording {rec_id!r}") from None
        return recording_message(status, reply=action, request_id=request_id)
    raise ValueError(f"action={action!r} is not allowed: 'start', 'stop' or 'status'")


__all__ = [
    "HISTORY",
    "MAX_ACTIVE",
    "MAX_RECORD_WAITING",
    "RecordingConflict",
    "RecordingManager",
    "StartRequest",
    "answer_record",
    "network_status",
]
