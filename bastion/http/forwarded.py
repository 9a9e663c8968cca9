"""Parsing of `X-Forwarded-For` and RFC 7239 `Forwarded`, and the walk that finds the client.

Forwarding headers are written partly by the client (anything on the left) and partly by the
proxies the request crossed (each appends the address it received the request from). Only the
entries appended by trusted proxies are believable, so `client_ip_from_chain` walks the chain
from the right (the socket peer), past trusted proxies, and stops at the first address that no
trusted proxy vouches for. Every entry the walk cannot read (`unknown`, an obfuscated
identifier, a malformed element) stops it too: what lies left of such an entry was not vouched
for by anyone Bastion trusts.

RFC 7239: https://www.rfc-editor.org/rfc/rfc7239
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from bastion.http.cidr import CIDRSet

UNKNOWN = "unknown"
"""The hop recorded for a `Forwarded` element that names no usable `for=` node."""

DEFAULT_MAX_HOPS = 64
"""How many forwarded entries the walk looks at before giving up (bounds work per request)."""

_OWS = " \t"
# Longer text cannot be a node worth remembering (an IPv6 address with a port is under 50).
_MAX_CACHED_NODE = 64
# RFC 9110 §5.6.2 token characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.6.4 quoted-string: qdtext or quoted-pair between double quotes.
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 7239 §6: port = 1*5DIGIT, obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-").
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class ForwardedElement:
    """One `Forwarded` element: what one proxy recorded about the hop it received.

    `valid` is False when the element did not parse; its parameters are then all None.
    Values are unquoted; `for_`, `by` and `host` are kept as written (see `parse_node`).
    """

    for_: str | None = None
    by: str | None = None
    host: str | None = None
    proto: str | None = None
    valid: bool = True


def parse_x_forwarded_for(values: Iterable[bytes]) -> list[str]:
    """Split `X-Forwarded-For` field values into hops, left (first client) to right.

    Repeated header lines are one comma-separated list, in order (RFC 9110 §5.3). Empty list
    elements are dropped; every other entry is kept as written, even when it is not an address,
    so that the walk stops at it.
    """
    hops: list[str] = []
    for value in values:
        for part in value.decode("latin-1").split(","):
            entry = part.strip(_OWS)
            if entry:
                hops.append(entry)
    return hops


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split `text` at `separator` characters that are outside quoted strings."""
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _parse_value(raw: str) -> str | None:
    if _TOKEN.fullmatch(raw):
        return raw
    match = _QUOTED.fullmatch(raw)
    if match is None:
        return None
    return _QUOTED_PAIR.sub(r"\1", match.group(1))


_INVALID = ForwardedElement(valid=False)


def _parse_element(text: str) -> ForwardedElement:
    params: dict[str, str] = {}
    for pair in _split_unquoted(text, ";"):
        pair = pair.strip(_OWS)
        if not pair:
            continue  # RFC 7239 §4: forwarded-pair is optional between ";"
        name, sep, raw = pair.partition("=")
        if not sep or not _TOKEN.fullmatch(name):
            return _INVALID
        name = name.lower()
        value = _parse_value(raw)
        # RFC 7239 §4: a parameter MUST NOT occur more than once per element.
        if value is None or name in params:
            return _INVALID
        params[name] = value
    return ForwardedElement(
        for_=params.get("for"),
        by=params.get("by"),
        host=params.get("host"),
        proto=params.get("proto"),
    )


def parse_forwarded(values: Iterable[bytes]) -> list[ForwardedElement]:
    """Parse `Forwarded` field values into elements, left (first proxy) to right.

    RFC 7239 §4: https://www.rfc-editor.org/rfc/rfc7239#section-4. A malformed element becomes
    one element with `valid=False` instead of failing the whole header, so that a walk from
    the right still sees the well-formed entries proxies appended after it.
    """
    elements: list[ForwardedElement] = []
    for value in values:
        for part in _split_unquoted(value.decode("latin-1"), ","):
            text = part.strip(_OWS)
            if text:
                elements.append(_parse_element(text))
    return elements


def forwarded_for_hops(elements: Iterable[ForwardedElement]) -> list[str]:
    """The `for=` node of each element, with `unknown` where there is none to read."""
    return [
        element.for_ if element.valid and element.for_ is not None else UNKNOWN
        for element in elements
    ]


def _is_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and (text[0] == "_" or int(text) <= 65535)


def _canonical(address: IPv4Address | IPv6Address) -> str | None:
    if isinstance(address, IPv6Address):
        if address.scope_id is not None:
            return None  # a zone id only means something on the sender's own link
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


def _parse_node(node: str) -> str | None:
    if node.startswith("["):
        close = node.find("]")
        rest = node[close + 1 :]
        if close < 0 or (rest and not (rest[0] == ":" and _is_port(rest[1:]))):
            return None
        try:
            return _canonical(IPv6Address(node[1:close]))
        except ValueError:
            return None
    try:
        return _canonical(ipaddress.ip_address(node))
    except ValueError:
        pass
    host, sep, port = node.partition(":")
    if not sep or not _is_port(port):
        return None
    try:
        return _canonical(IPv4Address(host))
    except ValueError:
        return None


_parse_node_cached = functools.lru_cache(maxsize=4096)(_parse_node)


def parse_node(node: str) -> str | None:
    """The IP address named by a forwarded node, in canonical text, or None.

    Accepts `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]` and
    `[2001:db8::1]:8080` (the RFC 7239 §6 forms, plus a bare IPv6 address as some
    `X-Forwarded-For` writers send it). IPv4-mapped IPv6 addresses come back as IPv4.
    `unknown`, obfuscated identifiers (`_hidden`) and anything else give None.
    """
    # The same few proxies and clients repeat on every request: remember short answers.
    if len(node) <= _MAX_CACHED_NODE:
        return _parse_node_cached(node)
    return _parse_node(node)


def client_ip_from_chain(
    peer_ip: str, hops: list[str], trusted: CIDRSet, *, max_hops: int = DEFAULT_MAX_HOPS
) -> str:
    """The client address: the right-most address in `hops + [peer_ip]` not in `trusted`.

    Walks from the socket peer leftwards while each address is a trusted proxy. Returns the
    first untrusted address; if every address is trusted, the left-most one. An entry that is
    not an address (`unknown`, `_hidden`, garbage) stops the walk, as does reaching
    `max_hops` entries; the last trusted address seen is then the answer, since nobody
    trusted vouched for anything further left.

    Args:
        peer_ip: the socket peer address (returned unchanged when it is not trusted).
        hops: forwarded entries, left to right (`parse_x_forwarded_for`, `forwarded_for_hops`).
        trusted: the proxies allowed to add forwarded entries.
        max_hops: the most entries inspected, bounding the work a long header can cause.

    Returns:
        An address: `peer_ip` as given, or a hop in canonical form (see `parse_node`).
    """
    if not trusted.contains(peer_ip):
        return peer_ip
    current = peer_ip
    for index, hop in enumerate(reversed(hops)):
        if index >= max_hops:
            break
        address = parse_node(hop)
        if address is None:
            break
        current = address
        if not trusted.contains(address):
            break
    return current
