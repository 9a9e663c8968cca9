"""Serve Bastion's own endpoints (OAuth server, admin API) from any ASGI server.

The gateway's local handlers (`Callable[[Exchange], None]`) answer through the small part of
`bastion.proxy.downstream.Exchange` they use: `request`, `max_body`, `consume_body`,
`send_response`, `reject`, `on_abort`, `finished`. `ASGIExchange` provides that part over ASGI
`receive`/`send`, so the same handler code serves the standalone listener and an ASGI app — an
all-in-one deployment mounts them next to its own routes without a second implementation.

How this works: the handler is called synchronously, as on the listener; it may spawn tasks
(store queries, password hashing) and answers later with `send_response`. The ASGI call waits
for that answer (or for the client to leave), then sends it as one `http.response.start` and
one `http.response.body` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, cast

from bastion.asgi_support.scope import Scope, request_from_scope
from bastion.core.context import new_request_id
from bastion.errors import InternalError, PayloadTooLarge, Reject
from bastion.http.request import Request
from bastion.http.response import Response, problem_response

if TYPE_CHECKING:
    from bastion.proxy.downstream import Exchange

TOO_LARGE: Final = "The request body is too large."
"""Public detail of the 413 when a body outgrows the handler's `max_body`."""
INTERNAL: Final = "An internal error occurred."
"""Public detail of the 500 when a handler fails (the traceback goes to the log only)."""

_log = logging.getLogger("bastion.asgi")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
BodyCallback = Callable[[bytes], None]
Callback = Callable[[], None]
Handler = Callable[["Exchange"], None]


class ASGIExchange:
    """One ASGI request as the local handlers see an exchange of the listener."""

    def __init__(self, request: Request, max_body: int, receive: Receive) -> None:
        self.request = request
        self.max_body = max_body
        self.on_abort: Callback | None = None
        self.finished = False
        self.head_sent = False
        self.body_done = not request.has_body
        self.response: Response | None = None
        """The response sent through this exchange (a rejection while reading the body)."""
        self._receive = receive
        self._reader: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()

    def consume_body(self, on_body: BodyCallback, on_end: Callback) -> None:
        """Receive the request body in the background: chunks to `on_body`, then `on_end`."""
        if self.body_done:
            on_end()
            return
        self._reader = asyncio.ensure_future(self._read(on_body, on_end))

    async def _read(self, on_body: BodyCallback, on_end: Callback) -> None:
        received = 0
        while not self.finished:
            message: Message = await self._receive()
            if message["type"] == "http.disconnect":
                self._client_gone()
                return
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                self.reject(PayloadTooLarge(TOO_LARGE))
                return
            try:
                if chunk:
                    on_body(chunk)
                if not message.get("more_body", False):
                    self.body_done = True
                    on_end()
                    return
            except Exception:  # noqa: BLE001 - a handler bug answers 500, never hangs the call
                _log.exception("handler failed on %s", self.request.path)
                self.reject(InternalError(INTERNAL))
                return

    def send_response(self, response: Response) -> None:
        """Answer with a complete response (the first answer wins; later ones are ignored)."""
        if self.finished:
            return
        self.finished = True
        self.head_sent = True
        self.response = response
        if not self._answer.done():
            self._answer.set_result(response)

    def reject(self, reject: Reject, request_id: str = "") -> None:
        """Answer `reject` as problem+json, then tell whoever was serving the request to stop."""
        on_abort, self.on_abort = self.on_abort, None
        self.send_response(problem_response(reject, request_id or new_request_id()))
        if on_abort is not None:
            on_abort()

    def _client_gone(self) -> None:
        finished, self.finished = self.finished, True
        if not finished and self.on_abort is not None:
            self.on_abort()
        if not self._answer.done():
            self._answer.set_result(None)

    async def answer(self) -> Response | None:
        """The handler's response, or None when the client left first."""
        try:
            return await self._answer
        finally:
            reader = self._reader
            if reader is not None and not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


class ExchangeApp:
    """An ASGI app serving one local handler (e.g. the OAuth endpoints or the admin API).

    Args:
        handle: The handler, as the listener calls it.
        max_body: Largest request body read for it, in bytes (413 past it).
    """

    def __init__(self, handle: Handler, max_body: int) -> None:
        self.handle = handle
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope: HTTP requests, and a lifespan that has nothing to start."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: nothing of Bastion's speaks them; the server closes the socket
        try:
            request = request_from_scope(scope)
        except Reject as reject:
            await _send(send, problem_response(reject, new_request_id()), head=False)
            return
        exchange = ASGIExchange(request, self.max_body, receive)
        try:
            # Duck-typed: ASGIExchange has every member the local handlers use (see above).
            self.handle(cast("Exchange", exchange))
        except Exception:  # noqa: BLE001 - a handler bug answers 500 with a fixed message
            _log.exception("handler failed on %s", request.path)
            exchange.reject(InternalError(INTERNAL))
        response = await exchange.answer()
        if response is not None:
            await _send(send, response, head=request.method == "HEAD")


async def _send(send: Send, response: Response, *, head: bool) -> None:
    headers = response.headers
    if response.status != 204 and response.status >= 200:  # RFC 9110 §8.6
        headers.set(b"content-length", str(len(response.body)).encode())
    await send(
        {"type": "http.response.start", "status": response.status, "headers": headers.items()}
    )
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
