"""Per-request CPU overhead of BastionMiddleware against the bare Starlette app, in-process.

Usage: `.venv/bin/python -m bench.middleware_overhead [--requests 5000] [--uvicorn]`. Each
request is driven straight through the ASGI callable (no server, no socket), so the difference
between two rows is what the middleware adds. `--uvicorn` also serves the bare and the wrapped
app on uvicorn (loopback, one keep-alive connection, client in the same process): the CPU per
request then includes uvicorn's and the client's, identical in both rows. Runs in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.asgi import BastionMiddleware

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

QUIET: dict[str, Any] = {"access_log": {"sink": "off"}}
SETUPS: dict[str, dict[str, Any]] = {
    "no policies": {**QUIET, "global_policies": {}},
    "defaults (request_id, security_headers)": QUIET,
    "defaults + route rate_limit, size_limit": {
        **QUIET,
        "services": [
            {
                "name": "api",
                "routes": [
                    {
                        "name": "hello",
                        "paths": ["/hello"],
                        "policies": {
                            "rate_limit": {"limit": 10**9, "window": 60, "key": ["ip"]},
                            "size_limit": {"max_body_bytes": 1024},
                        },
                    }
                ],
            }
        ],
    },
}


async def hello(request: Request) -> PlainTextResponse:
    """The smallest useful endpoint."""
    return PlainTextResponse("hello")


def scope() -> dict[str, Any]:
    """A GET /hello scope as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"api.example"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def per_request_us(app: ASGIApp, requests: int, rounds: int = 3) -> float:
    """Mean wall time per request in microseconds, the best of `rounds` (less noise)."""

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    for _ in range(200):  # warm caches and lazily built middleware stacks
        await app(scope(), receive, send)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(requests):
            await app(scope(), receive, send)
        best = min(best, (time.perf_counter() - start) / requests * 1e6)
    return best


def bare_app() -> Starlette:
    """The app alone."""
    return Starlette(routes=[Route("/hello", hello)])


async def main(requests: int) -> None:
    """Print one row per setup: µs per request and the overhead over the bare app."""
    bare = await per_request_us(bare_app(), requests)
    print(f"{'bare Starlette app':52} {bare:6.1f} µs/request")
    for name, config in SETUPS.items():
        app = bare_app()
        app.add_middleware(BastionMiddleware, config=config)
        wrapped = await per_request_us(app, requests)
        row = f"{'+ middleware, ' + name:52} {wrapped:6.1f} µs/request"
        print(f"{row}  (+{wrapped - bare:.1f} µs)")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        body += sock.recv(65536)


def on_uvicorn_us(app: ASGIApp, requests: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request served by uvicorn on a loopback port."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    request = b"GET /hello HTTP/1.1\r\nHost: api.example\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for _ in range(200):
                sock.sendall(request)
                _read_response(sock)
            wall, cpu = time.perf_counter(), _cpu()
            for _ in range(requests):
                sock.sendall(request)
                _read_response(sock)
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    finally:
        server.should_exit = True
        thread.join(10)
    return wall / requests * 1e6, cpu / requests * 1e6


def uvicorn_rows(requests: int) -> None:
    """Print the bare and the wrapped (default policies) app served by uvicorn."""
    bare_wall, bare_cpu = on_uvicorn_us(bare_app(), requests)
    print(f"{'uvicorn, bare app':52} {bare_cpu:6.1f} µs CPU/request ({bare_wall:.1f} µs wall)")
    app = bare_app()
    app.add_middleware(BastionMiddleware, config=SETUPS["defaults (request_id, security_headers)"])
    wall, cpu = on_uvicorn_us(app, requests)
    row = f"{'uvicorn, + middleware, defaults':52} {cpu:6.1f} µs CPU/request ({wall:.1f} µs wall)"
    print(f"{row}  (+{cpu - bare_cpu:.1f} µs CPU)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="requests per setup")
    parser.add_argument("--uvicorn", action="store_true", help="also measure on uvicorn")
    args = parser.parse_args()
    asyncio.run(main(args.requests))
    if args.uvicorn:
        uvicorn_rows(args.requests)
