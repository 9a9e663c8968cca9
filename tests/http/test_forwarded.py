"""Forwarding headers: X-Forwarded-For and RFC 7239 parsing, and the client-address walk."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv6Address

import pytest
from hypothesis import given, strategies as st

from bastion.http.cidr import CIDRSet
from bastion.http.forwarded import (
    UNKNOWN,
    ForwardedElement,
    client_ip_from_chain,
    forwarded_for_hops,
    parse_forwarded,
    parse_node,
    parse_x_forwarded_for,
)

PROXIES = CIDRSet(["10.0.0.0/8", "2001:db8:ffff::/48"])


# --- X-Forwarded-For -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "hops"),
    [
        ([b"203.0.113.7"], ["203.0.113.7"]),
        ([b"203.0.113.7, 10.0.0.1"], ["203.0.113.7", "10.0.0.1"]),
        ([b"203.0.113.7,10.0.0.1"], ["203.0.113.7", "10.0.0.1"]),
        ([b"203.0.113.7", b"10.0.0.1, 10.0.0.2"], ["203.0.113.7", "10.0.0.1", "10.0.0.2"]),
        ([b" 203.0.113.7 ,\t, 10.0.0.1 "], ["203.0.113.7", "10.0.0.1"]),
        ([b"unknown, 10.0.0.1"], ["unknown", "10.0.0.1"]),
        ([b""], []),
        ([], []),
    ],
    ids=[
        "single",
        "list",
        "list_without_spaces",
        "repeated_lines_in_order",
        "empty_elements_and_whitespace_dropped",
        "non_address_kept_for_the_walk",
        "empty_value",
        "absent",
    ],
)
def test_parse_x_forwarded_for_splits_lists_in_order(values, hops):
    assert parse_x_forwarded_for(values) == hops


# --- Forwarded -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "elements"),
    [
        ([b"for=192.0.2.60"], [ForwardedElement(for_="192.0.2.60")]),
        (
            [b'for=192.0.2.60;proto=https;by=203.0.113.43;host="api.example"'],
            [ForwardedElement("192.0.2.60", "203.0.113.43", "api.example", "https")],
        ),
        ([b'For="[2001:db8:cafe::17]:4711"'], [ForwardedElement(for_="[2001:db8:cafe::17]:4711")]),
        (
            [b"for=192.0.2.43, for=198.51.100.17"],
            [ForwardedElement(for_="192.0.2.43"), ForwardedElement(for_="198.51.100.17")],
        ),
        (
            [b"for=192.0.2.43", b"for=198.51.100.17"],
            [ForwardedElement(for_="192.0.2.43"), ForwardedElement(for_="198.51.100.17")],
        ),
        ([b'for="a,b;c=d"'], [ForwardedElement(for_="a,b;c=d")]),
        ([b'for="x\\"y"'], [ForwardedElement(for_='x"y')]),
        ([b"proto=https"], [ForwardedElement(proto="https")]),
        ([b"for=_hidden;;proto=http"], [ForwardedElement(for_="_hidden", proto="http")]),
        ([b"for=192.0.2.43:80"], [ForwardedElement(valid=False)]),
        ([b"for=a;for=b"], [ForwardedElement(valid=False)]),
        ([b"for"], [ForwardedElement(valid=False)]),
        ([b"for="], [ForwardedElement(valid=False)]),
        ([b'for="unterminated, for=10.0.0.1'], [ForwardedElement(valid=False)]),
        (
            [b"f(r=1, for=10.0.0.1"],
            [ForwardedElement(valid=False), ForwardedElement(for_="10.0.0.1")],
        ),
        ([b" , ,"], []),
    ],
    ids=[
        "for_only",
        "all_parameters",
        "quoted_ipv6_with_port_and_case_insensitive_name",
        "comma_list",
        "repeated_lines_in_order",
        "separators_inside_quotes",
        "quoted_pair_unescaped",
        "element_without_for",
        "obfuscated_and_empty_pair",
        "unquoted_port_is_invalid",
        "duplicate_parameter_is_invalid",
        "pair_without_value_is_invalid",
        "empty_value_is_invalid",
        "unterminated_quote_swallows_the_rest",
        "bad_element_does_not_spoil_the_next",
        "only_empty_elements",
    ],
)
def test_parse_forwarded_reads_rfc7239_elements(values, elements):
    assert parse_forwarded(values) == elements


def test_forwarded_for_hops_marks_unreadable_elements_unknown():
    elements = parse_forwarded([b'for=192.0.2.1, proto=https, for="[::1]:80", f(r=1'])
    assert forwarded_for_hops(elements) == ["192.0.2.1", UNKNOWN, "[::1]:80", UNKNOWN]


@pytest.mark.parametrize(
    ("node", "address"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("192.0.2.1:_port", "192.0.2.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]:_obf", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[::ffff:192.0.2.1]:1", "192.0.2.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("192.0.2.1:65536", None),
        ("192.0.2.1:", None),
        ("192.0.2.1:80:80", None),
        ("[192.0.2.1]", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]443", None),
        ("[2001:db8::1]:", None),
        ("fe80::1%eth0", None),
        ("2001:db8::1:99999", None),
        ("example.com:80", None),
        ("1" * 100, None),
    ],
    ids=[
        "ipv4",
        "ipv4_port",
        "ipv4_obfuscated_port",
        "ipv6_canonicalised",
        "ipv6_bracketed",
        "ipv6_bracketed_port",
        "ipv6_obfuscated_port",
        "mapped_as_ipv4",
        "mapped_bracketed_as_ipv4",
        "unknown",
        "obfuscated",
        "empty",
        "port_too_large",
        "empty_port",
        "two_ports",
        "bracketed_ipv4",
        "unclosed_bracket",
        "junk_after_bracket",
        "empty_bracketed_port",
        "zone_id",
        "ipv6_with_bad_tail",
        "hostname",
        "long_junk",
    ],
)
def test_parse_node_returns_canonical_address_or_none(node, address):
    assert parse_node(node) == address


# --- The walk --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "hops", "client"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1", "10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", ["10.0.0.3", "10.0.0.2"], "10.0.0.3"),
        ("10.0.0.1", ["6.6.6.6", "unknown", "10.0.0.2"], "10.0.0.2"),
        ("10.0.0.1", ["6.6.6.6", "_hidden"], "10.0.0.1"),
        ("10.0.0.1", ["garbage"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::7]:5000"], "2001:db8::7"),
        ("2001:db8:ffff::1", ["198.51.100.1:443"], "198.51.100.1"),
        ("::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ],
    ids=[
        "untrusted_peer_ignores_header",
        "trusted_peer_without_hops",
        "one_trusted_proxy",
        "client_supplied_entry_left_of_client_ignored",
        "two_trusted_proxies",
        "all_trusted_gives_left_most",
        "unknown_stops_at_last_trusted",
        "obfuscated_stops_at_peer",
        "garbage_stops_at_peer",
        "bracketed_ipv6_hop",
        "ipv6_proxy_ipv4_client",
        "mapped_peer_trusted",
    ],
)
def test_client_ip_from_chain_walks_past_trusted_proxies(peer, hops, client):
    assert client_ip_from_chain(peer, hops, PROXIES) == client


def test_client_ip_from_chain_stops_after_max_hops():
    hops = ["198.51.100.1"] + ["10.0.0.9"] * 5
    assert client_ip_from_chain("10.0.0.1", hops, PROXIES, max_hops=5) == "10.0.0.9"
    assert client_ip_from_chain("10.0.0.1", hops, PROXIES, max_hops=6) == "198.51.100.1"


def test_client_ip_from_chain_with_no_trusted_proxies_is_the_peer():
    assert client_ip_from_chain("10.0.0.1", ["198.51.100.1"], CIDRSet([])) == "10.0.0.1"


# --- Property tests --------------------------------------------------------------------------

addresses = st.ip_addresses().map(str)
trusted_addresses = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"), st.ip_addresses(network="2001:db8:ffff::/48")
).map(str)
junk = st.sampled_from(["unknown", "_hidden", "", "garbage", "1.2.3", "[::1"])
hop_text = st.one_of(addresses, trusted_addresses, junk)


def _node_forms(address: str) -> list[str]:
    """The ways a proxy may write `address` in a header."""
    if ":" in address:
        return [address, f"[{address}]", f"[{address}]:8443"]
    return [address, f"{address}:8443"]


@given(st.lists(st.lists(addresses, min_size=1, max_size=4), max_size=4), st.data())
def test_x_forwarded_for_round_trips_lists_over_header_lines(lines, data):
    values = [data.draw(st.sampled_from([", ", ",", " , "])).join(line).encode() for line in lines]
    assert parse_x_forwarded_for(values) == [hop for line in lines for hop in line]


@given(st.lists(st.lists(addresses, min_size=1, max_size=4), max_size=4), st.data())
def test_forwarded_for_round_trips_nodes_and_parse_node_recovers_addresses(lines, data):
    values = []
    written = []
    for line in lines:
        nodes = [data.draw(st.sampled_from(_node_forms(address))) for address in line]
        written.extend(nodes)
        values.append(", ".join(f'for="{node}";proto=https' for node in nodes).encode())
    hops = forwarded_for_hops(parse_forwarded(values))
    assert hops == written
    expected = [
        str(address.ipv4_mapped or address)
        if isinstance(address := ipaddress.ip_address(hop), IPv6Address)
        else str(address)
        for line in lines
        for hop in line
    ]
    assert [parse_node(hop) for hop in hops] == expected


@given(st.lists(hop_text, max_size=8), st.one_of(addresses, trusted_addresses))
def test_walk_returns_the_address_just_left_of_the_trusted_suffix(hops, peer):
    client = client_ip_from_chain(peer, hops, PROXIES)
    if not PROXIES.contains(peer):
        assert client == peer
        return
    chain = [parse_node(hop) for hop in hops] + [peer]
    # The longest run of readable, trusted addresses ending at the peer.
    trusted_run = 0
    for node in reversed(chain):
        if node is None or not PROXIES.contains(node):
            break
        trusted_run += 1
    if trusted_run == len(chain):
        assert client == chain[0]  # everything trusted: the left-most
    elif chain[-trusted_run - 1] is None:
        assert client == chain[-trusted_run]  # unreadable entry: the last trusted address
    else:
        assert client == chain[-trusted_run - 1]  # the first untrusted address
        assert not PROXIES.contains(client)


@given(
    st.lists(hop_text, max_size=6),
    st.ip_addresses(v=4).filter(lambda a: not PROXIES.contains(str(a))).map(str),
    st.lists(trusted_addresses, max_size=3),
    st.one_of(trusted_addresses),
)
def test_walk_ignores_whatever_the_client_wrote_left_of_its_address(spoofed, real, proxies, peer):
    # A trusted proxy appended the real client address; everything left of it came from the client.
    honest = client_ip_from_chain(peer, [real, *proxies], PROXIES)
    assert honest == real
    assert client_ip_from_chain(peer, [*spoofed, real, *proxies], PROXIES) == real


@given(st.lists(hop_text, max_size=6), st.ip_addresses().map(str))
def test_walk_never_trusts_headers_from_an_untrusted_peer(hops, peer):
    if not PROXIES.contains(peer):
        assert client_ip_from_chain(peer, hops, PROXIES) == peer
    assert client_ip_from_chain(peer, hops, CIDRSet([])) == peer
