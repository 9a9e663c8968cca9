"""size_limit's body limit holds while a front door buffers the body (proxy and middleware)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.frontdoor import FRONT_DOORS, FrontDoor, open_front_door

LIMIT = 1000
FIRST_CHUNK = b"[" + b"1," * 1500  # past LIMIT on its own; the body never ends
WAIT = 5.0
"""Seconds to wait for the 413: before it, a door waits for the rest of the body."""


@pytest.fixture(params=FRONT_DOORS)
def door(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FrontDoor]:
    size_limit = {"max_body_bytes": LIMIT, "max_json_depth": 10}
    route = {"name": "api", "paths": ["/api"], "policies": {"size_limit": size_limit}}
    document: dict[str, Any] = {"services": [{"name": "svc", "routes": [route]}]}
    with open_front_door(request.param, tmp_path, document) as opened:
        yield opened


def _proxy_answer(door: FrontDoor) -> bytes:
    """Send the head and one chunk past the limit over a socket; read what comes back."""
    parts = urlsplit(door.base)  # type: ignore[attr-defined]  # the proxy door's listener
    with socket.create_connection((parts.hostname, parts.port), timeout=WAIT) as sock:
        sock.sendall(
            b"POST /api HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(FIRST_CHUNK):x}\r\n".encode()
            + FIRST_CHUNK
            + b"\r\n"
        )
        return sock.recv(65536)


def _middleware_answer(door: FrontDoor) -> bytes:
    """Drive the middleware's ASGI app with one chunk, then a client that sends no more."""
    app = door.app  # type: ignore[attr-defined]  # the middleware door's wrapped app
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api",
        "raw_path": b"/api",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"t"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    chunks = [{"type": "http.request", "body": FIRST_CHUNK, "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(3600)  # a slow client: the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await asyncio.wait_for(app(scope, receive, send), WAIT)

    try:
        asyncio.run(main())
    except TimeoutError:
        return b""
    return b"HTTP/1.1 %d" % sent[0]["status"] if sent else b""


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_route_limit(door):
    answer = _proxy_answer(door) if door.kind == "proxy" else _middleware_answer(door)
    assert answer.startswith(b"HTTP/1.1 413")
    assert door.upstream_calls() == 0
