"""The upstream side through the real listener: failures, streaming, header hygiene, pool reuse."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import (
    RunningGateway,
    free_port,
    read_response,
    running_gateway,
    status_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway (upstream read timeout 1 s) for the module."""
    with running_gateway(tmp_path_factory.mktemp("upstream")) as running:
        yield running


def split(response: bytes) -> tuple[bytes, dict[bytes, list[bytes]], bytes]:
    """Status line, headers (lower-cased names, every value) and raw body of a response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status_line, headers, body


def dechunk(body: bytes) -> bytes:
    """Decode a complete chunked body strictly; fails on any framing error."""
    decoded = b""
    while True:
        size_line, separator, body = body.partition(b"\r\n")
        assert separator, "chunk size line without CRLF"
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n", f"bad last chunk / trailer section: {body!r}"
            return decoded
        assert body[size : size + 2] == b"\r\n", "chunk data not followed by CRLF"
        decoded, body = decoded + body[:size], body[size + 2 :]


def read_chunked(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """Read a chunked response until its last chunk."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_until_closed(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def echoed(response: bytes) -> dict[str, Any]:
    """The echo upstream's record of the request, from the response body."""
    document: dict[str, Any] = json.loads(split(response)[2])
    return document


def fetch(gateway: RunningGateway, raw: bytes) -> bytes:
    """One request on a fresh connection."""
    with gateway.connect() as sock:
        sock.sendall(raw)
        return read_response(sock)


def problem_of(response: bytes) -> dict[str, Any]:
    """The problem+json body of an error response."""
    _, headers, body = split(response)
    assert headers[b"content-type"] == [b"application/problem+json"]
    document: dict[str, Any] = json.loads(body)
    return document


def test_unreachable_upstream_answers_502_then_503_once_ejected(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    service = {
        "name": "dead",
        "upstream": {"targets": [dead], "max_fails": 3},
        "routes": [{"name": "all", "paths": ["/"]}],
    }
    with running_gateway(tmp_path, {"services": [service]}) as gateway:
        responses = [fetch(gateway, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n") for _ in range(4)]
    assert [status_of(response) for response in responses] == [502, 502, 502, 503]
    first = problem_of(responses[0])
    assert (first["status"], first["code"]) == (502, "upstream_unreachable")
    assert "127.0.0.1" not in first["detail"]  # no internal address in the public message
    assert problem_of(responses[3])["code"] == "no_healthy_upstream"


def test_silent_upstream_answers_504_and_connection_stays_usable(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"GET /slow/3000 HTTP/1.1\r\nHost: a\r\n\r\n")
        response = read_response(sock, timeout=5.0)
        elapsed = time.monotonic() - start
        assert status_of(response) == 504
        assert problem_of(response)["code"] == "upstream_timeout"
        sock.sendall(b"GET /after-timeout HTTP/1.1\r\nHost: a\r\n\r\n")
        after = read_response(sock)
    assert 0.9 <= elapsed <= 2.5
    assert status_of(after) == 200
    assert echoed(after)["path"] == "/after-timeout"


def test_chunked_upstream_response_is_relayed_chunked_to_http11_client(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        response = read_chunked(sock)
        # Keep-alive survives a chunked response.
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        after = read_response(sock)
    status_line, headers, body = split(response)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert headers[b"transfer-encoding"] == [b"chunked"]
    assert b"content-length" not in headers
    assert dechunk(body) == b"hello world"
    assert echoed(after)["path"] == "/next"


def test_chunked_upstream_response_is_close_delimited_for_http10_client(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /chunked HTTP/1.0\r\n\r\n")
        response = read_until_closed(sock)
    status_line, headers, body = split(response)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in headers
    assert b"content-length" not in headers
    assert headers[b"connection"] == [b"close"]
    assert body == b"hello world"


def test_large_upstream_response_streams_completely(shared_gateway: RunningGateway) -> None:
    size = 5_000_000
    with shared_gateway.connect(timeout=10.0) as sock:
        sock.sendall(b"GET /big/%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
        response = read_response(sock, timeout=10.0)
    _, headers, body = split(response)
    assert headers[b"content-length"] == [str(size).encode()]
    assert len(body) == size
    assert body.count(b"x") == size


def test_upstream_software_headers_are_removed(shared_gateway: RunningGateway) -> None:
    response = fetch(shared_gateway, b"GET /leaky HTTP/1.1\r\nHost: a\r\n\r\n")
    _, headers, _ = split(response)
    assert status_of(response) == 200
    assert b"server" not in headers
    assert b"x-powered-by" not in headers


def test_content_length_request_body_arrives_intact(shared_gateway: RunningGateway) -> None:
    body = bytes(range(256)) * 400  # every byte value, 100 KiB
    with shared_gateway.connect() as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 7000):  # several writes
            sock.sendall(body[start : start + 7000])
        response = read_response(sock)
    assert status_of(response) == 200
    assert shared_gateway.seen[-1]["body"].encode("latin-1") == body
    headers = dict(shared_gateway.seen[-1]["headers"])
    assert headers["content-length"] == str(len(body))


def test_chunked_request_body_arrives_intact(shared_gateway: RunningGateway) -> None:
    parts = [b"first;", b"x" * 5000, b"\r\n\x00\xff", b"last"]
    with shared_gateway.connect() as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index, part in enumerate(parts):
            extension = b";name=value" if index == 1 else b""
            sock.sendall(b"%x%s\r\n%s\r\n" % (len(part), extension, part))
            time.sleep(0.02)
        sock.sendall(b"0\r\n\r\n")
        response = read_response(sock)
    assert status_of(response) == 200
    assert shared_gateway.seen[-1]["body"].encode("latin-1") == b"".join(parts)


def test_hop_by_hop_headers_are_not_forwarded(shared_gateway: RunningGateway) -> None:
    response = fetch(
        shared_gateway,
        b"GET /hop HTTP/1.1\r\nHost: a\r\n"
        b"Connection: x-secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
        b"TE: trailers\r\nUpgrade: something\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n"
        b"Proxy-Connection: keep-alive\r\nTrailer: x-checksum\r\nX-Kept: yes\r\n\r\n",
    )
    assert status_of(response) == 200
    forwarded = {name for name, _ in shared_gateway.seen[-1]["headers"]}
    hop_by_hop = {
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
    }
    assert not forwarded & hop_by_hop
    # The fields around the removed ones arrive intact (the Host line is not glued to another).
    upstream_headers = dict(shared_gateway.seen[-1]["headers"])
    assert upstream_headers["host"] == f"127.0.0.1:{shared_gateway.upstream_port}"
    assert upstream_headers["x-kept"] == "yes"


def test_client_sent_forwarding_and_identity_headers_are_replaced(
    shared_gateway: RunningGateway,
) -> None:
    response = fetch(
        shared_gateway,
        b"GET /who HTTP/1.1\r\nHost: api.example\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 1\r\n"
        b"Forwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\n"
        b"X-Bastion-Consumer: mallory\r\nX-Bastion-Scopes: admin\r\n"
        b"X-BASTION-Anything: x\r\n"
        # Underscore spellings that CGI/WSGI servers read as the same variables.
        b"X_Forwarded_For: 6.6.6.6\r\nX_Bastion_Consumer: mallory\r\nX_Custom: kept\r\n\r\n",
    )
    assert status_of(response) == 200
    headers = shared_gateway.seen[-1]["headers"]
    names = [name for name, _ in headers]
    values = dict(headers)
    assert values["x-forwarded-for"] == "127.0.0.1"
    assert values["x-forwarded-proto"] == "http"
    assert values["x-forwarded-host"] == "api.example"
    for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"):
        assert names.count(name) == 1
    assert not {"x-forwarded-port", "forwarded", "x-real-ip"} & set(names)
    assert not [name for name in names if name.replace("_", "-").startswith("x-bastion-")]
    assert "6.6.6.6" not in json.dumps(headers)
    assert "mallory" not in json.dumps(headers)
    assert values["x_custom"] == "kept"


def test_pool_recovers_after_upstream_closes_its_connection(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        for path in (b"/close", b"/after-close", b"/close", b"/again"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            response = read_response(sock)
            assert status_of(response) == 200
            assert echoed(response)["path"] == path.decode()
            # The upstream's `Connection: close` is hop-by-hop: the client connection stays.
            assert b"connection" not in split(response)[1]


def test_client_leaving_mid_response_does_not_break_later_requests(
    shared_gateway: RunningGateway,
) -> None:
    for _ in range(3):
        with shared_gateway.connect() as sock:
            sock.sendall(b"GET /big/5000000 HTTP/1.1\r\nHost: a\r\n\r\n")
            sock.settimeout(3.0)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Closed with most of the body unread.
    response = fetch(shared_gateway, b"GET /still-fine HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 200
    assert echoed(response)["path"] == "/still-fine"
    # Every abandoned request was ended: nothing stays counted as in flight.
    status: dict[str, Any] = {}
    for _ in range(20):
        status = httpx.get(f"http://127.0.0.1:{shared_gateway.admin_port}/status").json()
        if status["in_flight"] == 0:
            break
        time.sleep(0.1)
    assert status["in_flight"] == 0


class ScriptedUpstream:
    """A loopback upstream answering every request with fixed bytes, then closing.

    `script` items are bytes to send or a float of seconds to wait; the connection closes at
    the end, which is what delimits a response without Content-Length or chunking.
    """

    def __init__(self, script: Sequence[bytes | float]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed at teardown
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                for step in self.script:
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        conn.sendall(step)
            except OSError:
                return

    def close(self) -> None:
        """Stop accepting connections."""
        self.listener.close()


SCRIPTS: dict[str, list[bytes | float]] = {
    "close-delimited": [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil",
        0.1,
        b" close",
    ],
    "http10-upstream": [b"HTTP/1.0 200 OK\r\n\r\nold upstream"],
    "length-and-chunked": [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        0.5,
    ],
    "two-lengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\nok", 0.5],
    "cr-in-header": [
        b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: x=1\r\nContent-Length: 2\r\n\r\nok",
        0.5,
    ],
    "not-http": [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 0.5],
    "switching-protocols": [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw", 0.5],
    "closed-mid-body": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"],
    "closed-mid-chunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n"],
    "stalled-mid-body": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", 3.0],
}


@pytest.fixture(scope="module")
def scripted_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with one route per scripted upstream: `/<script name>`."""
    upstreams = {name: ScriptedUpstream(script) for name, script in SCRIPTS.items()}
    services = [
        {
            "name": f"scripted-{index}",
            "upstream": {"targets": [f"http://127.0.0.1:{upstream.port}"], "read_timeout": 1.0},
            "routes": [{"name": f"scripted-{index}", "paths": [f"/{name}"]}],
        }
        for index, (name, upstream) in enumerate(upstreams.items())
    ]
    state_dir = tmp_path_factory.mktemp("scripted")
    try:
        with running_gateway(state_dir, {"services": services}) as running:
            yield running
    finally:
        for upstream in upstreams.values():
            upstream.close()


@pytest.mark.parametrize("name", ["close-delimited", "http10-upstream"])
def test_close_delimited_upstream_response_is_relayed_complete(
    scripted_gateway: RunningGateway, name: str
) -> None:
    expected = {"close-delimited": b"until close", "http10-upstream": b"old upstream"}[name]
    with scripted_gateway.connect() as sock:
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % name.encode())
        response = read_chunked(sock)
        # The client's connection outlives the upstream's.
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % name.encode())
        again = read_chunked(sock)
    for each in (response, again):
        _, headers, body = split(each)
        assert headers[b"transfer-encoding"] == [b"chunked"]
        assert dechunk(body) == expected


@pytest.mark.parametrize(
    "name",
    ["length-and-chunked", "two-lengths", "cr-in-header", "not-http", "switching-protocols"],
)
def test_invalid_upstream_response_answers_502(scripted_gateway: RunningGateway, name: str) -> None:
    with scripted_gateway.connect() as sock:
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % name.encode())
        response = read_response(sock)
    assert status_of(response) == 502
    assert problem_of(response)["code"] == "upstream_invalid"
    assert b"smuggled" not in response
    assert b"set-cookie" not in response.lower()


@pytest.mark.parametrize("name", ["closed-mid-body", "closed-mid-chunk", "stalled-mid-body"])
def test_upstream_failing_mid_body_aborts_the_client_connection(
    scripted_gateway: RunningGateway, name: str
) -> None:
    with scripted_gateway.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % name.encode())
        response = read_until_closed(sock, timeout=5.0)
        elapsed = time.monotonic() - start
    status_line, headers, body = split(response)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    # The client can tell the response is incomplete: short of its length, or no last chunk.
    if b"content-length" in headers:
        assert len(body) < int(headers[b"content-length"][0])
    else:
        assert not body.endswith(b"0\r\n\r\n")
    assert elapsed < 2.5


class EarlyAnswerUpstream:
    """Answers 403 to every request head at once, without reading any body (a keep-alive
    server refusing early), and records the bytes received on each connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[bytearray] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            received = bytearray()
            self.connections.append(received)
            threading.Thread(target=self._answer, args=(conn, received), daemon=True).start()

    def _answer(self, conn: socket.socket, received: bytearray) -> None:
        with conn:
            pending = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                received.extend(chunk)
                pending += chunk
                while b"\r\n\r\n" in pending:
                    _, _, pending = pending.partition(b"\r\n\r\n")
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")


def test_upstream_connection_answered_before_the_body_was_sent_is_not_reused(
    tmp_path: Path,
) -> None:
    upstream = EarlyAnswerUpstream()
    service = {
        "name": "early",
        "upstream": {"targets": [f"http://127.0.0.1:{upstream.port}"]},
        "routes": [{"name": "all", "paths": ["/"]}],
    }
    try:
        with running_gateway(tmp_path, {"services": [service]}) as gateway:
            with gateway.connect() as sock:
                # 100 of the 1000 announced bytes; the upstream refuses before reading them.
                sock.sendall(
                    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"z" * 100
                )
                first = read_response(sock)
                first_closed = read_until_closed(sock) == b""
            with gateway.connect() as sock:
                sock.sendall(b"GET /victim HTTP/1.1\r\nHost: a\r\n\r\n")
                second = read_response(sock)
    finally:
        upstream.listener.close()
    assert (status_of(first), status_of(second)) == (403, 403)
    assert first_closed  # the rest of the client's body is never read as a request
    # The second request went on a fresh upstream connection, not after the partial body.
    for received in upstream.connections:
        assert not (b"POST /upload" in received and b"GET /victim" in received)
