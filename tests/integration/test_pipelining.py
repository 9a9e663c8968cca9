"""Pipelining and keep-alive on the real listener: order, Connection: close, HTTP/1.0, HEAD."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway (default limits: 16 pipelined requests buffered) for the module."""
    with running_gateway(tmp_path_factory.mktemp("pipelining")) as running:
        yield running


@dataclass
class Reply:
    """One parsed response."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The echo upstream's JSON body."""
        document: dict[str, Any] = json.loads(self.body)
        return document


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def parse_replies(data: bytes, bodyless: frozenset[int] = frozenset()) -> list[Reply]:
    """Split a byte stream into responses (Content-Length or chunked framing).

    `bodyless` holds the indexes of responses to HEAD requests, which have no body whatever
    their Content-Length says.
    """
    replies: list[Reply] = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {head[:100]!r}"
        status_line, *lines = head.split(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 ")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if len(replies) in bodyless:
            body = b""
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                body, data = body + data[:size], data[size + 2 :]
                if size == 0:
                    break
        else:
            length = int(headers[b"content-length"])
            body, data = data[:length], data[length:]
        replies.append(Reply(int(status_line[9:12]), headers, body))
    return replies


def request(path: bytes, *extra: bytes, method: bytes = b"GET") -> bytes:
    """A request head (and body, when `extra` ends with one) for the pipeline."""
    return method + b" " + path + b" HTTP/1.1\r\nHost: a\r\n" + b"".join(extra) + b"\r\n"


CLOSE = b"Connection: close\r\n"


def test_pipelined_gets_are_answered_in_order(shared_gateway: RunningGateway) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(request(b"/p1") + request(b"/p2") + request(b"/p3", CLOSE))
        replies = parse_replies(read_until_closed(sock))
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert [reply.json()["path"] for reply in replies] == ["/p1", "/p2", "/p3"]


def test_pipelined_responses_keep_order_behind_a_slow_one(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(request(b"/slow/300") + request(b"/fast", CLOSE))
        replies = parse_replies(read_until_closed(sock))
    assert [reply.json()["path"] for reply in replies] == ["/slow/300", "/fast"]


def test_pipeline_longer_than_the_queue_is_answered_in_order(
    shared_gateway: RunningGateway,
) -> None:
    paths = [b"/q/%d" % index for index in range(40)]
    pipeline = b"".join(request(path) for path in paths[:-1]) + request(paths[-1], CLOSE)
    with shared_gateway.connect() as sock:
        sock.sendall(pipeline)
        replies = parse_replies(read_until_closed(sock))
    assert [reply.json()["path"].encode() for reply in replies] == paths


def test_post_body_followed_by_pipelined_get(shared_gateway: RunningGateway) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(
            request(b"/post", b"Content-Length: 11\r\n", method=b"POST")
            + b"hello world"
            + request(b"/next", CLOSE)
        )
        replies = parse_replies(read_until_closed(sock))
    first, second = (reply.json() for reply in replies)
    assert (first["method"], first["path"], first["body"]) == ("POST", "/post", "hello world")
    assert (second["method"], second["path"], second["body"]) == ("GET", "/next", "")


def test_chunked_post_followed_by_pipelined_get(shared_gateway: RunningGateway) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(
            request(b"/post", b"Transfer-Encoding: chunked\r\n", method=b"POST")
            + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            + request(b"/next", CLOSE)
        )
        replies = parse_replies(read_until_closed(sock))
    assert [reply.json()["body"] for reply in replies] == ["hello world", ""]


def test_connection_close_is_honoured(shared_gateway: RunningGateway) -> None:
    mark = len(shared_gateway.seen)
    with shared_gateway.connect() as sock:
        sock.sendall(request(b"/last", CLOSE) + request(b"/after-close"))
        replies = parse_replies(read_until_closed(sock))
    assert len(replies) == 1
    assert replies[0].headers[b"connection"] == b"close"
    assert [record["path"] for record in shared_gateway.seen[mark:]] == ["/last"]


@pytest.mark.parametrize(
    "extra",
    [pytest.param(b"", id="plain"), pytest.param(b"Connection: keep-alive\r\n", id="keep-alive")],
)
def test_http10_request_is_answered_then_closed(
    shared_gateway: RunningGateway, extra: bytes
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n" + extra + b"\r\n" + request(b"/ignored"))
        replies = parse_replies(read_until_closed(sock))
    assert len(replies) == 1
    assert replies[0].status == 200
    assert replies[0].json()["path"] == "/old"


@pytest.mark.parametrize(
    ("path", "length"),
    [pytest.param(b"/echo", None, id="echo"), pytest.param(b"/big/1000", b"1000", id="big")],
)
def test_head_gets_headers_without_body(
    shared_gateway: RunningGateway, path: bytes, length: bytes | None
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(request(path, method=b"HEAD") + request(b"/after-head", CLOSE))
        data = read_until_closed(sock)
    # The second response must start right after the first head: no body bytes in between.
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 ")
    head_reply, after = parse_replies(data, bodyless=frozenset({0}))
    if length is not None:
        assert head_reply.headers[b"content-length"] == length
    assert after.json()["path"] == "/after-head"


def test_hundred_requests_on_one_keepalive_connection(shared_gateway: RunningGateway) -> None:
    with shared_gateway.connect() as sock:
        for index in range(100):
            sock.sendall(request(b"/n/%d" % index))
            response = read_response(sock)
            assert status_of(response) == 200
            assert json.loads(response.split(b"\r\n\r\n", 1)[1])["path"] == f"/n/{index}"


def test_pipelined_requests_before_half_close_are_all_answered(
    shared_gateway: RunningGateway,
) -> None:
    with shared_gateway.connect() as sock:
        sock.sendall(request(b"/slow/200") + request(b"/h2") + request(b"/h3"))
        sock.shutdown(socket.SHUT_WR)  # the client is done sending but still reads
        replies = parse_replies(read_until_closed(sock))
    assert [reply.json()["path"] for reply in replies] == ["/slow/200", "/h2", "/h3"]
    assert [reply.headers.get(b"connection") for reply in replies] == [None, None, b"close"]


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
def test_connection_closes_after_keepalive_requests_responses(
    tmp_path_factory: pytest.TempPathFactory, pipelined: bool
) -> None:
    limits = {
        "header_timeout": 1.0,
        "body_timeout": 1.0,
        "idle_timeout": 2.0,
        "keepalive_requests": 5,
    }
    state_dir = tmp_path_factory.mktemp("keepalive")
    with running_gateway(state_dir, {"limits": limits}) as gateway, gateway.connect() as sock:
        if pipelined:
            sock.sendall(b"".join(request(b"/k/%d" % index) for index in range(8)))
            replies = parse_replies(read_until_closed(sock))
        else:
            replies = []
            for index in range(5):
                sock.sendall(request(b"/k/%d" % index))
                replies.extend(parse_replies(read_response(sock)))
            assert read_until_closed(sock) == b""
    assert [reply.json()["path"] for reply in replies] == [f"/k/{index}" for index in range(5)]
    assert [reply.headers.get(b"connection") for reply in replies] == [None] * 4 + [b"close"]
