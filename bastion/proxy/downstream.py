"""The client-facing HTTP/1.1 server protocol on httptools: framing, limits, timeouts, pipelining.

How this works: one `HTTPServerProtocol` per connection feeds bytes to an httptools (llhttp)
parser, which is strict about framing (Content-Length with Transfer-Encoding, duplicate
Content-Length, bad chunk sizes, obs-fold, bare CR/LF and NUL all raise) — any parse error
answers 400 and closes. Each complete request head becomes an `Exchange`, handed to the
application's `handle()` in arrival order: pipelined requests wait in a bounded queue until
the one before them has finished. The application answers through the exchange
(`send_head`/`send_body`/`finish`, or `send_response`) and consumes the request body through
callbacks, so a proxied request needs no coroutine at all. Timeouts are deadlines on the
connection checked by the listener's once-a-second sweep (`check_deadline`), so setting one
costs an attribute write instead of a timer handle. This module does no policy work.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

from bastion.core.context import new_request_id
from bastion.errors import (
    HeadersTooLarge,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    Reject,
    URITooLong,
)
from bastion.http.headers import Headers
from bastion.http.path import PathRejected, canonical_path
from bastion.http.request import Request, Scheme
from bastion.http.response import Response, problem_response, reason_phrase

_log = logging.getLogger("bastion.downstream")

# Decoded once: the method of every request is one of these in practice.
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_FRAMING_FIELDS = frozenset({b"host", b"transfer-encoding", b"content-length", b"expect"})
_HOST = re.compile(rb"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")

BAD_REQUEST = "The request could not be parsed."
BAD_HOST = "The Host header is missing, repeated or invalid."
BAD_TARGET = "The request target is not supported."
BAD_PATH = "The request path is ambiguous or malformed."
BAD_TRANSFER_ENCODING = "Only the chunked transfer coding is supported."
BAD_VERSION = "The HTTP version is not supported."
TOO_LONG_URI = "The request target is too long."
TOO_MANY_HEADERS = "The request header fields are too large or too many."
TOO_LARGE_BODY = "The request body is too large."
TIMEOUT_HEAD = "The request head was not received in time."
TIMEOUT_BODY = "The request body was not received in time."
INTERNAL = "An internal error occurred."


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))
        if 100 <= status < 600:
            _STATUS_LINES[status] = line
    return line


class _DateCache:
    second = 0
    value = b""


def http_date() -> bytes:
    """The current time as an IMF-fixdate (RFC 9110 §5.6.7), formatted once per second."""
    now = int(time.time())
    if now != _DateCache.second:
        _DateCache.second = now
        _DateCache.value = formatdate(now, usegmt=True).encode()
    return _DateCache.value


@dataclass(frozen=True, slots=True)
class ProtocolLimits:
    """Limits and timeouts of the downstream protocol (from `LimitsConfig`)."""

    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    max_body_bytes: int = 10 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    keepalive_requests: int = 1000
    max_pipelined: int = 16


class App(Protocol):
    """What the protocol hands each request to: the gateway, or a redirect/admin handler."""

    def handle(self, exchange: Exchange) -> None:
        """Start answering `exchange`; must eventually call `finish`, `send_response` or `abort`."""
        ...


class _LimitExceeded(Exception):
    """Raised inside parser callbacks to stop parsing with a specific rejection."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(reject.detail)
        self.reject = reject


BodyCallback = Callable[[bytes], None]
Callback = Callable[[], None]


class Exchange:
    """One request on a connection and the response to it."""

    __slots__ = (
        "_body_buffer",
        "_conn",
        "_on_body",
        "_on_body_end",
        "_out_chunked",
        "body_done",
        "body_received",
        "close_after",
        "expect_continue",
        "finished",
        "head_sent",
        "is_head",
        "keep_alive",
        "max_body",
        "on_abort",
        "on_pause_writing",
        "on_resume_writing",
        "request",
        "started",
    )

    def __init__(self, conn: HTTPServerProtocol, request: Request, max_body: int) -> None:
        self._conn = conn
        self.request = request
        self.max_body = max_body
        self.body_done = not request.has_body
        self.body_received = 0
        self._body_buffer: list[bytes] = []
        self._on_body: BodyCallback | None = None
        self._on_body_end: Callback | None = None
        self.on_abort: Callback | None = None
        self.on_pause_writing: Callback | None = None
        self.on_resume_writing: Callback | None = None
        self.head_sent = False
        self.finished = False
        self.started = False
        self._out_chunked = False
        self.is_head = request.method == "HEAD"
        self.close_after = False
        self.expect_continue = False
        self.keep_alive = True

    # -- request body ---------------------------------------------------------------------------

    def consume_body(self, on_body: BodyCallback, on_end: Callback) -> None:
        """Receive the request body: buffered chunks now, later ones as they arrive.

        Sends `100 Continue` first when the client asked for it (RFC 9110 §10.1.1).
        """
        if self.body_received > self.max_body:
            # Fix: `max_body` may have been lowered (a route's size_limit) after part of the
            # body was buffered, e.g. while an upstream connection was opened; that part was
            # never checked against the new limit and an over-limit body was forwarded whole.
            self.close_after = True
            self.reject(PayloadTooLarge(TOO_LARGE_BODY))
            return
        if self.expect_continue and not self.head_sent:
            self.expect_continue = False
            self._conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        buffered, self._body_buffer = self._body_buffer, []
        for chunk in buffered:
            on_body(chunk)
        if self.body_done:
            on_end()
            return
        self._on_body = on_body
        self._on_body_end = on_end

    def _feed_body(self, chunk: bytes) -> None:
        self.body_received += len(chunk)
        if self.body_received > self.max_body:
            raise _LimitExceeded(PayloadTooLarge(TOO_LARGE_BODY))
        if self._on_body is not None:
            self._on_body(chunk)
        else:
            self._body_buffer.append(chunk)

    def _end_body(self) -> None:
        self.body_done = True
        if self._on_body_end is not None:
            on_end, self._on_body_end, self._on_body = self._on_body_end, None, None
            on_end()

    @property
    def connection(self) -> HTTPServerProtocol:
        """The client connection (for corking its writes: `HTTPServerProtocol.cork`)."""
        return self._conn

    def pause_reading(self) -> None:
        """Stop reading from the client (the upstream cannot take the body as fast)."""
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading from the client."""
        self._conn.resume_reading()

    # -- response ---------------------------------------------------------------------------------

    def send_response(self, response: Response) -> None:
        """Send a complete locally generated response and finish the exchange."""
        headers = response.headers
        if response.status != 204 and response.status >= 200:  # RFC 9110 §8.6
            headers.set(b"content-length", str(len(response.body)).encode())
        self._conn.cork()
        self.send_head(response.status, headers.items(), has_length=True)
        if response.body and not self.is_head:
            self._conn.write(response.body)
        self.finish()
        self._conn.uncork()

    def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], *, has_length: bool
    ) -> None:
        """Write the status line and headers.

        `headers` must not carry hop-by-hop fields. Without a Content-Length (`has_length`
        False) the body is sent chunked to HTTP/1.1 clients, or delimited by closing the
        connection for HTTP/1.0 ones.
        """
        if self.head_sent:
            return
        self.head_sent = True
        bodyless = self.is_head or status in (204, 304) or status < 200
        if not has_length and not bodyless:
            if self.request.http_version == "1.1":
                self._out_chunked = True
            else:
                self.close_after = True
        if not self.body_done:
            # The body was not (fully) read: the rest of it would be parsed as the next
            # request, so this connection cannot be reused.
            self.close_after = True
        if self._conn.must_close(self):
            self.close_after = True
        parts = [_status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if self._out_chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        if self.close_after:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self._conn.write(b"".join(parts))

    def send_body(self, chunk: bytes) -> None:
        """Write part of the response body."""
        if not chunk or self.is_head:
            return
        if self._out_chunked:
            self._conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self._conn.write(chunk)

    def finish(self) -> None:
        """End the response; the connection moves on to the next request or closes."""
        if self.finished:
            return
        self.finished = True
        if self._out_chunked:
            self._conn.write(b"0\r\n\r\n")
        self._conn.exchange_finished(self)

    def abort(self) -> None:
        """Drop the connection (after a failure once the response head was sent)."""
        self.finished = True
        self._conn.close()

    def reject(self, reject: Reject, request_id: str = "") -> None:
        """Send `reject` as problem+json (or close, if a response was already started).

        Whoever was serving the exchange (an upstream request) is told to stop first.
        """
        on_abort, self.on_abort = self.on_abort, None
        if self.head_sent:
            self.abort()
        else:
            response = problem_response(reject, request_id or new_request_id())
            response.headers.add(b"date", http_date())
            self.send_response(response)
        # Fix: tell the handler only after answering. Told first, the gateway saw an unanswered
        # exchange and rendered its own 500, so a bad chunk or an over-limit chunked body got
        # 500 instead of 400/413 whenever the request had already reached an upstream.
        if on_abort is not None:
            on_abort()

    def _connection_lost(self) -> None:
        # Fix: mark the exchange finished before telling the handler, so the handler does not
        # try to answer (a 500) on a connection that is gone.
        finished, self.finished = self.finished, True
        if not finished and self.on_abort is not None:
            self.on_abort()


class HTTPServerProtocol(asyncio.Protocol):
    """One client connection: parse requests, pass them on in order, write the responses."""

    def __init__(
        self,
        app: App,
        limits: ProtocolLimits,
        *,
        scheme: Scheme,
        default_host: str,
        connections: set[HTTPServerProtocol] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.scheme: Scheme = scheme
        self.default_host = default_host
        self._connections = connections
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._peer_ip = ""
        self._peer_port = 0
        # Parsing state of the request currently being read.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        # The few fields that decide framing and routing, collected while parsing so the
        # request head is not searched for each of them.
        self._framing: list[tuple[bytes, bytes]] = []
        self._host_cache: tuple[bytes, str] = (b"", "")
        self._header_bytes = 0
        self._head_bytes = 0
        self._in_head = False
        self._parsing: Exchange | None = None
        # Requests waiting for an answer, the first one being answered.
        self._active: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._served = 0
        self._closing = False
        self._reading_paused = False
        self._writing_paused = False
        self._stop_parsing = False
        self.deadline = 0.0
        self.draining = False
        self._corked: list[bytes] | None = None
        self._cork_depth = 0

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer_ip, self._peer_port = str(peer[0]), int(peer[1])
            if self._peer_ip.startswith("::ffff:"):
                self._peer_ip = self._peer_ip[7:]
        if self._connections is not None:
            self._connections.add(self)
        # The first request head must arrive within the header timeout.
        self.deadline = self._loop.time() + self.limits.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._closing = True
        if self._connections is not None:
            self._connections.discard(self)
        if self._active is not None:
            self._active._connection_lost()
        for queued in self._queue:
            queued._connection_lost()
        self._queue.clear()
        self._active = None
        self._parsing = None

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self._closing or self._stop_parsing:
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (h2c, WebSocket) are refused: the request is answered as plain
            # HTTP/1.1 and the connection closes, so bytes after the head are never parsed.
            self._stop_parsing = True
            if self._parsing is not None and not self._parsing.body_done:
                self._parsing._end_body()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _LimitExceeded):
                self._fail(cause.reject)
            elif isinstance(cause, Reject):
                self._fail(cause)
            else:
                _log.error("request parsing failed", exc_info=cause)
                self._fail(InternalError(INTERNAL))
        except httptools.HttpParserError:
            self._fail(InvalidRequest(BAD_REQUEST, code="bad_framing"))
        else:
            # httptools buffers a header line until it ends: bound it here. Fix: checked after
            # the feed and only while the head is still incomplete, because `data` may also
            # carry the body; a head split across reads followed by a large body in the same
            # read was refused with 431. One read (at most the transport's buffer) stays bounded.
            if (
                self._in_head
                and not self._stop_parsing
                and self._head_bytes > self.limits.max_header_bytes + self.limits.max_request_line
            ):
                self._fail(HeadersTooLarge(TOO_MANY_HEADERS))

    def eof_received(self) -> bool | None:  # noqa: D102
        if self._active is None and not self._queue:
            return None  # close now
        # Half-closed client: finish the in-flight responses, then close.
        self._stop_parsing = True
        return True

    def pause_writing(self) -> None:  # noqa: D102
        self._writing_paused = True
        if self._active is not None and self._active.on_pause_writing is not None:
            self._active.on_pause_writing()

    def resume_writing(self) -> None:  # noqa: D102
        self._writing_paused = False
        if self._active is not None and self._active.on_resume_writing is not None:
            self._active.on_resume_writing()

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:  # noqa: D102
        self._url = b""
        self._headers = []
        self._framing = []
        self._header_bytes = 0
        self._head_bytes = 0
        self._in_head = True
        self.deadline = self._loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:  # noqa: D102
        self._url += url
        if len(self._url) > self.limits.max_request_line:
            raise _LimitExceeded(URITooLong(TOO_LONG_URI))

    def on_header(self, name: bytes, value: bytes) -> None:  # noqa: D102
        self._header_bytes += len(name) + len(value) + 4
        if (
            len(self._headers) >= self.limits.max_headers
            or self._header_bytes > self.limits.max_header_bytes
        ):
            raise _LimitExceeded(HeadersTooLarge(TOO_MANY_HEADERS))
        name = name.lower()
        self._headers.append((name, value))
        if name in _FRAMING_FIELDS:
            self._framing.append((name, value))

    def on_headers_complete(self) -> None:  # noqa: D102
        self._in_head = False
        request = self._build_request()
        exchange = Exchange(self, request, self.limits.max_body_bytes)
        # HTTP/1.0 keep-alive is rare and error-prone: one request per connection there.
        exchange.keep_alive = request.http_version == "1.1" and self._parser.should_keep_alive()
        if request.content_length is not None and request.content_length > exchange.max_body:
            raise _LimitExceeded(PayloadTooLarge(TOO_LARGE_BODY))
        expect = request.headers.get(b"expect") if self._framing else None
        if expect is not None:
            if expect.lower() != b"100-continue":
                raise InvalidRequest("Only 'Expect: 100-continue' is supported.")
            exchange.expect_continue = request.http_version == "1.1" and request.has_body
        self._parsing = exchange
        self._served += 1
        if request.has_body:
            self.deadline = self._loop.time() + self.limits.body_timeout
        if self._active is None:
            self._start(exchange)
        else:
            self._queue.append(exchange)
            if len(self._queue) >= self.limits.max_pipelined:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:  # noqa: D102
        if self._parsing is not None:
            self.deadline = self._loop.time() + self.limits.body_timeout
            self._parsing._feed_body(body)

    def on_message_complete(self) -> None:  # noqa: D102
        exchange, self._parsing = self._parsing, None
        if exchange is not None and not exchange.body_done:
            exchange._end_body()
        if self._active is None:
            self.deadline = self._loop.time() + self.limits.idle_timeout
        else:
            self.deadline = 0.0  # waiting on the application, whose own timeouts apply

    # -- request head ----------------------------------------------------------------------------

    def _build_request(self) -> Request:
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise InvalidRequest(BAD_VERSION, code="bad_version")
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        if method == "CONNECT":
            # Fix: refuse CONNECT whatever its target. `CONNECT / HTTP/1.1` passed the target
            # check and reached the upstream, whose parser switches to a tunnel after it.
            raise InvalidRequest(BAD_TARGET, code="bad_target")
        headers = Headers.adopt(self._headers)
        target = self._url
        host_values = [value for name, value in self._framing if name == b"host"]
        if len(host_values) > 1 or (version == "1.1" and not host_values):
            raise InvalidRequest(BAD_HOST, code="bad_host")
        host = host_values[0] if host_values else b""
        if target.startswith(b"/"):
            raw_path, _, query = target.partition(b"?")
        elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # Absolute form (RFC 9112 §3.2.2): its authority replaces the Host header.
            try:
                parts = urlsplit(target.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise InvalidRequest(BAD_TARGET, code="bad_target") from None
            if not parts.netloc or "@" in parts.netloc:
                raise InvalidRequest(BAD_TARGET, code="bad_target")
            host = parts.netloc.encode()
            raw_path = (parts.path or "/").encode()
            query = parts.query.encode()
            headers.set(b"host", host)
        else:
            raise InvalidRequest(BAD_TARGET, code="bad_target")
        try:
            path = canonical_path(raw_path)
        except PathRejected:
            raise InvalidRequest(BAD_PATH, code="bad_path") from None
        chunked = False
        content_length = None
        if len(self._framing) > len(host_values):
            transfer_encoding = [v for n, v in self._framing if n == b"transfer-encoding"]
            if transfer_encoding:
                if (
                    version == "1.0"
                    or len(transfer_encoding) != 1
                    or (transfer_encoding[0].strip().lower() != b"chunked")
                ):
                    raise InvalidRequest(BAD_TRANSFER_ENCODING, code="bad_framing")
                chunked = True
            for name, value in self._framing:
                if name == b"content-length":
                    content_length = int(value)  # llhttp accepted it: digits only, one field
        hostname = self._hostname(host)
        # Positional arguments: this runs once per request and keywords cost more.
        return Request(
            method,
            path,
            query,
            headers,
            target,
            version,
            self.scheme,
            hostname,
            self._peer_ip,
            self._peer_port,
            self._peer_ip,
            None,
            content_length,
            chunked,
        )

    def _hostname(self, host: bytes) -> str:
        """The lower-case host name without port; the last one is cached per connection.

        Raises:
            InvalidRequest: the Host value is not a valid authority.
        """
        if host == self._host_cache[0] and host:
            return self._host_cache[1]
        if not host:
            host_text = self.default_host
        elif not _HOST.match(host):
            raise InvalidRequest(BAD_HOST, code="bad_host")
        else:
            host_text = host.decode("ascii").lower()
        if host_text.startswith("["):
            hostname = host_text[: host_text.find("]") + 1]
        else:
            hostname = host_text.partition(":")[0]
        if host:
            self._host_cache = (host, hostname)
        return hostname

    # -- exchanges -------------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self._active = exchange
        exchange.started = True
        try:
            self.app.handle(exchange)
        except Exception:  # noqa: BLE001 - a handler bug must answer 500, not kill the connection
            _log.exception("request handler failed")
            if not exchange.finished:
                exchange.reject(InternalError(INTERNAL))

    def must_close(self, exchange: Exchange) -> bool:
        """Whether the connection closes after `exchange`'s response."""
        # Fix: decide for `exchange` itself, not for the newest request read. `_stop_parsing`
        # (client half-closed, upgrade) used to close after the first of several pipelined
        # requests, dropping the rest, and `_served` counts requests already queued behind this
        # one, so a deep pipeline closed long before `keepalive_requests` responses were sent.
        return (
            (self._stop_parsing and not self._queue)
            or self.draining
            or self._served - len(self._queue) >= self.limits.keepalive_requests
            or not exchange.keep_alive
        )

    def exchange_finished(self, exchange: Exchange) -> None:
        """Called by `Exchange.finish`: start the next pipelined request or close."""
        if exchange is not self._active:
            return
        self._active = None
        if exchange.close_after or self._closing or (self._stop_parsing and not self._queue):
            self.close()
            return
        if self._queue:
            if self._reading_paused and len(self._queue) < self.limits.max_pipelined:
                self.resume_reading()
            self._start(self._queue.popleft())
        elif self._parsing is None:
            self.deadline = self._loop.time() + self.limits.idle_timeout

    def write(self, data: bytes) -> None:
        """Write raw bytes to the client (held back while corked)."""
        if self._corked is not None:
            self._corked.append(data)
        elif self.transport is not None and not self._closing:
            self.transport.write(data)

    def cork(self) -> None:
        """Hold writes until the matching `uncork`: head and body then leave in one syscall."""
        self._cork_depth += 1
        if self._corked is None:
            self._corked = []

    def uncork(self) -> None:
        """Write everything held since the outermost `cork` at once."""
        self._cork_depth -= 1
        if self._cork_depth > 0:
            return
        self._cork_depth = 0
        corked, self._corked = self._corked, None
        if corked and self.transport is not None and not self._closing:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def close(self) -> None:
        """Close the connection once buffered data is written."""
        if self._corked is not None:
            self._cork_depth = 1
            self.uncork()
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        """Stop reading from the socket."""
        if not self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading from the socket."""
        if self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    def _fail(self, reject: Reject) -> None:
        """Answer a protocol-level error and close: framing is unknown from here on."""
        self._stop_parsing = True
        target = self._parsing if self._parsing is not None and self._parsing.started else None
        if self._active is None or target is self._active:
            exchange = self._active
            if exchange is None or exchange.head_sent:
                if exchange is not None:
                    exchange.abort()
                    return
                stub = Exchange(self, Request("GET", "/", b"", Headers(), http_version="1.1"), 0)
                stub.close_after = True
                stub.body_done = True
                self._active = stub
                request_id = new_request_id()
                stub.reject(reject, request_id)
                self._report_protocol_error(reject, request_id)
                return
            exchange.close_after = True
            exchange.body_done = True
            exchange.reject(reject)
        else:
            # An earlier pipelined response is still in progress: close once it is done.
            self._queue.clear()

    def _report_protocol_error(self, reject: Reject, request_id: str) -> None:
        """Tell the application about a request refused before it could be parsed (for logs)."""
        report = getattr(self.app, "protocol_error", None)
        if report is None:
            return
        try:
            report(reject, request_id, self._peer_ip, self.scheme)
        except Exception:  # noqa: BLE001 - reporting must never break the connection handling
            _log.exception("reporting a protocol error failed")

    def close_if_idle(self) -> None:
        """Close now unless a request is being read or answered (graceful shutdown)."""
        if self._active is None and self._parsing is None and not self._in_head:
            self.close()

    def check_deadline(self, now: float) -> None:
        """Close the connection if its current deadline has passed (called by the sweep)."""
        if self.deadline and now > self.deadline and not self._closing:
            active = self._active
            if self._in_head and active is None:
                self._fail(_RequestTimeout(TIMEOUT_HEAD))
            elif active is not None and active is self._parsing and not active.head_sent:
                # Fix: a stalled request body is answered 408 like a stalled head; it used to
                # reach the handler as a disconnect, which answered 500.
                self._fail(_RequestTimeout(TIMEOUT_BODY))
            else:
                if active is not None:
                    active._connection_lost()  # fix: finished first, so no 500 is rendered
                self.close()


class _RequestTimeout(Reject):
    status = 408
    code = "request_timeout"
    title = "Request Timeout"
