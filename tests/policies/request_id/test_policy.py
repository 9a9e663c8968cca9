"""request_id: one id per request, forwarded upstream and echoed back."""

from __future__ import annotations

import re

import pytest

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps, Priority
from bastion.policies.request_id import RequestIDConfig, RequestIDPolicy
from tests.support import make_ctx

GENERATED = re.compile(r"[0-9a-f]{32}")


def _policy(**settings: object) -> RequestIDPolicy:
    return RequestIDPolicy(RequestIDConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def test_runs_in_the_observe_band_after_trusted_proxy():
    assert RequestIDPolicy.priority == Priority.OBSERVE + 10
    assert RequestIDPolicy.name == "request_id"


def test_rewrite_generates_an_id_and_sends_it_upstream():
    ctx = make_ctx()
    _policy().rewrite(ctx)
    assert GENERATED.fullmatch(ctx.request_id)
    assert ctx.request.headers.get_all(b"x-request-id") == [ctx.request_id.encode()]


def test_rewrite_generates_a_different_id_per_request():
    policy = _policy()
    first, second = make_ctx(), make_ctx()
    policy.rewrite(first)
    policy.rewrite(second)
    assert first.request_id != second.request_id


def test_rewrite_replaces_a_client_id_when_not_trusted():
    ctx = make_ctx(headers=[(b"x-request-id", b"chosen-by-client-123")])
    _policy().rewrite(ctx)
    assert GENERATED.fullmatch(ctx.request_id)
    assert ctx.request.headers.get_all(b"x-request-id") == [ctx.request_id.encode()]


@pytest.mark.parametrize(
    "incoming",
    [b"abcdefgh", b"Trace.01:span_2-x", b"a" * 128],
    ids=["shortest", "every_allowed_character", "longest"],
)
def test_rewrite_keeps_a_trusted_well_formed_id(incoming):
    ctx = make_ctx(headers=[(b"x-request-id", incoming)])
    _policy(trust_incoming=True).rewrite(ctx)
    assert ctx.request_id == incoming.decode()
    assert ctx.request.headers.get_all(b"x-request-id") == [incoming]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-request-id", b"short")],
        [(b"x-request-id", b"a" * 129)],
        [(b"x-request-id", b"has space inside")],
        [(b"x-request-id", b"abcdefgh\n")],
        [(b"x-request-id", b"<script>alert(1)</script>")],
        [(b"x-request-id", b"abcdefgh1"), (b"x-request-id", b"abcdefgh2")],
        [],
    ],
    ids=["too_short", "too_long", "space", "trailing_newline", "markup", "two_copies", "absent"],
)
def test_rewrite_replaces_a_trusted_id_that_is_malformed(headers):
    ctx = make_ctx(headers=headers)
    _policy(trust_incoming=True).rewrite(ctx)
    assert GENERATED.fullmatch(ctx.request_id)
    assert ctx.request.headers.get_all(b"x-request-id") == [ctx.request_id.encode()]


def test_rewrite_uses_the_configured_header():
    ctx = make_ctx(headers=[(b"x-correlation-id", b"upstream-trace-0001")])
    _policy(header="X-Correlation-ID", trust_incoming=True).rewrite(ctx)
    assert ctx.request_id == "upstream-trace-0001"
    assert b"x-request-id" not in ctx.request.headers


def test_header_filter_echoes_the_id_replacing_an_upstream_copy():
    policy = _policy()
    ctx = make_ctx()
    policy.rewrite(ctx)
    ctx.status = 200
    ctx.response_headers.add(b"x-request-id", b"upstream-own-id")
    policy.header_filter(ctx)
    assert ctx.response_headers.get_all(b"x-request-id") == [ctx.request_id.encode()]


def test_header_filter_gives_an_id_when_rewrite_never_ran():
    ctx = make_ctx()
    ctx.status = 404
    _policy().header_filter(ctx)
    assert GENERATED.fullmatch(ctx.request_id)
    assert ctx.response_headers.get(b"x-request-id") == ctx.request_id.encode()


def test_header_filter_does_not_echo_when_disabled():
    policy = _policy(echo=False)
    ctx = make_ctx()
    policy.rewrite(ctx)
    ctx.status = 200
    policy.header_filter(ctx)
    assert b"x-request-id" not in ctx.response_headers
