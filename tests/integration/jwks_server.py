"""A scriptable JWKS endpoint for integration tests: serves a document or a failure, counts hits.

Runs `http.server` in a thread on 127.0.0.1, over TLS when given a trustme CA, so the gateway's
real fetch code (TLS verification included) is what gets tested.
"""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import trustme


class JWKSServer:
    """What the endpoint answers and how often it was asked."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.status = 200
        self.hits = 0
        self.paths: list[str] = []
        self.port = 0
        self.scheme = "http"
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The JWKS URL."""
        return f"{self.scheme}://127.0.0.1:{self.port}/jwks.json"

    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return self.hits

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits += 1
                    server.paths.append(self.path)
                    status, body = server.status, server.document
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler


def ca_with_server_cert(directory: Path) -> tuple[trustme.CA, Path]:
    """A fresh CA (its PEM written to `directory/ca.pem`) for a 127.0.0.1 server certificate."""
    ca = trustme.CA()
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@contextlib.contextmanager
def serving_jwks(document: bytes, *, ca: trustme.CA | None = None) -> Iterator[JWKSServer]:
    """Serve `document` on a loopback port (HTTPS when `ca` is given) until the block ends."""
    state = JWKSServer(document)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), state._handler())
    httpd.daemon_threads = True
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        state.scheme = "https"
    state.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
