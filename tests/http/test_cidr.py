"""CIDRSet: parsing of networks and membership, checked against the stdlib ipaddress module."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, strategies as st

from bastion.http.cidr import CIDRSet

MAPPED = IPv6Network("::ffff:0:0/96")


@pytest.mark.parametrize(
    ("entries", "inside", "outside"),
    [
        (["10.0.0.0/8"], "10.255.1.2", "11.0.0.1"),
        (["192.0.2.7"], "192.0.2.7", "192.0.2.8"),
        (["192.0.2.7/32"], "192.0.2.7", "192.0.2.6"),
        (["2001:db8::/32"], "2001:db8:ffff::1", "2001:db9::1"),
        (["2001:db8::1"], "2001:db8::1", "2001:db8::2"),
        (["0.0.0.0/0"], "203.0.113.9", "2001:db8::1"),
        (["::/0"], "2001:db8::1", "203.0.113.9"),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", "::ffff:11.1.2.3"),
        (["::ffff:10.0.0.0/104"], "10.9.9.9", "11.0.0.1"),
        (["::ffff:10.0.0.0/104"], "::ffff:10.9.9.9", "::ffff:11.0.0.1"),
        (["fe80::/10"], "fe80::1%eth0", "fec0::1"),
        ([" 10.0.0.0/8 "], "10.0.0.1", "9.255.255.255"),
        (["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"], "192.168.4.4", "172.16.0.1"),
    ],
    ids=[
        "ipv4_cidr",
        "ipv4_plain_address",
        "ipv4_host_prefix",
        "ipv6_cidr",
        "ipv6_plain_address",
        "ipv4_everything_excludes_ipv6",
        "ipv6_everything_excludes_ipv4",
        "mapped_address_matches_ipv4_network",
        "mapped_network_matches_ipv4_address",
        "mapped_network_matches_mapped_address",
        "zone_id_ignored",
        "entry_whitespace_stripped",
        "overlapping_networks",
    ],
)
def test_contains_answers_membership(entries, inside, outside):
    cidrs = CIDRSet(entries)
    assert cidrs.contains(inside)
    assert not cidrs.contains(outside)
    assert inside in cidrs
    assert outside not in cidrs


@pytest.mark.parametrize(
    "entry",
    ["", "  ", "10.0.0.0/33", "10.0.0.256", "example.com", "10.0.0.0/8/8", "::/129", "01.2.3.4"],
    ids=[
        "empty",
        "blank",
        "prefix_too_long",
        "octet_too_large",
        "hostname",
        "two_prefixes",
        "ipv6_prefix_too_long",
        "leading_zero_octet",
    ],
)
def test_init_refuses_invalid_entry_naming_it(entry):
    with pytest.raises(ValueError, match="invalid network") as info:
        CIDRSet(["10.0.0.0/8", entry])
    assert repr(entry) in str(info.value)


def test_init_refuses_host_bits_and_suggests_the_network():
    with pytest.raises(
        ValueError, match=r"'10\.0\.0\.1/8': host bits set \(did you mean 10\.0\.0\.0/8"
    ):
        CIDRSet(["10.0.0.1/8"])


def test_init_refuses_cache_size_below_one():
    with pytest.raises(ValueError, match="cache_size"):
        CIDRSet([], cache_size=0)


@pytest.mark.parametrize(
    "text",
    ["", "unknown", "_hidden", "10.0.0.1:80", "[10.0.0.1]", "10.0.0.1 ", "x" * 500],
    ids=["empty", "unknown", "obfuscated", "with_port", "bracketed", "trailing_space", "long_junk"],
)
def test_contains_is_false_for_text_that_is_not_an_address(text):
    assert not CIDRSet(["0.0.0.0/0", "::/0"]).contains(text)


def test_empty_set_contains_nothing():
    cidrs = CIDRSet([])
    assert cidrs.is_empty
    assert not cidrs.contains("127.0.0.1")
    assert not CIDRSet(["127.0.0.1"]).is_empty


def test_networks_are_collapsed_with_mapped_entries_as_ipv4():
    cidrs = CIDRSet(["10.0.0.0/9", "10.128.0.0/9", "::ffff:192.0.2.0/120", "2001:db8::/32"])
    assert cidrs.networks == (
        IPv4Network("10.0.0.0/8"),
        IPv4Network("192.0.2.0/24"),
        IPv6Network("2001:db8::/32"),
    )
    assert "10.0.0.0/8" in repr(cidrs)


def test_contains_stays_correct_when_the_cache_evicts():
    cidrs = CIDRSet(["10.0.0.0/8"], cache_size=2)
    queries = ["10.0.0.1", "11.0.0.1", "10.0.0.2", "12.0.0.1", "10.0.0.1", "11.0.0.1"] * 3
    assert [cidrs.contains(ip) for ip in queries] == [ip.startswith("10.") for ip in queries]


# --- Property tests: ipaddress is the oracle ------------------------------------------------


def _as_ipv4(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _oracle_networks(network: IPv4Network | IPv6Network) -> IPv4Network | IPv6Network:
    if isinstance(network, IPv6Network) and network.subnet_of(MAPPED):
        return IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


@st.composite
def networks(draw: st.DrawFn) -> IPv4Network | IPv6Network:
    version = draw(st.sampled_from([4, 6, 6]))
    if version == 6 and draw(st.booleans()):
        # Inside the IPv4-mapped range, so the mapping rule is exercised.
        v4 = draw(st.ip_addresses(v=4))
        base = IPv6Address(int(MAPPED.network_address) | int(v4))
        prefix = draw(st.integers(96, 128))
        return ipaddress.ip_network((base, prefix), strict=False)
    address = draw(st.ip_addresses(v=4) if version == 4 else st.ip_addresses(v=6))
    prefix = draw(st.integers(0, address.max_prefixlen))
    return ipaddress.ip_network((address, prefix), strict=False)


@st.composite
def sets_and_probes(draw: st.DrawFn) -> tuple[list[IPv4Network | IPv6Network], list[str]]:
    nets = draw(st.lists(networks(), max_size=8))
    probes: list[str] = []
    for _ in range(draw(st.integers(1, 10))):
        near_a_network = draw(st.booleans())
        if nets and near_a_network:
            # An address inside (or just past the edge of) a configured network.
            net = draw(st.sampled_from(nets))
            offset = draw(st.integers(-1, net.num_addresses))
            value = (int(net.network_address) + offset) % (2**net.max_prefixlen)
            address: IPv4Address | IPv6Address = ipaddress.ip_address(value)
            if net.version == 6 and value < 2**32:
                address = IPv6Address(value)
        else:
            address = draw(st.ip_addresses())
        if isinstance(address, IPv4Address) and draw(st.booleans()):
            address = IPv6Address(int(MAPPED.network_address) | int(address))
        probes.append(str(address))
    return nets, probes


@given(sets_and_probes(), st.booleans())
def test_contains_agrees_with_ipaddress(case, plain_addresses):
    nets, probes = case
    entries = [
        str(net.network_address)
        if plain_addresses and net.prefixlen == net.max_prefixlen
        else str(net)
        for net in nets
    ]
    cidrs = CIDRSet(entries, cache_size=4)
    oracle = [_oracle_networks(net) for net in nets]
    for probe in probes * 2:  # the second round is answered from the cache
        address = _as_ipv4(ipaddress.ip_address(probe))
        expected = any(address.version == net.version and address in net for net in oracle)
        assert cidrs.contains(probe) is expected, (entries, probe)
    assert cidrs.is_empty is (not nets)
