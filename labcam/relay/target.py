"""Where the relayed host is, and whether a URL answers like a labcam host."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import LabcamError
from ..hosts import HostInfo

# The startup check waits this long for the host's answer (the Jupyter server waits meanwhile).
CHECK_TIMEOUT_S = 3.0


class RelayError(LabcamError):
    """The configured host cannot be relayed (refused, not labcam); the message says why."""


@dataclass(frozen=True)
class HostAddress:
    """A host's base URL (ending in "/") and the token it wants (None: none)."""

    url: str
    token: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def join(self, path: str, query: str = "") -> str:
        """``path`` (relative to the host's root) with ``query`` (already encoded)."""
        return self.url + path.lstrip("/") + (f"?{query}" if query else "")

    def ws(self, path: str, query: str = "") -> str:
        url = self.join(path, query)
        return "ws" + url[4:] if url.startswith("http") else url


class RelayTarget:
    """The host a relay serves: a fixed address (``LabcamApp.camera_url``), or the running host that
    ``find`` returns, looked up afresh at every (re)connection so a host that restarts on another
    port is followed."""

    def __init__(self, address: HostAddress | None = None, *, find: Callable[[], HostInfo | None] | None = None) -> None:
        if (address is None) == (find is None):
            raise ValueError("give either a fixed address or a way to find the host")
        self._fixed = address
        self._find = find
        self.last: HostAddress | None = address
        if find is not None:
            self.address()

    def address(self) -> HostAddress | None:
        """Where to connect now (None: no such host is running)."""
        if self._fixed is not None:
            return self._fixed
        assert self._find is not None
        host = self._find()
        if host is None:
            return None
        self.last = HostAddress(host.url, host.token)
        return self.last

    @property
    def url(self) -> str:
        """The host's URL for people (status messages, logs): the last one known."""
        return self.last.url if self.last is not None else "(no labcam host running)"


def check_host(address: HostAddress, timeout: float = CHECK_TIMEOUT_S) -> dict[str, Any] | None:
    """Ask the host for ``api/camera``: its answer, ``None`` when it cannot be reached now (it may
    come later: the relay retries), or ``RelayError`` when it answers but cannot be relayed: 403
    (a missing or wrong token) or anything that is not a labcam host's answer."""
    url = address.join("api/camera")
    request = urllib.request.Request(url, headers={"Accept": "application/json", **address.headers()})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback and LAN: no proxies
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(1024 * 1024)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise RelayError(
                f"{address.url} refused the relay ({exc.code}): the camera_token is "
                f"{'wrong' if address.token else 'missing'}"
            ) from None
        raise RelayError(f"{address.url} is not a labcam host: GET api/camera answered {exc.code}") from None
    except (urllib.error.URLError, OSError):
        return None
    try:
        info = json.loads(body)
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("camera"), dict):
        raise RelayError(f"{address.url} is not a labcam host: GET api/camera did not answer with a labcam camera")
    return info


def parse_camera_url(url: str) -> str:
    """``url`` as a host base URL ending in "/", or ``ValueError`` saying what is wrong."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"camera_url={url!r} is not allowed: an http(s) URL such as http://127.0.0.1:8001/")
    if parts.query or parts.fragment:
        raise ValueError(f"camera_url={url!r} is not allowed: no query or fragment (the token goes in camera_token)")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


__all__ = ["CHECK_TIMEOUT_S", "HostAddress", "RelayError", "RelayTarget", "check_host", "parse_camera_url"]
