"""Reading one small HTTP response, with caps on the head and the body.

Shared by the gateway's own outbound fetches (JWKS documents, token introspection).
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import httptools

RECEIVE_SIZE: Final = 65536
MAX_HEAD_BYTES: Final = 16384
"""Longest response head accepted (status line and headers)."""

ReadFailure = Literal["closed", "head_too_large", "body_too_large"]


class ResponseReadError(Exception):
    """The response could not be read; `reason` says why (callers word their own errors)."""

    def __init__(self, reason: ReadFailure) -> None:
        super().__init__(reason)
        self.reason: ReadFailure = reason


async def read_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, max_bytes: int
) -> tuple[int, bytes]:
    """Send `request`, then read one response: (status, body).

    Raises:
        ResponseReadError: the connection closed early, or the head or body was too large.
    """
    writer.write(request)
    await writer.drain()
    collector = ResponseCollector(max_bytes)
    parser = httptools.HttpResponseParser(collector)
    received = 0
    while not collector.complete:
        data = await reader.read(RECEIVE_SIZE)
        if not data:
            if collector.headers_done and not collector.framed:
                break  # the body was delimited by the close (RFC 9112 §6.3)
            raise ResponseReadError("closed")
        received += len(data)
        if not collector.headers_done and received > MAX_HEAD_BYTES:
            raise ResponseReadError("head_too_large")
        parser.feed_data(data)
        if collector.too_large:
            raise ResponseReadError("body_too_large")
    return parser.get_status_code(), bytes(collector.body)


class ResponseCollector:
    """Collects one response's body; `too_large` once it would pass `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.body = bytearray()
        self.headers_done = False
        self.complete = False
        self.framed = False  # Content-Length or chunked: the end is known without a close
        self.too_large = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """Note whether the body is framed."""
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        """The head has been read."""
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        """Keep body bytes up to the cap."""
        if len(self.body) + len(body) > self.max_bytes:
            self.too_large = True
            return
        self.body += body

    def on_message_complete(self) -> None:
        """The response is complete."""
        self.complete = True
