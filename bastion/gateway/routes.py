"""Compiled routes: what the router returns for a request (chain, upstream pool, names)."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core.chain import Chain
from bastion.proxy.upstream import UpstreamPool


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route ready to serve: its policies compiled into a chain and its upstream pool."""

    name: str
    service: str
    chain: Chain
    pool: UpstreamPool
    preserve_host: bool
