"""trusted_proxy: forwarding headers count only when they come from a trusted proxy."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import Forbidden
from bastion.policies.ip_filter import IPFilterConfig, IPFilterPolicy
from bastion.policies.request_id import RequestIDPolicy
from bastion.policies.trusted_proxy import TrustedProxyConfig, TrustedProxyPolicy
from tests.support import make_ctx

DEPS = PolicyDeps(clock=FakeClock())
PROXY = "10.0.0.1"


def _policy(**settings: object) -> TrustedProxyPolicy:
    settings.setdefault("proxies", ["10.0.0.0/8"])
    return TrustedProxyPolicy(TrustedProxyConfig.model_validate(settings), DEPS)


def test_runs_first_in_the_observe_band():
    assert TrustedProxyPolicy.priority == Priority.OBSERVE + 20
    assert TrustedProxyPolicy.priority > RequestIDPolicy.priority


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        (PROXY, [(b"x-forwarded-for", b"203.0.113.5")], "203.0.113.5"),
        (PROXY, [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5, 10.0.0.2")], "203.0.113.5"),
        (
            PROXY,
            [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.5")],
            "203.0.113.5",
        ),
        (PROXY, [(b"x-forwarded-for", b"unknown")], PROXY),
        (PROXY, [], PROXY),
        ("203.0.113.9", [(b"x-forwarded-for", b"10.0.0.7")], "203.0.113.9"),
        ("203.0.113.9", [(b"x-forwarded-for", b"198.51.100.1")], "203.0.113.9"),
    ],
    ids=[
        "client_from_trusted_proxy",
        "spoofed_prefix_and_second_proxy",
        "repeated_header_lines",
        "unreadable_entry_keeps_proxy",
        "no_header_keeps_proxy",
        "untrusted_peer_claiming_a_proxy_address",
        "untrusted_peer_spoofing_a_client",
    ],
)
def test_rewrite_sets_client_ip_from_x_forwarded_for(peer, headers, client):
    ctx = make_ctx(peer_ip=peer, headers=headers)
    _policy().rewrite(ctx)
    assert ctx.request.client_ip == client
    assert ctx.request.peer_ip == peer


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b'for="[2001:db8::5]:4711";proto=https', "2001:db8::5"),
        (b"for=6.6.6.6, for=203.0.113.5;by=10.0.0.1", "203.0.113.5"),
        (b"for=6.6.6.6, for=_hidden", PROXY),
    ],
    ids=["quoted_ipv6_with_port", "spoofed_element_left_of_client", "obfuscated_keeps_proxy"],
)
def test_rewrite_reads_forwarded_when_configured(value, client):
    ctx = make_ctx(peer_ip=PROXY, headers=[(b"forwarded", value), (b"x-forwarded-for", b"6.6.6.6")])
    _policy(header="forwarded").rewrite(ctx)
    assert ctx.request.client_ip == client


def test_rewrite_ignores_forwarded_when_reading_x_forwarded_for():
    ctx = make_ctx(peer_ip=PROXY, headers=[(b"forwarded", b"for=203.0.113.5")])
    _policy().rewrite(ctx)
    assert ctx.request.client_ip == PROXY


@pytest.mark.parametrize(
    ("headers", "proto"),
    [
        ([(b"x-forwarded-proto", b"https")], "https"),
        ([(b"x-forwarded-proto", b"HTTP")], "http"),
        ([(b"x-forwarded-proto", b"http, https")], "https"),
        ([(b"x-forwarded-proto", b"gopher")], None),
        ([], None),
    ],
    ids=["https", "case_insensitive", "right_most_wins", "unknown_scheme_ignored", "absent"],
)
def test_rewrite_records_x_forwarded_proto_from_a_trusted_proxy(headers, proto):
    ctx = make_ctx(peer_ip=PROXY, headers=headers)
    _policy().rewrite(ctx)
    assert ctx.request.extra.get("forwarded_proto") == proto


@pytest.mark.parametrize(
    ("value", "proto"),
    [
        (b"for=203.0.113.5;proto=http, for=10.0.0.2;proto=https", "https"),
        (b"for=203.0.113.5;proto=https, for=10.0.0.2", None),
        (b"for=203.0.113.5;proto=https, for=10.0.0.2;proto=https;proto=http", None),
    ],
    ids=["right_most_element", "right_most_without_proto", "malformed_right_most"],
)
def test_rewrite_records_forwarded_proto_from_a_trusted_proxy(value, proto):
    ctx = make_ctx(peer_ip=PROXY, headers=[(b"forwarded", value)])
    _policy(header="forwarded").rewrite(ctx)
    assert ctx.request.extra.get("forwarded_proto") == proto


def test_rewrite_ignores_proto_from_an_untrusted_peer():
    ctx = make_ctx(peer_ip="203.0.113.9", headers=[(b"x-forwarded-proto", b"https")])
    _policy().rewrite(ctx)
    assert "forwarded_proto" not in ctx.request.extra


def test_rewrite_with_no_proxies_changes_nothing():
    ctx = make_ctx(peer_ip=PROXY, headers=[(b"x-forwarded-for", b"203.0.113.5")])
    _policy(proxies=[]).rewrite(ctx)
    assert ctx.request.client_ip == PROXY


def test_spoofed_header_cannot_dodge_an_ip_deny_list():
    # The attack this policy exists to stop: a denied client claims another address.
    chain = Chain(
        [
            _policy(),
            IPFilterPolicy(IPFilterConfig(deny=["203.0.113.0/24"]), DEPS),
        ]
    )
    direct = make_ctx(peer_ip="203.0.113.9", headers=[(b"x-forwarded-for", b"198.51.100.1")])
    assert chain.rewrite(direct) is None
    with pytest.raises(Forbidden):
        chain.access(direct)
    proxied = make_ctx(peer_ip=PROXY, headers=[(b"x-forwarded-for", b"198.51.100.1, 203.0.113.9")])
    assert chain.rewrite(proxied) is None
    with pytest.raises(Forbidden):
        chain.access(proxied)
