"""httptools callbacks that collect one small HTTP response, with a byte cap on the body.

Shared by the gateway's own outbound fetches (JWKS documents, token introspection).
"""

from __future__ import annotations


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
