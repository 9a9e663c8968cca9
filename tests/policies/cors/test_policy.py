"""cors: preflights answered at the gateway, responses labelled for allowed origins only."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import Forbidden, Respond
from bastion.http.headers import Headers
from bastion.policies.cors import CORSConfig, CORSPolicy
from bastion.policies.cors.policy import ORIGIN_NOT_ALLOWED
from bastion.policies.ip_filter import IPFilterConfig, IPFilterPolicy
from tests.support import make_ctx

APP = b"https://app.example"
EVIL = b"https://evil.example"


def _policy(**settings: object) -> CORSPolicy:
    settings.setdefault("allow_origins", [APP.decode()])
    return CORSPolicy(CORSConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def _preflight(origin: bytes = APP) -> RequestContext:
    headers = [
        (b"host", b"api.example"),
        (b"origin", origin),
        (b"access-control-request-method", b"PUT"),
        (b"access-control-request-headers", b"authorization"),
    ]
    return make_ctx("OPTIONS", "/v1/accounts", headers=headers)


def _answer(policy: CORSPolicy, ctx: RequestContext) -> Respond:
    with pytest.raises(Respond) as info:
        policy.access(ctx)
    return info.value


def _respond(
    policy: CORSPolicy,
    ctx: RequestContext,
    *,
    status: int = 200,
    upstream: list[tuple[bytes, bytes]] | None = None,
) -> Headers:
    ctx.status = status
    ctx.response_headers = Headers(upstream or [])
    policy.header_filter(ctx)
    return ctx.response_headers


def test_runs_in_the_cors_band_before_authentication():
    assert CORSPolicy.priority == Priority.CORS
    assert CORSPolicy.priority > Priority.AUTHENTICATE


def test_access_answers_an_allowed_preflight_with_204():
    policy = _policy(
        allow_methods=["GET", "PUT"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=True,
        max_age=300,
    )
    ctx = _preflight()
    answer = _answer(policy, ctx)
    assert answer.status == 204
    assert answer.body == b""
    assert dict(answer.headers) == {
        b"access-control-allow-origin": APP,
        b"vary": b"Origin",
        b"access-control-allow-credentials": b"true",
        b"access-control-allow-methods": b"GET, PUT",
        b"access-control-allow-headers": b"authorization, content-type",
        b"access-control-max-age": b"300",
    }
    assert ctx.request.extra["cors_preflight"] is True


def test_access_answers_a_wildcard_preflight_without_vary():
    answer = _answer(_policy(allow_origins=["*"]), _preflight(EVIL))
    headers = dict(answer.headers)
    assert headers[b"access-control-allow-origin"] == b"*"
    assert b"vary" not in headers
    assert b"access-control-allow-credentials" not in headers
    assert b"access-control-allow-headers" not in headers


@pytest.mark.parametrize(
    "origin",
    [
        EVIL,
        b"https://app.example.evil.example",
        b"https://APP.example",
        b"null",
        b"http://app.example",
    ],
    ids=["other_site", "suffix_trick", "case_differs", "null", "other_scheme"],
)
def test_access_rejects_a_preflight_from_an_origin_not_allowed(origin):
    ctx = _preflight(origin)
    with pytest.raises(Forbidden) as info:
        _policy().access(ctx)
    assert info.value.status == 403
    assert info.value.detail == ORIGIN_NOT_ALLOWED
    assert info.value.error_code == "cors_origin_not_allowed"
    assert ctx.request.extra["cors_preflight"] is True


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("OPTIONS", [(b"origin", APP)]),
        ("OPTIONS", [(b"access-control-request-method", b"PUT")]),
        ("GET", [(b"origin", APP), (b"access-control-request-method", b"PUT")]),
        ("POST", [(b"origin", EVIL)]),
    ],
    ids=[
        "options_without_request_method",
        "options_without_origin",
        "get_with_preflight_headers",
        "cross_origin_post",
    ],
)
def test_access_lets_requests_that_are_not_preflights_through(method, headers):
    ctx = make_ctx(method, headers=headers)
    assert _policy().access(ctx) is None
    assert "cors_preflight" not in ctx.request.extra


def test_header_filter_leaves_its_own_preflight_answer_alone():
    policy = _policy()
    ctx = _preflight()
    answer = _answer(policy, ctx)
    headers = _respond(policy, ctx, status=answer.status, upstream=answer.headers)
    assert headers.items() == answer.headers


def test_header_filter_labels_a_response_for_an_allowed_origin():
    policy = _policy(allow_credentials=True, expose_headers=["RateLimit", "X-Request-ID"])
    ctx = make_ctx("GET", headers=[(b"origin", APP)])
    assert policy.access(ctx) is None
    headers = _respond(policy, ctx, upstream=[(b"content-type", b"application/json")])
    assert headers.get(b"access-control-allow-origin") == APP
    assert headers.get(b"access-control-allow-credentials") == b"true"
    assert headers.get(b"access-control-expose-headers") == b"ratelimit, x-request-id"
    assert headers.get_all(b"vary") == [b"Origin"]
    assert b"access-control-allow-methods" not in headers


def test_header_filter_does_not_label_a_response_for_another_origin():
    headers = _respond(_policy(allow_credentials=True), make_ctx(headers=[(b"origin", EVIL)]))
    assert not any(name.startswith(b"access-control-") for name, _ in headers)
    assert headers.get_all(b"vary") == [b"Origin"]


def test_header_filter_without_origin_only_adds_vary():
    headers = _respond(_policy(), make_ctx())
    assert headers.items() == [(b"vary", b"Origin")]


def test_header_filter_with_wildcard_sends_star_and_no_vary():
    headers = _respond(_policy(allow_origins=["*"]), make_ctx(headers=[(b"origin", EVIL)]))
    assert headers.get(b"access-control-allow-origin") == b"*"
    assert b"vary" not in headers


def test_header_filter_drops_upstream_cors_headers_that_would_widen_access():
    upstream = [
        (b"access-control-allow-origin", EVIL),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-methods", b"*"),
        (b"access-control-expose-headers", b"x-secret"),
    ]
    headers = _respond(_policy(), make_ctx(headers=[(b"origin", EVIL)]), upstream=upstream)
    assert not any(name.startswith(b"access-control-") for name, _ in headers)
    headers = _respond(_policy(), make_ctx(headers=[(b"origin", APP)]), upstream=upstream)
    assert [(n, v) for n, v in headers if n.startswith(b"access-control-")] == [
        (b"access-control-allow-origin", APP)
    ]


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ([b"Accept-Encoding"], [b"Accept-Encoding", b"Origin"]),
        ([b"accept-encoding, origin"], [b"accept-encoding, origin"]),
        ([b"*"], [b"*"]),
        ([b"Accept", b" Origin "], [b"Accept", b" Origin "]),
    ],
    ids=["appended", "already_listed", "star_covers_it", "listed_on_a_second_line"],
)
def test_header_filter_merges_vary_with_the_upstream(vary, expected):
    upstream = [(b"vary", value) for value in vary]
    headers = _respond(_policy(), make_ctx(headers=[(b"origin", APP)]), upstream=upstream)
    assert headers.get_all(b"vary") == expected


def test_header_filter_labels_an_error_when_access_never_ran():
    # An earlier policy refused the request: browser scripts must still be able to read the 403.
    chain = Chain([_policy(), IPFilterPolicy(IPFilterConfig(deny=["127.0.0.1"]), PolicyDeps())])
    ctx = make_ctx("GET", headers=[(b"origin", APP)])
    with pytest.raises(Forbidden):
        chain.access(ctx)
    ctx.status = 403
    chain.header_filter(ctx)
    assert ctx.response_headers.get(b"access-control-allow-origin") == APP


def test_rejected_preflight_gets_no_allow_origin():
    policy = _policy()
    ctx = _preflight(EVIL)
    with pytest.raises(Forbidden):
        policy.access(ctx)
    headers = _respond(policy, ctx, status=403)
    assert b"access-control-allow-origin" not in headers
