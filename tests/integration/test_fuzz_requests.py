"""Garbage and near-valid requests on the live listener never crash a worker or leak an error.

Each example is sent on a fresh connection, which the client then half-closes. Whatever the
bytes, the client sees nothing at all, or a well-formed HTTP/1.1 status line; never a 500
"internal error" from the protocol; and afterwards the gateway still serves normal requests
and has logged no error or traceback.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration

# Short timeouts so a request that promises more than it sends ends quickly.
LIMITS = {
    "header_timeout": 0.3,
    "body_timeout": 0.3,
    "idle_timeout": 1.0,
    "max_request_line": 512,
    "max_header_bytes": 2048,
    "max_headers": 20,
    "max_body_bytes": 4096,
}


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with small limits and short timeouts for the fuzzers."""
    with running_gateway(tmp_path_factory.mktemp("fuzz"), {"limits": LIMITS}) as running:
        yield running


CRLF = st.just(b"\r\n")
EOL = CRLF | st.sampled_from([b"\n", b"\r", b"\r\r\n", b"\r\n ", b""])
METHOD = st.sampled_from(
    [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"]
) | st.sampled_from([b"CONNECT", b"PRI", b"get", b"G ET", b"", b"\x00", b"GET\t"])
TARGET = (
    st.sampled_from([b"/", b"/a/b?x=1", b"/echo", b"/big/10", b"/chunked", b"/leaky", b"/close"])
    | st.sampled_from(
        [b"*", b"http://h/x", b"http://u@h/", b"h:443", b"/%2e%2e/", b"/a%2fb", b"//x", b"/..;/"]
    )
    | st.binary(max_size=40).map(lambda raw: b"/" + raw)
)
VERSION = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]) | st.sampled_from(
    [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"http/1.1", b"HTTP/1.1 ", b"HTTP/11", b""]
)
NAME = st.sampled_from(
    [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade"]
) | st.sampled_from([b"X-A", b"Host ", b" Host", b"X(A)", b"", b"Content-Length\x00", b"TE"])
VALUE = st.sampled_from(
    [b"a", b"0", b"5", b"chunked", b"close", b"keep-alive", b"100-continue", b"h2c", b"upgrade"]
) | st.sampled_from(
    [b"-1", b"1, 1", b"chunked, gzip", b"a\rb", b"a\x00b", b"18446744073709551616", b" ", b""]
)
FIELD = st.tuples(NAME | st.binary(min_size=1, max_size=12), st.just(b": "), VALUE, EOL)
BODY = st.sampled_from([b"", b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"hello"]) | (
    st.binary(max_size=64)
)


@st.composite
def near_valid_requests(draw: st.DrawFn) -> bytes:
    """A request built from mostly valid parts with the odd broken one."""
    line = draw(METHOD) + b" " + draw(TARGET) + b" " + draw(VERSION) + draw(EOL)
    fields = draw(st.lists(FIELD, max_size=6))
    host = draw(st.sampled_from([b"Host: a\r\n", b""]))
    head = line + host + b"".join(b"".join(field) for field in fields) + draw(EOL)
    request = head + draw(BODY)
    if draw(st.booleans()):
        request += draw(st.sampled_from([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /"]))
    return request


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid request with a few bytes replaced, inserted or removed."""
    request = bytearray(
        draw(
            st.sampled_from(
                [
                    b"GET /a?b=c HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n",
                    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n",
                ]
            )
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(request)))
        replacement = draw(st.binary(max_size=3))
        cut = draw(st.integers(0, 2))
        request[position : position + cut] = replacement
    return bytes(request)


REQUESTS = near_valid_requests() | mutated_requests() | st.binary(max_size=300)


def exchange(gateway: RunningGateway, raw: bytes) -> bytes:
    """Send `raw`, half-close, and read whatever comes back until the gateway closes."""
    with gateway.connect() as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway may refuse and close before everything was sent
        sock.settimeout(3.0)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return data
            if not chunk:
                return data
            data += chunk


def assert_sane(response: bytes) -> None:
    """Nothing, or HTTP/1.1 responses with a valid status and no internal error."""
    if not response:
        return
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    assert response[9:12].isdigit(), response[:80]
    assert response[12:13] == b" ", response[:80]
    assert 100 <= int(response[9:12]) <= 599
    assert b'"code":"internal_error"' not in response, response[:300]


def protocol_errors(records: list[logging.LogRecord]) -> list[str]:
    """Error-level records or tracebacks logged by the gateway or the event loop."""
    return [
        record.getMessage()
        for record in records
        if record.name.startswith(("bastion", "asyncio"))
        and (record.levelno >= logging.ERROR or record.exc_info)
    ]


def test_fuzzed_requests_get_sane_answers_and_the_worker_survives(
    shared_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(raw=REQUESTS)
    def check(raw: bytes) -> None:
        assert_sane(exchange(shared_gateway, raw))

    check()
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /after-fuzz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
    assert protocol_errors(caplog.records) == []


def test_fuzzed_requests_over_tls_get_sane_answers(
    shared_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(raw=REQUESTS)
    def check(raw: bytes) -> None:
        with shared_gateway.connect(tls=True) as sock:
            try:
                sock.sendall(raw)
            except OSError:
                return
            assert_sane(read_response(sock, timeout=1.0))

    check()
    with shared_gateway.connect(tls=True) as sock:
        sock.sendall(b"GET /after-fuzz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
    assert protocol_errors(caplog.records) == []
