"""Bastion as a pure ASGI middleware: the gateway's compiled chains in front of an ASGI app.

How this works: `BastionMiddleware` compiles the same router and chains the proxy uses (see
`bastion.gateway.compile`) once, at construction. For each HTTP request it builds the request
context from the scope, matches a route (no route: the global chain, or 404/405 with
`unmatched="deny"`), runs `rewrite` and `access` (awaiting only the phases that return an
awaitable), and then calls the wrapped app, the chain's terminal step, with a scope rebuilt from
the admitted request. The app's `http.response.start` passes `header_filter`, its body chunks
`body_filter`; rejections and local answers (a CORS preflight) are sent directly as the gateway
sends them. The `log` phase and the access log run once the response is over. Bodies stream to
the app unless a policy needs them: then they are buffered (bounded by the size limits, 413
past them) and replayed. Lifespan and websocket scopes pass through untouched (the end of the
lifespan is only observed, to write out buffered log lines).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from bastion.asgi_support.config import load_middleware_config
from bastion.asgi_support.exchange import ASGIExchange
from bastion.asgi_support.scope import (
    IDENTITY_STATE_KEY,
    REQUEST_ID_STATE_KEY,
    app_scope,
    request_from_scope,
)
from bastion.clock import Clock, SystemClock
from bastion.config.models import GatewayConfig
from bastion.core.context import Identity, RequestContext
from bastion.counters.base import Counters
from bastion.errors import (
    ConfigError,
    InsufficientScope,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Reject,
    Respond,
    Unauthenticated,
)
from bastion.gateway.app import AccessLogger
from bastion.gateway.compile import CompiledChains, compile_chains
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.http.response import Response, problem_response
from bastion.observability.access_log import AccessLog
from bastion.observability.events import SecurityEvents
from bastion.observability.metrics import RequestRecorder
from bastion.observability.sinks import Sink, open_sink

if TYPE_CHECKING:
    from starlette.requests import Request as StarletteRequest

    from bastion.oauth.routes import OAuthEndpoint
    from bastion.proxy.downstream import Exchange

__all__ = [
    "IDENTITY_STATE_KEY",
    "REQUEST_ID_STATE_KEY",
    "BastionMiddleware",
    "admin_app",
    "current_identity",
    "require_scopes",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("bastion.asgi")

NO_ROUTE: Final = "No route matches the request."
WRONG_METHOD: Final = "The method is not allowed for this path."
INTERNAL: Final = "An internal error occurred."
BODY_TOO_LARGE: Final = "The request body is larger than this endpoint accepts."
NOT_AUTHENTICATED: Final = "Authentication is required."
SCOPE_MISSING: Final = "The access token does not carry the scope this request requires."
# Statuses that never carry Content-Length (RFC 9110 §8.6).
_NO_CONTENT: Final = frozenset({204, 304})
DRAIN_TIMEOUT: Final = 2.0
"""Longest wait per sink for buffered log lines to be written at shutdown, in seconds."""
FLUSH_INTERVAL: Final = 0.5
"""Seconds between hand-overs of buffered access-log lines to the sink's writer thread."""


class _ClientGone(Exception):
    """The client disconnected while its body was being buffered."""


class BastionMiddleware:
    """Run Bastion's policies in front of an ASGI app (Starlette, FastAPI, any ASGI 3 app).

    `app.add_middleware(BastionMiddleware, config="bastion.yaml")` or
    `BastionMiddleware(app, config={...})`. The config has the gateway's format; `listeners`
    and each service's `upstream` may be left out, since the app is every route's terminal step.

    Args:
        app: The wrapped ASGI app.
        config: A YAML file path, an already-parsed mapping, or a `GatewayConfig`.
        unmatched: `allow` (default) lets requests that match no route through to the app,
            after the global policies; `deny` answers them 404/405 as the gateway does.
        access_log: Where finished requests are recorded; default: the config's
            `access_log` sinks (ECS access log and security events).
        clock: Time source of the policies and the log (tests pass a `FakeClock`).
        counters: Rate-limit counters; default: from the config's `counters` setting.
        extras: Shared services handed to every policy (`PolicyDeps.extras`), as the gateway
            builder hands them (the OAuth server for own-issuer tokens, for example).

    Raises:
        ConfigError: the config is invalid or a policy refused its settings.
        ValueError: `unmatched` is neither `allow` nor `deny`.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: str | Path | GatewayConfig | Mapping[str, object],
        *,
        unmatched: Literal["allow", "deny"] = "allow",
        access_log: AccessLogger | None = None,
        clock: Clock | None = None,
        counters: Counters | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        if unmatched not in ("allow", "deny"):
            raise ValueError("unmatched must be 'allow' or 'deny'")
        self.app = app
        self.config = load_middleware_config(config)
        self.config_path = Path(config) if isinstance(config, (str, Path)) else None
        self.revision = 1
        self.clock = clock or SystemClock()
        self._extras = dict(extras or {})
        self._install(
            compile_chains(self.config, clock=self.clock, counters=counters, extras=extras)
        )
        self.deny_unmatched = unmatched == "deny"
        self._sinks: list[Sink] = []
        self._events: SecurityEvents | None = None
        self._flush_scheduled = False
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.access_log = access_log if access_log is not None else self._default_log()
        self.in_flight = 0

    def _install(self, compiled: CompiledChains) -> None:
        # With `oauth:` set, the authorization server's endpoints are answered here, after the
        # global policies, as the standalone gateway does: one all-in-one deployment.
        self.local_routes = dict(compiled.local_routes or {})
        self.router = compiled.router
        self.global_chain = compiled.global_chain
        self.counters = compiled.counters
        self.max_body = self.config.limits.max_body_bytes

    def apply_config(self, config: GatewayConfig) -> None:
        """Serve `config` from the next request on (requests in flight keep their chains).

        The admin API's `PUT /admin/config` calls this (`bastion.asgi.admin_app`). It changes
        this process only: run one process, or apply the change to each.

        Raises:
            ConfigError: a policy refused its settings; the old config keeps serving.
        """
        same_counters = config.counters == self.config.counters
        compiled = compile_chains(
            config,
            clock=self.clock,
            counters=self.counters if same_counters else None,
            extras=self._extras,
        )
        self.config = config
        self._install(compiled)
        self.revision += 1

    def admin_event(self, action: str, *, success: bool) -> None:
        """Record a change made through the admin API (`admin_app`) as a security event."""
        if self._events is not None:
            self._events.admin_change(action, success=success)

    def _default_log(self) -> AccessLogger | None:
        settings = self.config.access_log
        try:
            sink = open_sink(settings.sink)
        except OSError as exc:
            raise ConfigError("access_log.sink", f"cannot open: {exc.strerror}") from None
        events_sink = sink
        if settings.security_log is not None:
            try:
                events_sink = open_sink(settings.security_log)
            except OSError as exc:
                where = "access_log.security_log"
                raise ConfigError(where, f"cannot open: {exc.strerror}") from None
        self._sinks = [s for s in {id(s): s for s in (sink, events_sink)}.values() if s]
        if not self._sinks:
            return None
        events = SecurityEvents(events_sink, self.clock) if events_sink is not None else None
        self._events = events
        return RequestRecorder(
            access_log=AccessLog(sink, self.clock) if sink is not None else None, events=events
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            await _Exchange(self, scope, receive, send).run()
        elif kind == "lifespan" and self._sinks:
            await self.app(scope, receive, self._watch_lifespan(send))
        else:
            await self.app(scope, receive, send)

    def _watch_lifespan(self, send: Send) -> Send:
        """`send`, unchanged, that writes out the buffered log lines once the app shut down."""

        async def watched(message: Message) -> None:
            await send(message)
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.drain()

        return watched

    def record(self, ctx: RequestContext) -> None:
        """Write the access-log line of a finished request (never raises)."""
        if self.access_log is None:
            return
        try:
            self.access_log.record(ctx)
        except Exception:  # noqa: BLE001 - a logging failure must not break serving
            _log.exception("access log failed")
        if not self._sinks:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._flush_loop:
            # A new event loop (a test client's, a restarted server's): a timer on the old
            # one may never fire.
            self._flush_loop = loop
            self._flush_scheduled = False
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Hand the buffered log lines to the sinks' writer threads."""
        self._flush_scheduled = False
        for sink in self._sinks:
            sink.flush()

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Write out every buffered log line, waiting up to `timeout` seconds per sink.

        Blocking: for shutdown (the middleware calls it when the app's lifespan ends).
        """
        self._flush_scheduled = False
        for sink in self._sinks:
            drain = getattr(sink, "drain", None)
            if drain is None:
                sink.flush()
            else:
                drain(timeout)

    def close(self) -> None:
        """Write out and close the log sinks this middleware opened (at application shutdown)."""
        for sink in self._sinks:
            sink.close()
        self._sinks = []


class _Exchange:
    """One HTTP request through the middleware."""

    __slots__ = (
        "body_limit",
        "chain",
        "ctx",
        "held",
        "local",
        "mw",
        "receive",
        "received",
        "scope",
        "send",
        "started",
    )

    def __init__(self, mw: BastionMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.mw = mw
        self.scope = scope
        self.receive = receive
        self.send = send
        self.chain = mw.global_chain
        self.started = False
        self.held: Message | None = None
        self.received = 0
        self.body_limit = mw.max_body
        self.ctx: RequestContext | None = None
        self.local: Respond | None = None

    async def run(self) -> None:
        mw = self.mw
        start = mw.clock.monotonic()
        try:
            request = request_from_scope(self.scope)
        except Reject as reject:
            # No usable request: answer with the global chain's response phases only.
            ctx = self.ctx = RequestContext(_unparsed(self.scope), start=start)
            ctx.reject = reject
            ctx.rejected_by = "router"
            try:
                await self._finish(ctx)
            finally:
                self._log(ctx)
            return
        ctx = self.ctx = RequestContext(request, start=start)
        mw.in_flight += 1
        try:
            local = mw.local_routes.get(request.path)
            if local is not None:
                ctx.route = local.route
                await self._serve_local(ctx, local)
                return
            match = mw.router.match(request.host, request.method, request.path)
            route = match.value
            if route is not None:
                ctx.route = route.name
                ctx.service = route.service
                self.chain = route.chain
            elif mw.deny_unmatched:
                await self._refuse_unmatched(ctx, match.allowed)
                return
            if await self._admit(ctx):
                await self._call_app(ctx)
            else:
                await self._answer(ctx)
        finally:
            mw.in_flight -= 1
            self._log(ctx)

    async def _admit(self, ctx: RequestContext) -> bool:
        """Run rewrite and access; False when the request was refused or answered locally."""
        chain = self.chain
        request = ctx.request
        try:
            if request.content_length is not None and request.content_length > self.body_limit:
                raise PayloadTooLarge(BODY_TOO_LARGE)
            if chain.has_rewrite:
                pending = chain.rewrite(ctx)
                if pending is not None:
                    await pending
            if chain.needs_request_body and request.has_body:
                request.body = await self._read_body(ctx)
            if chain.has_access:
                pending = chain.access(ctx)
                if pending is not None:
                    await pending
        except Reject as reject:
            _note_reject(ctx, reject, "limits")
            return False
        except Respond as respond:
            self.local = respond
            return False
        except _ClientGone:
            ctx.error = "client closed the connection"
            return False
        except Exception:  # noqa: BLE001 - a policy bug answers 500 with a fixed message
            _log.exception("policy failed on route %s", ctx.route)
            ctx.reject = InternalError(INTERNAL)
            return False
        return True

    async def _serve_local(self, ctx: RequestContext, endpoint: OAuthEndpoint) -> None:
        """An endpoint of Bastion's own (OAuth): the global chain, then the endpoint answers."""
        if not await self._admit(ctx):
            await self._answer(ctx)
            return
        exchange = ASGIExchange(ctx.request, self.body_limit, self.receive)
        try:
            # Duck-typed: ASGIExchange has every member the endpoints use.
            response = await endpoint.serve(cast("Exchange", exchange), ctx)
        except Reject as reject:
            _note_reject(ctx, reject, ctx.route or "oauth")
            await self._finish(ctx)
            return
        except Exception:  # noqa: BLE001 - an endpoint bug answers 500 with a fixed message
            _log.exception("local route %s failed", ctx.route)
            ctx.reject = InternalError(INTERNAL)
            await self._finish(ctx)
            return
        if response is None:
            response = exchange.response  # answered by the exchange itself (413), or None
        if response is not None:
            await self._send_local(ctx, response)

    async def _answer(self, ctx: RequestContext) -> None:
        """After `_admit` said no: send the rejection (nothing when the client left)."""
        if ctx.error is not None and ctx.reject is None and self.local is None:
            return
        await self._finish(ctx)

    async def _refuse_unmatched(self, ctx: RequestContext, allowed: tuple[str, ...]) -> None:
        chain = self.chain
        try:
            pending = chain.rewrite(ctx) if chain.has_rewrite else None
            if pending is not None:
                await pending
        except Reject as reject:
            _note_reject(ctx, reject, "router")
            await self._finish(ctx)
            return
        except Respond as respond:
            await self._send_local(ctx, _local(respond))
            return
        if allowed:
            ctx.reject = MethodNotAllowed(WRONG_METHOD, allow=list(allowed))
        else:
            ctx.reject = NotFound(NO_ROUTE)
        ctx.rejected_by = "router"
        await self._finish(ctx)

    async def _read_body(self, ctx: RequestContext) -> bytes:
        """Buffer the whole request body for the policies that inspect it."""
        if ctx.max_body_size is not None:
            self.body_limit = min(self.body_limit, ctx.max_body_size)
        parts: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self.body_limit:
                raise PayloadTooLarge(BODY_TOO_LARGE)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _call_app(self, ctx: RequestContext) -> None:
        if ctx.max_body_size is not None:
            self.body_limit = min(self.body_limit, ctx.max_body_size)
        receive: Receive
        if ctx.request.body is not None:
            receive = _Replay(ctx.request.body, self.receive)
        else:
            receive = self._receive_limited
        scope = app_scope(self.scope, ctx, body_filtered=self.chain.has_body_filter)
        try:
            await self.mw.app(scope, receive, self._send_from_app)
        except Reject as reject:
            # A body past the limit while streaming, or a dependency such as require_scopes.
            if self._sent_head():
                raise
            _note_reject(ctx, reject, "app")
            await self._finish(ctx)
            return
        except Exception:
            if self._sent_head():
                ctx.error = "the application failed"
                raise
            _log.exception("the application failed before responding")
            ctx.reject = InternalError(INTERNAL)
            await self._finish(ctx)
            return
        if self.held is not None:
            # The app ended without a final body message: the body filters still see the end.
            await self._send_from_app({"type": "http.response.body", "body": b""})
        if not self.started:
            _log.error("the application returned without a response")
            ctx.reject = InternalError(INTERNAL)
            await self._finish(ctx)

    def _sent_head(self) -> bool:
        """Whether the response head reached the server; a held one is dropped (unsent)."""
        if self.held is not None:
            # Nothing left for the client yet: the problem+json 500 can still replace it.
            self.held = None
            self.started = False
        return self.started

    async def _receive_limited(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.body_limit:
                reject = PayloadTooLarge(BODY_TOO_LARGE)
                if self.ctx is not None:
                    _note_reject(self.ctx, reject, "limits")
                raise reject
        return message

    async def _send_from_app(self, message: Message) -> None:
        kind = message["type"]
        ctx = self.ctx
        assert ctx is not None  # noqa: S101 - set before the app runs
        chain = self.chain
        if kind == "http.response.start":
            headers = Headers([(name.lower(), value) for name, value in message.get("headers", ())])
            if chain.has_body_filter:
                headers.remove(b"content-length")  # a body filter may change the length
            ctx.status = message["status"]
            ctx.response_headers = headers
            chain.header_filter(ctx)
            self.started = True
            if chain.has_body_filter:
                # A body filter may hold the body back and then change the status and
                # headers: the start message leaves with the first bytes it releases.
                self.held = message
                return
            message = {**message, "status": ctx.status, "headers": ctx.response_headers.items()}
        elif kind != "http.response.body":
            # pathsend, zerocopysend (removed from the app's scope under body filters, but
            # an app may send them anyway), trailers...: never before the start message.
            await self._release_head(ctx)
        else:
            body: bytes = message.get("body", b"")
            ctx.bytes_sent += len(body)
            if chain.has_body_filter:
                end = not message.get("more_body", False)
                message = {**message, "body": chain.body_filter(ctx, body, end)}
                if self.held is not None:
                    if not (message["body"] or end):
                        return  # still held back: nothing may precede the start message
                    await self._release_head(ctx)
        await self.send(message)

    async def _release_head(self, ctx: RequestContext) -> None:
        """Send the held start message, as the body filters left status and headers."""
        held = self.held
        if held is None:
            return
        self.held = None
        await self.send({**held, "status": ctx.status, "headers": ctx.response_headers.items()})

    async def _finish(self, ctx: RequestContext) -> None:
        """Answer `ctx.reject` (or a local response) if nothing was sent yet."""
        if self.started:
            return
        if self.local is not None:
            await self._send_local(ctx, _local(self.local))
            return
        reject = ctx.reject or InternalError(INTERNAL)
        await self._send_local(ctx, problem_response(reject, ctx.ensure_request_id()))

    async def _send_local(self, ctx: RequestContext, response: Response) -> None:
        chain = self.chain
        ctx.status = response.status
        ctx.response_headers = response.headers
        chain.header_filter(ctx)
        headers = ctx.response_headers
        if ctx.status not in _NO_CONTENT:
            headers.set(b"content-length", str(len(response.body)).encode())
        ctx.bytes_sent += len(response.body)
        self.started = True
        await self.send(
            {"type": "http.response.start", "status": ctx.status, "headers": headers.items()}
        )
        await self.send({"type": "http.response.body", "body": response.body})

    def _log(self, ctx: RequestContext) -> None:
        ctx.bytes_received = ctx.request.content_length or self.received
        self.chain.log(ctx)
        self.mw.record(ctx)


class _Replay:
    """Receive callable that hands the app the buffered body, then defers to the server."""

    __slots__ = ("_body", "_receive")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        body = self._body
        if body is None:
            return await self._receive()
        self._body = None
        return {"type": "http.request", "body": body, "more_body": False}


def _note_reject(ctx: RequestContext, reject: Reject, by: str) -> None:
    """Record a reject that did not come through a chain (which records its own)."""
    if ctx.reject is not reject:
        ctx.reject = reject
        ctx.rejected_by = by


def _local(respond: Respond) -> Response:
    return Response(respond.status, Headers(respond.headers), respond.body)


def _unparsed(scope: Scope) -> Request:
    """A stand-in request for the log line of a request whose head was refused."""
    return Request(str(scope.get("method", "GET")), "/", b"", Headers())


def admin_app(middleware: BastionMiddleware, *, token: str) -> ASGIApp:
    """The admin API of `middleware` as an ASGI app to mount on a private path.

    Consumers, keys, OAuth clients, the running config (`PUT /admin/config` recompiles the
    middleware's chains), the audit log, `/status` and `/ready`: the gateway's admin listener,
    served by the same code. Every `/admin/...` call needs `Authorization: Bearer <token>`.

    Raises:
        ValueError: the token is too short.
    """
    from bastion.asgi_support.admin import admin_app as make

    return make(middleware, token=token)


def current_identity(request: StarletteRequest) -> Identity | None:
    """The caller's identity as established by BastionMiddleware, or None if anonymous."""
    identity = request.scope.get("state", {}).get(IDENTITY_STATE_KEY)
    return identity if isinstance(identity, Identity) else None


def require_scopes(*scopes: str) -> Callable[[StarletteRequest], Identity]:
    """A dependency that returns the caller's identity if it holds every scope in `scopes`.

    Use it with FastAPI (`Depends(require_scopes("accounts:read"))`) or call it with a
    Starlette `Request` from any framework; it needs BastionMiddleware in front of the app,
    which renders its refusals as problem+json: 401 without an identity, 403
    `insufficient_scope` (RFC 6750 §3.1) when a scope is missing.

    Raises:
        ValueError: a scope is empty or contains a space or a quote.
    """
    from starlette.requests import Request as StarletteRequest

    for scope in scopes:
        if not scope or any(char in scope for char in ' "\\'):
            raise ValueError(f"invalid scope {scope!r}")
    required = frozenset(scopes)
    challenge = f'Bearer realm="bastion", error="insufficient_scope", scope="{" ".join(scopes)}"'
    missing_headers = [(b"www-authenticate", challenge.encode())]

    def dependency(request: StarletteRequest) -> Identity:
        identity = current_identity(request)
        if identity is None:
            raise Unauthenticated(NOT_AUTHENTICATED, challenge='Bearer realm="bastion"')
        if not required <= identity.scopes:
            raise InsufficientScope(SCOPE_MISSING, headers=list(missing_headers))
        return identity

    # Frameworks read the parameter's class at run time to inject the request (FastAPI does).
    dependency.__annotations__ = {"request": StarletteRequest, "return": Identity}
    dependency.__name__ = f"require_scopes_{'_'.join(scopes) or 'none'}"
    return dependency
