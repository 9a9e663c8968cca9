"""The gateway configuration file as pydantic models (frozen, unknown keys refused)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bastion.config.paths import ConfigPath
from bastion.config.policies import PoliciesConfig
from bastion.oauth.config import OAuthConfig
from bastion.policies.request_id.config import RequestIDConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_TEMPLATE_SEGMENT = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")


class Model(BaseModel):
    """Base of every config model: frozen and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_bind(value: str) -> tuple[str, int]:
    """Split `host:port` or `[v6]:port` into an IP address and a port.

    Raises:
        ValueError: if the host is not an IP address or the port is out of range.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("expected host:port, e.g. 127.0.0.1:8443 or [::1]:8443")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host {host!r} must be an IP address") from None
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    return host, port


def _check_bind(value: str) -> str:
    parse_bind(value)
    return value


Bind = Annotated[str, AfterValidator(_check_bind)]


class TLSConfig(Model):
    """Certificate and protocol settings of an HTTPS listener."""

    certificate: ConfigPath | None = Field(
        None, description="PEM certificate chain; omitted: a self-signed development certificate."
    )
    private_key: ConfigPath | None = Field(None, description="PEM private key of the certificate.")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="Lowest TLS version accepted.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> TLSConfig:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        return self


class ListenerConfig(Model):
    """One listening socket: HTTPS, or plain HTTP that only redirects to HTTPS."""

    bind: Bind = Field(description="Address and port, e.g. 127.0.0.1:8443 or [::1]:8443.")
    tls: TLSConfig | None = Field(None, description="Serve HTTPS with these TLS settings.")
    redirect_https: str | None = Field(
        None,
        description="Plain-HTTP listener: the HTTPS origin to redirect to with 308 "
        "(default: the request's host on the first HTTPS listener's port).",
    )
    plaintext: bool = Field(
        False,
        description="Proxy over plain HTTP instead of redirecting (behind a TLS-terminating "
        "balancer, or for benchmarks). `bastion audit` flags it.",
    )

    @field_validator("redirect_https")
    @classmethod
    def _https_origin(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("must be an https origin such as https://api.example.com:8443")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_role(self) -> ListenerConfig:
        if self.tls is not None and (self.redirect_https or self.plaintext):
            raise ValueError("a TLS listener neither redirects nor serves plaintext")
        if self.redirect_https and self.plaintext:
            raise ValueError("redirect_https and plaintext exclude each other")
        return self


class LimitsConfig(Model):
    """Limits and timeouts of the downstream HTTP/1.1 protocol."""

    max_request_line: int = Field(8192, ge=64, le=65536, description="Request-target bytes (414).")
    max_header_bytes: int = Field(
        32768, ge=1024, le=1048576, description="All header lines together, in bytes (431)."
    )
    max_headers: int = Field(100, ge=8, le=1000, description="Header fields per request (431).")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=0, description="Hard cap on any request body (413)."
    )
    header_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds to receive a complete request head."
    )
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds without progress while receiving a body."
    )
    idle_timeout: float = Field(
        60.0, gt=0, le=3600, description="Seconds an idle keep-alive connection is kept."
    )
    keepalive_requests: int = Field(
        1000, ge=1, description="Requests served on one connection before it is closed."
    )
    max_pipelined: int = Field(
        16, ge=1, le=1024, description="Pipelined requests buffered per connection."
    )
    shutdown_timeout: float = Field(
        10.0, ge=0, le=300, description="Seconds to drain in-flight requests on shutdown."
    )


class AdminTLSConfig(TLSConfig):
    """HTTPS on the admin listener, optionally with client certificates (mutual TLS)."""

    client_ca: ConfigPath | None = Field(
        None,
        description="PEM CA certificates: when set, every admin client must present a"
        " certificate they signed (mutual TLS), in addition to the bearer token.",
    )


class AdminConfig(Model):
    """The admin listener: status, readiness, metrics, the dashboard and the admin API."""

    bind: Bind = Field("127.0.0.1:9901", description="Address of the admin listener.")
    token: SecretStr | None = Field(
        None, description="Bearer token for /admin endpoints (at least 16 characters)."
    )
    tls: AdminTLSConfig | None = Field(
        None,
        description="Serve the admin listener over HTTPS (omitted: plain HTTP, for loopback);"
        " with `client_ca`, mutual TLS.",
    )

    @field_validator("token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


def _check_target(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be http://host:port or https://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("must be an origin without path, query or credentials")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value.rstrip("/")


UpstreamTarget = Annotated[str, AfterValidator(_check_target)]


class UpstreamConfig(Model):
    """Where a service's requests go, and how the connections behave."""

    targets: list[UpstreamTarget] = Field(
        min_length=1, description="Origins balanced round-robin, e.g. http://127.0.0.1:9000."
    )
    connect_timeout: float = Field(2.0, gt=0, le=60, description="Seconds to connect.")
    read_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds without a byte from the upstream (504)."
    )
    idle_timeout: float = Field(
        4.0,
        gt=0,
        le=3600,
        description="Seconds an idle pooled connection is kept (below the upstream's own).",
    )
    max_idle: int = Field(64, ge=0, le=10000, description="Idle connections kept per target.")
    preserve_host: bool = Field(
        False, description="Send the client's Host header instead of the target's."
    )
    max_fails: int = Field(
        3, ge=1, description="Consecutive failures before a target is ejected (passive health)."
    )
    fail_timeout: float = Field(10.0, gt=0, description="Seconds an ejected target sits out.")
    tls_verify: bool = Field(True, description="Verify https targets' certificates.")
    ca_file: ConfigPath | None = Field(None, description="CA bundle for https targets.")


def _check_route_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with /")
    names: set[str] = set()
    for segment in value.split("/")[1:]:
        if "{" in segment or "}" in segment:
            if not _TEMPLATE_SEGMENT.match(segment):
                raise ValueError(f"template segment {segment!r} must be a whole {{name}}")
            if segment in names:
                raise ValueError(f"template parameter {segment} appears twice")
            names.add(segment)
        elif segment in (".", ".."):
            raise ValueError("must not contain dot segments")
    return value


RoutePath = Annotated[str, AfterValidator(_check_route_path)]


class RouteConfig(Model):
    """A set of paths (and optionally methods and hosts) with their policies."""

    name: str = Field(pattern=_NAME, description="Unique name, used in logs and metrics.")
    paths: list[RoutePath] = Field(
        min_length=1,
        description="Paths; a prefix at segment boundaries unless path_match is exact; "
        "{name} matches one segment.",
    )
    path_match: Literal["prefix", "exact"] = Field("prefix", description="How plain paths match.")
    methods: list[HTTPMethod] | None = Field(None, description="Allowed methods; omitted: all.")
    hosts: list[str] | None = Field(
        None, description="Host names (or *.example.com); omitted: any host."
    )
    policies: PoliciesConfig = Field(
        default_factory=PoliciesConfig, description="Policies of this route."
    )
    auth: Literal["all", "any"] = Field(
        "all",
        description="With several authentication policies: `all` must succeed, or `any` "
        "(tried in priority order; the first that succeeds sets the identity).",
    )

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [host.lower() for host in value]


class ServiceConfig(Model):
    """An upstream API and the routes that lead to it."""

    name: str = Field(pattern=_NAME, description="Unique service name.")
    upstream: UpstreamConfig = Field(description="Where requests are forwarded.")
    routes: list[RouteConfig] = Field(min_length=1, description="Routes of this service.")
    policies: PoliciesConfig = Field(
        default_factory=PoliciesConfig,
        description="Policies applied to every route of the service (a route's own win).",
    )


class AccessLogConfig(Model):
    """Where the per-request ECS access log goes."""

    sink: str = Field(
        "stdout",
        description="`stdout`, `off`, a file path, or a syslog collector "
        "(`syslog+tcp://host:port`, `syslog+tls://host:port?ca=FILE`) for one JSON line per "
        "request.",
    )
    security_log: str | None = Field(
        None,
        description="Where security events go: `stdout`, `stderr`, `off` or a file path; "
        "omitted: the access log's sink (events carry event.dataset bastion.security).",
    )


class AnomalyBlockConfig(Model):
    """Automatic temporary block of a client the anomaly detector reports (opt-in)."""

    enabled: bool = Field(
        False, description="Block a reported client's address for `seconds` (403 before routing)."
    )
    seconds: int = Field(
        900, ge=1, le=30 * 86_400, description="How long an automatic block lasts."
    )


class AnomalyConfig(Model):
    """Per-client anomaly detection: an alert event when a client's share of errors is high."""

    enabled: bool = Field(True, description="Score clients and write alert events.")
    threshold: float = Field(
        0.5, gt=0, le=1, description="Weighted share of 400/401/403/404/429 responses that alerts."
    )
    min_requests: int = Field(
        20, ge=1, description="Recent responses a client needs before it can be reported."
    )
    half_life: float = Field(
        60.0, gt=0, description="Seconds after which a response counts half as much."
    )
    block: AnomalyBlockConfig = Field(
        default_factory=AnomalyBlockConfig,
        description="Temporarily block reported clients (listed and lifted via the admin API).",
    )


def _default_global_policies() -> PoliciesConfig:
    """Secure defaults for a config that says nothing: request ids and hardening headers."""
    return PoliciesConfig(request_id=RequestIDConfig(), security_headers=SecurityHeadersConfig())


def _located(path: str, message: str) -> PydanticCustomError:
    """A validation error whose message carries the dotted path (model validators have none)."""
    return PydanticCustomError("located", "{path}: {message}", {"path": path, "message": message})


class GatewayConfig(Model):
    """The whole configuration file."""

    listeners: list[ListenerConfig] = Field(min_length=1, description="Listening sockets.")
    admin: AdminConfig | None = Field(None, description="The admin listener; omitted: none.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to set X-Forwarded-For / Forwarded; empty: none.",
    )
    counters: str = Field(
        "memory",
        description="Where rate-limit counters live: `memory` (per process; refused with "
        "--workers > 1 when a rate_limit policy is configured) or redis://host:port/db "
        "(shared, exact across processes and nodes; options ?prefix=...&timeout_ms=...).",
    )
    store: str = Field(
        "sqlite:///var/bastion.db",
        validate_default=True,  # a relative SQLite path is relative to the config file
        description="Consumers, credentials and the audit log: sqlite:///relative/or/absolute "
        "(one node) or postgresql://user@host:5432/db (clusters).",
    )
    pepper: SecretStr | None = Field(
        None,
        description="HMAC key for API-key digests, at least 32 characters, from the environment "
        "(pepper: ${BASTION_PEPPER}); required when an api_key policy is configured.",
    )
    previous_peppers: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier peppers whose keys are still accepted (pepper rotation).",
    )
    oauth: OAuthConfig | None = Field(
        None, description="The built-in OAuth 2.0 authorization server; omitted: off."
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Protocol limits.")
    access_log: AccessLogConfig = Field(
        default_factory=AccessLogConfig, description="The access log."
    )
    anomaly: AnomalyConfig = Field(
        default_factory=AnomalyConfig, description="Per-client anomaly detection."
    )
    state_dir: ConfigPath = Field(
        Path("var"),
        validate_default=True,  # the default is relative to the config file too
        description="Folder for generated state (development certificates).",
    )
    global_policies: PoliciesConfig = Field(
        default_factory=_default_global_policies,
        description="Policies applied to every request. Omitted: request_id and "
        "security_headers with their defaults; given: exactly the listed ones.",
    )
    services: list[ServiceConfig] = Field(
        default_factory=list, description="Upstream services and their routes."
    )

    @field_validator("counters")
    @classmethod
    def _valid_counters(cls, value: str) -> str:
        if value != "memory":
            from bastion.counters.url import parse_redis_url

            parse_redis_url(value)
        return value

    @field_validator("store")
    @classmethod
    def _valid_store(cls, value: str, info: ValidationInfo) -> str:
        from bastion.store import SQLITE_PREFIX, check_store_url

        check_store_url(value)
        base = (info.context or {}).get("base_dir")
        if value.startswith(SQLITE_PREFIX) and base is not None:
            path = Path(value[len(SQLITE_PREFIX) :])
            if not path.is_absolute():
                return f"{SQLITE_PREFIX}{Path(base) / path}"
        return value

    @field_validator("pepper", "previous_peppers")
    @classmethod
    def _strong_pepper(
        cls, value: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        items = value if isinstance(value, list) else [value] if value is not None else []
        if any(len(item.get_secret_value()) < 32 for item in items):
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -base64 48`)")
        return value

    @model_validator(mode="after")
    def _pepper_for_api_keys(self) -> GatewayConfig:
        blocks = [self.global_policies]
        for service in self.services:
            blocks.append(service.policies)
            blocks.extend(route.policies for route in service.routes)
        if self.pepper is None and any(block.api_key is not None for block in blocks):
            message = "required when an api_key policy is configured (pepper: ${BASTION_PEPPER})"
            raise _located("pepper", message)
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for entry in value:
            network = ipaddress.ip_network(entry, strict=False)
            if network.prefixlen == 0:
                raise ValueError(f"{entry} trusts every address; list your proxies instead")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        # Reported at the exact dotted path of the second occurrence, never with a value.
        seen_services: set[str] = set()
        seen_routes: set[str] = set()
        for s_index, service in enumerate(self.services):
            if service.name in seen_services:
                raise _located(f"services[{s_index}].name", "this service name is used twice")
            seen_services.add(service.name)
            for r_index, route in enumerate(service.routes):
                if route.name in seen_routes:
                    where = f"services[{s_index}].routes[{r_index}].name"
                    raise _located(where, "this route name is used twice")
                seen_routes.add(route.name)
        binds: set[tuple[str, int]] = set()
        places = [(f"listeners[{i}].bind", item.bind) for i, item in enumerate(self.listeners)]
        if self.admin is not None:
            places.append(("admin.bind", self.admin.bind))
        for where, bind in places:
            host, port = parse_bind(bind)
            key = (str(ipaddress.ip_address(host)), port)
            if key in binds:
                raise _located(where, "another listener already uses this address and port")
            binds.add(key)
        return self

    @model_validator(mode="after")
    def _quotas_have_identities(self) -> GatewayConfig:
        # A per-consumer quota needs an authenticating policy on the same route. Imported
        # here: the policy packages import this module's siblings at load time.
        from bastion.policies.quota.checks import anonymous_quota

        found = anonymous_quota(self)
        if found is not None:
            raise _located(*found)
        return self

    @property
    def https_port(self) -> int | None:
        """Port of the first HTTPS listener, the default redirect target."""
        for listener in self.listeners:
            if listener.tls is not None:
                return parse_bind(listener.bind)[1]
        return None
