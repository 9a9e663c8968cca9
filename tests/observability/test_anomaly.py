"""Tests of per-client anomaly scores and their ECS alert events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.observability.anomaly import AnomalyAlert, AnomalyDetector, AnomalyEvents
from bastion.observability.sinks import MemorySink
from tests.observability.ecs import ecs_errors
from tests.support import make_ctx


def _detector(clock: FakeClock, **kwargs: Any) -> tuple[AnomalyDetector, list[AnomalyAlert]]:
    alerts: list[AnomalyAlert] = []
    return AnomalyDetector(clock, alerts.append, **kwargs), alerts


def test_detector_alerts_once_on_a_client_refused_again_and_again() -> None:
    clock = FakeClock()
    detector, alerts = _detector(clock)
    for _ in range(30):
        detector.observe("203.0.113.9", 401)
        clock.advance(0.1)
    assert len(alerts) == 1
    assert alerts[0].client_ip == "203.0.113.9"
    assert alerts[0].score == 1.0
    assert alerts[0].requests >= 20


def test_detector_ignores_a_busy_client_with_a_few_errors() -> None:
    clock = FakeClock()
    detector, alerts = _detector(clock)
    for index in range(500):
        detector.observe("198.51.100.4", 404 if index % 10 == 0 else 200)
        clock.advance(0.01)
    assert alerts == []
    assert detector.score("198.51.100.4") == pytest.approx(0.05, abs=0.01)


def test_detector_needs_enough_requests_before_judging() -> None:
    clock = FakeClock()
    detector, alerts = _detector(clock, min_requests=20)
    for _ in range(19):
        detector.observe("203.0.113.9", 403)
    assert alerts == []
    detector.observe("203.0.113.9", 403)
    assert len(alerts) == 1


@pytest.mark.parametrize(
    ("status", "alerts_expected"),
    [(401, 1), (403, 1), (429, 1), (400, 1), (404, 1), (200, 0), (500, 0)],
    ids=["401", "403", "429", "400", "404", "200", "500"],
)
def test_detector_counts_only_client_error_statuses(status: int, alerts_expected: int) -> None:
    detector, alerts = _detector(FakeClock())
    for _ in range(40):
        detector.observe("203.0.113.9", status)
    assert len(alerts) == alerts_expected


def test_detector_forgets_old_errors_and_alerts_again_later() -> None:
    clock = FakeClock()
    detector, alerts = _detector(clock, half_life=60, realert_after=300)
    for _ in range(25):
        detector.observe("203.0.113.9", 401)
    assert len(alerts) == 1
    for _ in range(25):
        detector.observe("203.0.113.9", 401)
    assert len(alerts) == 1  # within realert_after
    clock.advance(600)  # ten half-lives: the history has faded
    assert detector.observe("203.0.113.9", 401) is None  # too few (decayed) requests now
    for _ in range(25):
        detector.observe("203.0.113.9", 401)
    assert len(alerts) == 2


def test_detector_does_not_track_clients_that_never_erred() -> None:
    detector, _ = _detector(FakeClock())
    for index in range(1000):
        detector.observe(f"10.0.{index // 256}.{index % 256}", 200)
    assert len(detector) == 0


@given(ips=st.lists(st.integers(0, 5000), min_size=1, max_size=300))
def test_detector_never_tracks_more_clients_than_its_bound(ips: list[int]) -> None:
    detector, _ = _detector(FakeClock(), max_clients=50)
    for ip in ips:
        detector.observe(f"10.0.{ip // 256}.{ip % 256}", 404)
    assert len(detector) <= 50
    last = ips[-1]
    assert detector.score(f"10.0.{last // 256}.{last % 256}") > 0  # the newest is kept


def test_detector_refuses_a_threshold_above_one() -> None:
    with pytest.raises(ValueError, match="threshold"):
        AnomalyDetector(FakeClock(), lambda _alert: None, threshold=1.5)


def test_alert_event_is_an_ecs_intrusion_detection_alert() -> None:
    sink = MemorySink()
    clock = FakeClock(wall=1_700_000_000.5)
    detector = AnomalyDetector(clock, AnomalyEvents(sink))
    for _ in range(20):
        ctx = make_ctx("GET", "/admin", clock=clock, peer_ip="203.0.113.9")
        ctx.status = 403
        detector.record(ctx)
    [line] = sink.lines
    doc = orjson.loads(line)
    assert ecs_errors(doc) == []
    assert doc["event"]["kind"] == "alert"
    assert doc["event"]["category"] == ["intrusion_detection"]
    assert doc["event"]["dataset"] == "bastion.security"
    assert doc["rule"]["name"] == "anomaly.error_ratio"
    assert doc["client"]["ip"] == "203.0.113.9"
    assert doc["bastion"]["anomaly"]["score"] == 1.0
    assert doc["@timestamp"] == "2023-11-14T22:13:20.500Z"
