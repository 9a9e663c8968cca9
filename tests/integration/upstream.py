"""A scriptable upstream for integration tests: echoes what it received as JSON.

Paths: `/status/NNN` answers that status; `/slow/MS` waits MS milliseconds; `/chunked` answers
with a chunked body; `/big/N` answers N bytes; `/close` answers and closes; anything else echoes
the method, path, query, headers and body it received.
"""

from __future__ import annotations

import asyncio
import json

import httptools


class EchoUpstream(asyncio.Protocol):
    """One connection of the echo upstream."""

    def __init__(self, seen: list[dict[str, object]]) -> None:
        self.seen = seen
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # stream transports

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path, _, query = self.url.decode().partition("?")
        record: dict[str, object] = {
            "method": self.parser.get_method().decode(),
            "path": path,
            "query": query,
            "headers": self.headers,
            "body": self.body.decode("latin-1"),
        }
        self.seen.append(record)
        asyncio.get_running_loop().create_task(self.respond(path, record))

    async def respond(self, path: str, record: dict[str, object]) -> None:
        assert self.transport is not None
        parts = path.strip("/").split("/")
        status = 200
        extra = b""
        close = False
        if parts[0] == "status" and len(parts) > 1:
            status = int(parts[1])
        if parts[0] == "slow" and len(parts) > 1:
            await asyncio.sleep(int(parts[1]) / 1000)
        if parts[0] == "chunked":
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
                b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return
        if parts[0] == "big" and len(parts) > 1:
            body = b"x" * int(parts[1])
        else:
            body = json.dumps(record).encode()
        if parts[0] == "close":
            close = True
            extra = b"connection: close\r\n"
        if parts[0] == "leaky":
            extra = b"server: leaky/1.0\r\nx-powered-by: php\r\n"
        head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        self.transport.write(head % (status, len(body), extra))
        if record["method"] != "HEAD":
            self.transport.write(body)
        if close:
            self.transport.close()
