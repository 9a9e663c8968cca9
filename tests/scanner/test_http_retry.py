"""The scan client sends an idempotent request once more when the server dropped the connection."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from bastion.scanner.http import ScanClient

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"


@contextlib.contextmanager
def dropping_server(drops: int) -> Iterator[tuple[str, list[bytes]]]:
    """Loopback HTTP server that closes its first `drops` connections without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with raw:
                raw.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                seen.append(head.split(b"\r\n", 1)[0])
                if len(seen) > drops:
                    raw.sendall(OK)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()


async def test_get_is_sent_again_after_a_dropped_connection():
    with dropping_server(drops=1) as (url, seen):
        client = ScanClient(url, budget=10, rate=0, allow_unsafe=False)
        exchange = await client.send("GET", url + "/items")
        await client.aclose()
    assert exchange.status == 200
    assert seen == [b"GET /items HTTP/1.1"] * 2
    assert client.sent == 2  # the second attempt counts against the budget


async def test_post_is_not_sent_twice():
    with dropping_server(drops=1) as (url, seen):
        client = ScanClient(url, budget=10, rate=0, allow_unsafe=True)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.send("POST", url + "/orders", content=b"{}")
        await client.aclose()
    assert seen == [b"POST /orders HTTP/1.1"]


async def test_a_second_drop_is_reported_not_retried_forever():
    with dropping_server(drops=5) as (url, seen):
        client = ScanClient(url, budget=10, rate=0, allow_unsafe=False)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.send("GET", url + "/items")
        await client.aclose()
    assert len(seen) == 2
