"""Tests of security events: one ECS line per rejection, report and config reload."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.clock import FakeClock
from bastion.core.context import Identity, PolicyReport, RequestContext
from bastion.errors import BadGateway, Forbidden, NotFound, RateLimited, Reject, Unauthenticated
from bastion.observability.access_log import AccessLog
from bastion.observability.events import SecurityEvents, classify
from bastion.observability.metrics import Metrics, RequestRecorder
from bastion.observability.sinks import MemorySink
from tests.observability.ecs import ecs_errors
from tests.support import make_ctx


def _events(ctx: RequestContext) -> list[dict[str, Any]]:
    sink = MemorySink()
    SecurityEvents(sink, FakeClock(wall=1_700_000_000.25)).record(ctx)
    docs = [orjson.loads(line) for line in sink.lines]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in sink.lines)
    return docs


def _rejected(ctx: RequestContext, policy: str, reject: Reject) -> RequestContext:
    ctx.rejected_by = policy
    ctx.reject = reject
    ctx.status = reject.status
    return ctx


def test_record_writes_one_event_for_an_enforced_rejection() -> None:
    ctx = make_ctx("POST", "/v1/transfers", route="transfers", peer_ip="10.0.0.7")
    ctx.request.client_ip = "203.0.113.9"
    ctx.service = "bank"
    ctx.request_id = "abc123"
    ctx.authenticate(Identity("consumer-42"))
    _rejected(ctx, "rate_limit", RateLimited("Too many requests.", retry_after=3))

    [event] = _events(ctx)

    assert event == {
        "@timestamp": "2023-11-14T22:13:20.250Z",
        "ecs": {"version": "8.11.0"},
        "message": "rate_limit refused the request: rate_limited",
        "event": {
            "kind": "event",
            "category": ["web"],
            "type": ["info"],
            "action": "rate_limited",
            "dataset": "bastion.security",
            "outcome": "failure",
            "reason": "Too many requests.",
        },
        "rule": {"name": "rate_limit.rate_limited"},
        "http": {"request": {"method": "POST"}, "response": {"status_code": 429}},
        "url": {"path": "/v1/transfers"},
        "client": {"ip": "203.0.113.9"},
        "source": {"ip": "10.0.0.7"},
        "service": {"name": "bastion"},
        "bastion": {
            "policy": "rate_limit",
            "mode": "enforce",
            "status": 429,
            "route": "transfers",
            "service": "bank",
        },
        "trace": {"id": "abc123"},
        "user": {"id": "consumer-42"},
    }
    assert ecs_errors(event) == []


def test_record_writes_one_event_per_report_only_decision() -> None:
    ctx = make_ctx()
    ctx.status = 200
    ctx.reports.append(PolicyReport("ip_filter", 403, "ip_denied", "Address refused."))
    ctx.reports.append(PolicyReport("jwt", 401, "invalid_token", "Token refused."))

    events = _events(ctx)

    assert [e["rule"]["name"] for e in events] == ["ip_filter.ip_denied", "jwt.invalid_token"]
    assert [e["bastion"]["mode"] for e in events] == ["report_only", "report_only"]
    assert events[0]["event"]["kind"] == "alert"
    assert events[0]["event"]["type"] == ["allowed"]  # reported, the request went on
    assert events[0]["message"] == "ip_filter would refuse the request: ip_denied"
    assert all(ecs_errors(e) == [] for e in events)


def test_record_writes_nothing_for_an_accepted_request() -> None:
    ctx = make_ctx()
    ctx.status = 200
    assert _events(ctx) == []


def test_record_ignores_failures_no_policy_decided() -> None:
    # An upstream 502 is an outage, not a security decision: metrics count it instead.
    ctx = make_ctx()
    ctx.reject = BadGateway("The upstream failed.")
    ctx.status = 502
    assert _events(ctx) == []


AUTHN = ("event", "authentication", "info")
ALERT = ("alert", "intrusion_detection", "denied")
WEB = ("event", "web", "info")


@pytest.mark.parametrize(
    ("policy", "reject", "expected"),
    [
        ("api_key", Unauthenticated("No key.", challenge="ApiKey"), AUTHN),
        ("jwt", Forbidden("Wrong audience.", code="invalid_audience"), AUTHN),
        ("scopes", Unauthenticated("x", challenge="Bearer"), AUTHN),
        ("ip_filter", Forbidden("Refused.", code="ip_denied"), ALERT),
        ("injection_guard", Forbidden("x", code="injection_detected"), ALERT),
        ("openapi", Forbidden("x", code="path_traversal"), ALERT),
        ("router", NotFound("No route."), WEB),
        ("size_limit", Reject("Too big.", code="too_many_query_params"), WEB),
    ],
    ids=[
        "api-key",
        "jwt-403",
        "any-401",
        "ip-filter",
        "injection",
        "intrusion-code",
        "router",
        "size",
    ],
)
def test_record_classifies_decisions(
    policy: str, reject: Reject, expected: tuple[str, str, str]
) -> None:
    [event] = _events(_rejected(make_ctx(), policy, reject))
    kind, category, event_type = expected
    assert event["event"]["kind"] == kind
    assert event["event"]["category"] == [category]
    assert event["event"]["type"] == [event_type]
    assert event["event"]["action"] == reject.error_code
    assert ecs_errors(event) == []


def test_classify_is_by_policy_then_code_then_status() -> None:
    assert classify("brute_force", "anything", 429) == ("alert", "intrusion_detection")
    assert classify("basic_auth", "invalid_credentials", 401) == ("event", "authentication")
    assert classify("cors", "cors_origin_not_allowed", 403) == ("event", "web")


def test_record_redacts_secrets_from_the_reason() -> None:
    # Details are fixed strings by contract; redaction still guards against a careless one.
    ctx = _rejected(make_ctx(), "jwt", Unauthenticated("Bad Bearer abc.def", challenge="Bearer"))
    [event] = _events(ctx)
    assert "abc.def" not in event["event"]["reason"]


def test_config_reload_writes_success_and_failure_events() -> None:
    sink = MemorySink()
    events = SecurityEvents(sink, FakeClock())
    events.config_reload(success=True, revision=2)
    events.config_reload(success=False, revision=2, error="services[0].name: password=hunter2")

    ok, failed = (orjson.loads(line) for line in sink.lines)

    assert ok["event"]["action"] == failed["event"]["action"] == "config-reload"
    assert ok["event"]["category"] == ["configuration"]
    assert ok["event"]["type"] == ["change"]
    assert (ok["event"]["outcome"], failed["event"]["outcome"]) == ("success", "failure")
    assert ok["bastion"] == {"config_revision": 2}
    assert "hunter2" not in failed["error"]["message"]
    assert ecs_errors(ok) == []
    assert ecs_errors(failed) == []


def test_recorder_writes_the_access_line_then_the_events_to_one_sink() -> None:
    sink = MemorySink()
    clock = FakeClock()
    recorder = RequestRecorder(
        access_log=AccessLog(sink, clock),
        metrics=Metrics(clock),
        events=SecurityEvents(sink, clock),
    )
    accepted = make_ctx()
    accepted.status = 200
    recorder.record(accepted)
    recorder.record(_rejected(make_ctx(), "ip_filter", Forbidden("Refused.", code="ip_denied")))

    datasets = [orjson.loads(line)["event"]["dataset"] for line in sink.lines]
    assert datasets == ["bastion.access", "bastion.access", "bastion.security"]
    assert all(ecs_errors(orjson.loads(line)) == [] for line in sink.lines)


def test_ecs_checker_reports_wrong_types_and_values() -> None:
    # The checker itself must fail on what it is meant to catch.
    bad = {
        "@timestamp": "yesterday",
        "event": {"kind": "warning", "category": "web", "outcome": "ok", "duration": 1.5},
        "client": {"ip": "not-an-ip"},
        "http": {"response": {"status_code": "200"}},
        "custom": {"field": 1},
    }
    errors = ecs_errors(bad)
    for fragment in (
        "@timestamp",
        "event.kind",
        "event.category: expected an array",
        "event.outcome",
        "event.duration",
        "client.ip",
        "http.response.status_code",
        "custom.field",
    ):
        assert any(fragment in error for error in errors), fragment
