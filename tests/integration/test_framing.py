"""Ambiguous request framing is refused on the real listener (DESIGN.md §4.2).

Every refused request carries a second, smuggled request after it: the client must get a 400
problem, the connection must close, and the upstream must never see either request.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway for the whole module; tests look only at what they added to `seen`."""
    with running_gateway(tmp_path_factory.mktemp("framing")) as running:
        yield running


def is_closed(sock: socket.socket) -> bool:
    """Whether the gateway closed the connection (after the response was read)."""
    sock.settimeout(1.0)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True


def problem_of(response: bytes) -> dict[str, Any]:
    """The problem+json document of a locally generated error response."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: application/problem+json\r\n" in head.lower() + b"\r\n"
    document: dict[str, Any] = json.loads(body)
    return document


def forwarded_since(gateway: RunningGateway, mark: int) -> list[str]:
    """Paths the upstream received since `mark`, after a probe request flushed the loop.

    The probe (`/probe`) goes through the same event loop, so any request the gateway had
    forwarded before it has been recorded by the time the probe's response arrives.
    """
    with gateway.connect() as sock:
        sock.sendall(b"GET /probe HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
    return [record["path"] for record in gateway.seen[mark:] if record["path"] != "/probe"]


def head(method: bytes, *lines: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """A request line and header lines, CRLF-terminated, without the blank line ending the head."""
    return method + b" / " + version + b"\r\n" + b"".join(line + b"\r\n" for line in lines)


REFUSED = [
    pytest.param(
        head(b"POST", b"Host: a", b"Content-Length: 5", b"Transfer-Encoding: chunked")
        + b"\r\n0\r\n\r\n",
        id="content-length-with-transfer-encoding",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked", b"Content-Length: 5")
        + b"\r\n0\r\n\r\n",
        id="transfer-encoding-with-content-length",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Content-Length: 4", b"Content-Length: 4") + b"\r\nabcd",
        id="duplicate-content-length-same",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Content-Length: 4", b"Content-Length: 40") + b"\r\nabcd",
        id="duplicate-content-length-different",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Content-Length: 4, 4") + b"\r\nabcd",
        id="content-length-list",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Content-Length: +4") + b"\r\nabcd",
        id="content-length-with-sign",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: gzip, chunked") + b"\r\n0\r\n\r\n",
        id="transfer-encoding-gzip-chunked",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked, identity") + b"\r\n0\r\n\r\n",
        id="transfer-encoding-chunked-identity",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: identity") + b"\r\n",
        id="transfer-encoding-identity",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked")
        + b"\r\n0\r\n\r\n",
        id="transfer-encoding-twice",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding : chunked") + b"\r\n0\r\n\r\n",
        id="transfer-encoding-space-before-colon",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked", version=b"HTTP/1.0")
        + b"\r\n0\r\n\r\n",
        id="transfer-encoding-on-http-1.0",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked") + b"\r\nzz\r\nabc\r\n0\r\n\r\n",
        id="chunk-size-not-hex",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked")
        + b"\r\n10000000000000001\r\nabc\r\n0\r\n\r\n",
        id="chunk-size-overflow",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked") + b"\r\n-1\r\nabc\r\n0\r\n\r\n",
        id="chunk-size-negative",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked") + b"\r\n3\r\nabcdef\r\n0\r\n\r\n",
        id="chunk-longer-than-its-size",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Transfer-Encoding: chunked") + b"\r\n3\nabc\n0\n\n",
        id="chunk-bare-lf",
    ),
    pytest.param(head(b"GET", b"Host: a", b"X-A: b", b" c") + b"\r\n", id="obs-fold-space"),
    pytest.param(head(b"GET", b"Host: a", b"X-A: b", b"\tc") + b"\r\n", id="obs-fold-tab"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", id="bare-lf-line-endings"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", id="bare-lf-after-one-header"),
    pytest.param(head(b"GET", b"Host: a", b"X-A: b\rc") + b"\r\n", id="bare-cr-in-value"),
    pytest.param(head(b"GET", b"Host: a", b"X-A: b\x00c") + b"\r\n", id="nul-in-value"),
    pytest.param(head(b"GET", b"Host: a", b"X-A : b") + b"\r\n", id="space-before-colon"),
    pytest.param(head(b"GET", b"Host: a", b"X(A): b") + b"\r\n", id="header-name-parenthesis"),
    pytest.param(head(b"GET", b"Host: a", b'X"A: b') + b"\r\n", id="header-name-quote"),
    pytest.param(head(b"GET", b"Host: a", b"X A: b") + b"\r\n", id="header-name-space"),
    pytest.param(b"GET /\r\n\r\n", id="http-0.9-request-line"),
    pytest.param(head(b"GET", b"Host: a", version=b"HTTP/2.0") + b"\r\n", id="http-2.0-version"),
    pytest.param(head(b"GET", b"Host: a", version=b"HTTP/1.2") + b"\r\n", id="http-1.2-version"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="http2-preface"),
    pytest.param(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", id="lowercase-method"),
    pytest.param(head(b"GET") + b"\r\n", id="missing-host-on-1.1"),
    pytest.param(head(b"GET", b"Host: a", b"Host: b") + b"\r\n", id="two-host-headers"),
    pytest.param(head(b"GET", b"Host: a b") + b"\r\n", id="host-with-space"),
    pytest.param(head(b"GET", b"Host: user@a") + b"\r\n", id="host-with-userinfo"),
    pytest.param(head(b"GET", b"Host: a/b") + b"\r\n", id="host-with-path"),
    pytest.param(head(b"GET", b"Host: a:99999999") + b"\r\n", id="host-with-long-port"),
    pytest.param(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        id="connect-authority-form",
    ),
    pytest.param(b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", id="connect-origin-form"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", id="asterisk-form"),
    pytest.param(
        b"GET http://user@example.com/x HTTP/1.1\r\nHost: a\r\n\r\n",
        id="absolute-form-with-userinfo",
    ),
    pytest.param(
        head(b"POST", b"Host: a", b"Expect: something-else", b"Content-Length: 2") + b"\r\nab",
        id="expect-other-than-100-continue",
    ),
]


@pytest.mark.parametrize("raw", REFUSED)
def test_listener_refuses_ambiguous_request_and_closes(
    shared_gateway: RunningGateway, raw: bytes
) -> None:
    mark = len(shared_gateway.seen)
    with shared_gateway.connect() as sock:
        sock.sendall(raw + SMUGGLED)
        response = read_response(sock)
        closed = is_closed(sock)
    assert status_of(response) == 400, response[:200]
    problem = problem_of(response)
    assert problem["status"] == 400
    assert problem["code"]
    assert problem["request_id"]
    assert closed
    assert forwarded_since(shared_gateway, mark) == []


def test_tls_listener_refuses_ambiguous_framing(shared_gateway: RunningGateway) -> None:
    mark = len(shared_gateway.seen)
    raw = head(b"POST", b"Host: a", b"Content-Length: 5", b"Transfer-Encoding: chunked")
    with shared_gateway.connect(tls=True) as sock:
        sock.sendall(raw + b"\r\n0\r\n\r\n" + SMUGGLED)
        response = read_response(sock)
        closed = is_closed(sock)
    assert status_of(response) == 400
    assert problem_of(response)["code"] == "bad_framing"
    assert closed
    assert forwarded_since(shared_gateway, mark) == []


def test_absolute_form_target_is_accepted_and_its_authority_wins(
    shared_gateway: RunningGateway,
) -> None:
    mark = len(shared_gateway.seen)
    with shared_gateway.connect() as sock:
        sock.sendall(
            b"GET http://api.example.com:8081/v1/x?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"
        )
        response = read_response(sock)
    assert status_of(response) == 200
    record = shared_gateway.seen[mark]
    headers = dict(record["headers"])
    assert (record["path"], record["query"]) == ("/v1/x", "q=1")
    assert headers["x-forwarded-host"] == "api.example.com:8081"
    assert [value for name, value in record["headers"] if name == "host"] == [
        f"127.0.0.1:{shared_gateway.upstream_port}"
    ]


def test_expect_100_continue_gets_interim_response_then_final(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        sock.settimeout(3.0)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        response = read_response(sock)
    assert status_of(response) == 200
    echoed = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert echoed["body"] == "hello"
    assert "expect" not in dict(echoed["headers"])


@pytest.mark.parametrize(
    "upgrade",
    [
        pytest.param(
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
            id="h2c",
        ),
        pytest.param(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            id="websocket",
        ),
    ],
)
def test_upgrade_request_is_answered_as_http11_then_closed(
    shared_gateway: RunningGateway, upgrade: bytes
) -> None:
    mark = len(shared_gateway.seen)
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /up HTTP/1.1\r\nHost: a\r\n" + upgrade + b"\r\n" + SMUGGLED)
        response = read_response(sock)
        closed = is_closed(sock)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close\r\n" in response.lower()
    assert closed
    assert forwarded_since(shared_gateway, mark) == ["/up"]
    sent_upstream = {name for name, _ in shared_gateway.seen[mark]["headers"]}
    assert not sent_upstream & {"upgrade", "connection", "http2-settings"}


def test_request_refused_while_upstream_connects_is_still_ended(gateway: RunningGateway) -> None:
    # A fresh gateway has no pooled upstream connection: the bad chunk is refused while the
    # connection is still being opened, and the request must still be finished and logged.
    with gateway.connect() as sock:
        sock.sendall(head(b"POST", b"Host: a", b"Transfer-Encoding: chunked") + b"\r\nzz\r\n")
        assert status_of(read_response(sock)) == 400
    in_flight = -1
    for _ in range(20):
        in_flight = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/status").json()["in_flight"]
        if in_flight == 0:
            break
        time.sleep(0.1)
    assert in_flight == 0
