"""Size limits (414, 431, 413) and timeouts (slow heads, stalled bodies, idle keep-alive).

The module's gateway runs with small limits so the tests stay fast: request target 256 bytes,
header block 2048 bytes or 10 fields, body 8000 bytes; header and body timeouts 1 s, idle 2 s.
Deadlines are applied by a sweep every 0.5 s, so a 1 s timeout fires within about 1.5 s.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration

LIMITS = {
    "header_timeout": 1.0,
    "body_timeout": 1.0,
    "idle_timeout": 2.0,
    "max_request_line": 256,
    "max_header_bytes": 2048,
    "max_headers": 10,
    "max_body_bytes": 8000,
}


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with the small limits above."""
    with running_gateway(tmp_path_factory.mktemp("limits"), {"limits": LIMITS}) as running:
        yield running


def send(gateway: RunningGateway, raw: bytes) -> bytes:
    """Send `raw` on a fresh connection and read the response."""
    with gateway.connect() as sock:
        sock.sendall(raw)
        return read_response(sock)


def send_refused(gateway: RunningGateway, raw: bytes) -> tuple[bytes, bool]:
    """Send `raw` on a fresh connection; the response and whether the gateway then closed."""
    with gateway.connect() as sock:
        sock.sendall(raw)
        response = read_response(sock)
        return response, wait_closed(sock, 1.0)


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes the connection within `timeout` seconds (no data expected)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def problem_of(response: bytes) -> dict[str, Any]:
    """The problem+json body of an error response."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    document: dict[str, Any] = json.loads(body)
    return document


def test_request_target_over_limit_answers_414(shared_gateway: RunningGateway) -> None:
    response, closed = send_refused(
        shared_gateway, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert status_of(response) == 414
    assert problem_of(response)["code"] == "uri_too_long"
    assert closed


def test_request_target_within_limit_is_served(shared_gateway: RunningGateway) -> None:
    response = send(shared_gateway, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"".join(b"X-H%d: 1\r\n" % i for i in range(12)), id="too-many-fields"),
        pytest.param(
            b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 600) for i in range(4)), id="block-too-large"
        ),
        pytest.param(b"X-Big: " + b"v" * 2100 + b"\r\n", id="one-field-too-large"),
    ],
)
def test_header_block_over_limit_answers_431(
    shared_gateway: RunningGateway, headers: bytes
) -> None:
    mark = len(shared_gateway.seen)
    response, closed = send_refused(
        shared_gateway, b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    )
    assert status_of(response) == 431
    assert problem_of(response)["code"] == "headers_too_large"
    assert closed
    assert shared_gateway.seen[mark:] == []


def test_header_line_that_never_ends_is_cut_off_early(shared_gateway: RunningGateway) -> None:
    sent = 0
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        # Keep sending (paced, so the gateway keeps up) until it answers: it must not buffer
        # the line without bound.
        while sent < 8 * 1024 * 1024:
            try:
                sock.sendall(b"v" * 16384)
            except OSError:
                break
            sent += 16384
            readable, _, _ = select.select([sock], [], [], 0.005)
            if readable:
                break
        response = read_response(sock)
    assert status_of(response) == 431
    assert sent < 1024 * 1024


def test_split_head_followed_by_body_in_one_read_is_served(
    shared_gateway: RunningGateway,
) -> None:
    # The head's end and 6000 body bytes arrive together: only head bytes count toward the
    # header limit (2048 + 256), so this is an ordinary request.
    with shared_gateway.connect() as sock:
        sock.sendall(b"POST /split HTTP/1.1\r\nHo")
        time.sleep(0.2)
        sock.sendall(b"st: a\r\nContent-Length: 6000\r\n\r\n" + b"b" * 6000)
        response = read_response(sock)
    assert status_of(response) == 200
    assert shared_gateway.seen[-1]["body"] == "b" * 6000


def test_content_length_over_limit_answers_413_without_reading_body(
    shared_gateway: RunningGateway,
) -> None:
    mark = len(shared_gateway.seen)
    response, closed = send_refused(
        shared_gateway, b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 8001\r\n\r\n"
    )
    assert status_of(response) == 413
    assert problem_of(response)["code"] == "payload_too_large"
    assert closed
    assert shared_gateway.seen[mark:] == []


def test_body_at_limit_is_forwarded(shared_gateway: RunningGateway) -> None:
    response = send(
        shared_gateway,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 8000\r\n\r\n" + b"c" * 8000,
    )
    assert status_of(response) == 200
    assert shared_gateway.seen[-1]["body"] == "c" * 8000


@pytest.mark.parametrize("pause", [0.0, 0.2], ids=["one-write", "two-writes"])
def test_chunked_body_over_limit_answers_413(shared_gateway: RunningGateway, pause: float) -> None:
    mark = len(shared_gateway.seen)
    chunk = b"1000\r\n" + b"d" * 4096 + b"\r\n"
    with shared_gateway.connect() as sock:
        # Warm the upstream pool so the request reaches the upstream before the body overflows.
        sock.sendall(b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(chunk)
        time.sleep(pause)
        with contextlib.suppress(OSError):  # the gateway may already have answered and closed
            sock.sendall(chunk + b"0\r\n\r\n")
        response = read_response(sock)
        closed = wait_closed(sock, 1.0)
    assert status_of(response) == 413
    assert problem_of(response)["code"] == "payload_too_large"
    assert closed
    assert [record["path"] for record in shared_gateway.seen[mark:]] == ["/warm"]


def trickle(
    gateway: RunningGateway, data: bytes, interval: float, give_up: float
) -> dict[str, Any]:
    """Send `data` one byte per `interval`; report what came back and when the gateway closed."""
    result: dict[str, Any] = {"received": b"", "closed_after": None}
    with gateway.connect() as sock:
        sock.settimeout(interval)
        start = time.monotonic()
        for byte in data:
            if time.monotonic() - start > give_up:
                break
            try:
                sock.sendall(bytes([byte]))
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                result["closed_after"] = time.monotonic() - start
                break
            if not chunk:
                result["closed_after"] = time.monotonic() - start
                break
            result["received"] += chunk
    return result


def test_slowloris_client_is_cut_off_while_others_are_served(
    shared_gateway: RunningGateway,
) -> None:
    slow: dict[str, Any] = {}
    data = b"GET /slow-head HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100 + b"\r\n\r\n"
    thread = threading.Thread(
        target=lambda: slow.update(trickle(shared_gateway, data, 0.2, give_up=6.0))
    )
    thread.start()
    served_at: list[float] = []
    start = time.monotonic()
    time.sleep(0.3)
    for index in range(3):
        response = send(shared_gateway, b"GET /meanwhile/%d HTTP/1.1\r\nHost: a\r\n\r\n" % index)
        assert status_of(response) == 200
        served_at.append(time.monotonic() - start)
        time.sleep(0.1)
    thread.join(10)
    assert slow["closed_after"] is not None
    assert slow["closed_after"] <= 3.0
    # Every other client was answered while the slow one was still connected.
    assert max(served_at) < slow["closed_after"]
    assert slow["received"] == b"" or status_of(slow["received"]) == 408
    assert all(record["path"] != "/slow-head" for record in shared_gateway.seen)


def test_connection_that_sends_nothing_is_closed_after_header_timeout(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        start = time.monotonic()
        closed = wait_closed(sock, 4.0)
        elapsed = time.monotonic() - start
    assert closed
    assert 0.9 <= elapsed <= 2.5


def test_stalled_request_body_is_cut_off(shared_gateway: RunningGateway) -> None:
    mark = len(shared_gateway.seen)
    with shared_gateway.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        response = read_response(sock, timeout=5.0)
        elapsed = time.monotonic() - start
        closed = wait_closed(sock, 1.0)
    assert status_of(response) == 408
    assert problem_of(response)["code"] == "request_timeout"
    assert closed
    assert 0.9 <= elapsed <= 3.0
    assert shared_gateway.seen[mark:] == []


def test_idle_keepalive_connection_is_closed_after_idle_timeout(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        # Idle for longer than the header timeout but shorter than the idle timeout: still open.
        time.sleep(1.4)
        sock.sendall(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        start = time.monotonic()
        closed = wait_closed(sock, 5.0)
        elapsed = time.monotonic() - start
    assert closed
    assert 1.9 <= elapsed <= 3.5


def test_route_body_limit_applies_to_chunked_body_whether_pool_is_cold_or_warm(
    tmp_path: Path,
) -> None:
    # The first request opens the upstream connection while the body is already buffered;
    # the second finds a pooled one. Both must hit the size_limit policy's 100-byte cap.
    policies = {"global_policies": {"size_limit": {"max_body_bytes": 100}}}
    body = b"1f4\r\n" + b"y" * 500 + b"\r\n0\r\n\r\n"
    with running_gateway(tmp_path, {"limits": LIMITS, **policies}) as gateway:
        statuses = []
        for _ in range(2):
            response, closed = send_refused(
                gateway,
                b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
            )
            statuses.append(status_of(response))
            assert problem_of(response)["code"] == "payload_too_large"
            assert closed
        small = send(
            gateway,
            b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nsmall\r\n0\r\n\r\n",
        )
        seen = [(record["path"], record["body"]) for record in gateway.seen]
    assert statuses == [413, 413]
    assert status_of(small) == 200
    assert seen == [("/ok", "small")]
