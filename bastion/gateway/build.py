"""Compiles a `GatewayConfig` into a ready `Gateway`: policies, chains, router, upstream pools."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from bastion.clock import Clock, SystemClock
from bastion.config.models import GatewayConfig, RouteConfig, ServiceConfig, UpstreamConfig
from bastion.core.chain import Chain
from bastion.core.policy import Policy, PolicyDeps
from bastion.core.router import Router, RouteSpec
from bastion.counters import make_counters
from bastion.counters.base import Counters
from bastion.errors import ConfigError
from bastion.gateway.app import AccessLogger, Gateway
from bastion.gateway.routes import CompiledRoute
from bastion.oauth.routes import oauth_handlers
from bastion.oauth.setup import EXTRAS_KEY, authorization_server
from bastion.policies.registry import BUILTIN_POLICIES
from bastion.policies.trusted_proxy.config import TrustedProxyConfig
from bastion.proxy.tls import client_context
from bastion.proxy.upstream import Target, UpstreamPool, UpstreamSettings
from bastion.store import gateway_store

AnyPolicy = Policy[Any]


def _instantiate(
    configured: dict[str, BaseModel], deps: PolicyDeps, where: str
) -> dict[str, AnyPolicy]:
    policies: dict[str, AnyPolicy] = {}
    for name, config in configured.items():
        cls = BUILTIN_POLICIES[name]
        try:
            policies[name] = cls(config, deps)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{where}.{name}", str(exc)) from exc
    return policies


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


def _route_spec(route: RouteConfig) -> RouteSpec:
    methods = frozenset(route.methods) if route.methods else None
    if methods is not None and "GET" in methods:
        methods = methods | {"HEAD"}  # HEAD is GET without a body (RFC 9110 §9.3.2)
    return RouteSpec(
        name=route.name,
        paths=tuple(route.paths),
        methods=methods,
        hosts=tuple(route.hosts) if route.hosts else None,
        path_match=route.path_match,
    )


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


def uses_rate_limit(config: GatewayConfig) -> bool:
    """Whether any global, service or route policy block configures rate_limit."""
    blocks = [config.global_policies]
    for service in config.services:
        blocks.append(service.policies)
        blocks.extend(route.policies for route in service.routes)
    return any("rate_limit" in block.configured() for block in blocks)


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
    store = gateway_store(config)  # opened lazily: no file or connection until first use
    try:
        oauth = authorization_server(config, store, clock)
    except ValueError as exc:
        raise ConfigError("oauth", str(exc)) from exc
    extras: dict[str, Any] = {EXTRAS_KEY: oauth} if oauth is not None else {}
    https_port = config.https_port
    global_configs = dict(config.global_policies.configured())
    if "trusted_proxy" not in global_configs:
        global_configs["trusted_proxy"] = TrustedProxyConfig(proxies=config.trusted_proxies)
    global_policies = _instantiate(
        global_configs,
        PolicyDeps(
            clock=clock, https_port=https_port, counters=counters, store=store, extras=extras
        ),
        "global_policies",
    )
    routes: list[tuple[RouteSpec, CompiledRoute]] = []
    pools: list[UpstreamPool] = []
    for s_index, service in enumerate(config.services):
        pool = _pool(service, loop)
        pools.append(pool)
        service_policies = _instantiate(
            service.policies.configured(),
            PolicyDeps(
                clock=clock,
                service=service.name,
                https_port=https_port,
                counters=counters,
                store=store,
                extras=extras,
            ),
            f"services[{s_index}].policies",
        )
        for r_index, route in enumerate(service.routes):
            own = _instantiate(
                route.policies.configured(),
                PolicyDeps(
                    clock=clock,
                    route=route.name,
                    service=service.name,
                    https_port=https_port,
                    counters=counters,
                    store=store,
                    extras=extras,
                ),
                f"services[{s_index}].routes[{r_index}].policies",
            )
            merged = {**global_policies, **service_policies, **own}
            compiled = CompiledRoute(
                name=route.name,
                service=service.name,
                chain=Chain(list(merged.values())),
                pool=pool,
                preserve_host=service.upstream.preserve_host,
            )
            routes.append((_route_spec(route), compiled))
    gateway = Gateway(
        Router(routes),
        Chain(list(global_policies.values())),
        access_log=access_log,
        loop=loop,
        clock=clock,
        local_handlers=oauth_handlers(oauth, loop) if oauth is not None else None,
    )
    return gateway, pools
