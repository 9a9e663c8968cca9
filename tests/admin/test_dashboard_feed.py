"""Tests of the dashboard's figures: events ring, top blocked sources, rates from the metrics."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.admin.dashboard import DashboardFeed
from bastion.clock import FakeClock
from bastion.core.context import PolicyReport, RequestContext
from bastion.errors import Forbidden, RateLimited
from bastion.observability.metrics import Metrics, RequestRecorder
from tests.support import make_ctx


class _Collected:
    def __init__(self) -> None:
        self.seen: list[RequestContext] = []

    def record(self, ctx: RequestContext) -> None:
        self.seen.append(ctx)


def _request(clock: FakeClock, ip: str = "198.51.100.1", status: int = 200) -> RequestContext:
    ctx = make_ctx("GET", "/v1/accounts", clock=clock, peer_ip=ip)
    ctx.status = status
    return ctx


def _refused(clock: FakeClock, ip: str, policy: str = "rate_limit") -> RequestContext:
    ctx = _request(clock, ip)
    reject = RateLimited("Too many requests.", retry_after=1)
    ctx.rejected_by = policy
    ctx.reject = reject
    ctx.status = reject.status
    return ctx


def _setup(**kwargs: Any) -> tuple[FakeClock, Metrics, DashboardFeed, RequestRecorder, _Collected]:
    clock = FakeClock()
    metrics = Metrics(clock)
    forward = _Collected()
    feed = DashboardFeed(metrics, clock, forward=forward, **kwargs)
    return clock, metrics, feed, RequestRecorder(metrics=metrics, events=feed), forward


def test_feed_lists_rejections_and_reports_newest_first_and_forwards_them() -> None:
    clock, _, feed, recorder, forward = _setup()
    first = _refused(clock, "203.0.113.5")
    recorder.record(first)
    clock.advance(1)
    reported = _request(clock)
    reported.reports.append(PolicyReport("ip_filter", 403, "ip_denied", "Forbidden."))
    recorder.record(reported)

    events = feed.snapshot()["recent_events"]

    assert isinstance(events, list)
    assert [(e["policy"], e["mode"], e["kind"]) for e in events] == [
        ("ip_filter", "report_only", "alert"),
        ("rate_limit", "enforce", "event"),
    ]
    assert events[1]["client_ip"] == "203.0.113.5"
    assert forward.seen == [first, reported]


def test_feed_keeps_only_the_latest_events() -> None:
    clock, _, feed, recorder, _ = _setup(events_kept=3)
    for index in range(5):
        recorder.record(_refused(clock, f"203.0.113.{index}"))
    assert [e.client_ip for e in feed.events] == ["203.0.113.2", "203.0.113.3", "203.0.113.4"]


def test_top_sources_ranks_addresses_by_rejections_not_by_requests() -> None:
    clock, _, feed, recorder, _ = _setup()
    for _ in range(5):
        recorder.record(_request(clock, "192.0.2.1"))  # many requests, none refused
    for ip, count in (("203.0.113.1", 2), ("203.0.113.2", 4), ("203.0.113.3", 1)):
        for _ in range(count):
            recorder.record(_refused(clock, ip))
    assert [(ip, n) for ip, n, _, _ in feed.top_sources(2)] == [
        ("203.0.113.2", 4),
        ("203.0.113.1", 2),
    ]


def test_top_sources_stay_bounded_and_keep_a_heavy_hitter_among_many_one_offs() -> None:
    clock, _, feed, recorder, _ = _setup(sources_tracked=8)
    for round_ in range(50):
        recorder.record(_refused(clock, "203.0.113.66"))
        recorder.record(_refused(clock, f"10.0.{round_}.1"))
        recorder.record(_refused(clock, f"10.1.{round_}.1"))
    top = feed.top_sources(100)
    assert len(top) == 8
    assert top[0][0] == "203.0.113.66"
    assert top[0][1] >= 50  # space-saving counts never under-estimate


def test_snapshot_reports_rates_by_policy_over_the_window() -> None:
    clock, _, feed, recorder, _ = _setup()
    first = feed.snapshot()
    assert first["window_seconds"] is None
    requests = first["requests"]
    assert isinstance(requests, dict)
    assert requests["per_second"] is None

    for _ in range(16):
        recorder.record(_request(clock))
    for _ in range(4):
        recorder.record(_refused(clock, "203.0.113.7"))
    ctx = _request(clock, status=0)
    ctx.rejected_by = "acl"
    ctx.reject = Forbidden("Forbidden.")
    ctx.status = 403
    recorder.record(ctx)
    recorder.record(_request(clock, status=502))
    clock.advance(2)

    data = feed.snapshot()

    assert data["window_seconds"] == 2.0
    assert data["requests"] == {
        "total": 22,
        "by_class": {"2xx": 16, "4xx": 5, "5xx": 1},
        "per_second": 11.0,
        "error_rate": pytest.approx(1 / 22, abs=1e-4),
        "client_error_rate": pytest.approx(5 / 22, abs=1e-4),
    }
    assert data["policies"] == [
        {"policy": "rate_limit", "rejections": 4, "per_second": 2.0, "rate": 0.1818},
        {"policy": "acl", "rejections": 1, "per_second": 0.5, "rate": 0.0455},
    ]


def test_snapshot_shows_certificate_expiry_in_days() -> None:
    clock, metrics, feed, _, _ = _setup()
    metrics.certificate_expiry("127.0.0.1:8443", clock.time() + 10 * 86400)
    assert feed.snapshot()["certificates"] == [
        {"listener": "127.0.0.1:8443", "expires_at": "2023-11-24T22:13:20.000Z", "days_left": 10.0}
    ]


def test_feed_refuses_empty_bounds() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="positive"):
        DashboardFeed(Metrics(clock), clock, events_kept=0)
