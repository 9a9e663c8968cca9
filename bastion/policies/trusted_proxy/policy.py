"""The trusted_proxy policy: the client address and scheme as reported by trusted proxies."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.http.cidr import CIDRSet
from bastion.http.forwarded import (
    client_ip_from_chain,
    forwarded_for_hops,
    parse_forwarded,
    parse_x_forwarded_for,
)
from bastion.http.request import Scheme
from bastion.policies.trusted_proxy.config import TrustedProxyConfig

FORWARDED_PROTO = "forwarded_proto"
"""`ctx.request.extra` key holding the scheme the client used, as a trusted proxy reported it."""

_SCHEMES: dict[str, Scheme] = {"http": "http", "https": "https"}


class TrustedProxyPolicy(Policy[TrustedProxyConfig]):
    """Take the client address from forwarding headers, but only from trusted proxies.

    When the socket peer is one of `proxies`, `ctx.request.client_ip` becomes the right-most
    address in the forwarding chain that is not itself a trusted proxy (see
    `bastion.http.forwarded.client_ip_from_chain`), and the reported scheme is stored in
    `ctx.request.extra["forwarded_proto"]`. From any other peer the headers are ignored: the
    client address stays the peer, whatever the request claims.
    """

    name = "trusted_proxy"
    priority = Priority.OBSERVE + 20

    def __init__(self, config: TrustedProxyConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._proxies = CIDRSet(config.proxies)
        self._forwarded = config.header == "forwarded"

    @override
    def rewrite(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        if not self._proxies.contains(request.peer_ip):
            return None
        headers = request.headers
        proto: str | None
        if self._forwarded:
            elements = parse_forwarded(headers.get_all(b"forwarded"))
            hops = forwarded_for_hops(elements)
            proto = elements[-1].proto if elements else None
        else:
            hops = parse_x_forwarded_for(headers.get_all(b"x-forwarded-for"))
            protos = parse_x_forwarded_for(headers.get_all(b"x-forwarded-proto"))
            proto = protos[-1] if protos else None
        request.client_ip = client_ip_from_chain(request.peer_ip, hops, self._proxies)
        # The right-most value is the one written by the proxy that connected to Bastion.
        scheme = _SCHEMES.get(proto.lower()) if proto is not None else None
        if scheme is not None:
            request.extra[FORWARDED_PROTO] = scheme
        return None
