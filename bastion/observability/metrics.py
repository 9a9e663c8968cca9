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

Labels are only ever route, service, policy, code, status class, listener, log and API version
names and TLS failure reasons: values fixed by the configuration or by code, never by a client
(no consumer, IP or path), so the number of series is bounded. As a guard, past
`MAX_LABEL_SETS` distinct (policy, code) pairs further ones are counted under code `other`.

Workers: each worker process has its own `Metrics`. With `--workers N` only worker 0 runs the
admin listener; every other worker writes a `snapshot()` of its numbers to a private per-node
directory on each sweep (every 0.5 s, only when something changed), and worker 0 adds those
files to its own numbers at scrape time (`WorkerSnapshots`). So `/metrics` reports the whole
node, at most one sweep behind, and the request path costs the same as with one worker (nothing
is shared or locked per request). prometheus-client's multiprocess mode was not used: it needs
its own value objects (an mmap write per increment) instead of the plain lists above.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

import orjson
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
DEPRECATED_API_VERSION: Final = "deprecated_api_version"
"""`ctx.request.extra` key the versioning policy sets on requests to a deprecated version (the
same string as `bastion.policies.versioning.policy.DEPRECATED_API_VERSION`; a test pins it)."""

GaugeMerge = Literal["sum", "max"]
Snapshot = dict[str, object]
"""A worker's numbers as JSON-able data (`Metrics.snapshot`)."""
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
        "_labelled_gauges",
        "_logs",
        "_reload_ok",
        "_reloads",
        "_routes",
        "deprecated_versions",
        "peers",
        "rejections",
        "reports",
        "tls_failures",
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
        self._gauges: dict[str, tuple[str, Callable[[], int], GaugeMerge]] = {}
        self.deprecated_versions: dict[tuple[str, str], int] = {}
        self.tls_failures: dict[tuple[str, str], int] = {}
        self.peers: Callable[[], list[object]] | None = None
        """Snapshots of the node's other workers, added at scrape time (`WorkerSnapshots`)."""
        self._labelled_gauges: dict[str, tuple[str, str, Callable[[], Mapping[str, int]]]] = {}

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

    def gauge(
        self, name: str, documentation: str, read: Callable[[], int], *, merge: GaugeMerge = "sum"
    ) -> None:
        """Expose `read()` (called at scrape time, from the scraping thread) as gauge `name`.

        `merge` says how the workers' values make the node's: `sum` (connections, requests in
        flight) or `max` (a 0/1 state such as "degraded").
        """
        self._gauges[name] = (documentation, read, merge)

    def labelled_gauge(
        self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, int]]
    ) -> None:
        """Expose `read()` (label value → value, read at scrape time) as gauge `name{label=}`."""
        self._labelled_gauges[name] = (documentation, label, read)

    def watch_log(self, name: str, dropped: Callable[[], int]) -> None:
        """Expose a log's count of lost lines as `bastion_log_dropped_lines_total{log=name}`."""
        self._logs[name] = dropped

    def certificate_expiry(self, listener: str, expires: float) -> None:
        """Record the expiry (Unix seconds) of the certificate served on `listener`."""
        self._certificates[listener] = expires

    def tls_handshake_failed(self, listener: str, reason: str) -> None:
        """Count a failed TLS handshake on `listener` (its bind address) for `reason`."""
        _bump(self.tls_failures, (listener, reason))

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
        extra = ctx.request.extra
        if extra:  # empty for most requests: one truth test
            version = extra.get(DEPRECATED_API_VERSION)
            if version is not None:
                _bump(self.deprecated_versions, (route.name, str(version)))

    def _rejected(self, ctx: RequestContext, reject: Reject) -> None:
        policy = ctx.rejected_by
        if policy is not None:
            _bump(self.rejections, (policy, reject.error_code))
        elif reject.status in _UPSTREAM_STATUSES and ctx.service is not None:
            # No policy refused: the upstream failed (502/504) or had no healthy target (503).
            _bump(self.upstream_errors, (ctx.service, reject.error_code))

    # -- exposition --------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """This worker's numbers as JSON-able data (what the other workers publish)."""
        routes = [
            [
                r.name,
                r.service,
                r.requests.copy(),
                r.duration_buckets.copy(),
                r.duration_sum,
                r.upstream_buckets.copy(),
                r.upstream_sum,
            ]
            for r in list(self._routes.copy().values())
        ]
        return {
            "routes": routes,
            "counters": {name: _pairs(getattr(self, name)) for name in _SUMMED_COUNTERS},
            "logs": {name: read() for name, read in self._logs.copy().items()},
            "gauges": {name: entry[1]() for name, entry in self._gauges.copy().items()},
            "labelled_gauges": {
                name: dict(entry[2]()) for name, entry in self._labelled_gauges.copy().items()
            },
        }

    def _node(self) -> _Totals:
        """This worker's numbers plus the other workers' (skipping unreadable snapshots)."""
        totals = _Totals()
        own = _parse(self.snapshot())
        if own is not None:  # pragma: no branch - our own snapshot always parses
            totals.add(own, self._gauges)
        if self.peers is not None:
            for snapshot in self.peers():
                parsed = _parse(snapshot)
                if parsed is not None:
                    totals.add(parsed, self._gauges)
        return totals

    def collect(self) -> Iterator[Metric]:
        """Build the metric families from the current numbers (safe from another thread).

        With several workers, counters, histograms and gauges are the node's (every worker's
        snapshot added); reloads and certificate expiry are this worker's, which sees the same
        config and files as the others.
        """
        node = self._node()
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
        for route in node.routes.values():
            for index, value in enumerate(route.requests):
                if value:
                    labels = (route.name, route.service, STATUS_CLASSES[index])
                    requests.add_metric(labels, value)
            _add_histogram(duration, route.name, route.duration_buckets, route.duration_sum)
            _add_histogram(upstream, route.name, route.upstream_buckets, route.upstream_sum)
        yield requests
        yield duration
        yield upstream
        counters = node.counters
        yield _counter(
            "bastion_rejections",
            "Requests refused, by the policy (or `router`) that refused and its error code.",
            ("policy", "code"),
            counters["rejections"],
        )
        yield _counter(
            "bastion_policy_reports",
            "Decisions a report_only policy would have enforced, by policy and error code.",
            ("policy", "code"),
            counters["reports"],
        )
        yield _counter(
            "bastion_upstream_errors",
            "Upstream failures answered with 502/503/504, by service and error code.",
            ("service", "code"),
            counters["upstream_errors"],
        )
        yield _counter(
            "bastion_deprecated_version_requests",
            "Requests to an API version past its deprecation date, by route and version.",
            ("route", "version"),
            counters["deprecated_versions"],
        )
        yield _counter(
            "bastion_tls_handshake_failures",
            "TLS handshakes that failed, by listener (bind address) and reason.",
            ("listener", "reason"),
            counters["tls_failures"],
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
        for name, count in node.logs.items():
            dropped.add_metric((name,), count)
        yield dropped
        for name, (documentation, _, _) in self._gauges.copy().items():
            yield GaugeMetricFamily(name, documentation, value=node.gauges.get(name, 0))
        for name, (documentation, label, _) in self._labelled_gauges.copy().items():
            values = node.labelled_gauges.get(name, {})
            family = GaugeMetricFamily(name, documentation, labels=(label,))
            for label_value, number in sorted(values.items()):
                family.add_metric((label_value,), number)
            yield family


_SUMMED_COUNTERS: Final = (
    "rejections",
    "reports",
    "upstream_errors",
    "deprecated_versions",
    "tls_failures",
)


def _pairs(counts: dict[tuple[str, str], int]) -> list[list[object]]:
    return [[first, second, value] for (first, second), value in counts.copy().items()]


@dataclass(slots=True)
class _Parsed:
    """A snapshot checked for shape (a worker's file could be truncated or from another version)."""

    routes: list[tuple[str, str, list[int], list[int], float, list[int], float]]
    counters: dict[str, list[tuple[str, str, int]]]
    logs: dict[str, int]
    gauges: dict[str, int]
    labelled_gauges: dict[str, dict[str, int]]


def _ints(value: object, length: int) -> list[int]:
    if not isinstance(value, list) or len(value) != length:
        raise ValueError("bad list")
    return [int(item) for item in value]


def _int_map(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("bad map")
    return {str(key): int(number) for key, number in value.items()}


def _parse(snapshot: object) -> _Parsed | None:
    """The typed content of a snapshot, or None when it is not one."""
    try:
        if not isinstance(snapshot, dict):
            raise ValueError("not a snapshot")
        routes = []
        buckets = len(LATENCY_BUCKETS) + 1
        for row in snapshot["routes"]:
            name, service, requests, durations, duration_sum, upstreams, upstream_sum = row
            routes.append(
                (
                    str(name),
                    str(service),
                    _ints(requests, len(STATUS_CLASSES)),
                    _ints(durations, buckets),
                    float(duration_sum),
                    _ints(upstreams, buckets),
                    float(upstream_sum),
                )
            )
        counters: dict[str, list[tuple[str, str, int]]] = {}
        raw_counters = snapshot["counters"]
        for name in _SUMMED_COUNTERS:
            counters[name] = [
                (str(first), str(second), int(value))
                for first, second, value in raw_counters.get(name, [])
            ]
        labelled = snapshot.get("labelled_gauges", {})
        if not isinstance(labelled, dict):
            raise ValueError("bad labelled gauges")
        return _Parsed(
            routes,
            counters,
            _int_map(snapshot.get("logs", {})),
            _int_map(snapshot.get("gauges", {})),
            {str(name): _int_map(values) for name, values in labelled.items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass(slots=True)
class _Totals:
    """The node's numbers: every worker's snapshot added up."""

    routes: dict[str, RouteMetrics] = field(default_factory=dict)
    counters: dict[str, dict[tuple[str, str], int]] = field(
        default_factory=lambda: {name: {} for name in _SUMMED_COUNTERS}
    )
    logs: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, int] = field(default_factory=dict)
    labelled_gauges: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self,
        snapshot: _Parsed,
        gauges: Mapping[str, tuple[str, Callable[[], int], GaugeMerge]],
    ) -> None:
        for (
            name,
            service,
            requests,
            durations,
            duration_sum,
            upstreams,
            upstream_sum,
        ) in snapshot.routes:
            route = self.routes.get(name)
            if route is None:
                route = self.routes[name] = RouteMetrics(name, service)
            _add_into(route.requests, requests)
            _add_into(route.duration_buckets, durations)
            _add_into(route.upstream_buckets, upstreams)
            route.duration_sum += duration_sum
            route.upstream_sum += upstream_sum
        for counter, rows in snapshot.counters.items():
            totals = self.counters[counter]
            for first, second, value in rows:
                totals[(first, second)] = totals.get((first, second), 0) + value
        for name, value in snapshot.logs.items():
            self.logs[name] = self.logs.get(name, 0) + value
        for name, value in snapshot.gauges.items():
            entry = gauges.get(name)
            merge = entry[2] if entry is not None else "sum"
            _merge(self.gauges, name, value, merge)
        for name, values in snapshot.labelled_gauges.items():
            merged = self.labelled_gauges.setdefault(name, {})
            for label, value in values.items():
                _merge(merged, label, value, "max")  # labelled gauges are states (degraded)


def _add_into(total: list[int], more: list[int]) -> None:
    for index, value in enumerate(more):
        total[index] += value


def _merge(values: dict[str, int], key: str, value: int, merge: GaugeMerge) -> None:
    current = values.get(key)
    if current is None:
        values[key] = value
    elif merge == "sum":
        values[key] = current + value
    else:
        values[key] = max(current, value)


class WorkerSnapshots:
    """Worker metrics shared through files in a private per-node directory.

    Worker `worker` writes `worker-<n>.json` (atomically: a temporary file, then a rename) when
    `publish` sees numbers that changed; the worker serving `/metrics` reads every other
    worker's file with `read_peers`. The directory is created by `bastion run` before forking
    (mode 0700, in `/dev/shm` when it exists) and removed when the node stops.

    Args:
        directory: The node's private directory.
        worker: This worker's index (0 serves the admin listener).
    """

    def __init__(self, directory: Path, worker: int) -> None:
        self.directory = directory
        self.worker = worker
        self._path = directory / f"worker-{worker}.json"
        self._last = b""

    def publish(self, metrics: Metrics) -> None:
        """Write this worker's snapshot if it changed since the last one (blocking, small)."""
        data = orjson.dumps(metrics.snapshot())
        if data == self._last:
            return
        tmp = self.directory / f".worker-{self.worker}.tmp"
        try:
            tmp.write_bytes(data)
            tmp.replace(self._path)
        except OSError:
            return  # the directory went away (node stopping): the next sweep retries
        self._last = data

    def read_peers(self) -> list[object]:
        """The other workers' last snapshots (unreadable or partial files are skipped)."""
        found: list[object] = []
        try:
            paths = sorted(self.directory.glob("worker-*.json"))
        except OSError:
            return found
        for path in paths:
            if path == self._path:
                continue
            try:
                found.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue
        return found

    def remove(self) -> None:
        """Delete this worker's file (at shutdown)."""
        with contextlib.suppress(OSError):
            os.unlink(self._path)


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
