"""Tests of TLS handshake failure reporting: classification, the ECS event, the accept factory."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from pathlib import Path

import orjson
import pytest

from bastion.clock import FakeClock
from bastion.observability.events import SecurityEvents
from bastion.observability.sinks import MemorySink
from bastion.proxy.tls import (
    HANDSHAKE_REASONS,
    HandshakeFailure,
    ensure_dev_certificate,
    handshake_reason,
    server_context,
    tls_accept_factory,
)
from tests.observability.ecs import ecs_errors


def _ssl_error(reason: str, kind: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    error = kind(1, f"[SSL: {reason}] test")
    error.reason = reason
    return error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_ssl_error("UNSUPPORTED_PROTOCOL"), ("unsupported_protocol", "UNSUPPORTED_PROTOCOL")),
        (_ssl_error("NO_SHARED_CIPHER"), ("no_shared_cipher", "NO_SHARED_CIPHER")),
        (_ssl_error("HTTP_REQUEST"), ("not_tls", "HTTP_REQUEST")),
        (_ssl_error("WRONG_VERSION_NUMBER"), ("not_tls", "WRONG_VERSION_NUMBER")),
        (_ssl_error("TLSV1_ALERT_UNKNOWN_CA"), ("bad_certificate", "TLSV1_ALERT_UNKNOWN_CA")),
        (
            _ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"),
            ("bad_certificate", "SSLV3_ALERT_BAD_CERTIFICATE"),
        ),
        (_ssl_error("SOMETHING_NEW", ssl.SSLEOFError), ("closed", "SOMETHING_NEW")),
        (_ssl_error("SOMETHING_NEW"), ("other", "SOMETHING_NEW")),
        (
            ConnectionAbortedError("SSL handshake is taking longer"),
            ("timeout", "ConnectionAbortedError"),
        ),
        (ConnectionResetError(), ("closed", "ConnectionResetError")),
        (ValueError("?"), ("other", "ValueError")),
    ],
    ids=lambda value: getattr(value, "reason", None) or type(value).__name__,
)
def test_handshake_reason_classifies_what_openssl_and_the_loop_report(
    exc: BaseException, expected: tuple[str, str]
) -> None:
    assert handshake_reason(exc) == expected


@pytest.mark.parametrize("reason", sorted(HANDSHAKE_REASONS))
def test_handshake_failure_event_is_ecs(reason: str) -> None:
    sink = MemorySink()
    events = SecurityEvents(sink, FakeClock())
    failure = HandshakeFailure("127.0.0.1:8443", "203.0.113.9", 50123, reason, "CODE")  # type: ignore[arg-type]  # every label
    events.tls_handshake_failure(failure)
    (doc,) = (orjson.loads(line) for line in sink.lines)
    assert ecs_errors(doc) == []
    assert doc["event"]["reason"] == HANDSHAKE_REASONS[reason]  # type: ignore[index]
    assert doc["source"] == {"ip": "203.0.113.9", "port": 50123}
    gone = reason in ("closed", "timeout")
    assert doc["event"]["type"] == ["connection", "end" if gone else "denied"]


def test_handshake_failure_event_without_an_address_has_no_source_ip() -> None:
    sink = MemorySink()
    SecurityEvents(sink, FakeClock()).tls_handshake_failure(
        HandshakeFailure("unix", "", 0, "closed", "ConnectionResetError")
    )
    doc = orjson.loads(sink.lines[0])
    assert ecs_errors(doc) == []
    assert "client" not in doc
    assert doc["source"] == {}


@pytest.fixture
def context(tmp_path: Path) -> ssl.SSLContext:
    cert, key = ensure_dev_certificate(tmp_path)
    return server_context(cert, key)


class _App(asyncio.Protocol):
    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self._made = made
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._made.append(transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.write(data.upper())


def _client(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(16)


def _trusting() -> ssl.SSLContext:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return client


def _tls10() -> ssl.SSLContext:
    client = _trusting()
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client.maximum_version = ssl.TLSVersion.TLSv1
        client.minimum_version = ssl.TLSVersion.TLSv1
    return client


@pytest.mark.anyio
async def test_accept_factory_on_the_asyncio_loop_reports_and_serves(
    context: ssl.SSLContext,
) -> None:
    loop = asyncio.get_running_loop()
    failures: list[HandshakeFailure] = []
    made: list[asyncio.BaseTransport] = []
    factory = tls_accept_factory(
        lambda: _App(made),
        context,
        loop=loop,
        listener="test",
        on_failure=failures.append,
        handshake_timeout=5,
    )
    assert factory is not None
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(_client, port, _tls10())
        for _ in range(100):
            if failures:
                break
            await asyncio.sleep(0.01)
        assert [(f.reason, f.peer_ip) for f in failures] == [("unsupported_protocol", "127.0.0.1")]
        assert made == []  # the application never saw the failed connection
        assert await asyncio.to_thread(_client, port, _trusting()) == b"PING"
        assert len(made) == 1
        assert len(failures) == 1
    finally:
        server.close()
        for transport in made:
            transport.close()
        await server.wait_closed()


@pytest.mark.anyio
async def test_a_failing_reporter_does_not_break_accepting(
    context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.BaseTransport] = []

    def broken(_failure: HandshakeFailure) -> None:
        raise RuntimeError("reporter bug")

    factory = tls_accept_factory(
        lambda: _App(made), context, loop=loop, listener="t", on_failure=broken, handshake_timeout=5
    )
    assert factory is not None
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(_client, port, _tls10())
        for _ in range(100):
            if "reporting a TLS handshake failure failed" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "reporting a TLS handshake failure failed" in caplog.text
        assert await asyncio.to_thread(_client, port, _trusting()) == b"PING"
    finally:
        server.close()
        for transport in made:
            transport.close()
        await server.wait_closed()


@pytest.mark.anyio
async def test_accept_factory_falls_back_when_the_ssl_protocol_cannot_be_built(
    context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()

    class Changed:
        def __init__(self, *args: object) -> None:  # no keyword arguments any more
            pass

    for found in (None, Changed):
        monkeypatch.setattr("bastion.proxy.tls._ssl_protocol_class", lambda _loop, f=found: f)
        factory = tls_accept_factory(
            asyncio.Protocol,
            context,
            loop=loop,
            listener="127.0.0.1:8443",
            on_failure=lambda _failure: None,
            handshake_timeout=5,
        )
        assert factory is None
    assert "TLS handshake failures on 127.0.0.1:8443 are not reported" in caplog.text
