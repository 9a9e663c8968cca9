"""ScopesPolicy.access: 401 without identity, 403 insufficient_scope per RFC 6750 §3.1."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.context import Identity
from bastion.core.policy import PolicyDeps
from bastion.errors import InsufficientScope, Unauthenticated
from bastion.policies.scopes.config import ScopesConfig
from bastion.policies.scopes.policy import ScopesPolicy
from tests.support import make_ctx


def policy(**settings: object) -> ScopesPolicy:
    return ScopesPolicy(ScopesConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def ctx_for(scopes: set[str] | None, method: str = "GET"):
    ctx = make_ctx(method)
    if scopes is not None:
        ctx.authenticate(Identity(consumer_id="alice", scopes=frozenset(scopes)))
    return ctx


@pytest.mark.parametrize(
    ("settings", "method", "granted", "allowed"),
    [
        ({"required": ["a", "b"]}, "GET", {"a", "b", "c"}, True),
        ({"required": ["a", "b"]}, "GET", {"a"}, False),
        ({"required": ["a", "b"]}, "GET", set(), False),
        ({"required": ["a", "b"], "match": "any"}, "GET", {"b"}, True),
        ({"required": ["a", "b"], "match": "any"}, "GET", {"c"}, False),
        ({"required": ["r"], "methods": {"POST": {"required": ["w"]}}}, "POST", {"w"}, True),
        ({"required": ["r"], "methods": {"POST": {"required": ["w"]}}}, "POST", {"r"}, False),
        ({"required": ["r"], "methods": {"POST": {"required": ["w"]}}}, "GET", {"r"}, True),
        ({"required": ["r"], "methods": {"GET": {"required": []}}}, "GET", set(), True),
        (
            {"required": ["r"], "methods": {"PUT": {"required": ["x", "y"], "match": "any"}}},
            "PUT",
            {"y"},
            True,
        ),
    ],
    ids=[
        "all-present",
        "all-one-missing",
        "all-none",
        "any-one-present",
        "any-none-present",
        "override-satisfied",
        "override-not-satisfied-by-default-scope",
        "other-method-uses-default",
        "override-requires-nothing",
        "override-any",
    ],
)
def test_access_checks_scopes(settings, method, granted, allowed):
    ctx = ctx_for(granted, method)
    if allowed:
        assert policy(**settings).access(ctx) is None
    else:
        with pytest.raises(InsufficientScope):
            policy(**settings).access(ctx)


def test_access_refusal_names_the_needed_scopes_in_the_challenge():
    with pytest.raises(InsufficientScope) as caught:
        policy(required=["accounts:read", "transfers:write"]).access(ctx_for({"accounts:read"}))
    reject = caught.value
    assert reject.status == 403
    assert reject.error_code == "insufficient_scope"
    assert reject.headers == [
        (
            b"www-authenticate",
            b'Bearer realm="bastion", error="insufficient_scope",'
            b' scope="accounts:read transfers:write"',
        )
    ]


def test_access_without_identity_is_unauthenticated():
    with pytest.raises(Unauthenticated) as caught:
        policy(required=["a"]).access(ctx_for(None))
    assert caught.value.status == 401
    assert caught.value.headers == [(b"www-authenticate", b'Bearer realm="bastion"')]
