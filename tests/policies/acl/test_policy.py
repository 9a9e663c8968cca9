"""ACLPolicy.access: deny wins, a non-empty allow admits only its groups."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.context import Identity
from bastion.core.policy import PolicyDeps
from bastion.errors import Forbidden, Unauthenticated
from bastion.policies.acl.config import ACLConfig
from bastion.policies.acl.policy import GROUP_DENIED, ACLPolicy
from tests.support import make_ctx


def policy(**settings: object) -> ACLPolicy:
    return ACLPolicy(ACLConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def ctx_in(*groups: str):
    ctx = make_ctx()
    ctx.authenticate(Identity(consumer_id="alice", groups=frozenset(groups)))
    return ctx


@pytest.mark.parametrize(
    ("settings", "groups", "allowed"),
    [
        ({"allow": ["staff"]}, ("staff",), True),
        ({"allow": ["staff", "ops"]}, ("ops", "other"), True),
        ({"allow": ["staff"]}, ("customers",), False),
        ({"allow": ["staff"]}, (), False),
        ({"deny": ["suspended"]}, ("customers",), True),
        ({"deny": ["suspended"]}, (), True),
        ({"deny": ["suspended"]}, ("customers", "suspended"), False),
        ({"allow": ["staff"], "deny": ["suspended"]}, ("staff", "suspended"), False),
    ],
    ids=[
        "in-allow",
        "one-of-allow",
        "not-in-allow",
        "no-groups-with-allow",
        "deny-only-not-denied",
        "deny-only-no-groups",
        "denied",
        "deny-wins-over-allow",
    ],
)
def test_access_applies_allow_and_deny(settings, groups, allowed):
    ctx = ctx_in(*groups)
    if allowed:
        assert policy(**settings).access(ctx) is None
    else:
        with pytest.raises(Forbidden) as caught:
            policy(**settings).access(ctx)
        assert caught.value.status == 403
        assert caught.value.error_code == "acl_denied"
        assert caught.value.detail == GROUP_DENIED


def test_access_without_identity_is_unauthenticated():
    with pytest.raises(Unauthenticated) as caught:
        policy(allow=["staff"]).access(make_ctx())
    assert caught.value.status == 401
