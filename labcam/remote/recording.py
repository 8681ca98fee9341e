"""``RemoteRecording``: a recording the server runs, followed over REST (``api/recordings``).

The server writes the file, at the camera's full rate, whatever the connection that started it
does; this handle asks the server for its state (REST has no push: it polls, slowly for long
recordings) and stops it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import PurePath
from typing import Any

from ..camera_api import RecordingRequest
from ..recording import RecordingError, RecordingProgress
from .transport import HttpClient

# How often RemoteRecording.wait asks the server for the recording's state: often at first (short
# recordings end quickly), then every half second (a long one costs a request or two per second).
RECORDING_POLL_MIN_S = 0.02
RECORDING_POLL_MAX_S = 0.5


class RemoteRecording:
    """A recording the server runs, started by ``RemoteCamera.record``: the same handle as
    ``Camera.record``'s, following it over REST (``api/recordings/<id>``).

    ``id`` and ``name`` (inside the server's recordings folder) identify it. The recording does not
    depend on this object: dropping it, or this process ending, does not stop it (``stop()`` or
    ``with cam.record(...) as rec:`` does).
    """

    def __init__(self, http: HttpClient, status: Mapping[str, Any]) -> None:
        self._http = http
        self._status: dict[str, Any] = dict(status)
        self.id = str(status["id"])
        self.name = str(status["name"])

    @classmethod
    def start(cls, http: HttpClient, path: str | os.PathLike[str], request: RecordingRequest) -> RemoteRecording:
        """Ask the server to record (``POST api/recordings``); ``RemoteCamera.record`` says how."""
        name = PurePath(path).as_posix() if isinstance(path, os.PathLike) else path
        body: dict[str, Any] = {"name": name, "overwrite": request["overwrite"]}
        for key in ("frames", "duration", "format"):
            if request[key] is not None:
                body[key] = request[key]
        status = http.request(
            "POST", "api/recordings", body,
            errors={
                400: lambda message, data: ValueError(message),
                409: lambda message, data: RecordingError(message, "busy"),
                503: lambda message, data: RecordingError(message, _reason(data, "camera")),
            },
        )
        return cls(http, status)

    def status(self) -> dict[str, Any]:
        """The server's status now: ``state`` ("recording", "finishing", "done", "failed"),
        ``frames_written``, ``mb_per_s``, ``dropped``, ``error``, ...; the last one known once the
        recording has finished."""
        if self._status.get("state") not in ("done", "failed"):
            self._status = dict(self._http.request("GET", f"api/recordings/{self.id}"))
        return dict(self._status)

    @property
    def progress(self) -> RecordingProgress:
        """``status()`` as a ``labcam.recording.RecordingProgress`` (``path`` is the name on the server)."""
        return _progress_from_status(self.status())

    @property
    def state(self) -> str:
        return str(self.status()["state"])

    @property
    def done(self) -> bool:
        """True once the server has closed the file (whether the recording succeeded or not)."""
        return self.status()["state"] in ("done", "failed")

    @property
    def error(self) -> RecordingError | None:
        """Why the recording failed (as the server said), or None."""
        st = self._status if self._status.get("state") in ("done", "failed") else self.status()
        if st.get("state") != "failed" and not st.get("error"):
            return None
        return RecordingError(str(st.get("error") or "the recording failed"), str(st.get("stop_reason") or "error"))

    def wait(self, timeout: float | None = None, *, raise_error: bool = True) -> bool:
        """Block until the server has finished the recording and closed its file.

        Returns False if ``timeout`` seconds passed first. If it failed, raises its
        ``RecordingError`` (``raise_error=False``: returns True and leaves it in ``error``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = RECORDING_POLL_MIN_S
        while not self.done:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # REST has no push: ask again after a short pause (growing, so a long recording costs
            # about two requests a second).
            time.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 1.5, RECORDING_POLL_MAX_S)
        error = self.error
        if raise_error and error is not None:
            raise error
        return True

    def stop(self, *, wait: bool = True, timeout: float | None = None) -> RecordingProgress:
        """End the recording: the server still writes the frames it queued, then closes the file.

        Returns the progress (final when ``wait`` is true and it finished within ``timeout``).
        Never raises for a failed recording: look at ``error``.
        """
        if self._status.get("state") not in ("done", "failed"):
            # The server answers once the file is closed, or after a few seconds with the state reached.
            self._status = dict(self._http.request("POST", f"api/recordings/{self.id}/stop"))
        if wait:
            self.wait(timeout, raise_error=False)
        return _progress_from_status(self._status)

    def __enter__(self) -> RemoteRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        st = self._status
        target = f"/{st['frames_target']}" if st.get("frames_target") else ""
        return (
            f"<RemoteRecording {self.id} {self.name!r} on {self._http.root} {st.get('state')} "
            f"{st.get('frames_written', 0)}{target} frames, dropped={st.get('dropped', 0)}>"
        )


def _progress_from_status(status: Mapping[str, Any]) -> RecordingProgress:
    """A ``RecordingProgress`` from a status dict of the server (unknown fields ignored)."""
    values = {f.name: status.get(f.name) for f in fields(RecordingProgress)}
    values["path"] = str(status.get("name", ""))
    for name in ("frames_written", "bytes_written", "dropped_camera", "dropped_overflow", "buffered",
                 "buffer_capacity", "interruptions"):
        values[name] = int(values[name] or 0)
    for name in ("elapsed_s", "mb_per_s", "write_mb_per_s", "fps"):
        values[name] = float(values[name] or 0.0)
    return RecordingProgress(**values)


def _reason(data: Any, default: str) -> str:
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) and reason else default


__all__ = ["RemoteRecording"]
