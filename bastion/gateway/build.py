"""Compiles a `GatewayConfig` into a ready `Gateway`: policies, chains, router, upstream pools."""

from __future__ import annotations

import asyncio

from bastion.clock import Clock, SystemClock
from bastion.config.models import GatewayConfig, ServiceConfig, UpstreamConfig
from bastion.core.router import Router
from bastion.counters import make_counters
from bastion.counters.base import Counters
from bastion.gateway.app import AccessLogger, Gateway
from bastion.gateway.compile import compile_chains
from bastion.gateway.routes import CompiledRoute
from bastion.proxy.tls import client_context
from bastion.proxy.upstream import Target, UpstreamPool, UpstreamSettings


def _pool(service: ServiceConfig, loop: asyncio.AbstractEventLoop) -> UpstreamPool:
    upstream: UpstreamConfig = service.upstream
    targets = [Target.parse(url) for url in upstream.targets]
    ssl_context = None
    if any(target.scheme == "https" for target in targets):
        ssl_context = client_context(verify=upstream.tls_verify, ca_file=upstream.ca_file)
    settings = UpstreamSettings(
        connect_timeout=upstream.connect_timeout,
        read_timeout=upstream.read_timeout,
        idle_timeout=upstream.idle_timeout,
        max_idle=upstream.max_idle,
        max_fails=upstream.max_fails,
        fail_timeout=upstream.fail_timeout,
    )
    return UpstreamPool(targets, settings, loop=loop, ssl_context=ssl_context)


def counters_for(
    config: GatewayConfig, previous: Counters | None = None, clock: Clock | None = None
) -> Counters:
    """The counters for `config`: `previous` if its `counters:` setting is unchanged.

    Keeping the instance across reloads keeps every key's count (a reload must not hand
    clients a fresh quota) and the Redis connection pool.
    """
    if previous is not None and previous.spec == config.counters:
        return previous
    return make_counters(config.counters, clock)


COUNTING_POLICIES = ("rate_limit", "concurrency_limit", "quota")
"""Policies whose limits live in `counters` (per process with `memory`)."""


def uses_rate_limit(config: GatewayConfig) -> bool:
    """Whether any global, service or route policy block counts requests in `counters`."""
    blocks = [config.global_policies]
    for service in config.services:
        blocks.append(service.policies)
        blocks.extend(route.policies for route in service.routes)
    return any(name in COUNTING_POLICIES for block in blocks for name in block.configured())


def build_gateway(
    config: GatewayConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    access_log: AccessLogger | None = None,
    clock: Clock | None = None,
    counters: Counters | None = None,
) -> tuple[Gateway, list[UpstreamPool]]:
    """Compile `config`; returns the gateway and the upstream pools it owns.

    Global policy instances are shared by every route (so their state, such as a global rate
    limit, is too); a service's by its routes; a route's own override same-named ones. Every
    policy gets the same `counters` (see `counters_for`; created from `config.counters` when
    not given).

    Raises:
        ConfigError: a policy refused its settings while compiling.
    """
    clock = clock or SystemClock()
    counters = counters if counters is not None else make_counters(config.counters, clock)
    compiled = compile_chains(config, clock=clock, counters=counters)
    pools = [_pool(service, loop) for service in config.services]
    routes = [
        (
            spec,
            CompiledRoute(
                name=route.name,
                service=route.service,
                chain=route.chain,
                pool=pools[route.service_index],
                preserve_host=config.services[route.service_index].upstream.preserve_host,
            ),
        )
        for spec, route in compiled.routes
    ]
    gateway = Gateway(
        Router(routes),
        compiled.global_chain,
        access_log=access_log,
        loop=loop,
        clock=clock,
        local_routes=compiled.local_routes,
    )
    return gateway, pools
