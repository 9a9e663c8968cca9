"""Failed TLS handshakes against a real TLS listener: one ECS event and one metric count each."""

from __future__ import annotations

import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.harness import RunningGateway, running_gateway
from tests.observability.ecs import ecs_errors
from tests.observability.prom import parse_samples, value

pytestmark = pytest.mark.integration

AUTH = {"authorization": "Bearer integration-admin-token"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, Path]]:
    """A gateway with a TLS listener (development certificate) and a file access log."""
    state = tmp_path_factory.mktemp("tls-events")
    with running_gateway(state) as running:
        yield running, state / "access.log"


def _events(log: Path, action: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip()]
    return [line for line in lines if line.get("event", {}).get("action") == action]


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _failures(gw: RunningGateway, reason: str) -> float:
    response = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics", headers=AUTH)
    listener = f"127.0.0.1:{gw.https_port}"
    samples = parse_samples(response.text)
    return value(samples, "bastion_tls_handshake_failures_total", listener=listener, reason=reason)


def _handshake(gw: RunningGateway, context: ssl.SSLContext) -> tuple[str, int]:
    """Try a handshake; returns the client's local port (the event's source.port)."""
    with socket.create_connection(("127.0.0.1", gw.https_port), timeout=5) as raw:
        port = raw.getsockname()[1]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(raw, server_hostname="localhost").close()
    return "127.0.0.1", port


def _drain(sock: socket.socket) -> bytes:
    """What the server sends that is not TLS, until it closes (a reset counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data if not data.startswith(b"\x15") else b""  # a TLS alert record is not HTTP


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls10_only() -> ssl.SSLContext:
    context = _unverified()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0 at level 1 and up
    with warnings.catch_warnings():  # a deprecated version is the point of this client
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    return context


def _cbc_only() -> ssl.SSLContext:
    context = _unverified()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:AES128-SHA")  # no AEAD suite: none shared
    return context


def _verifying() -> ssl.SSLContext:
    return ssl.create_default_context()  # refuses the self-signed development certificate


@pytest.mark.parametrize(
    ("make_context", "reason", "code", "event_type"),
    [
        (_tls10_only, "unsupported_protocol", "UNSUPPORTED_PROTOCOL", "denied"),
        (_cbc_only, "no_shared_cipher", "NO_SHARED_CIPHER", "denied"),
        (_verifying, "bad_certificate", "TLSV1_ALERT_UNKNOWN_CA", "denied"),
    ],
    ids=["tls1.0-only-client", "no-shared-cipher", "client-refuses-certificate"],
)
def test_failed_handshake_writes_an_event_and_counts(
    gateway: tuple[RunningGateway, Path],
    make_context: Callable[[], ssl.SSLContext],
    reason: str,
    code: str,
    event_type: str,
) -> None:
    gw, log = gateway
    before = _failures(gw, reason)
    ip, port = _handshake(gw, make_context())

    def logged() -> list[dict[str, Any]]:
        return [e for e in _events(log, "tls-handshake-failed") if e["source"]["port"] == port]

    assert _wait_for(lambda: bool(logged()))
    (event,) = logged()
    assert ecs_errors(event) == []
    assert event["event"]["category"] == ["network"]
    assert event["event"]["type"] == ["connection", event_type]
    assert event["event"]["outcome"] == "failure"
    assert event["source"]["ip"] == ip
    assert event["error"]["code"] == code
    assert event["tls"] == {"established": False}
    assert event["bastion"]["tls_failure"] == reason
    assert event["bastion"]["listener"] == f"127.0.0.1:{gw.https_port}"
    assert _wait_for(lambda: _failures(gw, reason) == before + 1)


def test_plain_http_to_the_tls_port_is_reported_as_not_tls(
    gateway: tuple[RunningGateway, Path],
) -> None:
    gw, log = gateway
    before = _failures(gw, "not_tls")
    with socket.create_connection(("127.0.0.1", gw.https_port), timeout=5) as raw:
        port = raw.getsockname()[1]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        raw.settimeout(5)
        assert _drain(raw) == b""  # no HTTP answer at all: the connection just closes

    def logged() -> list[dict[str, Any]]:
        return [e for e in _events(log, "tls-handshake-failed") if e["source"]["port"] == port]

    assert _wait_for(lambda: bool(logged()))
    (event,) = logged()
    assert ecs_errors(event) == []
    assert event["bastion"]["tls_failure"] == "not_tls"
    assert event["error"]["code"] == "HTTP_REQUEST"
    assert _wait_for(lambda: _failures(gw, "not_tls") == before + 1)


def test_client_closing_mid_handshake_is_reported_as_closed(
    gateway: tuple[RunningGateway, Path],
) -> None:
    gw, log = gateway
    with socket.create_connection(("127.0.0.1", gw.https_port), timeout=5) as raw:
        port = raw.getsockname()[1]
        raw.sendall(b"\x16\x03\x01\x00\xff\x01")  # the start of a ClientHello, then EOF

    def logged() -> list[dict[str, Any]]:
        return [e for e in _events(log, "tls-handshake-failed") if e["source"]["port"] == port]

    assert _wait_for(lambda: bool(logged()))
    (event,) = logged()
    assert event["bastion"]["tls_failure"] == "closed"
    assert event["event"]["type"] == ["connection", "end"]


def test_good_handshakes_are_served_and_not_reported(gateway: tuple[RunningGateway, Path]) -> None:
    gw, log = gateway
    before = len(_events(log, "tls-handshake-failed"))
    with httpx.Client(verify=False, timeout=5) as client:  # noqa: S501 - the dev certificate
        for _ in range(5):
            response = client.get(f"https://127.0.0.1:{gw.https_port}/ok")
            assert response.status_code == 200
    with gw.connect(tls=True) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    time.sleep(0.2)
    assert len(_events(log, "tls-handshake-failed")) == before
