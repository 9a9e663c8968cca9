"""Tests of the ECS access log: one line per request, its fields, types and redaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.core.context import Identity, PolicyReport, RequestContext
from bastion.errors import RateLimited, Unauthenticated
from bastion.observability.access_log import AccessLog, redact_query
from bastion.observability.sinks import MemorySink
from tests.support import make_ctx

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _record(ctx: RequestContext, clock: FakeClock, **kwargs: str) -> dict[str, Any]:
    sink = MemorySink()
    AccessLog(sink, clock, **kwargs).record(ctx)
    assert len(sink.lines) == 1
    line = sink.lines[0]
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert isinstance(doc, dict)
    return doc


def test_record_writes_every_ecs_field_of_a_proxied_request() -> None:
    clock = FakeClock(start=500.0, wall=1_700_000_000.0)
    ctx = make_ctx(
        "POST",
        "/v1/transfers",
        clock=clock,
        query=b"dry_run=1",
        headers=[(b"host", b"api.example.test"), (b"user-agent", b"curl/8.5.0")],
        peer_ip="10.0.0.7",
        body=b'{"amount": 10}',
    )
    ctx.request.client_ip = "203.0.113.9"
    ctx.service = "bank"
    ctx.request_id = "0123456789abcdef0123456789abcdef"
    ctx.authenticate(Identity("consumer-42", consumer_name="alice"))
    ctx.status = 201
    ctx.bytes_received = 14
    ctx.bytes_sent = 321
    ctx.upstream_target = "127.0.0.1:9000"
    ctx.upstream_duration = 0.0125
    clock.advance(0.25)

    doc = _record(ctx, clock, service_name="edge-1")

    assert doc == {
        "@timestamp": "2023-11-14T22:13:20.250Z",
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "event",
            "category": ["web"],
            "type": ["access"],
            "dataset": "bastion.access",
            "outcome": "success",
            "duration": 250_000_000,
        },
        "http": {
            "version": "1.1",
            "request": {
                "method": "POST",
                "id": "0123456789abcdef0123456789abcdef",
                "body": {"bytes": 14},
            },
            "response": {"status_code": 201, "body": {"bytes": 321}},
        },
        "url": {"path": "/v1/transfers", "query": "dry_run=1"},
        "client": {"ip": "203.0.113.9"},
        "source": {"ip": "10.0.0.7"},
        "service": {"name": "edge-1"},
        "trace": {"id": "0123456789abcdef0123456789abcdef"},
        "user": {"id": "consumer-42"},
        "user_agent": {"original": "curl/8.5.0"},
        "bastion": {
            "route": "test-route",
            "service": "bank",
            "upstream": {"address": "127.0.0.1:9000", "duration_ms": 12.5},
        },
    }


def test_record_field_types_match_the_ecs_mapping() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.status = 200
    clock.advance(0.000_001_5)

    doc = _record(ctx, clock)

    event = doc["event"]
    assert isinstance(event, dict)
    assert type(event["duration"]) is int
    assert event["duration"] == 1500
    http = doc["http"]
    assert isinstance(http, dict)
    assert type(http["response"]["status_code"]) is int
    assert type(http["request"]["body"]["bytes"]) is int
    assert type(http["response"]["body"]["bytes"]) is int
    stamp = doc["@timestamp"]
    assert isinstance(stamp, str)
    assert TIMESTAMP.match(stamp)


def test_record_timestamp_is_the_completion_time_in_utc() -> None:
    clock = FakeClock(start=10.0, wall=1_700_000_000.0)
    ctx = make_ctx(clock=clock)
    ctx.status = 200
    clock.advance(2.0071)

    doc = _record(ctx, clock)

    completed = datetime.fromtimestamp(clock.time(), UTC)
    assert doc["@timestamp"] == completed.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert doc["@timestamp"] == "2023-11-14T22:13:22.007Z"


def test_record_timestamp_changes_with_the_second() -> None:
    clock = FakeClock(start=0.0, wall=1_700_000_000.0)
    sink = MemorySink()
    log = AccessLog(sink, clock)
    for _ in range(3):
        ctx = make_ctx(clock=clock)
        ctx.status = 200
        clock.advance(0.6)
        log.record(ctx)

    stamps = [orjson.loads(line)["@timestamp"] for line in sink.lines]
    assert stamps == [
        "2023-11-14T22:13:20.600Z",
        "2023-11-14T22:13:21.200Z",
        "2023-11-14T22:13:21.800Z",
    ]


def test_record_omits_fields_whose_value_is_unknown() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock, route=None)
    ctx.status = 404

    doc = _record(ctx, clock)

    for absent in ("user", "trace", "user_agent", "bastion", "error"):
        assert absent not in doc
    assert "query" not in doc["url"]
    assert "id" not in doc["http"]["request"]
    assert b"null" not in orjson.dumps(doc)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "success"),
        (304, "success"),
        (399, "success"),
        (400, "failure"),
        (401, "failure"),
        (502, "failure"),
    ],
    ids=["ok", "not-modified", "last-success", "bad-request", "unauthorized", "bad-gateway"],
)
def test_record_outcome_follows_the_status(status: int, outcome: str) -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.status = status

    doc = _record(ctx, clock)

    assert doc["event"]["outcome"] == outcome
    assert doc["http"]["response"]["status_code"] == status


def test_record_without_a_response_is_unknown_and_has_no_status() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)

    doc = _record(ctx, clock)

    assert doc["event"]["outcome"] == "unknown"
    assert "status_code" not in doc["http"]["response"]


def test_record_names_the_rejecting_policy_and_code() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.rejected_by = "api_key"
    ctx.reject = Unauthenticated("missing key", challenge="ApiKey", code="missing_api_key")
    ctx.status = 401

    doc = _record(ctx, clock)

    assert doc["bastion"]["policy"] == "api_key"
    assert doc["bastion"]["reject_code"] == "missing_api_key"
    assert doc["event"]["outcome"] == "failure"


def test_record_lists_report_only_decisions() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.status = 200
    ctx.reports.append(PolicyReport("rate_limit", 429, RateLimited.code, "too many"))
    ctx.reports.append(PolicyReport("openapi", 400, "invalid_body", "bad body"))

    doc = _record(ctx, clock)

    assert doc["bastion"]["reports"] == [
        {"policy": "rate_limit", "code": "rate_limited"},
        {"policy": "openapi", "code": "invalid_body"},
    ]
    assert "policy" not in doc["bastion"]


def test_record_logs_the_error_message_redacted() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.status = 502
    ctx.error = "upstream refused: Authorization: Bearer s3cr3t-token-value"

    doc = _record(ctx, clock)

    assert doc["error"] == {"message": "upstream refused: Authorization: [REDACTED]"}


def test_record_never_logs_credential_headers() -> None:
    clock = FakeClock()
    secrets = {
        b"authorization": b"Bearer tok-AAAAAAAAAAAAAAAA",
        b"proxy-authorization": b"Basic dXNlcjpwYXNzd29yZA==",
        b"cookie": b"session=cookie-BBBBBBBBBBBBBBB",
        b"x-api-key": b"bst_k1_" + b"C" * 43,
    }
    ctx = make_ctx(
        clock=clock,
        headers=[(b"host", b"h"), (b"user-agent", b"ua/1"), *secrets.items()],
    )
    ctx.status = 200

    sink = MemorySink()
    AccessLog(sink, clock).record(ctx)

    for value in secrets.values():
        assert value not in sink.lines[0]
        assert value.split(b" ")[-1] not in sink.lines[0]


def test_record_truncates_the_user_agent_to_512_characters() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock, headers=[(b"user-agent", "é".encode() * 2000)])

    doc = _record(ctx, clock)

    assert doc["user_agent"]["original"] == "é" * 512


def test_record_escapes_bytes_that_are_not_utf8() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock, query=b"q=\xff\xfe", headers=[(b"user-agent", b"bot\xc3")])

    doc = _record(ctx, clock)

    assert doc["url"]["query"] == "q=\\xff\\xfe"
    assert doc["user_agent"]["original"] == "bot\\xc3"


def test_record_counts_an_unserialisable_context_instead_of_raising() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock)
    ctx.error = "lone surrogate \ud800"
    sink = MemorySink()
    log = AccessLog(sink, clock)

    log.record(ctx)

    assert sink.lines == []
    assert log.failed == 1


def test_record_redacts_secret_query_parameters() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock=clock, query=b"page=2&api_key=abc123&access_token=xyz")

    doc = _record(ctx, clock)

    assert doc["url"]["query"] == "page=2&api_key=[REDACTED]&access_token=[REDACTED]"


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("page=2&limit=10", "page=2&limit=10"),
        ("api_key=abc", "api_key=[REDACTED]"),
        ("apikey=abc", "apikey=[REDACTED]"),
        ("key=abc", "key=[REDACTED]"),
        ("token=abc", "token=[REDACTED]"),
        ("access_token=abc", "access_token=[REDACTED]"),
        ("password=abc", "password=[REDACTED]"),
        ("secret=abc", "secret=[REDACTED]"),
        ("signature=abc", "signature=[REDACTED]"),
        ("sig=abc", "sig=[REDACTED]"),
        ("code=abc&state=xyz", "code=[REDACTED]&state=xyz"),
        ("client_secret=abc", "client_secret=[REDACTED]"),
        ("refresh_token=abc", "refresh_token=[REDACTED]"),
        ("API_KEY=abc", "API_KEY=[REDACTED]"),
        ("api-key=abc", "api-key=[REDACTED]"),
        ("api%5Fkey=abc", "api%5Fkey=[REDACTED]"),
        ("X-Amz-Signature=abc&X-Amz-Date=1", "X-Amz-Signature=[REDACTED]&X-Amz-Date=1"),
        ("subscription_key=abc", "subscription_key=[REDACTED]"),
        ("zipcode=12345&monkey=1", "zipcode=12345&monkey=1"),
        ("token=&key", "token=&key"),
        ("a=1&&token=t&a=2", "a=1&&token=[REDACTED]&a=2"),
        (
            "q=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "q=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.[REDACTED]",
        ),
        ("note=bst_k1_" + "x" * 43, "note=bst_k1_[REDACTED]"),
    ],
    ids=[
        "plain",
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "password",
        "secret",
        "signature",
        "sig",
        "oauth-code",
        "client_secret",
        "refresh_token",
        "upper-case",
        "hyphenated",
        "percent-encoded-name",
        "presigned-url-suffix",
        "suffix-key",
        "look-alikes-kept",
        "empty-value-and-bare-name",
        "empty-parts-kept",
        "jwt-in-innocent-param",
        "api-key-in-innocent-param",
    ],
)
def test_redact_query_masks_secret_parameter_values(query: str, logged: str) -> None:
    assert redact_query(query) == logged
    assert redact_query(query) == logged  # the second time too (clean queries are remembered)


@given(st.text(alphabet="abk=&_-%0123456789.", max_size=40), st.sampled_from(["token", "page"]))
def test_remembering_clean_queries_never_changes_a_redaction(text: str, name: str) -> None:
    query = f"{name}=bst_0123456789ab_{'x' * 43}&{text}"
    first = redact_query(query)
    assert redact_query(query) == first
    assert redact_query(text) == redact_query(text)
    assert "x" * 43 not in redact_query(query)


def test_record_handles_ten_thousand_requests() -> None:
    clock = FakeClock()
    sink = MemorySink()
    log = AccessLog(sink, clock)
    ctx = make_ctx(clock=clock, query=b"page=1&token=t", headers=[(b"user-agent", b"k6/0.49")])
    ctx.status = 200
    ctx.request_id = "f" * 32

    for _ in range(10_000):
        log.record(ctx)

    assert len(sink.lines) == 10_000
    assert all(orjson.loads(line)["http"]["response"]["status_code"] == 200 for line in sink.lines)
