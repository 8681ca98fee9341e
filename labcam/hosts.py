"""Camera hosts on this machine: every ``labcam serve`` announces itself in a runtime file.

While it runs, a host keeps one JSON file, ``labcam-host-<pid>-<port>.json``, in a per-user runtime
folder, as Jupyter servers keep their ``jpserver-<pid>.json``: its URL, the camera's driver, model
and serial, its pid and its token. Other labcam processes of the same user read these files to find
a camera that is already taken (``labcam info`` lists them; a relay will connect to them).

The files are written for the user alone: the folder is created 0700, each file is written 0600 to
a temporary file in the same folder and moved into place with ``os.replace``, so a reader never sees
half a file. A reader trusts only regular files that belong to the user and that nobody else may
read (on POSIX; on Windows the folder under ``%LOCALAPPDATA%`` is the user's by its ACL): anything
else is ignored with one warning, because a token must not leak and a file someone else planted must
not redirect anyone. A file whose process is gone (killed, crashed) is ignored and removed; a
garbled file or one of another schema is ignored with a warning naming the file and what is wrong,
and left for the user to look at. Listing never raises.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import socket
import stat
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import platformdirs

from ._version import __version__
from .camera_info import DEFAULT_CAMERA_ID

__all__ = [
    "RUNTIME_DIR_ENV",
    "HostInfo",
    "announce",
    "announced",
    "find_host",
    "host_holding",
    "pid_alive",
    "running_hosts",
    "runtime_dir",
    "withdraw",
]

log = logging.getLogger("labcam.hosts")

RUNTIME_DIR_ENV = "LABCAM_RUNTIME_DIR"
SCHEMA = "labcam-host/1"
FILE_PREFIX = "labcam-host-"
# A host file is a few hundred bytes; a reader does not slurp whatever big file sits in the folder.
MAX_FILE_BYTES = 64 * 1024


def runtime_dir() -> Path:
    """The folder of the host files: ``$LABCAM_RUNTIME_DIR``, else ``<user data dir>/labcam/runtime``.

    The user data dir is platformdirs' (``~/.local/share`` or ``$XDG_DATA_HOME`` on Linux,
    ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on Windows), as Jupyter keeps its
    runtime folder in its data dir. Not ``$XDG_RUNTIME_DIR``: a Jupyter server started by a service
    (JupyterHub, systemd) often lacks it while the desktop session that runs ``labcam serve`` has it,
    and the two must find each other.
    """
    override = os.environ.get(RUNTIME_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("labcam", appauthor=False) / "runtime"


@dataclass(frozen=True)
class HostInfo:
    """One running camera host, as its runtime file says. ``token`` stays inside labcam: never print it."""

    url: str  # the host's base URL, ending in "/" ("http://127.0.0.1:8001/")
    driver: str  # "pixelink" or "simulated": the (first) camera's
    model: str
    serial: str
    token: str | None = None
    cameras: tuple[str, ...] = (DEFAULT_CAMERA_ID,)  # the camera ids it serves
    pid: int = field(default_factory=os.getpid)
    hostname: str = field(default_factory=socket.gethostname)  # files of other machines are not judged
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    version: str = __version__  # labcam's

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "url": self.url,
            "driver": self.driver,
            "model": self.model,
            "serial": self.serial,
            "token": self.token,
            "cameras": list(self.cameras),
            "pid": self.pid,
            "hostname": self.hostname,
            "started": self.started.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Any) -> HostInfo:
        """Parse a host file's content; ``ValueError`` saying what is wrong. Unknown keys are allowed."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")

        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str):
                raise ValueError(f"{key!r} should be a string, got {value!r}")
            return value

        url = text("url")
        if not url.startswith(("http://", "https://")) or not url.endswith("/"):
            raise ValueError(f"'url' should be an http(s) URL ending in '/', got {url!r}")
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise ValueError("'token' should be a string or null")
        pid = data.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError(f"'pid' should be a whole number > 0, got {pid!r}")
        cameras = data.get("cameras")
        if not isinstance(cameras, list) or not cameras or not all(isinstance(c, str) for c in cameras):
            raise ValueError(f"'cameras' should be a non-empty list of camera ids, got {cameras!r}")
        try:
            started = datetime.fromisoformat(text("started"))
        except ValueError:
            raise ValueError(f"'started' should be an ISO 8601 time, got {data.get('started')!r}") from None
        return cls(
            url=url, driver=text("driver"), model=text("model"), serial=text("serial"), token=token,
            cameras=tuple(cameras), pid=pid, hostname=text("hostname"), started=started,
            version=text("version"),
        )

    def describe(self) -> str:
        """One line for people: no token, only whether there is one."""
        return (
            f"{self.url}  {self.driver} camera {self.model!r} (serial {self.serial})  pid {self.pid}  "
            f"token: {'yes' if self.token else 'no'}"
        )


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (another user's counts)."""
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _pid_alive_windows(pid: int) -> bool:
    # Not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT, which interrupts instead of asking.
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p  # a HANDLE: pointer-sized, not the default int
    kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    process_query_limited_information, error_access_denied, still_active = 0x1000, 5, 259
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == error_access_denied  # type: ignore[attr-defined]  # alive, not ours
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: keep the file rather than remove a live host's
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


# -- announcing ------------------------------------------------------------------------------------
def _file_name(info: HostInfo) -> str:
    # pid and port: one process may host several servers (BackgroundServer), never two on one port.
    parts = urllib.parse.urlsplit(info.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{FILE_PREFIX}{info.pid}-{port}.json"


def announce(info: HostInfo, directory: Path | None = None) -> Path:
    """Write ``info``'s runtime file (0600, atomically) and return its path; ``OSError`` if it can't."""
    directory = runtime_dir() if directory is None else directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / _file_name(info)
    # mkstemp opens with O_EXCL and mode 0600: the token is never readable by others, not even while
    # the file is written, and a planted symlink is not followed.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{FILE_PREFIX}", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info.to_dict(), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("announced %s in %s", info.url, path)
    return path


def withdraw(path: Path) -> None:
    """Remove a runtime file written by ``announce`` (already gone is fine)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the runtime file %s: %s", path, exc)


@contextmanager
def announced(info: HostInfo, directory: Path | None = None) -> Iterator[Path | None]:
    """Keep ``info`` announced while the block runs; removed however the block ends.

    A host that cannot write its file still serves: the failure is one warning, and the block gets
    ``None``. (A signal that the caller turns into a normal return, as ``labcam serve`` does with
    SIGINT/SIGTERM, ends the block; SIGKILL leaves the file, which readers clean up by its pid.)
    """
    try:
        path: Path | None = announce(info, directory)
    except OSError as exc:
        log.warning("could not write the runtime file that announces %s to other labcam processes: %s", info.url, exc)
        path = None
    try:
        yield path
    finally:
        if path is not None:
            withdraw(path)


# -- listing ----------------------------------------------------------------------------------------
def _read_trusted(path: Path) -> bytes:
    """The file's bytes if it is a regular file of this user that no one else may read, else ValueError."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if path.is_symlink():
            raise ValueError("it is a symbolic link, not a file labcam wrote") from None
        raise ValueError(f"it cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # of the file opened, not of whatever the name points at by now
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("it is not a regular file")
        if hasattr(os, "getuid"):
            if st.st_uid != os.getuid():
                raise ValueError(f"it belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})")
            if st.st_mode & 0o077:
                raise ValueError(
                    f"its mode is {stat.S_IMODE(st.st_mode):04o}: others may read it; labcam writes 0600"
                )
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"it is larger than {MAX_FILE_BYTES} bytes")
    return data


def _load(path: Path) -> HostInfo:
    data = _read_trusted(path)
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"it is not JSON ({exc})") from None
    return HostInfo.from_dict(content)


def running_hosts(directory: Path | None = None) -> list[HostInfo]:
    """The camera hosts of this user running on this machine, oldest first. Never raises.

    Files of dead processes are removed; untrusted, garbled and foreign-schema files are skipped with
    a warning each; files written on another machine (a shared home folder) are skipped silently.
    """
    directory = runtime_dir() if directory is None else directory
    try:
        paths = sorted(directory.glob(f"{FILE_PREFIX}*.json"))
    except OSError as exc:
        log.warning("cannot list the labcam runtime folder %s: %s", directory, exc)
        return []
    here = socket.gethostname()
    hosts = []
    for path in paths:
        try:
            info = _load(path)
        except FileNotFoundError:
            continue  # its host withdrew it just now
        except ValueError as exc:
            log.warning("ignoring the labcam runtime file %s: %s", path, exc)
            continue
        if info.hostname != here:
            continue
        if not pid_alive(info.pid):
            log.info("removing the runtime file of a labcam host that is gone (pid %d): %s", info.pid, path)
            withdraw(path)
            continue
        hosts.append(info)
    return sorted(hosts, key=lambda h: h.started)


def find_host(
    *, driver: str | None = None, serial: str | int | None = None, directory: Path | None = None
) -> HostInfo | None:
    """The oldest running host whose camera has this driver and serial (``None`` matches any)."""
    for host in running_hosts(directory):
        if (driver is None or host.driver == driver) and (serial is None or host.serial == str(serial)):
            return host
    return None


def host_holding(driver: str, serial: str | int | None = None, directory: Path | None = None) -> HostInfo | None:
    """The running labcam host that holds a ``driver`` camera (with ``serial``, or any when None).

    What ``auto`` asks before falling back to the simulator, and what a "camera busy" error names:
    a camera another labcam process streams is relayed from it, never replaced by a simulation.
    """
    return find_host(driver=driver, serial=serial, directory=directory)
