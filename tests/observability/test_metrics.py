"""Tests of the metrics: what each request adds, bounded labels, and the text exposition."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.context import Identity, PolicyReport, RequestContext
from bastion.errors import (
    BadGateway,
    Forbidden,
    GatewayTimeout,
    InternalError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from bastion.observability.metrics import (
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    MAX_LABEL_SETS,
    Metrics,
    new_registry,
    render,
)
from tests.observability.prom import Samples, parse_samples, value
from tests.support import make_ctx


def _scrape(metrics: Metrics) -> Samples:
    return parse_samples(render(new_registry(metrics, process=False)).decode())


def _finished(
    clock: FakeClock,
    status: int,
    *,
    route: str | None = "accounts",
    took: float = 0.002,
    upstream: float | None = None,
) -> RequestContext:
    ctx = make_ctx(clock=clock, route=route)
    ctx.service = "bank" if route else None
    ctx.status = status
    ctx.upstream_duration = upstream
    clock.advance(took)
    return ctx


def test_observe_counts_requests_by_route_and_status_class() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    metrics.bind_routes([("accounts", "bank")])
    for status in (200, 201, 204, 304, 404, 503, 0):
        metrics.observe(_finished(clock, status))

    samples = _scrape(metrics)

    counts = {
        status_class: value(
            samples,
            "bastion_requests_total",
            route="accounts",
            service="bank",
            status_class=status_class,
        )
        for status_class in ("2xx", "3xx", "4xx", "5xx", "none")
    }
    assert counts == {"2xx": 3, "3xx": 1, "4xx": 1, "5xx": 1, "none": 1}


def test_observe_fills_latency_histograms_with_inclusive_buckets() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    metrics.observe(_finished(clock, 200, took=0.004, upstream=0.001))  # 0.001 is `le="0.001"`
    metrics.observe(_finished(clock, 200, took=0.3, upstream=0.25))
    metrics.observe(_finished(clock, 403, took=0.0001))  # refused: never reached the upstream

    samples = _scrape(metrics)

    gateway = "bastion_request_duration_seconds"
    upstream = "bastion_upstream_duration_seconds"
    assert value(samples, f"{gateway}_bucket", route="accounts", le="0.005") == 2
    assert value(samples, f"{gateway}_bucket", route="accounts", le="0.25") == 2
    assert value(samples, f"{gateway}_bucket", route="accounts", le="0.5") == 3
    assert value(samples, f"{gateway}_bucket", route="accounts", le="+Inf") == 3
    assert value(samples, f"{gateway}_count", route="accounts") == 3
    assert value(samples, f"{gateway}_sum", route="accounts") == pytest.approx(0.3041)
    assert value(samples, f"{upstream}_bucket", route="accounts", le="0.0005") == 0
    assert value(samples, f"{upstream}_bucket", route="accounts", le="0.001") == 1
    assert value(samples, f"{upstream}_bucket", route="accounts", le="0.25") == 2
    assert value(samples, f"{upstream}_count", route="accounts") == 2


def test_observe_counts_beyond_the_last_bucket_in_inf_only() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    metrics.observe(_finished(clock, 504, took=LATENCY_BUCKETS[-1] + 1))
    samples = _scrape(metrics)
    name = "bastion_request_duration_seconds_bucket"
    assert value(samples, name, route="accounts", le=repr(LATENCY_BUCKETS[-1])) == 0
    assert value(samples, name, route="accounts", le="+Inf") == 1


def test_observe_counts_unmatched_requests_under_a_reserved_route_name() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    ctx = _finished(clock, 404, route=None)
    ctx.rejected_by = "router"
    ctx.reject = NotFound("No route.")
    metrics.observe(ctx)

    samples = _scrape(metrics)

    labels = {"route": "_unmatched", "service": "", "status_class": "4xx"}
    assert value(samples, "bastion_requests_total", **labels) == 1
    assert value(samples, "bastion_rejections_total", policy="router", code="not_found") == 1


def test_observe_counts_rejections_and_reports_by_policy_and_code() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    for _ in range(2):
        ctx = _finished(clock, 429)
        ctx.rejected_by = "rate_limit"
        ctx.reject = RateLimited("Slow down.", retry_after=1)
        metrics.observe(ctx)
    reported = _finished(clock, 200)
    reported.reports.append(PolicyReport("ip_filter", 403, "ip_denied", "Refused."))
    metrics.observe(reported)

    samples = _scrape(metrics)

    assert value(samples, "bastion_rejections_total", policy="rate_limit", code="rate_limited") == 2
    assert value(samples, "bastion_policy_reports_total", policy="ip_filter", code="ip_denied") == 1
    assert value(samples, "bastion_rejections_total", policy="ip_filter", code="ip_denied") == 0


@pytest.mark.parametrize(
    ("reject", "code"),
    [
        (BadGateway("The upstream failed."), "bad_gateway"),
        (GatewayTimeout("The upstream timed out."), "gateway_timeout"),
        (ServiceUnavailable("No healthy upstream."), "service_unavailable"),
    ],
    ids=["502", "504", "503"],
)
def test_observe_counts_upstream_failures_by_service(reject: Exception, code: str) -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    ctx = _finished(clock, 502)
    ctx.reject = reject  # type: ignore[assignment]  # every case is a Reject
    metrics.observe(ctx)
    samples = _scrape(metrics)
    assert value(samples, "bastion_upstream_errors_total", service="bank", code=code) == 1
    assert not any(name == "bastion_rejections_total" for name, _ in samples)


def test_observe_does_not_count_internal_errors_as_upstream_failures() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    ctx = _finished(clock, 500)
    ctx.reject = InternalError("An internal error occurred.")
    metrics.observe(ctx)
    samples = _scrape(metrics)
    assert not any(name == "bastion_upstream_errors_total" for name, _ in samples)


def test_labels_never_carry_client_addresses_paths_or_consumers() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    for index in range(50):
        ctx = make_ctx(
            clock=clock, route="accounts", path=f"/v1/accounts/{index}", peer_ip=f"10.0.0.{index}"
        )
        ctx.authenticate(Identity(f"consumer-{index}"))
        ctx.status = 403
        ctx.rejected_by = "ip_filter"
        ctx.reject = Forbidden("Refused.", code="ip_denied")
        metrics.observe(ctx)

    text = render(new_registry(metrics, process=False)).decode()

    assert "10.0.0." not in text
    assert "/v1/accounts" not in text
    assert "consumer-" not in text
    label_values = {v for (_, labels) in parse_samples(text) for _, v in labels}
    fixed = {"accounts", "", "4xx", "ip_filter", "ip_denied", "+Inf", "success", "failure"}
    assert label_values <= fixed | {repr(bound) for bound in LATENCY_BUCKETS}


def test_rejection_label_sets_are_capped() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    for index in range(MAX_LABEL_SETS + 10):
        ctx = _finished(clock, 400)
        ctx.rejected_by = "openapi"
        ctx.reject = Forbidden("x", code=f"code_{index}")
        metrics.observe(ctx)
    samples = _scrape(metrics)
    rejections = {k: v for k, v in samples.items() if k[0] == "bastion_rejections_total"}
    assert len(rejections) == MAX_LABEL_SETS + 1
    assert value(samples, "bastion_rejections_total", policy="openapi", code="other") == 10


def test_bind_routes_keeps_counts_across_reloads() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    metrics.bind_routes([("accounts", "bank")])
    metrics.observe(_finished(clock, 200))
    metrics.bind_routes([("accounts", "bank"), ("cards", "bank")])  # a reload adds a route
    metrics.observe(_finished(clock, 200))
    samples = _scrape(metrics)
    labels = {"route": "accounts", "service": "bank", "status_class": "2xx"}
    assert value(samples, "bastion_requests_total", **labels) == 2


def test_exposition_carries_reloads_certificates_gauges_and_dropped_lines() -> None:
    metrics = Metrics(FakeClock())
    metrics.config_reloaded(True)
    metrics.config_reloaded(False)
    metrics.certificate_expiry("127.0.0.1:8443", 1_800_000_000.0)
    open_connections = [3]
    metrics.gauge("bastion_connections_active", "Open connections.", lambda: open_connections[0])
    metrics.watch_log("access", lambda: 7)

    samples = _scrape(metrics)
    open_connections[0] = 5
    later = _scrape(metrics)

    assert value(samples, "bastion_config_reloads_total", outcome="success") == 1
    assert value(samples, "bastion_config_reloads_total", outcome="failure") == 1
    assert value(samples, "bastion_config_last_reload_successful") == 0
    expiry = "bastion_tls_certificate_expiry_timestamp_seconds"
    assert value(samples, expiry, listener="127.0.0.1:8443") == 1_800_000_000.0
    assert value(samples, "bastion_connections_active") == 3
    assert value(later, "bastion_connections_active") == 5
    assert value(samples, "bastion_log_dropped_lines_total", log="access") == 7


def test_registry_includes_process_metrics_and_the_content_type_is_text_0_0_4() -> None:
    text = render(new_registry(Metrics(FakeClock()))).decode()
    assert "process_cpu_seconds_total" in text
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
