"""The per-request access log: one ECS 8.x JSON line per completed request.

Fields are nested objects (`{"http": {"request": {"method": ...}}}`), the shape Elasticsearch
maps ECS to and the one Filebeat and Elastic Agent ship; dotted names in this module's
documentation (`http.request.method`) are paths into that document. Keys whose value is
unknown are left out rather than written as null. No request header is logged except the
user agent, so `Authorization`, `Cookie` and API-key headers never reach a log line; the query
string is logged with the values of secret-looking parameters replaced by `[REDACTED]`.
"""

from __future__ import annotations

import functools
import time
from typing import Final
from urllib.parse import unquote

import orjson

from bastion.clock import Clock
from bastion.core.context import RequestContext
from bastion.observability.logging import ECS_VERSION, REDACTED, redact
from bastion.observability.sinks import Sink

USER_AGENT_MAX: Final = 512

# Parameter names (lower-cased, `-` read as `_`) whose values are credentials.
SECRET_PARAMS: Final = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "client_assertion",
        "assertion",
        "signature",
        "sig",
        "code",
        "code_verifier",
        "jwt",
        "session",
        "sessionid",
        "auth",
        "authorization",
    }
)
# ... and any name ending like these (`x_amz_signature`, `subscription_key`, `db_password`).
_SECRET_SUFFIXES: Final = (
    "_key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "_sig",
)
_UA: Final = b"user-agent"
_OPT: Final = orjson.OPT_APPEND_NEWLINE


@functools.lru_cache(maxsize=1024)
def is_secret_param(name: str) -> bool:
    """Whether a query parameter name looks like it carries a credential (cached: names repeat)."""
    norm = name.lower().replace("-", "_")
    if "%" in norm or "+" in norm:
        norm = unquote(norm.replace("+", " "))
    return norm in SECRET_PARAMS or norm.endswith(_SECRET_SUFFIXES)


_CLEAN_QUERIES: set[str] = set()
_MAX_CLEAN_QUERIES = 4096


def redact_query(query: str) -> str:
    """Replace the values of secret-looking parameters, keeping names, order and separators.

    A query without `=` is returned unchanged apart from `redact()` (which still masks API
    keys and JWTs that appear as bare values). Queries found to hold nothing to redact are
    remembered (a bounded table, emptied when full), since the same ones come back
    (pagination, filters); a query that held a secret is never kept in memory.
    """
    if query in _CLEAN_QUERIES:
        return query
    redacted = _redact_query(query)
    if redacted == query:
        if len(_CLEAN_QUERIES) >= _MAX_CLEAN_QUERIES:
            _CLEAN_QUERIES.clear()
        _CLEAN_QUERIES.add(query)
    return redacted


def _redact_query(query: str) -> str:
    if "=" in query:
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if eq and value and is_secret_param(name):
                parts[index] = f"{name}={REDACTED}"
                changed = True
        if changed:
            query = "&".join(parts)
    return redact(query)


class AccessLog:
    """Writes one ECS access-log line per request to a sink; call `record()` in the log phase.

    `@timestamp` is the time `record()` runs, i.e. when the response has been sent (ECS
    `event.end`, in effect), not when the request arrived; `event.duration` (nanoseconds)
    spans from `ctx.start` to that moment, so the arrival time is `@timestamp - duration`.
    `event.outcome` is `success` below status 400, `failure` from 400, and `unknown` when no
    response status was set (the client went away first); `http.response.status_code` is
    then omitted.

    Args:
        sink: Destination of the lines.
        clock: Source of the timestamp and the duration (the clock `ctx.start` came from).
        service_name: ECS `service.name` of this gateway.
    """

    __slots__ = (
        "_clock",
        "_ecs",
        "_event_category",
        "_event_type",
        "_second",
        "_second_text",
        "_service",
        "_sink",
        "failed",
    )

    def __init__(self, sink: Sink, clock: Clock, *, service_name: str = "bastion") -> None:
        self._sink = sink
        self._clock = clock
        # Shared, never-mutated sub-objects: orjson serialises them on every call for free.
        self._ecs = {"version": ECS_VERSION}
        self._service = {"name": service_name}
        self._event_category = ["web"]
        self._event_type = ["access"]
        self.failed = 0
        self._second = -1  # the formatted second is reused by every record within it
        self._second_text = ""

    def record(self, ctx: RequestContext) -> None:
        """Write the access-log line for the completed request `ctx`; never raises."""
        now = self._clock.time()
        duration = self._clock.monotonic() - ctx.start
        request = ctx.request
        status = ctx.status

        # Whole microseconds first, as datetime does, so 0.6 s is never printed as .599.
        whole, micros = divmod(round(now * 1_000_000), 1_000_000)
        if whole != self._second:
            self._second = whole
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        event: dict[str, object] = {
            "kind": "event",
            "category": self._event_category,
            "type": self._event_type,
            "dataset": "bastion.access",
            "outcome": "unknown" if not status else "success" if status < 400 else "failure",
            "duration": round(duration * 1_000_000_000) if duration > 0 else 0,
        }
        http_request: dict[str, object] = {
            "method": request.method,
            "body": {"bytes": ctx.bytes_received},
        }
        http_response: dict[str, object] = {"body": {"bytes": ctx.bytes_sent}}
        if status:
            http_response["status_code"] = status
        url: dict[str, object] = {"path": request.path}
        if request.query:
            url["query"] = redact_query(request.query.decode("utf-8", "backslashreplace"))
        doc: dict[str, object] = {
            "@timestamp": f"{self._second_text}.{micros // 1000:03d}Z",
            "ecs": self._ecs,
            "event": event,
            "http": {
                "version": request.http_version,
                "request": http_request,
                "response": http_response,
            },
            "url": url,
            "client": {"ip": request.client_ip},
            "source": {"ip": request.peer_ip},
            "service": self._service,
        }
        if ctx.request_id:
            http_request["id"] = ctx.request_id
            doc["trace"] = {"id": ctx.request_id}
        if ctx.identity is not None:
            doc["user"] = {"id": ctx.identity.consumer_id}
        agent = request.headers.get(_UA)
        if agent:
            # Cut the bytes first (4 per character at most) so a huge header costs nothing.
            original = agent[: USER_AGENT_MAX * 4].decode("utf-8", "backslashreplace")
            doc["user_agent"] = {"original": original[:USER_AGENT_MAX]}
        bastion: dict[str, object] = {}
        if ctx.route is not None:
            bastion["route"] = ctx.route
        if ctx.service is not None:
            bastion["service"] = ctx.service
        if ctx.rejected_by is not None:
            bastion["policy"] = ctx.rejected_by
        if ctx.reject is not None:
            bastion["reject_code"] = ctx.reject.error_code
        if ctx.reports:
            bastion["reports"] = [{"policy": r.policy, "code": r.code} for r in ctx.reports]
        if ctx.upstream_target is not None or ctx.upstream_duration is not None:
            upstream: dict[str, object] = {}
            if ctx.upstream_target is not None:
                upstream["address"] = ctx.upstream_target
            if ctx.upstream_duration is not None:
                upstream["duration_ms"] = round(ctx.upstream_duration * 1000, 3)
            bastion["upstream"] = upstream
        if bastion:
            doc["bastion"] = bastion
        if ctx.error is not None:
            doc["error"] = {"message": redact(ctx.error)}
        try:
            line = orjson.dumps(doc, option=_OPT)
        except TypeError:  # orjson.JSONEncodeError: a field held something unserialisable
            self.failed += 1
            return
        self._sink.write(line)
