"""A set of IPv4/IPv6 networks with a fast, cached membership test for client addresses.

How this works: the configured networks are collapsed, then indexed per prefix length as a set of
network numbers (`address >> (bits - prefix)`). A lookup parses the address once, then does one
shift and one set probe per distinct prefix length, so it does not grow with the number of
networks. Results are kept in a bounded FIFO cache keyed by the address text, since the same few
proxies and clients repeat on every request.

IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an IPv4
peer) are treated as the IPv4 address they carry, and networks written in that form
(`::ffff:10.0.0.0/104`) as the matching IPv4 network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network

DEFAULT_CACHE_SIZE = 4096
# The longest text an IP address can have (full IPv6 with an embedded IPv4 tail), plus room for
# a short zone id; longer keys are looked up but never cached, so junk cannot bloat the cache.
_MAX_CACHED_KEY = 64

_MAPPED_V4 = IPv6Network("::ffff:0:0/96")
_V4_BITS = 32
_V6_BITS = 128

_Index = tuple[tuple[int, frozenset[int]], ...]


def _parse_entry(entry: str) -> IPv4Network | IPv6Network:
    text = entry.strip()
    if not text:
        raise ValueError(f"invalid network {entry!r}: empty entry")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            hint = ipaddress.ip_network(text, strict=False)
            message = f"invalid network {entry!r}: host bits set (did you mean {hint}?)"
            raise ValueError(message) from None
        raise ValueError(f"invalid network {entry!r}: not an IP address or CIDR") from None
    if isinstance(network, IPv6Network) and network.subnet_of(_MAPPED_V4):
        mapped = int(network.network_address) & 0xFFFF_FFFF
        return IPv4Network((mapped, network.prefixlen - (_V6_BITS - _V4_BITS)))
    return network


def _index(networks: Iterable[IPv4Network | IPv6Network], bits: int) -> _Index:
    by_prefix: dict[int, set[int]] = {}
    for network in networks:
        shift = bits - network.prefixlen
        by_prefix.setdefault(shift, set()).add(int(network.network_address) >> shift)
    # Widest networks first: they are the likeliest to match (0.0.0.0/0, 10.0.0.0/8).
    return tuple(
        (shift, frozenset(nums)) for shift, nums in sorted(by_prefix.items(), reverse=True)
    )


class CIDRSet:
    """An immutable set of networks answering "is this address inside?".

    Args:
        entries: CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or plain addresses (`192.0.2.7`).
        cache_size: how many distinct addresses to remember (oldest forgotten first).

    Raises:
        ValueError: an entry is not an address or CIDR, or has host bits set (`10.0.0.1/8`);
            the message names the entry.
    """

    __slots__ = ("_cache", "_cache_size", "_networks", "_v4", "_v6")

    def __init__(
        self, entries: Iterable[str] = (), *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        v4: list[IPv4Network] = []
        v6: list[IPv6Network] = []
        for entry in entries:
            network = _parse_entry(entry)
            if isinstance(network, IPv4Network):
                v4.append(network)
            else:
                v6.append(network)
        collapsed_v4 = tuple(ipaddress.collapse_addresses(v4))
        collapsed_v6 = tuple(ipaddress.collapse_addresses(v6))
        self._networks: tuple[IPv4Network | IPv6Network, ...] = (*collapsed_v4, *collapsed_v6)
        self._v4 = _index(collapsed_v4, _V4_BITS)
        self._v6 = _index(collapsed_v6, _V6_BITS)
        self._cache: dict[str, bool] = {}
        self._cache_size = cache_size

    @property
    def is_empty(self) -> bool:
        """Whether the set holds no network at all (nothing is ever contained)."""
        return not self._networks

    @property
    def networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The collapsed networks, IPv4 first (mapped IPv6 entries appear as IPv4)."""
        return self._networks

    def contains(self, ip: str) -> bool:
        """Whether `ip` lies inside one of the networks.

        Text that is not an IP address is never contained, so callers may pass untrusted
        header data. A zone id (`fe80::1%eth0`) is ignored.
        """
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        if not self._networks:
            return False
        found = self._lookup(ip)
        if len(ip) <= _MAX_CACHED_KEY:
            cache = self._cache
            if len(cache) >= self._cache_size:
                del cache[next(iter(cache))]
            cache[ip] = found
        return found

    def _lookup(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        table = self._v4
        if isinstance(address, IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is None:
                table = self._v6
            else:
                address = mapped
        number = int(address)
        return any((number >> shift) in numbers for shift, numbers in table)

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, str) and self.contains(ip)

    def __repr__(self) -> str:
        return f"CIDRSet({[str(network) for network in self._networks]!r})"


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address from a URL) is `localhost` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
