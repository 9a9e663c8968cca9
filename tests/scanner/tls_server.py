"""A minimal HTTPS server on loopback, in a thread, with a chosen certificate and TLS floor."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import trustme

GOOD_HEADERS = (
    "strict-transport-security: max-age=31536000\r\n"
    "x-content-type-options: nosniff\r\n"
    "content-security-policy: frame-ancestors 'none'\r\n"
    "cache-control: no-store\r\n"
)


@dataclass(frozen=True)
class Server:
    url: str
    port: int


def _serve(listener: socket.socket, context: ssl.SSLContext, stop: threading.Event) -> None:
    listener.settimeout(0.05)  # wake up regularly to see whether the test is over
    while not stop.is_set():
        try:
            raw, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        with raw:
            raw.settimeout(5)
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
                    status = "200 OK" if path == b"/" else "404 Not Found"
                    body = b"{}"
                    tls.sendall(
                        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{GOOD_HEADERS}"
                        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                        + body
                    )
            except (OSError, ssl.SSLError):
                continue  # a probe that gave up mid-handshake


@contextlib.contextmanager
def https_server(
    cert: trustme.LeafCert, *, legacy_tls: bool = False, ciphers: str | None = None
) -> Iterator[Server]:
    """Serve `cert` on 127.0.0.1; `legacy_tls` also accepts TLS 1.0 and 1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    if legacy_tls:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # planting the weakness
            context.minimum_version = ssl.TLSVersion.TLSv1
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(listener, context, stop), daemon=True)
    thread.start()
    try:
        yield Server(f"https://127.0.0.1:{port}", port)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def closed_port() -> int:
    """A loopback port with nothing listening (the plain-HTTP port of a well-run API)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
