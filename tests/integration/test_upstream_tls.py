"""HTTPS upstreams: Bastion verifies their certificates unless a service explicitly opts out."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvloop

from tests.integration.harness import running_gateway

pytestmark = pytest.mark.integration

BODY = b"hello from the TLS upstream"
# The upstream closes after each response, so no pooled TLS connection is left open when the
# gateway shuts down: Server.shutdown closes pooled upstream connections without waiting for
# their TLS close to finish, and the loop closing in between reports an unclosed transport
# (a ResourceWarning, an error under filterwarnings=error) in about one run in ten.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


@dataclass
class TLSUpstream:
    """A TLS server whose certificate (for `localhost` only) comes from a test CA."""

    port: int  # set once it listens
    ca_file: Path
    requests: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def tls_upstream(directory: Path) -> Iterator[TLSUpstream]:
    """Run the upstream in a background thread: each connection gets one fixed 200 response."""
    ca = trustme.CA()
    upstream = TLSUpstream(0, directory / "upstream-ca.pem")
    ca.cert_pem.write_to_path(str(upstream.ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    started = threading.Event()
    holder: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream.requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
        upstream.port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        holder.append((asyncio.get_running_loop(), stop))
        started.set()
        await stop.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: uvloop.run(main()), daemon=True)
    thread.start()
    assert started.wait(10), "TLS upstream did not start"
    try:
        yield upstream
    finally:
        loop, stop = holder[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def tls_service(target: str, **upstream: Any) -> dict[str, Any]:
    """`extra_config` with one service proxying everything to `target`."""
    return {
        "services": [
            {
                "name": "secure",
                "upstream": {"targets": [target], "read_timeout": 2.0, **upstream},
                "routes": [{"name": "all", "paths": ["/"]}],
            }
        ]
    }


def test_proxies_to_https_upstream_verified_against_the_configured_ca(tmp_path: Path) -> None:
    with (
        tls_upstream(tmp_path) as upstream,
        running_gateway(
            tmp_path,
            tls_service(f"https://localhost:{upstream.port}", ca_file=str(upstream.ca_file)),
        ) as gateway,
    ):
        first = httpx.get(f"http://127.0.0.1:{gateway.http_port}/hello?x=1")
        second = httpx.get(f"http://127.0.0.1:{gateway.http_port}/again")

    assert (first.status_code, first.content) == (200, BODY)
    assert (second.status_code, second.content) == (200, BODY)
    assert upstream.requests[0].startswith(b"GET /hello?x=1 HTTP/1.1\r\n")
    assert upstream.requests[1].startswith(b"GET /again HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("host", "ca"),
    [("localhost", False), ("127.0.0.1", True)],
    ids=["system-cas-do-not-know-the-test-ca", "certificate-names-another-host"],
)
def test_refuses_https_upstream_whose_certificate_does_not_verify(
    tmp_path: Path, host: str, ca: bool
) -> None:
    with tls_upstream(tmp_path) as upstream:
        settings = {"ca_file": str(upstream.ca_file)} if ca else {}
        with running_gateway(
            tmp_path, tls_service(f"https://{host}:{upstream.port}", **settings)
        ) as gateway:
            response = httpx.get(f"http://127.0.0.1:{gateway.http_port}/hello")

    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 502
    assert problem["code"] == "upstream_unreachable"
    assert "certificate" not in response.text.lower()  # no internal TLS error reaches the client
    assert upstream.requests == []  # the request never went to the unverified peer


def test_tls_verify_false_proxies_to_an_upstream_nobody_vouches_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `tls_verify: false` exists for upstreams whose certificate cannot be verified at all (a
    # self-signed certificate on an appliance, a lab setup) when no CA file can be had. It is an
    # explicit, logged opt-out: the connection is still encrypted, but anyone on the path can
    # impersonate the upstream. Here the system CAs do not know the test CA, yet the request
    # goes through, and the start-up log says verification is off.
    with (
        tls_upstream(tmp_path) as upstream,
        running_gateway(
            tmp_path, tls_service(f"https://localhost:{upstream.port}", tls_verify=False)
        ) as gateway,
    ):
        response = httpx.get(f"http://127.0.0.1:{gateway.http_port}/hello")

    assert (response.status_code, response.content) == (200, BODY)
    assert len(upstream.requests) == 1
    assert "verification for upstream connections is DISABLED" in caplog.text
