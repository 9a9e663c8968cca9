"""security_headers: hardening headers on responses, HSTS only over HTTPS."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps, Priority
from bastion.http.headers import Headers
from bastion.policies.security_headers import SecurityHeadersConfig, SecurityHeadersPolicy
from tests.support import make_ctx


def _policy(**settings: object) -> SecurityHeadersPolicy:
    return SecurityHeadersPolicy(
        SecurityHeadersConfig.model_validate(settings), PolicyDeps(clock=FakeClock())
    )


def _respond(
    policy: SecurityHeadersPolicy,
    *,
    status: int = 200,
    scheme: str = "https",
    upstream: list[tuple[bytes, bytes]] | None = None,
) -> Headers:
    ctx: RequestContext = make_ctx(scheme=scheme)
    ctx.status = status
    ctx.response_headers = Headers(upstream or [(b"content-type", b"application/json")])
    policy.header_filter(ctx)
    return ctx.response_headers


def test_runs_in_the_harden_band_with_response_phase_only():
    policy = _policy()
    assert SecurityHeadersPolicy.priority == Priority.HARDEN
    assert policy.overrides("header_filter")
    assert not policy.overrides("rewrite")
    assert not policy.overrides("access")


def test_header_filter_adds_the_default_headers_over_https():
    headers = _respond(_policy())
    assert headers.get(b"strict-transport-security") == b"max-age=31536000; includeSubDomains"
    assert headers.get(b"x-content-type-options") == b"nosniff"
    assert headers.get(b"content-security-policy") == b"frame-ancestors 'none'"
    assert headers.get(b"x-frame-options") == b"DENY"
    assert headers.get(b"referrer-policy") == b"no-referrer"
    assert b"cache-control" not in headers
    assert headers.get(b"content-type") == b"application/json"


def test_header_filter_never_sends_hsts_over_plain_http():
    headers = _respond(_policy(), scheme="http")
    assert b"strict-transport-security" not in headers
    assert headers.get(b"x-content-type-options") == b"nosniff"


def test_header_filter_sends_hsts_when_a_trusted_proxy_reports_https():
    policy = _policy()
    ctx: RequestContext = make_ctx(scheme="http")
    ctx.request.extra["forwarded_proto"] = "https"  # set only by trusted_proxy for trusted peers
    ctx.status = 200
    policy.header_filter(ctx)
    assert ctx.response_headers.get(b"strict-transport-security") is not None


@pytest.mark.parametrize(
    ("settings", "value"),
    [
        ({"preload": True}, b"max-age=31536000; includeSubDomains; preload"),
        ({"include_subdomains": False}, b"max-age=31536000"),
        ({"max_age": 600, "include_subdomains": False}, b"max-age=600"),
        ({"max_age": 0}, b"max-age=0; includeSubDomains"),
    ],
    ids=["preload", "without_subdomains", "short_max_age", "clear"],
)
def test_header_filter_builds_hsts_from_settings(settings, value):
    assert _respond(_policy(**settings)).get(b"strict-transport-security") == value


def test_header_filter_replaces_an_upstream_hsts():
    upstream = [(b"strict-transport-security", b"max-age=1")]
    headers = _respond(_policy(), upstream=upstream)
    assert headers.get_all(b"strict-transport-security") == [b"max-age=31536000; includeSubDomains"]


def test_header_filter_keeps_an_upstream_csp():
    upstream = [(b"content-security-policy", b"default-src 'self'")]
    headers = _respond(_policy(), upstream=upstream)
    assert headers.get_all(b"content-security-policy") == [b"default-src 'self'"]


def test_header_filter_replaces_weaker_upstream_values():
    upstream = [(b"x-frame-options", b"ALLOWALL"), (b"referrer-policy", b"unsafe-url")]
    headers = _respond(_policy(), upstream=upstream)
    assert headers.get_all(b"x-frame-options") == [b"DENY"]
    assert headers.get_all(b"referrer-policy") == [b"no-referrer"]


@pytest.mark.parametrize(
    ("status", "no_store"),
    [(200, False), (304, False), (400, True), (401, True), (503, True)],
    ids=["ok", "not_modified", "bad_request", "unauthorized", "unavailable"],
)
def test_header_filter_forbids_caching_of_errors(status, no_store):
    upstream = [(b"cache-control", b"max-age=60")]
    headers = _respond(_policy(), status=status, upstream=upstream)
    assert headers.get_all(b"cache-control") == ([b"no-store"] if no_store else [b"max-age=60"])


def test_header_filter_forbids_caching_of_everything_when_asked():
    headers = _respond(_policy(no_store_all=True), status=200)
    assert headers.get(b"cache-control") == b"no-store"


def test_header_filter_leaves_caching_alone_when_disabled():
    headers = _respond(_policy(no_store_errors=False), status=500)
    assert b"cache-control" not in headers


def test_header_filter_removes_fingerprinting_headers():
    upstream = [
        (b"server", b"Apache/2.4.1"),
        (b"x-powered-by", b"PHP/5.6"),
        (b"x-powered-by", b"Express"),
        (b"x-aspnet-version", b"4.0"),
    ]
    headers = _respond(_policy(), upstream=upstream)
    assert b"server" not in headers
    assert b"x-powered-by" not in headers
    assert headers.get(b"x-aspnet-version") == b"4.0"
    headers = _respond(_policy(remove_headers=["X-AspNet-Version"]), upstream=upstream)
    assert b"x-aspnet-version" not in headers
    assert headers.get(b"server") == b"Apache/2.4.1"


def test_header_filter_sends_nothing_disabled():
    policy = _policy(
        hsts=False,
        content_type_options=False,
        content_security_policy=None,
        frame_options=None,
        referrer_policy=None,
        no_store_errors=False,
        remove_headers=[],
    )
    upstream = [(b"server", b"nginx")]
    headers = _respond(policy, status=500, upstream=upstream)
    assert headers.items() == [(b"server", b"nginx")]


def test_header_filter_decorates_a_rejected_request_without_prior_phases():
    ctx = make_ctx()
    ctx.status = 401
    ctx.response_headers = Headers([(b"content-type", b"application/problem+json")])
    _policy().header_filter(ctx)
    assert ctx.response_headers.get(b"cache-control") == b"no-store"
    assert ctx.response_headers.get(b"x-content-type-options") == b"nosniff"
