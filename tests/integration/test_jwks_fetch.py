"""HTTPSFetcher against raw loopback servers: framing, status, size cap, total deadline, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
import trustme

from bastion.policies.jwt.jwks import FetchError, HTTPSFetcher
from bastion.proxy.tls import client_context

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DOCUMENT = b'{"keys": []}'


async def serve(script, ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


def answer(raw: bytes):
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return script


@pytest.fixture
async def fetch_from() -> AsyncIterator[Callable[..., object]]:
    servers: list[asyncio.Server] = []

    async def fetch(script, *, deadline: float = 2.0, max_bytes: int = 1000) -> bytes:
        server, port = await serve(script)
        servers.append(server)
        fetcher = HTTPSFetcher(
            f"http://127.0.0.1:{port}/jwks", ssl_context=None, timeout=deadline, max_bytes=max_bytes
        )
        return await fetcher()

    yield fetch
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n" + DOCUMENT,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
        + DOCUMENT[:5]
        + b"\r\n7\r\n"
        + DOCUMENT[5:]
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + DOCUMENT,
    ],
    ids=["content-length", "chunked", "close-delimited"],
)
async def test_fetcher_reads_each_framing(fetch_from, raw):
    assert await fetch_from(answer(raw)) == DOCUMENT


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "answered 503"),
        (b"HTTP/1.1 302 Found\r\nLocation: https://evil.test/\r\nContent-Length: 0\r\n\r\n", "302"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, "larger than"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + b"x" * 10, "closed before"),
        (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n", "head is too large"),
    ],
    ids=["server-error", "redirect-not-followed", "too-large", "cut-short", "huge-head"],
)
async def test_fetcher_refuses_bad_answers(fetch_from, raw, message):
    with pytest.raises(FetchError, match=message):
        await fetch_from(answer(raw))


async def test_fetcher_gives_up_at_the_total_deadline_on_a_dripping_server(fetch_from):
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    with pytest.raises(TimeoutError):
        await fetch_from(drip, deadline=0.3)


async def test_fetcher_verifies_the_server_certificate(tmp_path):
    ca, other = trustme.CA(), trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    server, port = await serve(
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n" + DOCUMENT), server_ctx
    )
    trusted, untrusted = tmp_path / "ca.pem", tmp_path / "other.pem"
    ca.cert_pem.write_to_path(str(trusted))
    other.cert_pem.write_to_path(str(untrusted))
    url = f"https://127.0.0.1:{port}/jwks"
    try:
        good = HTTPSFetcher(
            url, ssl_context=client_context(ca_file=trusted), timeout=2, max_bytes=1000
        )
        assert await good() == DOCUMENT
        bad = HTTPSFetcher(
            url, ssl_context=client_context(ca_file=untrusted), timeout=2, max_bytes=1000
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await bad()
    finally:
        server.close()
