"""A minimal blocking HTTP/1.1 client for probes: one request per connection, loopback only.

Probes need what general clients hide: a reply that arrives while the body is still being
sent (413), exact control over the headers sent, and TLS pinned to the gateway's certificate.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from bastion.verify.targets import Endpoint

MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "bastion-verify"


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as the probes see it: status, lower-case headers, the start of the body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def all(self, name: str) -> list[str]:
        """Every value of a header."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class ProbeError(Exception):
    """A probe could not get an answer (connection refused, TLS failure, timeout)."""


def tls_context(certificate: Path | None) -> ssl.SSLContext:
    """A client context trusting exactly the gateway's certificate, or not verifying at all.

    With a certificate file the leaf itself is the trust anchor (pinned, so the host name is not
    checked: probes connect to a loopback address). Without one (the development certificate
    is not readable) verification is off, which the report states.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context.check_hostname = False
    context.load_verify_locations(cafile=str(certificate))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _read_reply(sock: socket.socket) -> Reply:
    data = b""
    while len(data) < MAX_RESPONSE_BYTES:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        except TimeoutError as exc:
            if b"\r\n\r\n" in data:
                break
            raise ProbeError("no response before the timeout") from exc
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/")
        or not status_line[1].isdigit()
    ):
        raise ProbeError("no HTTP response (connection closed)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers.append(
                (name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
            )
    return Reply(int(status_line[1]), headers, body[:4096])


def request(
    endpoint: Endpoint,
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    host: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> Reply:
    """Send one request on a fresh connection (`Connection: close`) and read the reply.

    Raises:
        ProbeError: no HTTP response could be read.
    """
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host or endpoint.authority}",
        f"User-Agent: {USER_AGENT}",
        "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers or [])
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {endpoint.authority}: {exc.strerror or exc}") from exc
    sock: socket.socket = raw
    try:
        if endpoint.kind == "https":
            try:
                sock = (context or tls_context(None)).wrap_socket(raw, server_hostname=None)
            except (ssl.SSLError, OSError) as exc:
                raise ProbeError(f"TLS handshake failed: {exc}") from exc
        # The gateway may answer (413) and close before the body is sent: read that reply.
        with contextlib.suppress(OSError):
            sock.sendall(head + (body or b""))
        return _read_reply(sock)
    finally:
        sock.close()
        raw.close()


def handshake(endpoint: Endpoint, context: ssl.SSLContext, timeout: float = 5.0) -> str:
    """Complete a TLS handshake and return the negotiated version (e.g. `TLSv1.3`).

    Raises:
        ssl.SSLError: the handshake failed.
        OSError: the connection failed.
    """
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=None) as sock,
    ):
        return sock.version() or "unknown"
