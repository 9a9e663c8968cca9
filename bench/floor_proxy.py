"""The thinnest HTTP/1.1 reverse proxy on uvloop + httptools: the floor Bastion is measured against.

This is a measuring stick for bench/passthrough.py (target `floor-http`), not product code. It
shows what a Python proxy on Bastion's own stack costs per request before doing any work of its
own, so the benchmark can split Bastion's cost into that floor and Bastion's own work.

What it does, and nothing more: each client connection gets one upstream connection, opened when
the client connects and kept for as long as the client stays. httptools parses requests on the
client side and responses on the upstream side. A request goes upstream as method, URL, the
client's headers unchanged and the body; a response comes back as status, the upstream's headers
unchanged and the body; each is written with a single `write` once complete. Both sides speak
HTTP/1.1 over one connection, so pipelined requests stay in order by construction.

What it leaves out on purpose: validation, hop-by-hop header handling, X-Forwarded-*, chunked
bodies (Content-Length framing only), HEAD and 1xx responses, timeouts, flow control, TLS,
logging, error pages. A failure on either side closes both connections.

    python bench/floor_proxy.py --listen 127.0.0.1:18084 --upstream 127.0.0.1:18080
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import httptools
import uvloop


class _Upstream(asyncio.Protocol):
    """The upstream connection of one client: parses responses and relays them to the client."""

    def __init__(self, client: _Client) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._parts: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._client.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()

    # httptools callbacks; the status line is filled in once the reason phrase is complete.
    def on_message_begin(self) -> None:
        self._reason = b""
        self._parts = [b""]

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parts.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self._parts[0] = b"HTTP/1.1 %d %s\r\n" % (status, self._reason)
        self._parts.append(b"\r\n")

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self._client.send(b"".join(self._parts))


class _Client(asyncio.Protocol):
    """One client connection: parses requests and forwards them over its upstream connection."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._address = upstream
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._parts: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._waiting: list[bytes] = []  # requests that completed before the upstream connected
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is one
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(lambda: _Upstream(self), *self._address)
        except OSError:
            self.close()
            return
        if self._transport is None:  # the client left while we connected
            upstream.close()
            return
        self._upstream = upstream
        if self._waiting:
            upstream.write(b"".join(self._waiting))
            self._waiting = []

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._upstream is not None:
            self._upstream.close()

    def send(self, response: bytes) -> None:
        """Write one complete response to the client."""
        if self._transport is not None:
            self._transport.write(response)

    def close(self) -> None:
        """Close the client connection once what is buffered has been sent."""
        if self._transport is not None:
            self._transport.close()

    # httptools callbacks; the request line is filled in once the URL is complete.
    def on_message_begin(self) -> None:
        self._url = b""
        self._parts = [b""]

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parts.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self._parts[0] = b"%s %s HTTP/1.1\r\n" % (self._parser.get_method(), self._url)
        self._parts.append(b"\r\n")

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        request = b"".join(self._parts)
        if self._upstream is not None:
            self._upstream.write(request)
        else:
            self._waiting.append(request)


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) as a (host, port) pair."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def start(listen: tuple[str, int], upstream: tuple[str, int]) -> asyncio.Server:
    """Accept on `listen` and proxy every connection to `upstream`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Client(upstream), *listen, backlog=4096)


async def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    """Proxy `listen` to `upstream` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await start(listen, upstream)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    """Parse `--listen HOST:PORT --upstream HOST:PORT` and serve."""
    parser = argparse.ArgumentParser(description="Minimal reverse proxy: the benchmark's floor.")
    parser.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT to accept")
    parser.add_argument("--upstream", type=parse_address, required=True, help="HOST:PORT to call")
    ns = parser.parse_args()
    uvloop.run(serve(ns.listen, ns.upstream))


if __name__ == "__main__":
    main()
