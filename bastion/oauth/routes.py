"""The authorization server on the gateway's listener: its endpoints as gateway-local routes.

The gateway serves each of these exact paths as an internal route named `oauth.<endpoint>`:
it runs the global policies (request id, trusted proxy, security headers, IP filter, global
rate limit...), counts the request in flight, then calls `OAuthEndpoint.serve` where a proxied
route would call the upstream, and logs the answer (access log, metrics, security events).
`serve` checks the scheme (HTTPS only: RFC 6749 §3.2 requires TLS), the method, the content
type and the declared size before reading a bounded body, then answers with a complete
response. Every refusal of its own is an RFC 6749 §5.2 JSON error with `Cache-Control:
no-store`; a store outage is a 503, and only a bug is a 500.

Brute force: failed client authentication (`invalid_client`) at the token, introspection and
revocation endpoints, and failed logins on the login page, are counted by a `FailureGuard`
per client address and per (address, client_id or username). A locked source gets 429 with
`Retry-After` and `{"error": "slow_down"}` (the login page: the form with a generic message),
before any secret or password is checked, and a security event (`brute_force.too_many_failures`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Final

from bastion.core.context import PolicyReport, RequestContext
from bastion.errors import (
    RateLimited,
    Reject,
    ServiceUnavailable,
    StoreUnavailable,
    Unauthenticated,
)
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth.authorize import AuthorizeEndpoint, LoginUnavailable
from bastion.oauth.clients import ClientCredentials, presented_credentials
from bastion.oauth.errors import (
    CLIENT_AUTH_FAILED,
    HTTPS_REQUIRED,
    METHOD_NOT_ALLOWED,
    SERVER_UNAVAILABLE,
    TOO_LARGE,
    TOO_MANY_FAILURES,
    WRONG_CONTENT_TYPE,
    OAuthError,
    json_response,
)
from bastion.oauth.form import parse_form
from bastion.oauth.server import (
    AUTHORIZE_PATH,
    INTROSPECT_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    AuthorizationServer,
)
from bastion.policies.brute_force.guard import FailureGuard
from bastion.proxy.downstream import Exchange

_log = logging.getLogger("bastion.oauth")

MAX_FORM_BYTES: Final = 16_384
"""Largest form body accepted by the POST endpoints (413 beyond)."""
GUARD_POLICY: Final = "brute_force"
"""`bastion.policy` of lockout decisions in logs, events and metrics."""
AUTH_POLICY: Final = "oauth"
"""`bastion.policy` of failed client authentications in logs, events and metrics."""

_FormEndpoint = Callable[[Headers, bytes], Awaitable[Response]]
_Serve = Callable[[Exchange, RequestContext], Awaitable[Response | None]]
_FORM_TYPE: Final = b"application/x-www-form-urlencoded"
_CHALLENGE: Final = 'Basic realm="bastion-oauth", charset="UTF-8"'


class OAuthEndpoint:
    """One path of the authorization server as a gateway-local route (`Gateway.local_routes`)."""

    __slots__ = ("_serve", "route")

    def __init__(self, route: str, serve: _Serve) -> None:
        self.route = route
        self._serve = serve

    def serve(self, exchange: Exchange, ctx: RequestContext) -> Awaitable[Response | None]:
        """The response to send; None when one was already sent (413) or the client left."""
        return self._serve(exchange, ctx)


class _Attempts:
    """The guard applied to one request's source (`authorize.LoginAttempts`)."""

    __slots__ = ("_ctx", "_handlers")

    def __init__(self, handlers: _Handlers, ctx: RequestContext) -> None:
        self._handlers = handlers
        self._ctx = ctx

    async def locked(self, username: str) -> int | None:
        refused = await self._handlers.admit(self._ctx, "user:" + username)
        if refused is None:
            return None
        if isinstance(refused.reject, ServiceUnavailable):
            raise LoginUnavailable
        return refused.retry_after

    def failed(self, username: str) -> None:
        self._handlers.failed(self._ctx, "user:" + username)


class _Handlers:
    """The endpoints of one `AuthorizationServer` and the guard they share."""

    def __init__(self, server: AuthorizationServer, guard: FailureGuard | None) -> None:
        self.server = server
        self._guard = guard
        self._report_only = guard is not None and guard.config.mode == "report_only"

    # -- brute force ---------------------------------------------------------------------------

    async def admit(self, ctx: RequestContext, identity: str | None) -> _Refused | None:
        """None when the source may try; the refusal (recorded on `ctx`) when it is locked."""
        if self._guard is None:
            return None
        try:
            pending = self._guard.check(ctx.request.client_ip, identity)
            if pending is not None:
                await pending
        except (RateLimited, ServiceUnavailable) as exc:
            refused = _Refused(exc)
            if self._report_only:
                ctx.reports.append(
                    PolicyReport(GUARD_POLICY, exc.status, exc.error_code, exc.detail)
                )
                return None
            ctx.rejected_by = GUARD_POLICY
            ctx.reject = exc
            return refused
        return None

    def failed(self, ctx: RequestContext, identity: str | None) -> None:
        """Count a failed authentication from the request's source."""
        if self._guard is not None:
            self._guard.failed(ctx.request.client_ip, identity)

    # -- endpoints -----------------------------------------------------------------------------

    def client_form(self, endpoint: _FormEndpoint) -> _Serve:
        """A POST endpoint whose callers authenticate as OAuth clients (token, introspect...)."""

        async def serve(exchange: Exchange, ctx: RequestContext) -> Response | None:
            early = _precheck(exchange, b"POST") or _form_precheck(exchange)
            if early is not None:
                return early.response()
            body = await _body(exchange, ctx)
            if body is None:
                return None
            headers = exchange.request.headers
            attempted, identity = _attempted_client(headers, body)
            if attempted:
                refused = await self.admit(ctx, identity)
                if refused is not None:
                    return refused.oauth_error().response()
            try:
                return await endpoint(headers, body)
            except OAuthError as exc:
                if exc.error == "invalid_client":
                    self._client_failed(ctx, identity if attempted else None, attempted)
                return exc.response()

        return serve

    def _client_failed(self, ctx: RequestContext, identity: str | None, attempted: bool) -> None:
        # Recorded as a refusal so the access log, metrics and security events show it.
        ctx.rejected_by = AUTH_POLICY
        ctx.reject = Unauthenticated(
            CLIENT_AUTH_FAILED, challenge=_CHALLENGE, code="invalid_client"
        )
        if attempted:  # no credential at all is no guess (as for the brute_force policy)
            self.failed(ctx, identity)

    def authorize(self, endpoint: AuthorizeEndpoint) -> _Serve:
        """GET shows the login page (query parameters), POST submits it (a form)."""

        async def serve(exchange: Exchange, ctx: RequestContext) -> Response | None:
            request = exchange.request
            early = _precheck(exchange, b"GET, POST")
            if early is None and request.method == "POST":
                early = _form_precheck(exchange)
            if early is not None:
                return early.response()
            if request.method == "GET":
                return await endpoint.page(request.headers, request.query)
            body = await _body(exchange, ctx)
            if body is None:
                return None
            return await endpoint.submit(request.headers, body, _Attempts(self, ctx))

        return serve

    @staticmethod
    def document(fetch: Callable[[], Coroutine[object, object, Response]]) -> _Serve:
        """A public GET document (metadata, key set)."""

        async def serve(exchange: Exchange, ctx: RequestContext) -> Response | None:
            del ctx  # nothing to record
            early = _precheck(exchange, b"GET, HEAD")
            if early is not None:
                return early.response()
            return await fetch()

        return serve


class _Refused:
    """A lockout decision, as the OAuth error the token endpoints send."""

    __slots__ = ("reject", "retry_after")

    def __init__(self, reject: RateLimited | ServiceUnavailable) -> None:
        self.reject = reject
        retry = dict(reject.headers).get(b"retry-after")
        self.retry_after = int(retry) if retry is not None and retry.isdigit() else 1

    def oauth_error(self) -> OAuthError:
        if isinstance(self.reject, ServiceUnavailable):
            return OAuthError("temporarily_unavailable", SERVER_UNAVAILABLE, status=503)
        # 429 and Retry-After are what generic HTTP clients understand; `slow_down` is the
        # registered token-endpoint error closest to "wait before trying again" (RFC 8628 §3.5).
        return OAuthError("slow_down", TOO_MANY_FAILURES, status=429, retry_after=self.retry_after)


def _attempted_client(headers: Headers, body: bytes) -> tuple[bool, str | None]:
    """Whether a client credential was presented, and the client id it names (if readable)."""
    try:
        params = parse_form(body)
    except OAuthError:
        params = {}
    if headers.get(b"authorization") is None and "client_id" not in params:
        return False, None
    try:
        credentials: ClientCredentials | None = presented_credentials(headers, params)
    except OAuthError:
        credentials = None
    client_id = credentials.client_id if credentials is not None else params.get("client_id")
    if not client_id:
        return True, None
    return True, "client:" + client_id[:256]


def _precheck(exchange: Exchange, allow: bytes) -> OAuthError | None:
    request = exchange.request
    if request.scheme != "https":
        return OAuthError("invalid_request", HTTPS_REQUIRED)
    if request.method not in allow.decode().split(", "):
        return OAuthError("invalid_request", METHOD_NOT_ALLOWED, status=405, allow=allow)
    return None


def _form_precheck(exchange: Exchange) -> OAuthError | None:
    request = exchange.request
    media_type = (request.headers.get(b"content-type") or b"").split(b";")[0]
    if media_type.strip().lower() != _FORM_TYPE:
        return OAuthError("invalid_request", WRONG_CONTENT_TYPE)
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return OAuthError("invalid_request", TOO_LARGE, status=413)
    return None


async def _body(exchange: Exchange, ctx: RequestContext) -> bytes | None:
    """The form body: read here, or already buffered by a global policy that inspects bodies.

    Returns:
        None when the client left or the connection already answered 413.
    """
    body = ctx.request.body
    if body is None:
        body = await _read_body(exchange)
        if body is None:
            ctx.status = ctx.status or 413
            return None
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", TOO_LARGE, status=413)
    return body


def _read_body(exchange: Exchange) -> asyncio.Future[bytes | None]:
    """The whole body, at most `MAX_FORM_BYTES`; None when the exchange was aborted.

    A chunked body that grows past the limit is refused by the connection itself (413).
    """
    exchange.max_body = min(exchange.max_body, MAX_FORM_BYTES)
    future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    parts: list[bytes] = []

    def on_end() -> None:
        if not future.done():
            future.set_result(b"".join(parts))

    def on_abort() -> None:
        if not future.done():
            future.set_result(None)

    exchange.on_abort = on_abort
    if not exchange.request.has_body:
        future.set_result(b"")
        return future
    exchange.consume_body(parts.append, on_end)
    return future


async def answer(pending: Awaitable[Response | None]) -> Response | None:
    """`pending`'s response, with every failure turned into an OAuth error response."""
    try:
        return await pending
    except OAuthError as exc:
        return exc.response()
    except StoreUnavailable as exc:
        _log.warning("authorization server: store unavailable: %s", exc)
        return OAuthError("temporarily_unavailable", SERVER_UNAVAILABLE, status=503).response()
    except Reject:
        raise  # a policy decision, rendered by the gateway
    except Exception:  # noqa: BLE001 - a bug answers 500 with a fixed message, never a trace
        _log.exception("authorization server failed")
        return json_response({"error": "server_error"}, status=500)


def oauth_routes(
    server: AuthorizationServer, guard: FailureGuard | None = None
) -> dict[str, OAuthEndpoint]:
    """The gateway-local routes serving `server`, by exact path."""
    handlers = _Handlers(server, guard)

    async def metadata() -> Response:
        return json_response(server.metadata(), cache=True)

    async def jwks() -> Response:
        if server.keys.needs_reload():
            await server.keys.refresh()
        return json_response(server.keys.jwks(), cache=True)

    def route(name: str, serve: _Serve) -> OAuthEndpoint:
        def guarded(exchange: Exchange, ctx: RequestContext) -> Awaitable[Response | None]:
            return answer(serve(exchange, ctx))

        return OAuthEndpoint(f"oauth.{name}", guarded)

    return {
        TOKEN_PATH: route("token", handlers.client_form(server.token)),
        AUTHORIZE_PATH: route("authorize", handlers.authorize(AuthorizeEndpoint(server))),
        INTROSPECT_PATH: route("introspect", handlers.client_form(server.introspect)),
        REVOKE_PATH: route("revoke", handlers.client_form(server.revoke)),
        METADATA_PATH: route("metadata", handlers.document(metadata)),
        JWKS_PATH: route("jwks", handlers.document(jwks)),
    }
