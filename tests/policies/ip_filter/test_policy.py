"""ip_filter: client addresses refused by deny, or admitted only by allow."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import Forbidden
from bastion.policies.ip_filter import IPFilterConfig, IPFilterPolicy
from bastion.policies.ip_filter.policy import IP_DENIED
from tests.support import make_ctx


def _policy(**settings: object) -> IPFilterPolicy:
    return IPFilterPolicy(IPFilterConfig.model_validate(settings), PolicyDeps(clock=FakeClock()))


def test_runs_early_in_the_harden_band():
    assert IPFilterPolicy.priority == Priority.HARDEN + 50


@pytest.mark.parametrize(
    ("settings", "client"),
    [
        ({"allow": ["10.0.0.0/8"]}, "10.1.2.3"),
        ({"allow": ["10.0.0.0/8"]}, "::ffff:10.1.2.3"),
        ({"deny": ["203.0.113.0/24"]}, "198.51.100.1"),
        ({"allow": ["2001:db8::/32"], "deny": ["2001:db8:bad::/48"]}, "2001:db8:900d::1"),
    ],
    ids=["allowed", "allowed_mapped", "not_denied", "allowed_outside_denied_subnet"],
)
def test_access_admits_clients(settings, client):
    ctx = make_ctx()
    ctx.request.client_ip = client
    assert _policy(**settings).access(ctx) is None


@pytest.mark.parametrize(
    ("settings", "client"),
    [
        ({"deny": ["203.0.113.0/24"]}, "203.0.113.9"),
        ({"allow": ["10.0.0.0/8"]}, "11.0.0.1"),
        ({"allow": ["10.0.0.0/8"], "deny": ["10.6.0.0/16"]}, "10.6.6.6"),
        ({"allow": ["2001:db8::/32"], "deny": ["2001:db8:bad::/48"]}, "2001:db8:bad::1"),
        ({"deny": ["203.0.113.9"]}, "::ffff:203.0.113.9"),
        ({"allow": ["10.0.0.0/8"]}, "not-an-address"),
        ({"allow": ["10.0.0.0/8"]}, ""),
    ],
    ids=[
        "denied",
        "not_in_allow",
        "deny_wins_over_allow",
        "deny_wins_ipv6",
        "denied_mapped",
        "unparsable_with_allow_list",
        "empty_with_allow_list",
    ],
)
def test_access_rejects_clients_with_403_ip_denied(settings, client):
    ctx = make_ctx()
    ctx.request.client_ip = client
    with pytest.raises(Forbidden) as info:
        _policy(**settings).access(ctx)
    assert info.value.status == 403
    assert info.value.error_code == "ip_denied"
    assert info.value.detail == IP_DENIED


def test_access_checks_client_ip_not_the_peer():
    ctx = make_ctx(peer_ip="10.0.0.1")
    ctx.request.client_ip = "203.0.113.9"
    with pytest.raises(Forbidden):
        _policy(allow=["10.0.0.0/8"]).access(ctx)


def test_report_only_records_instead_of_refusing():
    chain = Chain([_policy(mode="report_only", deny=["127.0.0.1"])])
    ctx = make_ctx(peer_ip="127.0.0.1")
    assert chain.access(ctx) is None
    assert [(r.policy, r.status, r.code) for r in ctx.reports] == [("ip_filter", 403, "ip_denied")]
