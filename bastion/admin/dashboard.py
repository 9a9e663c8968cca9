"""The live dashboard on the admin listener: the numbers it shows and the pages that show them.

How this works: `DashboardFeed` sits in the log phase in place of the security-event writer
(it forwards every call to it), so it sees exactly the requests that were rejected or
reported. From those it keeps, in bounded memory, the latest security events (a ring buffer)
and the client addresses with the most rejections (a "space-saving" top-N: when the table is
full, a new address takes the place of the least-counted one and inherits its count, so
heavy hitters are never evicted by a stream of one-off addresses). Totals come from the
worker's `Metrics` at poll time (`Metrics.collect()`, the same figures `/metrics` shows);
rates are the difference between the current totals and a sample taken `RATE_WINDOW`
seconds earlier by an earlier poll.

`Dashboard` serves the pages. Authentication: a browser cannot attach the admin bearer
token to a page load, so `/dashboard` shows a login form without one; posting the admin
token to `/dashboard/login` issues a random session id in an `HttpOnly`, `SameSite=Strict`
cookie valid for `SESSION_TTL` seconds. The cookie grants only the dashboard page and its
read-only `/admin/dashboard.json`, never the other admin endpoints, which keep requiring the
bearer token (so a forged cross-site request cannot change anything). Scripts and styles are
static package data with no data in them; they are served to anyone, under a strict
Content-Security-Policy (no inline script, no third-party origin, no framing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from typing import Final, Protocol
from urllib.parse import parse_qs

import orjson

from bastion.clock import Clock
from bastion.core.context import RequestContext
from bastion.errors import MethodNotAllowed, NotFound, PayloadTooLarge, Unauthenticated
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.observability.anomaly import AnomalyAlert
from bastion.observability.events import classify
from bastion.observability.metrics import Metrics
from bastion.proxy.downstream import Exchange, http_date

EVENTS_KEPT: Final = 100
TOP_SOURCES: Final = 10
SOURCES_TRACKED: Final = 256
RATE_WINDOW: Final = 10.0
SESSION_TTL: Final = 900.0
MAX_SESSIONS: Final = 32
LOGIN_BODY_MAX: Final = 4096
COOKIE_NAME: Final = "bastion_dashboard"
CSP: Final = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
DATA_PATH: Final = "/admin/dashboard.json"
PAGE_PATH: Final = "/dashboard"
LOGIN_PATH: Final = "/dashboard/login"
LOGOUT_PATH: Final = "/dashboard/logout"
STATIC_PREFIX: Final = "/dashboard/static/"
_STATIC_TYPES: Final = {
    "dashboard.js": b"text/javascript; charset=utf-8",
    "login.js": b"text/javascript; charset=utf-8",
    "dashboard.css": b"text/css; charset=utf-8",
    "favicon.svg": b"image/svg+xml",
}
# Kept here rather than as a file: a shield in the dashboard's accent colour.
_FAVICON: Final = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<path d="M8 1 2 3.5V8c0 3.4 2.6 6.2 6 7 3.4-.8 6-3.6 6-7V3.5z" fill="#38bdf8"/></svg>'
)

NO_SUCH_PAGE = "No such dashboard resource."
LOGIN_REQUIRED = "A dashboard session or the admin bearer token is required."
LOGIN_TOO_LARGE = "The login form is too large."
ONLY_GET = "Use GET."
ONLY_POST = "Use POST."


class _Recorder(Protocol):
    def record(self, ctx: RequestContext) -> None: ...


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One security decision as the dashboard lists it (no request data beyond the path)."""

    time: float
    kind: str
    category: str
    policy: str
    code: str
    status: int
    mode: str
    client_ip: str
    route: str | None
    path: str


class _Source:
    __slots__ = ("count", "last_policy", "last_seen")

    def __init__(self, count: int, last_policy: str, last_seen: float) -> None:
        self.count = count
        self.last_policy = last_policy
        self.last_seen = last_seen


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    requests: int
    by_class: dict[str, int]
    by_policy: dict[str, int]


def _iso(seconds: float) -> str:
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{text}.{micros // 1000:03d}Z"


class DashboardFeed:
    """Keeps what the dashboard shows; `record(ctx)` runs in the log phase of refused requests.

    Args:
        metrics: The worker's metrics (totals, certificates, dropped log lines).
        clock: Time source for event times and rates.
        forward: The security-event writer this feed stands in front of (called for every
            request it sees).
        events_kept: Size of the recent-events ring buffer.
        sources_tracked: How many client addresses the top-N table holds at most.
    """

    def __init__(
        self,
        metrics: Metrics,
        clock: Clock,
        *,
        forward: _Recorder | None = None,
        events_kept: int = EVENTS_KEPT,
        sources_tracked: int = SOURCES_TRACKED,
    ) -> None:
        if events_kept <= 0 or sources_tracked <= 0:
            raise ValueError("events_kept and sources_tracked must be positive")
        self._metrics = metrics
        self._clock = clock
        self._forward = forward
        self.events: deque[RecentEvent] = deque(maxlen=events_kept)
        self._sources: dict[str, _Source] = {}
        self._capacity = sources_tracked
        self._samples: deque[_Sample] = deque(maxlen=256)

    # -- the log phase -----------------------------------------------------------------------

    def record(self, ctx: RequestContext) -> None:
        """Note the rejection and the report_only decisions of `ctx`, then forward it."""
        reject = ctx.reject
        if ctx.rejected_by is not None and reject is not None:
            self._event(ctx, ctx.rejected_by, reject.error_code, reject.status, "enforce")
            self._count_source(ctx.request.client_ip, ctx.rejected_by)
        for report in ctx.reports:
            self._event(ctx, report.policy, report.code, report.status, "report_only")
        if self._forward is not None:
            self._forward.record(ctx)

    def _event(self, ctx: RequestContext, policy: str, code: str, status: int, mode: str) -> None:
        kind, category = classify(policy, code, status)
        request = ctx.request
        self.events.append(
            RecentEvent(
                self._clock.time(),
                kind,
                category,
                policy,
                code,
                status,
                mode,
                request.client_ip,
                ctx.route,
                request.path,
            )
        )

    def anomaly(self, alert: AnomalyAlert) -> None:
        """List an anomaly alert (a client with a high share of errors) with the events."""
        self.events.append(
            RecentEvent(
                alert.at,
                "alert",
                "intrusion_detection",
                "anomaly",
                f"score {alert.score}",
                0,
                "alert",
                alert.client_ip,
                None,
                "",
            )
        )

    def _count_source(self, ip: str, policy: str) -> None:
        now = self._clock.time()
        sources = self._sources
        found = sources.get(ip)
        if found is not None:
            found.count += 1
            found.last_policy = policy
            found.last_seen = now
            return
        if len(sources) < self._capacity:
            sources[ip] = _Source(1, policy, now)
            return
        # Space-saving: the newcomer replaces the smallest entry and inherits its count.
        smallest = min(sources, key=lambda key: sources[key].count)
        count = sources.pop(smallest).count
        sources[ip] = _Source(count + 1, policy, now)

    # -- the poll ----------------------------------------------------------------------------

    def top_sources(self, limit: int = TOP_SOURCES) -> list[tuple[str, int, str, float]]:
        """The `limit` addresses with the most rejections: (ip, count, last policy, last seen)."""
        ranked = sorted(self._sources.items(), key=lambda item: (-item[1].count, item[0]))
        return [(ip, s.count, s.last_policy, s.last_seen) for ip, s in ranked[:limit]]

    def snapshot(self) -> dict[str, object]:
        """The document `/admin/dashboard.json` returns (and records a sample for rates)."""
        requests = 0
        by_class: dict[str, int] = {}
        by_policy: dict[str, int] = {}
        certificates: list[dict[str, object]] = []
        dropped: dict[str, int] = {}
        now_wall = self._clock.time()
        for family in self._metrics.collect():
            for sample in family.samples:
                labels = sample.labels
                value = sample.value
                if sample.name == "bastion_requests_total":
                    requests += int(value)
                    status_class = labels["status_class"]
                    by_class[status_class] = by_class.get(status_class, 0) + int(value)
                elif sample.name == "bastion_rejections_total":
                    policy = labels["policy"]
                    by_policy[policy] = by_policy.get(policy, 0) + int(value)
                elif sample.name == "bastion_tls_certificate_expiry_timestamp_seconds":
                    certificates.append(
                        {
                            "listener": labels["listener"],
                            "expires_at": _iso(value),
                            "days_left": round((value - now_wall) / 86400, 1),
                        }
                    )
                elif sample.name == "bastion_log_dropped_lines_total":
                    dropped[labels["log"]] = int(value)
        now = self._clock.monotonic()
        current = _Sample(now, requests, by_class, by_policy)
        reference = self._reference(now)
        self._samples.append(current)
        window = now - reference.at if reference is not None else 0.0
        return {
            "generated_at": _iso(now_wall),
            "window_seconds": round(window, 1) if reference is not None else None,
            "requests": _request_figures(current, reference, window),
            "policies": _policy_figures(current, reference, window),
            "top_blocked_sources": [
                {"ip": ip, "rejections": count, "last_policy": policy, "last_seen": _iso(seen)}
                for ip, count, policy, seen in self.top_sources()
            ],
            "recent_events": [
                {
                    "time": _iso(event.time),
                    "kind": event.kind,
                    "category": event.category,
                    "policy": event.policy,
                    "code": event.code,
                    "status": event.status,
                    "mode": event.mode,
                    "client_ip": event.client_ip,
                    "route": event.route,
                    "path": event.path,
                }
                for event in reversed(self.events)
            ],
            "certificates": sorted(certificates, key=lambda c: str(c["listener"])),
            "log_dropped_lines": dropped,
        }

    def _reference(self, now: float) -> _Sample | None:
        """The newest sample at least `RATE_WINDOW` old, else the oldest (None: no sample yet)."""
        samples = self._samples
        while len(samples) > 1 and samples[1].at <= now - RATE_WINDOW:
            samples.popleft()
        if samples and now - samples[0].at >= 0.5:
            return samples[0]
        return None


def _rate(delta: int, window: float) -> float:
    return round(delta / window, 2)


def _request_figures(
    current: _Sample, reference: _Sample | None, window: float
) -> dict[str, object]:
    figures: dict[str, object] = {"total": current.requests, "by_class": current.by_class}
    if reference is None:
        figures.update(per_second=None, error_rate=None, client_error_rate=None)
        return figures
    answered = current.requests - reference.requests

    def share(status_class: str) -> float | None:
        if answered <= 0:
            return None
        delta = current.by_class.get(status_class, 0) - reference.by_class.get(status_class, 0)
        return round(delta / answered, 4)

    figures.update(
        per_second=_rate(answered, window),
        error_rate=share("5xx"),
        client_error_rate=share("4xx"),
    )
    return figures


def _policy_figures(
    current: _Sample, reference: _Sample | None, window: float
) -> list[dict[str, object]]:
    answered = current.requests - reference.requests if reference is not None else 0
    rows: list[dict[str, object]] = []
    for policy, total in sorted(current.by_policy.items(), key=lambda item: (-item[1], item[0])):
        row: dict[str, object] = {"policy": policy, "rejections": total}
        if reference is None:
            row.update(per_second=None, rate=None)
        else:
            delta = total - reference.by_policy.get(policy, 0)
            row.update(
                per_second=_rate(delta, window),
                rate=round(delta / answered, 4) if answered > 0 else None,
            )
        rows.append(row)
    return rows


def _static(name: str) -> bytes:
    return resources.files("bastion.admin").joinpath("static", name).read_bytes()


class Dashboard:
    """Serves `/dashboard`, its static files, the login form and `/admin/dashboard.json`.

    Args:
        feed: Where the figures come from.
        token: The admin token (None: nobody can log in; the bearer token is still checked
            by the admin app).
        clock: Time source for session expiry.
        session_ttl: Lifetime of a dashboard session, in seconds.
    """

    def __init__(
        self,
        feed: DashboardFeed,
        *,
        token: str | None,
        clock: Clock,
        session_ttl: float = SESSION_TTL,
    ) -> None:
        self.feed = feed
        self._token = token.encode() if token else None
        self._clock = clock
        self._ttl = session_ttl
        # sha256(session id) -> expiry (monotonic): a leaked memory dump holds no usable id.
        self._sessions: dict[bytes, float] = {}
        self._pages = {name: _static(name) for name in ("dashboard.html", "login.html")}
        self._files = {name: _static(name) for name in _STATIC_TYPES if name != "favicon.svg"}
        self._files["favicon.svg"] = _FAVICON

    @staticmethod
    def handles(path: str) -> bool:
        """Whether `path` belongs to the dashboard."""
        return path in (PAGE_PATH, DATA_PATH) or path.startswith("/dashboard/")

    def handle(self, exchange: Exchange, bearer_ok: bool) -> None:
        """Answer a dashboard request; `bearer_ok`: it carried the valid admin bearer token."""
        request = exchange.request
        path = request.path
        method = request.method
        if path == LOGIN_PATH:
            if method != "POST":
                exchange.reject(MethodNotAllowed(ONLY_POST, allow=["POST"]))
                return
            self._login(exchange)
            return
        if path == LOGOUT_PATH:
            if method != "POST":
                exchange.reject(MethodNotAllowed(ONLY_POST, allow=["POST"]))
                return
            self._logout(exchange)
            return
        if method not in ("GET", "HEAD"):
            exchange.reject(MethodNotAllowed(ONLY_GET, allow=["GET", "HEAD"]))
            return
        if path.startswith(STATIC_PREFIX):
            name = path[len(STATIC_PREFIX) :]
            content_type = _STATIC_TYPES.get(name)
            if content_type is None:
                exchange.reject(NotFound(NO_SUCH_PAGE))
                return
            self._send(exchange, 200, content_type, self._files[name])
            return
        authorized = bearer_ok or self._session_ok(request.headers.get_all(b"cookie"))
        if path == PAGE_PATH:
            page = "dashboard.html" if authorized else "login.html"
            self._send(exchange, 200, b"text/html; charset=utf-8", self._pages[page])
        elif path == DATA_PATH:
            if not authorized:
                challenge = 'Bearer realm="bastion-admin"'
                exchange.reject(Unauthenticated(LOGIN_REQUIRED, challenge=challenge))
                return
            body = orjson.dumps(self.feed.snapshot())
            self._send(exchange, 200, b"application/json", body)
        else:
            exchange.reject(NotFound(NO_SUCH_PAGE))

    # -- sessions ----------------------------------------------------------------------------

    def _session_ok(self, cookies: list[bytes]) -> bool:
        session = _cookie_value(cookies, COOKIE_NAME.encode())
        if session is None:
            return False
        expires = self._sessions.get(hashlib.sha256(session).digest())
        return expires is not None and expires > self._clock.monotonic()

    def _login(self, exchange: Exchange) -> None:
        parts: list[bytes] = []
        size = [0]

        def on_body(chunk: bytes) -> None:
            size[0] += len(chunk)
            if size[0] <= LOGIN_BODY_MAX:
                parts.append(chunk)

        def on_end() -> None:
            if size[0] > LOGIN_BODY_MAX:
                exchange.reject(PayloadTooLarge(LOGIN_TOO_LARGE))
                return
            self._check_login(exchange, b"".join(parts))

        exchange.consume_body(on_body, on_end)

    def _check_login(self, exchange: Exchange, body: bytes) -> None:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        given = fields.get("token", [""])[0].encode()
        if self._token is None or not hmac.compare_digest(given, self._token):
            self._redirect(exchange, b"/dashboard?failed=1")
            return
        now = self._clock.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        while len(self._sessions) >= MAX_SESSIONS:  # oldest sessions go first
            del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
        session = secrets.token_urlsafe(32)
        self._sessions[hashlib.sha256(session.encode()).digest()] = now + self._ttl
        cookie = (
            f"{COOKIE_NAME}={session}; Path=/; Max-Age={int(self._ttl)}; HttpOnly; SameSite=Strict"
        )
        self._redirect(exchange, PAGE_PATH.encode(), cookie.encode())

    def _logout(self, exchange: Exchange) -> None:
        session = _cookie_value(exchange.request.headers.get_all(b"cookie"), COOKIE_NAME.encode())
        if session is not None:
            self._sessions.pop(hashlib.sha256(session).digest(), None)
        cookie = f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"

        def done() -> None:
            self._redirect(exchange, PAGE_PATH.encode(), cookie.encode())

        exchange.consume_body(lambda _chunk: None, done)

    # -- responses ---------------------------------------------------------------------------

    @staticmethod
    def _headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", content_type),
            (b"content-security-policy", CSP),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"cache-control", b"no-store"),
            (b"date", http_date()),
        ]

    def _send(self, exchange: Exchange, status: int, content_type: bytes, body: bytes) -> None:
        exchange.send_response(Response(status, Headers(self._headers(content_type)), body))

    def _redirect(self, exchange: Exchange, location: bytes, cookie: bytes | None = None) -> None:
        headers = self._headers(b"text/plain; charset=utf-8")
        headers.append((b"location", location))
        if cookie is not None:
            headers.append((b"set-cookie", cookie))
        exchange.send_response(Response(303, Headers(headers), b""))


def _cookie_value(headers: list[bytes], name: bytes) -> bytes | None:
    """The value of cookie `name` in the `Cookie` request headers (RFC 6265 §5.4 syntax)."""
    for header in headers:
        for pair in header.split(b";"):
            key, eq, value = pair.strip().partition(b"=")
            if eq and key == name and value:
                return value
    return None
