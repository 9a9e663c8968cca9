"""size_limit: oversized bodies, targets, queries and header sets are refused early."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, URITooLong
from bastion.policies.size_limit import SizeLimitConfig, SizeLimitPolicy
from bastion.policies.size_limit.policy import (
    BODY_TOO_LARGE,
    TOO_MANY_HEADERS,
    TOO_MANY_QUERY_PARAMS,
    URI_TOO_LONG,
)
from tests.support import make_ctx


def _policy(**settings: object) -> SizeLimitPolicy:
    return SizeLimitPolicy(SizeLimitConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def test_runs_in_the_harden_band_after_ip_filter():
    assert SizeLimitPolicy.priority == Priority.HARDEN + 40


def test_a_request_within_every_limit_passes_and_rewrite_arms_the_body_limit():
    ctx = make_ctx("POST", "/v1/items", query=b"a=1&b=2", content_length=100)
    policy = _policy(max_body_bytes=100)
    assert policy.rewrite(ctx) is None
    assert ctx.max_body_size == 100
    assert policy.access(ctx) is None


@pytest.mark.parametrize(
    ("existing", "limit", "result"),
    [(None, 500, 500), (200, 500, 200), (900, 500, 500)],
    ids=["unset", "tighter_existing_kept", "looser_existing_lowered"],
)
def test_rewrite_sets_the_tightest_streaming_limit(existing, limit, result):
    ctx = make_ctx("POST")
    ctx.request.chunked = True
    ctx.max_body_size = existing
    _policy(max_body_bytes=limit).rewrite(ctx)
    assert ctx.max_body_size == result


@pytest.mark.parametrize(
    "kwargs",
    [{"content_length": 101}, {"body": b"x" * 101}, {"body": b"x" * 101, "content_length": 10}],
    ids=["declared_length", "buffered_body", "buffered_body_longer_than_declared"],
)
def test_a_body_over_the_limit_gets_413(kwargs):
    # A declared length is refused in rewrite, before any body is read; a buffered one in access.
    chain = Chain([_policy(max_body_bytes=100)])

    def request_phases() -> None:
        ctx = make_ctx("POST", **kwargs)
        chain.rewrite(ctx)
        chain.access(ctx)

    with pytest.raises(PayloadTooLarge) as info:
        request_phases()
    assert info.value.status == 413
    assert info.value.detail == BODY_TOO_LARGE


def test_access_rejects_a_target_over_the_limit_with_414():
    policy = _policy(max_uri_bytes=16)
    assert policy.access(make_ctx(path="/a", query=b"b=" + b"c" * 11)) is None  # 16 bytes
    with pytest.raises(URITooLong) as info:
        policy.access(make_ctx(path="/a", query=b"b=" + b"c" * 12))
    assert info.value.status == 414
    assert info.value.detail == URI_TOO_LONG


def test_access_measures_path_and_query_when_the_raw_target_is_unknown():
    ctx = make_ctx(path="/" + "a" * 15)
    ctx.request.target = b""
    assert _policy(max_uri_bytes=16).access(ctx) is None
    ctx.request.query = b"x"
    with pytest.raises(URITooLong):
        _policy(max_uri_bytes=16).access(ctx)


@pytest.mark.parametrize(
    ("query", "admitted"),
    [
        (b"a=1&b=2&c=3", True),
        (b"a=1&b=2&c=3&", True),
        (b"a=1&&b=2&&c=3", True),
        (b"a=1&b=2&c=3&d=4", False),
        (b"a&b&c&d", False),
    ],
    ids=["at_limit", "trailing_separator", "empty_parts_ignored", "over_limit", "bare_names"],
)
def test_access_limits_query_parameters(query, admitted):
    policy = _policy(max_query_params=3)
    ctx = make_ctx(query=query)
    if admitted:
        assert policy.access(ctx) is None
        return
    with pytest.raises(InvalidRequest) as info:
        policy.access(ctx)
    assert info.value.status == 400
    assert info.value.error_code == "too_many_query_params"
    assert info.value.detail == TOO_MANY_QUERY_PARAMS


def test_access_rejects_too_many_header_fields_with_431():
    headers = [(b"host", b"api.example")] + [(b"x-h", b"v")] * 3
    assert _policy(max_header_count=4).access(make_ctx(headers=headers)) is None
    with pytest.raises(HeadersTooLarge) as info:
        _policy(max_header_count=4).access(make_ctx(headers=[*headers, (b"x-h", b"v")]))
    assert info.value.status == 431
    assert info.value.detail == TOO_MANY_HEADERS


def test_access_with_limits_lifted_only_checks_the_body():
    policy = _policy(max_uri_bytes=None, max_query_params=None, max_header_count=None)
    ctx = make_ctx(query=b"&".join([b"p=1"] * 1000), headers=[(b"x-h", b"v")] * 500)
    assert policy.access(ctx) is None


def test_report_only_reports_without_arming_the_body_limit():
    chain = Chain([_policy(mode="report_only", max_body_bytes=10)])
    small = make_ctx("POST", content_length=5)
    assert chain.rewrite(small) is None
    assert chain.access(small) is None
    assert small.max_body_size is None
    for large in (make_ctx("POST", content_length=50), make_ctx("POST", body=b"x" * 50)):
        large.request.body = b"x" * 50
        assert chain.rewrite(large) is None
        assert chain.access(large) is None
        assert [(r.status, r.code) for r in large.reports] == [(413, "payload_too_large")]
