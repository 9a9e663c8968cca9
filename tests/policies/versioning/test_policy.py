"""versioning: version selection, lifecycle headers, 410 after sunset, deprecated-caller counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PolicyDeps
from bastion.errors import Gone, InvalidRequest
from bastion.policies.versioning import VersioningConfig, VersioningPolicy
from bastion.policies.versioning.policy import (
    ANONYMOUS,
    API_VERSION,
    DEPRECATED_API_VERSION,
    OTHER_CONSUMER,
    VERSION_CONFLICT,
    VERSION_REQUIRED,
    VERSION_SUNSET,
    VERSION_UNKNOWN,
)
from tests.support import make_ctx

# RFC 9745 §2.2's example instant, and a sunset one year later.
DEPRECATED = datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC)
SUNSET = datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC)
BEFORE_DEPRECATION = DEPRECATED.timestamp() - 86_400
BETWEEN = DEPRECATED.timestamp() + 86_400

LIFECYCLE = {
    "deprecated_at": DEPRECATED.isoformat(),
    "sunset_at": SUNSET.isoformat(),
    "successor": "https://api.example/v2",
    "deprecation_link": "https://developer.example.com/deprecation",
}


def _policy(clock: FakeClock | None = None, **settings: Any) -> VersioningPolicy:
    settings.setdefault("versions", {"v1": LIFECYCLE, "v2": {}})
    config = VersioningConfig.model_validate(settings)
    return VersioningPolicy(config, PolicyDeps(clock=clock or FakeClock(wall=BETWEEN)))


def _ctx(path: str = "/orders", headers: list[tuple[bytes, bytes]] | None = None) -> RequestContext:
    return make_ctx("GET", path, headers=[(b"host", b"api.example"), *(headers or [])])


def _served(policy: VersioningPolicy, ctx: RequestContext) -> RequestContext:
    policy.access(ctx)
    ctx.status = 200
    policy.header_filter(ctx)
    return ctx


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        pytest.param("/v2/orders", [], "v2", id="path-prefix"),
        pytest.param("/V2/orders", [], "v2", id="path-prefix-case"),
        pytest.param("/v1", [], "v1", id="path-only-version"),
        pytest.param("/orders", [(b"accept-version", b"2")], "v2", id="accept-version"),
        pytest.param("/orders", [(b"api-version", b"v1")], "v1", id="api-version"),
        pytest.param(
            "/orders", [(b"accept", b"application/json; version=2")], "v2", id="media-type"
        ),
        pytest.param("/v2/x", [(b"accept-version", b"v2")], "v2", id="path-and-header-agree"),
        pytest.param("/orders", [], "v2", id="default"),
        pytest.param("/version/x", [], "v2", id="segment-not-a-version"),
    ],
)
def test_access_resolves_the_version(path: str, headers: list[tuple[bytes, bytes]], expected: str):
    ctx = _ctx(path, headers)
    _policy(default="v2").access(ctx)
    assert ctx.request.extra[API_VERSION] == expected


@pytest.mark.parametrize(
    ("path", "headers", "detail", "code"),
    [
        pytest.param("/v3/orders", [], VERSION_UNKNOWN, "unknown_api_version", id="unknown-path"),
        pytest.param(
            "/orders",
            [(b"accept-version", b"9")],
            VERSION_UNKNOWN,
            "unknown_api_version",
            id="unknown-header",
        ),
        pytest.param(
            "/orders",
            [(b"api-version", b"1" * 200)],
            VERSION_UNKNOWN,
            "unknown_api_version",
            id="over-long",
        ),
        pytest.param(
            "/v1/orders",
            [(b"accept-version", b"2")],
            VERSION_CONFLICT,
            "conflicting_api_version",
            id="path-header-conflict",
        ),
        pytest.param(
            "/orders",
            [(b"accept-version", b"1"), (b"accept", b"application/json;version=2")],
            VERSION_CONFLICT,
            "conflicting_api_version",
            id="header-media-conflict",
        ),
        pytest.param("/orders", [], VERSION_REQUIRED, "api_version_required", id="none-no-default"),
    ],
)
def test_access_rejects_bad_versions(
    path: str, headers: list[tuple[bytes, bytes]], detail: str, code: str
):
    with pytest.raises(InvalidRequest) as info:
        _policy().access(_ctx(path, headers))
    assert info.value.status == 400
    assert info.value.detail == detail
    assert info.value.error_code == code


def test_access_ignores_sources_not_configured():
    policy = _policy(sources=["path"], default="v2")
    ctx = _ctx("/orders", [(b"accept-version", b"1"), (b"accept", b"a/b; version=1")])
    policy.access(ctx)
    assert ctx.request.extra[API_VERSION] == "v2"


def test_header_filter_sends_the_rfc_9745_and_8594_headers():
    ctx = _served(_policy(), _ctx("/v1/orders"))
    headers = ctx.response_headers
    assert headers.get(b"deprecation") == b"@1688169599"
    assert headers.get(b"sunset") == b"Sun, 30 Jun 2024 23:59:59 GMT"
    assert headers.get_all(b"link") == [
        b'<https://api.example/v2>; rel="successor-version"',
        b'<https://developer.example.com/deprecation>; rel="deprecation"',
    ]


def test_header_filter_announces_a_future_deprecation():
    # RFC 9745 §2.1: the date may lie in the future (the resource will be deprecated then).
    ctx = _served(_policy(FakeClock(wall=BEFORE_DEPRECATION)), _ctx("/v1/orders"))
    assert ctx.response_headers.get(b"deprecation") == b"@1688169599"


def test_header_filter_replaces_upstream_lifecycle_headers():
    policy = _policy()
    ctx = _ctx("/v1/orders")
    policy.access(ctx)
    ctx.response_headers.add(b"deprecation", b"@1")
    policy.header_filter(ctx)
    assert ctx.response_headers.get_all(b"deprecation") == [b"@1688169599"]


def test_header_filter_leaves_a_current_version_alone():
    ctx = _served(_policy(), _ctx("/v2/orders"))
    for name in (b"deprecation", b"sunset", b"link"):
        assert name not in ctx.response_headers
    assert ctx.response_headers.get(b"vary") == b"Accept-Version, Api-Version, Accept"


def test_header_filter_tolerates_a_request_rejected_before_versioning():
    ctx = _ctx("/v1/orders")
    ctx.status = 401
    _policy().header_filter(ctx)
    assert b"deprecation" not in ctx.response_headers


def test_access_answers_410_after_sunset_with_the_successor_link():
    clock = FakeClock(wall=SUNSET.timestamp() - 1)
    policy = _policy(clock)
    policy.access(_ctx("/v1/orders"))  # one second before the sunset: still served
    clock.advance(1)
    ctx = _ctx("/v1/orders")
    with pytest.raises(Gone) as info:
        policy.access(ctx)
    assert (info.value.status, info.value.error_code) == (410, "api_version_sunset")
    assert info.value.detail == VERSION_SUNSET
    ctx.status = 410
    policy.header_filter(ctx)
    assert ctx.response_headers.get(b"sunset") == b"Sun, 30 Jun 2024 23:59:59 GMT"
    assert b'<https://api.example/v2>; rel="successor-version"' in ctx.response_headers.get_all(
        b"link"
    )


def test_report_only_serves_a_sunset_version_and_reports_it():
    clock = FakeClock(wall=SUNSET.timestamp() + 10)
    chain = Chain([_policy(clock, mode="report_only")])
    ctx = _ctx("/v1/orders")
    assert chain.access(ctx) is None
    assert ctx.reject is None
    assert [(r.policy, r.status, r.code) for r in ctx.reports] == [
        ("versioning", 410, "api_version_sunset")
    ]


def test_log_counts_deprecated_calls_by_consumer_once_deprecated():
    clock = FakeClock(wall=BEFORE_DEPRECATION)
    policy = _policy(clock)

    def call(path: str, consumer: str | None) -> None:
        ctx = _ctx(path)
        if consumer is not None:
            ctx.authenticate(Identity(consumer_id=consumer))
        policy.access(ctx)
        policy.log(ctx)

    call("/v1/a", "alice")
    assert policy.deprecated_total() == 0  # announced, not yet deprecated
    clock.advance(2 * 86_400)
    call("/v1/a", "alice")
    call("/v1/b", "alice")
    call("/v1/c", None)
    call("/v2/a", "bob")
    assert policy.deprecated_requests == {("v1", "alice"): 2, ("v1", ANONYMOUS): 1}
    assert policy.deprecated_total("v1") == 3
    assert policy.deprecated_total("v2") == 0


def test_log_marks_requests_to_deprecated_versions_for_the_metrics():
    clock = FakeClock(wall=BEFORE_DEPRECATION)
    policy = _policy(clock)

    def marked(path: str) -> object:
        ctx = _ctx(path)
        policy.access(ctx)
        policy.log(ctx)
        return ctx.request.extra.get(DEPRECATED_API_VERSION)

    assert marked("/v1/a") is None  # deprecation announced for later
    clock.advance(2 * 86_400)
    assert marked("/v1/a") == "v1"
    assert marked("/v2/a") is None


def test_log_writes_one_event_per_new_deprecated_caller(caplog: pytest.LogCaptureFixture):
    policy = _policy()
    caplog.set_level("WARNING", logger="bastion.versioning")
    for _ in range(3):
        ctx = _ctx("/v1/a")
        ctx.authenticate(Identity(consumer_id="alice"))
        policy.access(ctx)
        policy.log(ctx)
    records = [r for r in caplog.records if r.name == "bastion.versioning"]
    assert len(records) == 1
    assert records[0].ecs_fields["event"]["action"] == "deprecated_api_version"  # type: ignore[attr-defined]  # set by extra=
    assert records[0].ecs_fields["user"]["id"] == "alice"  # type: ignore[attr-defined]  # set by extra=


def test_log_skips_requests_without_a_version():
    policy = _policy()
    ctx = _ctx("/v3/orders")
    with pytest.raises(InvalidRequest):
        policy.access(ctx)
    policy.log(ctx)
    assert policy.deprecated_total() == 0


def test_log_bounds_the_consumers_it_counts_apart():
    policy = _policy()
    policy.max_tracked = 2
    for consumer in ("a", "b", "c", "d", "a"):
        ctx = _ctx("/v1/x")
        ctx.authenticate(Identity(consumer_id=consumer))
        policy.access(ctx)
        policy.log(ctx)
    assert policy.deprecated_requests == {
        ("v1", "a"): 2,
        ("v1", "b"): 1,
        ("v1", OTHER_CONSUMER): 2,
    }
