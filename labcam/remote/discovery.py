"""Which Jupyter server this kernel belongs to, for ``labcam.connect()`` without a URL.

A running Jupyter server leaves a ``jpserver-<pid>.json`` file (its URL, token and root folder) in
Jupyter's runtime directory. ``discover_jupyter_server`` picks this kernel's among the live ones:
its parent process, else the one whose root holds the notebook, else the only one.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

from ..errors import CameraUnavailable
from ..hosts import pid_alive


def runtime_dir() -> Path:
    """Jupyter's runtime directory (``JUPYTER_RUNTIME_DIR``, else jupyter_core's default)."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:  # no Jupyter here: look where jupyter_core would on Linux/macOS
        return Path.home() / ".local" / "share" / "jupyter" / "runtime"
    return Path(jupyter_runtime_dir())


def running_jupyter_servers(directory: Path | None = None) -> list[dict[str, Any]]:
    """The Jupyter servers of this machine: their ``jpserver-*.json`` files whose process is alive."""
    directory = runtime_dir() if directory is None else directory
    servers = []
    for path in sorted(directory.glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written or removed right now
        if not isinstance(info, dict) or "pid" not in info:
            continue
        if pid_alive(int(info["pid"])):
            info["_file"] = str(path)
            servers.append(info)
    return servers


def _server_url(info: dict[str, Any]) -> str:
    if info.get("sock"):
        raise CameraUnavailable(
            f"the Jupyter server in {info.get('_file')} listens on a unix socket ({info['sock']}), "
            "which labcam.connect() does not support: pass a http URL"
        )
    url = str(info.get("url") or "")
    if not url:
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://{info.get('hostname') or 'localhost'}:{info['port']}{info.get('base_url', '/')}"
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in ("0.0.0.0", "::", ""):  # a wildcard bind: talk to it on loopback
        port = f":{parts.port}" if parts.port else ""
        url = urllib.parse.urlunsplit((parts.scheme, f"127.0.0.1{port}", parts.path, "", ""))
    return url if url.endswith("/") else url + "/"


def _describe(servers: list[dict[str, Any]]) -> str:
    return "; ".join(f"{_server_url(s)} (root {s.get('root_dir')}, pid {s.get('pid')})" for s in servers)


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def discover_jupyter_server(directory: Path | None = None) -> tuple[str, str | None]:
    """(url, token) of the Jupyter server this kernel belongs to. See ``connect`` for the rules."""
    directory = runtime_dir() if directory is None else directory
    servers = running_jupyter_servers(directory)
    if not servers:
        raise CameraUnavailable(
            f"labcam.connect(): no running Jupyter server found (no live jpserver-*.json in {directory}). "
            "Outside a Jupyter server (a plain script, nbval) pass its address: "
            "labcam.connect('http://host:port/', token=...), or use labcam.open() for a camera in this process"
        )

    def pick(chosen: dict[str, Any]) -> tuple[str, str | None]:
        return _server_url(chosen), (chosen.get("token") or None)

    # 1. The server that started this kernel: jupyter_client tells a kernel its parent's pid.
    parents = {os.getppid()}
    if os.environ.get("JPY_PARENT_PID", "").isdigit():
        parents.add(int(os.environ["JPY_PARENT_PID"]))
    by_pid = [s for s in servers if int(s["pid"]) in parents]
    if len(by_pid) == 1:
        return pick(by_pid[0])
    # 2. The server whose root holds this notebook (JPY_SESSION_NAME, else the kernel's cwd);
    #    nested roots: the innermost one.
    session = os.environ.get("JPY_SESSION_NAME", "")
    where = Path(session) if session and os.path.isabs(session) else Path.cwd()
    holding = [s for s in servers if s.get("root_dir") and _within(where, Path(s["root_dir"]))]
    if holding:
        depth = max(len(Path(s["root_dir"]).resolve().parts) for s in holding)
        innermost = [s for s in holding if len(Path(s["root_dir"]).resolve().parts) == depth]
        if len(innermost) == 1:
            return pick(innermost[0])
        servers = innermost
    # 3. The only server running.
    if len(servers) == 1:
        return pick(servers[0])
    raise CameraUnavailable(
        f"labcam.connect(): {len(servers)} Jupyter servers could be this kernel's and none is its parent: "
        f"{_describe(servers)}. Choose one: labcam.connect(url, token=...)"
    )


__all__ = ["discover_jupyter_server", "running_jupyter_servers", "runtime_dir"]
