"""HTTP helpers for the tests that talk to a real labcam server over loopback."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

TIMEOUT = 15.0


async def fetch(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
                raw_body: bytes | None = None) -> HTTPResponse:
    """The response, whatever its status (errors are answers too)."""
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    if method in ("POST", "PATCH", "PUT") and data is None:
        data = b""
    req = HTTPRequest(url, method=method, body=data, headers=headers or {}, request_timeout=TIMEOUT)
    try:
        return await AsyncHTTPClient().fetch(req)
    except HTTPClientError as exc:
        assert exc.response is not None, exc
        return exc.response


def json_body(resp: HTTPResponse) -> Any:
    """The JSON body of ``resp``, which must say it is JSON."""
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers["Content-Type"]
    return json.loads(resp.body)
