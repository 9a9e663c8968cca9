"""The admin listener's handler: open `/status` and `/ready` for probes, the rest behind a token.

`/ready` answers 200 `{"ready": true}` while serving and 503 while starting or draining. While
a shared backend is unreachable it still answers 200, listing it: `{"ready": true, "degraded":
["store"]}`. Every node shares the same database, so a 503 there would take every node out of
the balancer at once during a database blip, although each keeps serving from its last good
config and credential cache (see docs/admin.md).

`/metrics` (Prometheus text format) needs the admin bearer token when one is configured, and
is open otherwise (the admin listener binds loopback by default). Rendering the exposition
takes time proportional to the number of series, so it runs on one dedicated worker thread,
never on the event loop; scrapes that arrive while a rendering is under way share its result
instead of queueing more work, so a burst of scrapes costs one rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import orjson

from bastion import __version__
from bastion.errors import InternalError, NotFound, Unauthenticated
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.proxy.downstream import Exchange, http_date

if TYPE_CHECKING:
    from bastion.admin.api import AdminAPI
    from bastion.admin.dashboard import Dashboard

_log = logging.getLogger("bastion.admin")

NO_SUCH_ENDPOINT = "No such admin endpoint."
METRICS_FAILED = "The metrics could not be rendered."
BAD_TOKEN = "A valid admin bearer token is required."  # noqa: S105 - a message, not a secret


class AdminApp:
    """Serves the admin endpoints on their own (loopback) listener."""

    def __init__(
        self,
        *,
        token: str | None,
        ready: Callable[[], bool],
        status: Callable[[], dict[str, object]],
        degraded: Callable[[], list[str]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        metrics_content_type: bytes = b"text/plain; version=0.0.4; charset=utf-8",
        api: AdminAPI | None = None,
        dashboard: Dashboard | None = None,
    ) -> None:
        self._token = token.encode() if token else None
        self._ready = ready
        self._status = status
        self._degraded = degraded
        self._started = time.time()
        self._metrics = metrics
        self._metrics_type = metrics_content_type
        self._api = api  # the /admin/... API (bastion/admin/api.py), when the server wires it
        self._dashboard = dashboard  # /dashboard and /admin/dashboard.json (admin/dashboard.py)
        self._executor: ThreadPoolExecutor | None = None
        self._rendering: Future[bytes] | None = None
        self._waiting: list[Exchange] = []

    def handle(self, exchange: Exchange) -> None:
        """Answer one admin request."""
        request = exchange.request
        path = request.path
        if self._dashboard is not None and self._dashboard.handles(path):
            bearer_ok = self._authorized(request.headers.get(b"authorization"))
            self._dashboard.handle(exchange, bearer_ok)
            return
        if path == "/ready":
            ready = self._ready()
            body: dict[str, object] = {"ready": ready}
            degraded = self._degraded() if self._degraded is not None else []
            if degraded:
                body["degraded"] = degraded
            self._json(exchange, 200 if ready else 503, body)
        elif path == "/status":
            body = {
                "status": "ok",
                "version": __version__,
                "uptime_seconds": round(time.time() - self._started, 1),
                **self._status(),
            }
            self._json(exchange, 200, body)
        elif path == "/metrics" and self._metrics is not None:
            if self._token is not None and not self._authorized(
                request.headers.get(b"authorization")
            ):
                exchange.reject(
                    Unauthenticated(BAD_TOKEN, challenge='Bearer realm="bastion-admin"')
                )
                return
            self._serve_metrics(exchange, self._metrics)
        elif path.startswith("/admin"):
            if not self._authorized(request.headers.get(b"authorization")):
                exchange.reject(
                    Unauthenticated(BAD_TOKEN, challenge='Bearer realm="bastion-admin"')
                )
                return
            if self._api is not None:
                self._api.handle(exchange)
                return
            exchange.reject(NotFound(NO_SUCH_ENDPOINT))
        else:
            exchange.reject(NotFound(NO_SUCH_ENDPOINT))

    def _serve_metrics(self, exchange: Exchange, render: Callable[[], bytes]) -> None:
        self._waiting.append(exchange)
        if self._rendering is not None:
            return  # a rendering is under way: this scrape gets its result too
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bastion-metrics")
        loop = asyncio.get_running_loop()
        future = self._executor.submit(render)
        self._rendering = future

        def back_to_loop(done: Future[bytes]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self._rendered, done)

        future.add_done_callback(back_to_loop)

    def _rendered(self, future: Future[bytes]) -> None:
        self._rendering = None
        waiting, self._waiting = self._waiting, []
        if future.cancelled():
            return  # shutting down
        error = future.exception()
        if error is not None:
            _log.error("rendering /metrics failed", exc_info=error)
        for exchange in waiting:
            if exchange.finished:
                continue  # the scraper went away
            if error is not None:
                exchange.reject(InternalError(METRICS_FAILED))
                continue
            headers = Headers(
                [
                    (b"content-type", self._metrics_type),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"date", http_date()),
                ]
            )
            exchange.send_response(Response(200, headers, future.result()))

    def close(self) -> None:
        """Stop the metrics thread (at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

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
