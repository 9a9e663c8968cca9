"""The authorization server on the gateway's listener: exact paths → handlers of an Exchange.

The gateway calls a handler instead of routing when the request path is one of these. Each
handler checks the scheme (HTTPS only: RFC 6749 §3.2 requires TLS), the method, the content
type and the declared size before reading a bounded body, then answers with a complete
response. Every refusal is an RFC 6749 §5.2 JSON error with `Cache-Control: no-store`; a store
outage is a 503, and only a bug is a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Final

from bastion.errors import StoreUnavailable
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth.authorize import AuthorizeEndpoint
from bastion.oauth.errors import (
    HTTPS_REQUIRED,
    METHOD_NOT_ALLOWED,
    SERVER_UNAVAILABLE,
    TOO_LARGE,
    WRONG_CONTENT_TYPE,
    OAuthError,
    json_response,
)
from bastion.oauth.server import (
    AUTHORIZE_PATH,
    INTROSPECT_PATH,
    JWKS_PATH,
    METADATA_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    AuthorizationServer,
)
from bastion.proxy.downstream import Exchange, http_date

_log = logging.getLogger("bastion.oauth")

MAX_FORM_BYTES: Final = 16_384
"""Largest form body accepted by the POST endpoints (413 beyond)."""

LocalHandler = Callable[[Exchange], None]
"""Serves one request that matched an exact path (see `Gateway.local_handlers`)."""
_FormEndpoint = Callable[[Headers, bytes], Awaitable[Response]]
_FORM_TYPE: Final = b"application/x-www-form-urlencoded"


class _Handlers:
    """The handlers of one `AuthorizationServer`, and the tasks they have in flight."""

    def __init__(self, server: AuthorizationServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, endpoint: _FormEndpoint) -> LocalHandler:
        def handle(exchange: Exchange) -> None:
            early = self._precheck(exchange, b"POST") or self._form_precheck(exchange)
            if early is not None:
                _send(exchange, early.response())
                return
            self._spawn(self._serve_form(exchange, endpoint))

        return handle

    def authorize(self, endpoint: AuthorizeEndpoint) -> LocalHandler:
        """GET shows the login page (query parameters), POST submits it (a form)."""

        def handle(exchange: Exchange) -> None:
            request = exchange.request
            early = self._precheck(exchange, b"GET, POST")
            if early is None and request.method == "POST":
                early = self._form_precheck(exchange)
            if early is not None:
                _send(exchange, early.response())
                return
            if request.method == "GET":
                self._spawn(self._serve(exchange, endpoint.page(request.headers, request.query)))
            else:
                self._spawn(self._serve_form(exchange, endpoint.submit))

        return handle

    @staticmethod
    def _form_precheck(exchange: Exchange) -> OAuthError | None:
        request = exchange.request
        media_type = (request.headers.get(b"content-type") or b"").split(b";")[0]
        if media_type.strip().lower() != _FORM_TYPE:
            return OAuthError("invalid_request", WRONG_CONTENT_TYPE)
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return OAuthError("invalid_request", TOO_LARGE, status=413)
        return None

    def get(self, document: Callable[[], Coroutine[object, object, Response]]) -> LocalHandler:
        def handle(exchange: Exchange) -> None:
            early = self._precheck(exchange, b"GET, HEAD")
            if early is not None:
                _send(exchange, early.response())
                return
            self._spawn(self._serve(exchange, document()))

        return handle

    @staticmethod
    def _precheck(exchange: Exchange, allow: bytes) -> OAuthError | None:
        request = exchange.request
        if request.scheme != "https":
            return OAuthError("invalid_request", HTTPS_REQUIRED)
        if request.method not in allow.decode().split(", "):
            return OAuthError("invalid_request", METHOD_NOT_ALLOWED, status=405, allow=allow)
        return None

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_form(self, exchange: Exchange, endpoint: _FormEndpoint) -> None:
        body = await _read_body(exchange)
        if body is None:  # over the limit (already answered 413) or the client left
            return
        await self._serve(exchange, endpoint(exchange.request.headers, body))

    async def _serve(self, exchange: Exchange, pending: Awaitable[Response]) -> None:
        try:
            response = await pending
        except OAuthError as exc:
            response = exc.response()
        except StoreUnavailable as exc:
            _log.warning("authorization server: store unavailable: %s", exc)
            response = OAuthError(
                "temporarily_unavailable", SERVER_UNAVAILABLE, status=503
            ).response()
        except Exception:  # noqa: BLE001 - a bug answers 500 with a fixed message, never a trace
            _log.exception("authorization server failed")
            response = json_response({"error": "server_error"}, status=500)
        _send(exchange, response)


def _send(exchange: Exchange, response: Response) -> None:
    if exchange.finished or exchange.head_sent:
        return
    response.headers.add(b"date", http_date())
    exchange.send_response(response)


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


def oauth_handlers(
    server: AuthorizationServer, loop: asyncio.AbstractEventLoop
) -> dict[str, LocalHandler]:
    """The exact-path handlers serving `server` on the gateway's listener."""
    handlers = _Handlers(server, loop)

    async def metadata() -> Response:
        return json_response(server.metadata(), cache=True)

    async def jwks() -> Response:
        if server.keys.needs_reload():
            await server.keys.refresh()
        return json_response(server.keys.jwks(), cache=True)

    return {
        TOKEN_PATH: handlers.post(server.token),
        AUTHORIZE_PATH: handlers.authorize(AuthorizeEndpoint(server)),
        INTROSPECT_PATH: handlers.post(server.introspect),
        REVOKE_PATH: handlers.post(server.revoke),
        METADATA_PATH: handlers.get(metadata),
        JWKS_PATH: handlers.get(jwks),
    }
