"""The admin listener's handler: open `/status` and `/ready` for probes, the rest behind a token."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import orjson

from bastion import __version__
from bastion.errors import NotFound, Unauthenticated
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.proxy.downstream import Exchange, http_date

NO_SUCH_ENDPOINT = "No such admin endpoint."
BAD_TOKEN = "A valid admin bearer token is required."  # noqa: S105 - a message, not a secret


class AdminApp:
    """Serves the admin endpoints on their own (loopback) listener."""

    def __init__(
        self,
        *,
        token: str | None,
        ready: Callable[[], bool],
        status: Callable[[], dict[str, object]],
    ) -> None:
        self._token = token.encode() if token else None
        self._ready = ready
        self._status = status
        self._started = time.time()

    def handle(self, exchange: Exchange) -> None:
        """Answer one admin request."""
        request = exchange.request
        path = request.path
        if path == "/ready":
            ready = self._ready()
            self._json(exchange, 200 if ready else 503, {"ready": ready})
        elif path == "/status":
            body = {
                "status": "ok",
                "version": __version__,
                "uptime_seconds": round(time.time() - self._started, 1),
                **self._status(),
            }
            self._json(exchange, 200, body)
        elif path.startswith("/admin"):
            if not self._authorized(request.headers.get(b"authorization")):
                exchange.reject(
                    Unauthenticated(BAD_TOKEN, challenge='Bearer realm="bastion-admin"')
                )
                return
            exchange.reject(NotFound(NO_SUCH_ENDPOINT))
        else:
            exchange.reject(NotFound(NO_SUCH_ENDPOINT))

    def _authorized(self, header: bytes | None) -> bool:
        if self._token is None or header is None:
            return False
        scheme, _, credential = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credential.strip(), self._token)

    @staticmethod
    def _json(exchange: Exchange, status: int, body: dict[str, object]) -> None:
        headers = Headers(
            [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                (b"date", http_date()),
            ]
        )
        exchange.send_response(Response(status, headers, orjson.dumps(body)))
