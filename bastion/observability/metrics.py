"""Prometheus metrics: per-route counters and histograms kept as plain numbers, exposed on demand.

How this works: the request path never touches a prometheus-client object. Each route gets a
`RouteMetrics` (bound when the config is compiled, so the first request pays nothing either)
holding plain lists of integers: one counter per status class and the bucket counts of two
latency histograms. Recording a request is a dict lookup, a few list increments and two
`bisect` calls, with no lock. Rejections, reports and upstream errors (the rare paths) add to
small dicts keyed by bounded label tuples. At scrape time `MetricsCollector.collect()` copies
those numbers into prometheus-client metric families, and `generate_latest` renders the text
exposition; the admin listener runs that in a worker thread (`AdminApp`), so the event loop
is never blocked by a large rendering.

Copying a list or dict is atomic under the GIL, so a scrape in another thread sees each
series consistently enough: a histogram's `_count` is computed from its buckets (so it always
equals the `+Inf` bucket); only its `_sum` may be one request ahead or behind.

Labels are only ever route, service, policy, code, status class, listener and log names:
values fixed by the configuration or by code, never by a client (no consumer, IP or path), so
the number of series is bounded. As a guard, past `MAX_LABEL_SETS` distinct (policy, code)
pairs further ones are counted under code `other`.

Each worker process has its own `Metrics`; with `--workers N` only worker 0 runs the admin
listener, so `/metrics` shows worker 0's traffic only (see docs/observability.md).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from bastion.clock import Clock
from bastion.core.context import RequestContext
from bastion.errors import Reject

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED_ROUTE: Final = "_unmatched"  # route names cannot start with `_`
OTHER_CODE: Final = "other"
MAX_LABEL_SETS: Final = 1000
# Seconds. Gateway overhead alone is well under a millisecond; upstreams take what they take.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
STATUS_CLASSES: Final = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_UPSTREAM_STATUSES: Final = frozenset({502, 503, 504})


class RouteMetrics:
    """The numbers of one route: requests by status class and two latency histograms.

    `requests[i]` counts responses of status class `i`xx (index 0: no response was sent).
    Histogram lists hold one count per bucket of `LATENCY_BUCKETS` plus one for `+Inf`
    (not cumulative; the collector accumulates them).
    """

    __slots__ = (
        "duration_buckets",
        "duration_sum",
        "name",
        "requests",
        "service",
        "upstream_buckets",
        "upstream_sum",
    )

    def __init__(self, name: str, service: str) -> None:
        self.name = name
        self.service = service
        self.requests = [0] * len(STATUS_CLASSES)
        self.duration_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.upstream_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.upstream_sum = 0.0


def _bump(counts: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
    value = counts.get(key)
    if value is None:
        if len(counts) >= MAX_LABEL_SETS:
            key = (key[0], OTHER_CODE)
            value = counts.get(key, 0)
        else:
            value = 0
    counts[key] = value + 1


class Metrics:
    """All of one worker's metrics; `observe(ctx)` runs in the log phase of every request.

    Args:
        clock: The clock `ctx.start` was taken from (gateway latency ends at `observe`).
    """

    __slots__ = (
        "_certificates",
        "_clock",
        "_gauges",
        "_logs",
        "_reload_ok",
        "_reloads",
        "_routes",
        "rejections",
        "reports",
        "upstream_errors",
    )

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._routes: dict[str | None, RouteMetrics] = {None: RouteMetrics(UNMATCHED_ROUTE, "")}
        self.rejections: dict[tuple[str, str], int] = {}
        self.reports: dict[tuple[str, str], int] = {}
        self.upstream_errors: dict[tuple[str, str], int] = {}
        self._reloads = {"success": 0, "failure": 0}
        self._reload_ok = 1
        self._certificates: dict[str, float] = {}
        self._logs: dict[str, Callable[[], int]] = {}
        self._gauges: dict[str, tuple[str, Callable[[], int]]] = {}

    # -- set-up ------------------------------------------------------------------------------

    def bind_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Create the children of every (route, service) now, so requests only add to them.

        Called at start and after each reload; routes that disappear keep their last values
        (counters never go back), routes that reappear continue where they were.
        """
        for name, service in routes:
            found = self._routes.get(name)
            if found is None or found.service != service:
                self._routes[name] = RouteMetrics(name, service)

    def route(self, name: str | None) -> RouteMetrics:
        """The metrics of route `name` (None: requests no route matched)."""
        found = self._routes.get(name)
        if found is None:
            found = self._routes[name] = RouteMetrics(name or UNMATCHED_ROUTE, "")
        return found

    def gauge(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        """Expose `read()` (called at scrape time, from the scraping thread) as gauge `name`."""
        self._gauges[name] = (documentation, read)

    def watch_log(self, name: str, dropped: Callable[[], int]) -> None:
        """Expose a log's count of lost lines as `bastion_log_dropped_lines_total{log=name}`."""
        self._logs[name] = dropped

    def certificate_expiry(self, listener: str, expires: float) -> None:
        """Record the expiry (Unix seconds) of the certificate served on `listener`."""
        self._certificates[listener] = expires

    def config_reloaded(self, success: bool) -> None:
        """Count a configuration reload attempt."""
        outcome = "success" if success else "failure"
        self._reloads[outcome] += 1
        self._reload_ok = 1 if success else 0

    # -- the request path --------------------------------------------------------------------

    def observe(self, ctx: RequestContext) -> None:
        """Count the finished request `ctx`; a few list increments unless it was rejected."""
        route = self._routes.get(ctx.route)
        if route is None:
            route = self.route(ctx.route)
        status = ctx.status
        route.requests[status // 100 if 100 <= status < 600 else 0] += 1
        duration = self._clock.monotonic() - ctx.start
        route.duration_buckets[bisect_left(LATENCY_BUCKETS, duration)] += 1
        route.duration_sum += duration
        upstream = ctx.upstream_duration
        if upstream is not None:
            route.upstream_buckets[bisect_left(LATENCY_BUCKETS, upstream)] += 1
            route.upstream_sum += upstream
        reject = ctx.reject
        if reject is not None:
            self._rejected(ctx, reject)
        if ctx.reports:
            for report in ctx.reports:
                _bump(self.reports, (report.policy, report.code))

    def _rejected(self, ctx: RequestContext, reject: Reject) -> None:
        policy = ctx.rejected_by
        if policy is not None:
            _bump(self.rejections, (policy, reject.error_code))
        elif reject.status in _UPSTREAM_STATUSES and ctx.service is not None:
            # No policy refused: the upstream failed (502/504) or had no healthy target (503).
            _bump(self.upstream_errors, (ctx.service, reject.error_code))

    # -- exposition --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Build the metric families from the current numbers (safe from another thread)."""
        routes = list(self._routes.copy().values())
        requests = CounterMetricFamily(
            "bastion_requests",
            "Requests answered, by route, service and status class (none: no response sent).",
            labels=("route", "service", "status_class"),
        )
        duration = HistogramMetricFamily(
            "bastion_request_duration_seconds",
            "Time from the request head to the end of the response, by route.",
            labels=("route",),
        )
        upstream = HistogramMetricFamily(
            "bastion_upstream_duration_seconds",
            "Time from the request head to the upstream's response head, by route.",
            labels=("route",),
        )
        for route in routes:
            counts = route.requests.copy()
            for index, value in enumerate(counts):
                if value:
                    labels = (route.name, route.service, STATUS_CLASSES[index])
                    requests.add_metric(labels, value)
            _add_histogram(duration, route.name, route.duration_buckets, route.duration_sum)
            _add_histogram(upstream, route.name, route.upstream_buckets, route.upstream_sum)
        yield requests
        yield duration
        yield upstream
        yield _counter(
            "bastion_rejections",
            "Requests refused, by the policy (or `router`) that refused and its error code.",
            ("policy", "code"),
            self.rejections,
        )
        yield _counter(
            "bastion_policy_reports",
            "Decisions a report_only policy would have enforced, by policy and error code.",
            ("policy", "code"),
            self.reports,
        )
        yield _counter(
            "bastion_upstream_errors",
            "Upstream failures answered with 502/503/504, by service and error code.",
            ("service", "code"),
            self.upstream_errors,
        )
        reloads = CounterMetricFamily(
            "bastion_config_reloads",
            "Configuration reload attempts, by outcome.",
            labels=("outcome",),
        )
        for outcome, value in self._reloads.copy().items():
            reloads.add_metric((outcome,), value)
        yield reloads
        yield GaugeMetricFamily(
            "bastion_config_last_reload_successful",
            "1 if the last configuration reload succeeded (or none was tried), else 0.",
            value=self._reload_ok,
        )
        expiry = GaugeMetricFamily(
            "bastion_tls_certificate_expiry_timestamp_seconds",
            "When the certificate served on each TLS listener expires (Unix time).",
            labels=("listener",),
        )
        for listener, expires in self._certificates.copy().items():
            expiry.add_metric((listener,), expires)
        yield expiry
        dropped = CounterMetricFamily(
            "bastion_log_dropped_lines",
            "Log lines lost (full buffer, failed write or unserialisable record), by log.",
            labels=("log",),
        )
        for name, read in self._logs.copy().items():
            dropped.add_metric((name,), read())
        yield dropped
        for name, (documentation, read) in self._gauges.copy().items():
            yield GaugeMetricFamily(name, documentation, value=read())


def _add_histogram(
    family: HistogramMetricFamily, route: str, counts: list[int], total: float
) -> None:
    snapshot = counts.copy()
    if not any(snapshot):
        return
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, snapshot, strict=False):
        cumulative += count
        buckets.append((_float_text(bound), cumulative))
    cumulative += snapshot[-1]
    buckets.append(("+Inf", cumulative))
    family.add_metric((route,), buckets, total)


def _float_text(value: float) -> str:
    return repr(float(value))


def _counter(
    name: str, documentation: str, labels: Sequence[str], counts: dict[tuple[str, str], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in counts.copy().items():
        family.add_metric(key, value)
    return family


class MetricsCollector:
    """Adapts `Metrics` to prometheus-client's collector interface."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Yield the current metric families."""
        return self._metrics.collect()


def new_registry(metrics: Metrics, *, process: bool = True) -> CollectorRegistry:
    """A registry of this worker's metrics (plus `process_*` CPU and memory figures).

    A registry per worker, not prometheus-client's global one, so that tests and embedded
    gateways in one process do not mix their numbers.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics))
    if process:
        ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition (format 0.0.4) of `registry`; blocking, run it off the event loop."""
    return generate_latest(registry)


class _Recorder(Protocol):
    """Anything with `record(ctx)` (the access log, the security events)."""

    def record(self, ctx: RequestContext) -> None:
        """Record the finished request."""
        ...


class RequestRecorder:
    """The gateway's log-phase hook: metrics, then the access log line, then security events.

    It has the gateway's `AccessLogger` shape (`record(ctx)`), so one object does all three.
    Each part is optional.
    """

    __slots__ = ("_access", "_events", "_metrics")

    def __init__(
        self,
        *,
        access_log: _Recorder | None = None,
        metrics: Metrics | None = None,
        events: _Recorder | None = None,
    ) -> None:
        self._access = access_log
        self._metrics = metrics
        self._events = events

    def record(self, ctx: RequestContext) -> None:
        """Record the finished request everywhere configured."""
        if self._metrics is not None:
            self._metrics.observe(ctx)
        if self._access is not None:
            self._access.record(ctx)
        if self._events is not None and (ctx.rejected_by is not None or ctx.reports):
            self._events.record(ctx)
