"""The gateway's request handler: route, run the chain, forward, answer rejections, log.

How this works: `handle()` is called by the downstream protocol for every request head. It
matches a route, runs the chain's `rewrite` and `access` phases synchronously and, when every
policy answered from memory, starts the upstream `Forwarding` without creating a coroutine. Only
when a phase returns an awaitable (or a policy needs the buffered body) does the rest continue in
a task. Requests that match no route still pass the global policies' `rewrite` (request ids,
client address) and then get 404/405. The gateway's own endpoints (the OAuth server) are
`local_routes`: exact paths that run the global chain and then, instead of an upstream, the
endpoint's `serve` (always in a task: they read a body and query the store). Every request
ends in `_done`, which renders a rejection as problem+json when no response was sent, then
runs the `log` phase and the access log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Protocol

from bastion.clock import Clock
from bastion.core.chain import Chain
from bastion.core.context import RequestContext
from bastion.core.router import Match, Router
from bastion.errors import (
    InternalError,
    MethodNotAllowed,
    NotFound,
    Reject,
    Respond,
)
from bastion.gateway.forward import Forwarding
from bastion.gateway.routes import CompiledRoute
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.http.response import Response, problem_response
from bastion.proxy.downstream import Exchange, http_date

_log = logging.getLogger("bastion.gateway")

NO_ROUTE = "No route matches the request."
WRONG_METHOD = "The method is not allowed for this path."
INTERNAL = "An internal error occurred."


class AccessLogger(Protocol):
    """Writes one access-log record per request (see `bastion.observability.access_log`)."""

    def record(self, ctx: RequestContext) -> None:
        """Record the finished request."""
        ...


class LocalEndpoint(Protocol):
    """A path the gateway answers itself after the global policies (the OAuth server's)."""

    @property
    def route(self) -> str:
        """Route name in logs and metrics (`oauth.token`)."""
        ...

    def serve(self, exchange: Exchange, ctx: RequestContext) -> Awaitable[Response | None]:
        """The response to send; None when one was already sent or the client left."""
        ...


class Gateway:
    """Serves requests for one compiled configuration; a reload builds a new one."""

    def __init__(
        self,
        router: Router[CompiledRoute],
        global_chain: Chain,
        *,
        access_log: AccessLogger | None,
        loop: asyncio.AbstractEventLoop,
        clock: Clock,
        local_routes: Mapping[str, LocalEndpoint] | None = None,
    ) -> None:
        self.router = router
        # Exact paths the gateway answers itself (the OAuth server), checked before routing.
        self.local_routes = dict(local_routes or {})
        self._local_tasks: set[asyncio.Task[None]] = set()  # strong references while running
        self.clock = clock
        self.global_chain = global_chain
        self.access_log = access_log
        self._loop = loop
        self.in_flight = 0

    def handle(self, exchange: Exchange) -> None:
        """Start serving one request."""
        request = exchange.request
        ctx = RequestContext(request, start=self.clock.monotonic())
        self.in_flight += 1
        local = self.local_routes.get(request.path)
        if local is not None:
            task = self._loop.create_task(self._serve_local(exchange, ctx, local))
            self._local_tasks.add(task)
            task.add_done_callback(self._local_tasks.discard)
            return
        match = self.router.match(request.host, request.method, request.path)
        route = match.value
        if route is None:
            self._unmatched(exchange, ctx, match)
            return
        ctx.route = route.name
        ctx.service = route.service
        chain = route.chain
        try:
            pending = chain.rewrite(ctx) if chain.has_rewrite else None
            if pending is None:
                if chain.needs_request_body and ctx.request.has_body:
                    self._spawn(self._finish_phases(exchange, ctx, route, None, run_access=True))
                    return
                pending = chain.access(ctx) if chain.has_access else None
                if pending is None:
                    Forwarding(exchange, ctx, route, self._done, self._loop, self.clock).start()
                    return
                self._spawn(self._finish_phases(exchange, ctx, route, pending, run_access=False))
                return
            self._spawn(self._finish_phases(exchange, ctx, route, pending, run_access=True))
        except Reject:
            self._done(exchange, ctx, chain)
        except Respond as respond:
            self._respond(exchange, ctx, chain, respond)
        except Exception:  # noqa: BLE001 - a policy bug answers 500 with a fixed message
            # As on the slow path: the log phase must still run (it releases concurrency
            # slots, refunds quotas and counts the request out of in_flight).
            _log.exception("policy failed on route %s", route.name)
            ctx.reject = InternalError(INTERNAL)
            self._done(exchange, ctx, chain)

    def protocol_error(self, reject: Reject, request_id: str, peer_ip: str, scheme: str) -> None:
        """Log a request the HTTP layer refused before it was parsed: one access-log line.

        Smuggling attempts, malformed heads and slow clients get an access-log line and a
        security event (the recorder's), without running any chain.
        """
        if self.access_log is None:
            return
        request = Request("-", "-", b"", Headers(), scheme="https" if scheme == "https" else "http")
        request.peer_ip = request.client_ip = peer_ip
        ctx = RequestContext(request, start=self.clock.monotonic(), request_id=request_id)
        ctx.reject = reject
        ctx.rejected_by = "http"
        ctx.status = reject.status
        self.access_log.record(ctx)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        self._loop.create_task(coroutine)  # type: ignore[arg-type]  # a coroutine object

    async def _finish_phases(
        self,
        exchange: Exchange,
        ctx: RequestContext,
        route: CompiledRoute,
        pending: Awaitable[None] | None,
        *,
        run_access: bool,
    ) -> None:
        """The slow path: some policy needs I/O (a store, Redis) or the request body.

        `pending` is the unfinished rest of a phase; `run_access` tells whether the access
        phase still has to run after it.
        """
        chain = route.chain
        try:
            if pending is not None:
                await pending
            if run_access:
                if chain.needs_request_body and ctx.request.has_body:
                    ctx.request.body = await self._read_body(exchange, ctx)
                more = chain.access(ctx)
                if more is not None:
                    await more
        except Reject:
            self._done(exchange, ctx, chain)
            return
        except Respond as respond:
            self._respond(exchange, ctx, chain, respond)
            return
        except Exception:  # noqa: BLE001 - a policy bug answers 500 with a fixed message
            _log.exception("policy failed on route %s", route.name)
            ctx.reject = InternalError(INTERNAL)
            self._done(exchange, ctx, chain)
            return
        if exchange.finished:  # the client left while we waited
            self._done(exchange, ctx, chain)
            return
        Forwarding(exchange, ctx, route, self._done, self._loop, self.clock).start()

    async def _serve_local(
        self, exchange: Exchange, ctx: RequestContext, endpoint: LocalEndpoint
    ) -> None:
        """A local route: the global chain, then the endpoint where an upstream would be."""
        ctx.route = endpoint.route
        chain = self.global_chain
        try:
            pending = chain.rewrite(ctx) if chain.has_rewrite else None
            if pending is not None:
                await pending
            if chain.needs_request_body and ctx.request.has_body:
                ctx.request.body = await self._read_body(exchange, ctx)
            pending = chain.access(ctx) if chain.has_access else None
            if pending is not None:
                await pending
            response = await endpoint.serve(exchange, ctx)
        except Reject:
            self._done(exchange, ctx, chain)
            return
        except Respond as respond:
            self._respond(exchange, ctx, chain, respond)
            return
        except Exception:  # noqa: BLE001 - an endpoint bug answers 500 with a fixed message
            _log.exception("local route %s failed", endpoint.route)
            ctx.reject = InternalError(INTERNAL)
            self._done(exchange, ctx, chain)
            return
        if response is not None and not exchange.finished and not exchange.head_sent:
            response.headers.add(b"date", http_date())
            self._send(exchange, ctx, chain, response)
        self._log(ctx, chain)

    def _read_body(self, exchange: Exchange, ctx: RequestContext) -> asyncio.Future[bytes]:
        """Buffer the whole request body (bounded by the size limits) for inspecting policies."""
        if ctx.max_body_size is not None:
            exchange.max_body = min(exchange.max_body, ctx.max_body_size)
        future: asyncio.Future[bytes] = self._loop.create_future()
        parts: list[bytes] = []

        def on_end() -> None:
            if not future.done():
                future.set_result(b"".join(parts))

        def on_abort() -> None:
            if not future.done():
                future.set_exception(InternalError("client closed the connection"))

        exchange.on_abort = on_abort
        exchange.consume_body(parts.append, on_end)
        return future

    def _unmatched(
        self, exchange: Exchange, ctx: RequestContext, match: Match[CompiledRoute]
    ) -> None:
        chain = self.global_chain
        try:
            # Global rewrite policies run synchronously here; one needing I/O is skipped for
            # unmatched requests, which are refused anyway.
            chain.rewrite(ctx)
        except Reject:
            self._done(exchange, ctx, chain)
            return
        except Respond as respond:
            self._respond(exchange, ctx, chain, respond)
            return
        if match.allowed:
            ctx.reject = MethodNotAllowed(WRONG_METHOD, allow=list(match.allowed))
        else:
            ctx.reject = NotFound(NO_ROUTE)
        ctx.rejected_by = "router"
        self._done(exchange, ctx, chain)

    def _respond(
        self, exchange: Exchange, ctx: RequestContext, chain: Chain, respond: Respond
    ) -> None:
        headers = Headers(respond.headers)
        headers.add(b"date", http_date())
        self._send(exchange, ctx, chain, Response(respond.status, headers, respond.body))
        self._log(ctx, chain)

    def _send(
        self, exchange: Exchange, ctx: RequestContext, chain: Chain, response: Response
    ) -> None:
        ctx.status = response.status
        ctx.response_headers = response.headers
        chain.header_filter(ctx)
        ctx.bytes_sent += len(response.body)
        exchange.send_response(Response(ctx.status, ctx.response_headers, response.body))

    def _done(self, exchange: Exchange, ctx: RequestContext, chain: Chain) -> None:
        """End of every request: answer a rejection if nothing was sent, then log."""
        if not exchange.finished and not exchange.head_sent:
            reject = ctx.reject or InternalError(INTERNAL)
            response = problem_response(reject, ctx.ensure_request_id())
            response.headers.add(b"date", http_date())
            self._send(exchange, ctx, chain, response)
        self._log(ctx, chain)

    def _log(self, ctx: RequestContext, chain: Chain) -> None:
        self.in_flight -= 1
        ctx.bytes_received = ctx.request.content_length or 0
        if chain.has_log:
            chain.log(ctx)
        if self.access_log is not None:
            try:
                self.access_log.record(ctx)
            except Exception:  # noqa: BLE001 - a logging failure must not break serving
                _log.exception("access log failed")
