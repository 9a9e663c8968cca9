"""What to probe, derived from the gateway's config: loopback endpoints and each route's policies.

Pure: reads a `GatewayConfig`, opens nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from bastion.config.models import GatewayConfig, ListenerConfig, RouteConfig, parse_bind

EndpointKind = Literal["https", "redirect", "plaintext"]
_TEMPLATE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_BODY_METHODS = ("POST", "PUT", "PATCH")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A loopback address the verifier may connect to, and what the listener there does."""

    kind: EndpointKind
    host: str
    port: int
    label: str
    listener: ListenerConfig | None = None

    @property
    def scheme(self) -> str:
        """`https` for TLS listeners, `http` otherwise."""
        return "https" if self.kind == "https" else "http"

    @property
    def authority(self) -> str:
        """`host:port`, the IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """One route as the verifier probes it: a concrete path, methods and effective policies."""

    name: str
    service: str
    path: str
    method: str
    body_method: str | None
    host: str | None
    policies: dict[str, BaseModel]


def loopback_host(host: str) -> str | None:
    """The loopback address to connect to for a bind host, or None when it is not local.

    A wildcard bind (0.0.0.0, ::) is reached on 127.0.0.1 / ::1; any other non-loopback
    address is never probed.
    """
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "::1"
    return str(address) if address.is_loopback else None


def listener_endpoints(config: GatewayConfig) -> tuple[list[Endpoint], list[str]]:
    """The config's listeners as loopback endpoints, plus the binds skipped as not local."""
    endpoints: list[Endpoint] = []
    skipped: list[str] = []
    for listener in config.listeners:
        host, port = parse_bind(listener.bind)
        target = loopback_host(host)
        if target is None:
            skipped.append(listener.bind)
            continue
        kind: EndpointKind = (
            "https"
            if listener.tls is not None
            else "plaintext"
            if listener.plaintext
            else "redirect"
        )
        endpoints.append(Endpoint(kind, target, port, f"listener {listener.bind}", listener))
    return endpoints, skipped


def endpoint_from_url(url: str) -> Endpoint:
    """The endpoint of a `--base-url`.

    Raises:
        ValueError: the URL is not http(s) or its host is not a loopback address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    host = loopback_host(parts.hostname)
    if host is None or (parts.hostname.lower() != "localhost" and host != parts.hostname):
        raise ValueError("must name a loopback host (127.0.0.1, ::1 or localhost)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    kind: EndpointKind = "https" if parts.scheme == "https" else "plaintext"
    return Endpoint(kind, host, port, f"base URL {parts.scheme}://{parts.netloc}")


def probe_endpoint(endpoints: list[Endpoint]) -> Endpoint | None:
    """Where route probes go: the first HTTPS listener, else the first plaintext one."""
    for kind in ("https", "plaintext"):
        for endpoint in endpoints:
            if endpoint.kind == kind:
                return endpoint
    return None


def _concrete_path(path: str) -> str:
    return _TEMPLATE.sub("verify", path)


def _probe_host(hosts: list[str] | None) -> str | None:
    if not hosts:
        return None
    for host in hosts:
        if not host.startswith("*."):
            return host
    return "verify." + hosts[0][2:]


def _pick_method(route: RouteConfig) -> tuple[str, str | None]:
    methods = route.methods
    if methods is None:
        return "GET", "POST"
    method = "GET" if "GET" in methods else methods[0]
    body = next((name for name in _BODY_METHODS if name in methods), None)
    return method, body


def effective_policies(config: GatewayConfig) -> list[RoutePlan]:
    """Every route, its policies merged as the gateway does (route over service over global)."""
    plans: list[RoutePlan] = []
    global_policies = config.global_policies.configured()
    for service in config.services:
        service_policies = service.policies.configured()
        for route in service.routes:
            merged = {**global_policies, **service_policies, **route.policies.configured()}
            method, body_method = _pick_method(route)
            plans.append(
                RoutePlan(
                    name=route.name,
                    service=service.name,
                    path=_concrete_path(route.paths[0]),
                    method=method,
                    body_method=body_method,
                    host=_probe_host(route.hosts),
                    policies=merged,
                )
            )
    return plans
