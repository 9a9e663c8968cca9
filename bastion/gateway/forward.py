"""Forwards one admitted request to its upstream and relays the response through the chain.

How this works: `Forwarding` joins the client `Exchange` and an `UpstreamConnection`. It writes a
request head rebuilt from the canonical request (hop-by-hop fields and client-sent copies of the
headers Bastion owns removed, `X-Forwarded-*`, `X-Request-ID` and identity headers set), streams
the request body, and receives the response through `ResponseSink` callbacks: the head passes
the chain's `header_filter`, body chunks its `body_filter`, and the end runs `log`. Back-pressure
goes both ways by pausing the other side's reads. A request without a body that fails on a
reused keep-alive connection before any byte came back is retried once on a fresh connection
(the upstream may have closed it while idle).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bastion.clock import Clock
from bastion.core.chain import Chain
from bastion.core.context import RequestContext
from bastion.errors import Reject
from bastion.http.headers import Headers
from bastion.proxy.downstream import Exchange
from bastion.proxy.upstream import Target, UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from bastion.gateway.routes import CompiledRoute

_log = logging.getLogger("bastion.forward")

# RFC 9110 §7.6.1 hop-by-hop fields, plus legacy ones still seen in the wild.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Request fields Bastion sets itself: a client-sent copy must never reach the upstream.
_OWNED_REQUEST = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"forwarded",
    b"x-real-ip",
    b"x-request-id",
}
_OWNED_PREFIX = b"x-bastion-"
# Connection values that name no other field (the common case, skipped quickly).
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def _connection_listed(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Field names listed in `Connection`, which are hop-by-hop too (RFC 9110 §7.6.1)."""
    names: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(token.strip().lower() for token in value.split(b","))
    return frozenset(names)


def build_request_head(ctx: RequestContext, target: Target, preserve_host: bool) -> bytes:
    """The request line and headers sent upstream for `ctx.request`."""
    request = ctx.request
    raw = request.headers.items()
    query = b"?" + request.query if request.query else b""
    out = [request.method.encode(), b" ", request.path.encode(), query, b" HTTP/1.1\r\nhost: "]
    out.append(b"")  # the Host value, set below once the client's is known
    out.append(b"\r\n")
    original_host = None
    listed: frozenset[bytes] | None = None
    for item in raw:
        name = item[0]
        if name in _OWNED_REQUEST:
            if name == b"host":
                original_host = item[1]
            elif name == b"connection" and item[1].lower() not in _PLAIN_CONNECTION:
                listed = _connection_listed(raw)  # fields it names are hop-by-hop too (rare)
            continue
        if name[:10] == _OWNED_PREFIX:
            continue
        if b"_" in name:
            # CGI/WSGI-style upstreams read `X_Bastion_Consumer` and `X-Bastion-Consumer` (or
            # `X_Forwarded_For`) as the same variable: an underscore copy of a field Bastion
            # owns is a spoofed copy too.
            alias = name.replace(b"_", b"-")
            if alias in _OWNED_REQUEST or alias[:10] == _OWNED_PREFIX:
                continue
        out += (name, b": ", item[1], b"\r\n")
    out[5] = (original_host if preserve_host else None) or target.authority
    if listed:
        head, fields = out[:7], out[7:]
        out = head
        for index in range(0, len(fields), 4):
            if fields[index] not in listed:
                out += fields[index : index + 4]
    client_ip = request.client_ip
    forwarded_for = client_ip if client_ip == request.peer_ip else f"{client_ip}, {request.peer_ip}"
    extra = request.extra
    proto = extra.get("forwarded_proto", request.scheme) if extra else request.scheme
    out += (b"x-forwarded-for: ", forwarded_for.encode(), b"\r\nx-forwarded-proto: ")
    out += (str(proto).encode(), b"\r\n")
    if original_host:
        out += (b"x-forwarded-host: ", original_host, b"\r\n")
    out += (b"x-request-id: ", ctx.ensure_request_id().encode(), b"\r\n")
    identity = ctx.identity
    if identity is not None:
        out += (b"x-bastion-consumer: ", identity.consumer_id.encode(), b"\r\n")
        if identity.scopes:
            scopes = " ".join(sorted(identity.scopes)).encode()
            out += (b"x-bastion-scopes: ", scopes, b"\r\n")
    if request.body is not None:
        out.append(b"content-length: %d\r\n" % len(request.body))
    elif request.chunked:
        out.append(b"transfer-encoding: chunked\r\n")
    elif request.content_length is not None:
        out.append(b"content-length: %d\r\n" % request.content_length)
    out.append(b"\r\n")
    return b"".join(out)


class Forwarding:
    """One request's trip to the upstream and back."""

    __slots__ = (
        "_conn",
        "_done",
        "_has_length",
        "_head",
        "_head_held",
        "_loop",
        "_on_done",
        "_retried",
        "_target",
        "chain",
        "clock",
        "corker",
        "ctx",
        "exchange",
        "pool",
        "preserve_host",
    )

    def __init__(
        self,
        exchange: Exchange,
        ctx: RequestContext,
        route: CompiledRoute,
        on_done: Callable[[Exchange, RequestContext, Chain], None],
        loop: asyncio.AbstractEventLoop,
        clock: Clock,
    ) -> None:
        self.exchange = exchange
        self.corker = exchange.connection  # the upstream corks the client while it reads
        self.ctx = ctx
        self.chain = route.chain
        self.pool: UpstreamPool = route.pool
        self.preserve_host = route.preserve_host
        self.clock = clock
        self._on_done = on_done
        self._loop = loop
        self._conn: UpstreamConnection | None = None
        self._target: Target | None = None
        self._head = b""
        self._done = False
        self._retried = False
        self._has_length = False
        self._head_held = False

    def start(self) -> None:
        """Pick an upstream connection (or open one) and send the request."""
        try:
            target, conn = self.pool.pick()
        except Reject as reject:
            self._fail(reject)
            return
        self._target = target
        if conn is not None:
            self._attach(conn)
        else:
            self._loop.create_task(self._connect(target))

    async def _connect(self, target: Target) -> None:
        try:
            conn = await self.pool.connect(target)
        except Reject as reject:
            self._fail(reject)
            return
        if self.exchange.finished:  # the client went away while we connected
            self.pool.release(conn)
            # Fix: still end the request (log it, decrement the gateway's in-flight count);
            # returning here left it counted forever. `_complete` runs at most once.
            self._complete()
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        exchange = self.exchange
        ctx = self.ctx
        ctx.upstream_target = conn.target.url
        exchange.on_abort = self._client_gone
        exchange.on_pause_writing = conn.pause_reading
        exchange.on_resume_writing = conn.resume_reading
        if not self._head:
            self._head = build_request_head(ctx, conn.target, self.preserve_host)
        conn.begin(self, self._head, no_body_expected=exchange.is_head)
        request = ctx.request
        if request.body is not None:
            conn.write(request.body)  # buffered earlier for a policy that inspected it
        elif request.has_body:
            if ctx.max_body_size is not None:
                exchange.max_body = min(exchange.max_body, ctx.max_body_size)
            if request.chunked:
                exchange.consume_body(self._send_chunk, self._send_last_chunk)
            else:
                exchange.consume_body(conn.write, _nothing)

    def _send_chunk(self, chunk: bytes) -> None:
        if self._conn is not None and chunk:
            self._conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def _send_last_chunk(self) -> None:
        if self._conn is not None:
            self._conn.write(b"0\r\n\r\n")

    # -- ResponseSink ----------------------------------------------------------------------------

    def on_response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None:
        """Filter the upstream head through the chain and send it to the client."""
        ctx = self.ctx
        ctx.upstream_duration = self.clock.monotonic() - ctx.start
        kept_items = []
        listed = False
        has_length = False
        for item in headers:
            if item[0] in HOP_BY_HOP:
                if item[0] == b"connection" and item[1].lower() not in _PLAIN_CONNECTION:
                    listed = True
            else:
                kept_items.append(item)
                has_length = has_length or item[0] == b"content-length"
        if listed:
            names = _connection_listed(headers) - {b"keep-alive", b"close"}
            if names:
                kept_items = [item for item in kept_items if item[0] not in names]
        kept = Headers.adopt(kept_items)
        chain = self.chain
        if chain.has_body_filter:
            kept.remove(b"content-length")  # a body filter may change the length
            has_length = False
        ctx.status = status
        ctx.response_headers = kept
        if chain.has_header_filter:
            chain.header_filter(ctx)
            has_length = b"content-length" in ctx.response_headers
        if chain.has_body_filter:
            # A body filter may hold the body back and then change the status and headers
            # (response validation): the head leaves with the first bytes it releases.
            self._head_held = True
            return
        self.exchange.send_head(ctx.status, ctx.response_headers.items(), has_length=has_length)

    def _release_head(self) -> None:
        self._head_held = False
        ctx = self.ctx
        headers = ctx.response_headers
        self.exchange.send_head(
            ctx.status, headers.items(), has_length=b"content-length" in headers
        )

    def on_response_body(self, chunk: bytes) -> None:
        """Relay a body chunk (through body filters when the route has any)."""
        self.ctx.bytes_sent += len(chunk)
        if self.chain.has_body_filter:
            chunk = self.chain.body_filter(self.ctx, chunk, False)
            if self._head_held and chunk:
                self._release_head()
        self.exchange.send_body(chunk)

    def on_response_end(self) -> None:
        """Finish the client's response and log."""
        if self.chain.has_body_filter:
            last = self.chain.body_filter(self.ctx, b"", True)
            if self._head_held:
                self._release_head()
            self.exchange.send_body(last)
        conn, self._conn = self._conn, None
        if conn is not None and not self.exchange.body_done:
            # Fix: the upstream answered before the whole request body was sent (an early
            # 401/413...). Its connection is still inside this request: pooled, the next
            # request written to it would be read as the rest of this body (a desync across
            # clients). It was released to the pool just before this call; close it instead.
            conn.close()
        self.exchange.on_abort = None
        self.exchange.finish()
        self._complete()

    def on_upstream_error(self, error: Reject, retryable: bool) -> None:
        """Answer 502/504, or retry a body-less request once on a fresh connection."""
        self._conn = None
        if (
            retryable
            and not self._retried
            and not self.ctx.request.has_body
            and self._target is not None
            and not self.exchange.head_sent
        ):
            self._retried = True
            self._loop.create_task(self._connect(self._target))
            return
        self._fail(error)

    def on_upstream_pause(self) -> None:
        """The upstream is slow to take the body: stop reading it from the client."""
        self.exchange.pause_reading()

    def on_upstream_resume(self) -> None:
        """The upstream can take more: read from the client again."""
        self.exchange.resume_reading()

    # -- ends ------------------------------------------------------------------------------------

    def _client_gone(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.ctx.error = "client closed the connection"
        self._complete()

    def _fail(self, reject: Reject) -> None:
        ctx = self.ctx
        ctx.error = reject.detail
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.exchange.on_abort = None
        if self.exchange.finished:
            self._complete()
            return
        if self.exchange.head_sent:
            self.exchange.abort()
            self._complete()
            return
        ctx.reject = reject
        ctx.status = reject.status
        self._on_done(self.exchange, ctx, self.chain)  # the gateway renders and logs the error

    def _complete(self) -> None:
        if self._done:
            return
        self._done = True
        self._on_done(self.exchange, self.ctx, self.chain)


def _nothing() -> None:
    return None
