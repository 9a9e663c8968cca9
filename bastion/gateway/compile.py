"""Compiles a `GatewayConfig`'s policies into chains and a router, with no upstream or I/O.

Both front doors use it: the ASGI middleware serves these chains with the wrapped app as the
terminal step; `build.py` wraps the same routes with their services' upstream pools. Merge rules:
global, then service, then route policies, the most specific winning by name. With `oauth:` set
it also builds the authorization server (shared with `jwt: {issuer: self}` through the policies'
extras) and its endpoints, which both front doors serve after the global chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bastion.clock import Clock, SystemClock
from bastion.config.models import GatewayConfig, RouteConfig
from bastion.core.auth import any_of_chain
from bastion.core.chain import Chain
from bastion.core.policy import Policy, PolicyDeps
from bastion.core.router import Router, RouteSpec
from bastion.counters import make_counters
from bastion.counters.base import Counters
from bastion.errors import ConfigError
from bastion.oauth.routes import OAuthEndpoint, oauth_routes
from bastion.oauth.setup import EXTRAS_KEY, authorization_server, oauth_guard
from bastion.policies.registry import BUILTIN_POLICIES
from bastion.policies.trusted_proxy.config import TrustedProxyConfig
from bastion.store import gateway_store

AnyPolicy = Policy[Any]


@dataclass(frozen=True, slots=True)
class RouteChain:
    """A route's compiled chain and names, without an upstream."""

    name: str
    service: str
    chain: Chain
    service_index: int = 0


@dataclass(frozen=True, slots=True)
class CompiledChains:
    """Everything the request path needs: the router of route chains and the global chain."""

    router: Router[RouteChain]
    global_chain: Chain
    counters: Counters
    routes: tuple[tuple[RouteSpec, RouteChain], ...] = ()
    local_routes: Mapping[str, OAuthEndpoint] | None = None
    """Exact paths answered by the gateway itself (the OAuth server's), after the global chain."""


def instantiate_policies(
    configured: dict[str, BaseModel], deps: PolicyDeps, where: str
) -> dict[str, AnyPolicy]:
    """Build one policy instance per configured name.

    Raises:
        ConfigError: a policy refused its settings; the path is `where.<name>`.
    """
    policies: dict[str, AnyPolicy] = {}
    for name, config in configured.items():
        cls = BUILTIN_POLICIES[name]
        try:
            policies[name] = cls(config, deps)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{where}.{name}", str(exc)) from exc
    return policies


def route_spec(route: RouteConfig) -> RouteSpec:
    """What the router matches for `route` (GET routes also answer HEAD)."""
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


def compile_chains(
    config: GatewayConfig,
    *,
    clock: Clock | None = None,
    counters: Counters | None = None,
    extras: Mapping[str, Any] | None = None,
) -> CompiledChains:
    """Compile every route's chain and the global chain of `config`.

    Global policy instances are shared by every route (so is their state, such as a global
    rate limit); a service's by its routes; a route's own override same-named ones. `extras`
    reach every policy as `PolicyDeps.extras` (shared services such as the OAuth server).

    Raises:
        ConfigError: a policy refused its settings while compiling.
    """
    clock = clock or SystemClock()
    counters = counters if counters is not None else make_counters(config.counters, clock)
    store = gateway_store(config)  # opened lazily: no file or connection until first use
    extras = dict(extras or {})
    local_routes = None
    if EXTRAS_KEY not in extras:
        try:
            oauth = authorization_server(config, store, clock)
        except ValueError as exc:
            raise ConfigError("oauth", str(exc)) from exc
        if oauth is not None:
            extras[EXTRAS_KEY] = oauth
            local_routes = oauth_routes(oauth, oauth_guard(config, counters))
    https_port = config.https_port
    global_configs = dict(config.global_policies.configured())
    if "trusted_proxy" not in global_configs:
        global_configs["trusted_proxy"] = TrustedProxyConfig(proxies=config.trusted_proxies)
    global_policies = instantiate_policies(
        global_configs,
        PolicyDeps(
            clock=clock, https_port=https_port, counters=counters, store=store, extras=extras
        ),
        "global_policies",
    )
    routes: list[tuple[RouteSpec, RouteChain]] = []
    for s_index, service in enumerate(config.services):
        service_policies = instantiate_policies(
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
            route_deps = PolicyDeps(
                clock=clock,
                route=route.name,
                service=service.name,
                https_port=https_port,
                counters=counters,
                store=store,
                extras=extras,
            )
            own = instantiate_policies(
                route.policies.configured(),
                route_deps,
                f"services[{s_index}].routes[{r_index}].policies",
            )
            merged = {**global_policies, **service_policies, **own}
            if route.auth == "any":
                chain = any_of_chain(list(merged.values()), route_deps)
            else:
                chain = Chain(list(merged.values()))
            routes.append((route_spec(route), RouteChain(route.name, service.name, chain, s_index)))
    return CompiledChains(
        Router(routes),
        Chain(list(global_policies.values())),
        counters,
        tuple(routes),
        local_routes,
    )
