"""The audit rules: each reads the config document and reports findings with stable ids.

How this works: `audit_document` walks the interpolated document (see `source.py`) with the
same defaults the loader applies (global policies default to request_id and security_headers,
TLS to 1.2, upstream verification on), computes each route's effective policies (global, then
service, then route; the most specific block of a name wins) and runs every check. A config
that fails validation is reported once (BST000) and still reviewed setting by setting, so a
mistake that validation refuses today is caught even if it becomes reachable later.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from bastion.audit.model import Finding, Rule, Severity
from bastion.audit.source import AuditSource, Location
from bastion.errors import ConfigError
from bastion.proxy.tls import certificate_expiry

MIN_HMAC_SECRET_BYTES: Final = 32
CERTIFICATE_WARN_DAYS: Final = 30
WIDEST_TRUSTED_V4: Final = 8
WIDEST_TRUSTED_V6: Final = 32
AUTHENTICATION_POLICIES: Final = ("api_key", "basic_auth", "jwt", "introspection")
_DEFAULT_GLOBAL: Final[dict[str, Any]] = {"request_id": {}, "security_headers": {}}


def _rule(id_: str, name: str, severity: Severity, summary: str, help_: str) -> Rule:
    return Rule(id=id_, name=name, severity=severity, summary=summary, help=help_)


INVALID_CONFIG = _rule(
    "BST000",
    "invalid-config",
    "high",
    "The configuration does not pass validation.",
    "Run `bastion check -c FILE` and fix each setting it names.",
)
NO_AUTHENTICATION = _rule(
    "BST001",
    "route-without-authentication",
    "high",
    "A route has no enforcing authentication policy (api_key, basic_auth, jwt).",
    "Add an authentication policy to the route, its service or global_policies.",
)
NO_RATE_LIMIT = _rule(
    "BST002",
    "route-without-rate-limit",
    "medium",
    "A route has no rate_limit policy.",
    "Add rate_limit to the route, its service or global_policies.",
)
WEAK_HMAC_SECRET = _rule(
    "BST003",
    "jwt-weak-hmac-secret",
    "high",
    f"A jwt HMAC secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes.",
    "Use at least 32 random bytes (`openssl rand -base64 48`) or an asymmetric key.",
)
JWKS_OVER_HTTP = _rule(
    "BST004",
    "jwks-over-http",
    "high",
    "A jwt policy fetches its keys over plain HTTP.",
    "Use an https:// jwks_uri and remove allow_insecure_jwks.",
)
OLD_TLS = _rule(
    "BST005",
    "tls-below-1-2",
    "high",
    "A TLS listener accepts protocol versions below TLS 1.2.",
    "Set tls.min_version to 1.2 or 1.3.",
)
PLAINTEXT_LISTENER = _rule(
    "BST006",
    "plaintext-listener",
    "medium",
    "A listener proxies over plain HTTP.",
    "Serve HTTPS (tls:) or redirect (omit plaintext); keep plaintext only behind a "
    "TLS-terminating balancer on a private network.",
)
NO_BODY_LIMIT = _rule(
    "BST007",
    "route-without-body-limit",
    "medium",
    "A route has no size_limit policy; only the protocol-wide cap bounds request bodies.",
    "Add size_limit with a max_body_bytes that fits the API.",
)
CORS_WILDCARD_CREDENTIALS = _rule(
    "BST008",
    "cors-wildcard-with-credentials",
    "critical",
    "CORS allows any origin together with credentials.",
    "List the allowed origins explicitly.",
)
CORS_WILDCARD = _rule(
    "BST009",
    "cors-wildcard-origin",
    "low",
    'CORS allows any origin ("*").',
    "List the allowed origins unless the API is public and carries no credentials.",
)
PUBLIC_ADMIN = _rule(
    "BST010",
    "admin-on-public-address",
    "high",
    "The admin listener binds a non-loopback address.",
    "Bind admin to 127.0.0.1 or ::1 and reach it through SSH or a private network.",
)
ADMIN_WITHOUT_TOKEN = _rule(
    "BST011",
    "admin-without-token",
    "medium",
    "The admin listener has no bearer token.",
    "Set admin.token from the environment (${BASTION_ADMIN_TOKEN}).",
)
REPORT_ONLY = _rule(
    "BST012",
    "report-only-mode",
    "medium",
    "A policy runs in report_only mode and enforces nothing.",
    "Switch it to mode: enforce once its reports look right.",
)
CERTIFICATE_EXPIRY = _rule(
    "BST013",
    "certificate-expiring",
    "high",
    f"A TLS certificate expires within {CERTIFICATE_WARN_DAYS} days, has expired or cannot "
    "be read.",
    "Renew the certificate and reload (SIGHUP).",
)
WIDE_TRUSTED_PROXIES = _rule(
    "BST014",
    "trusted-proxies-too-wide",
    "high",
    f"trusted_proxies trusts a /{WIDEST_TRUSTED_V4} (IPv4) or /{WIDEST_TRUSTED_V6} (IPv6) "
    "network or wider: clients there can forge their address.",
    "List only the addresses of your own proxies or balancers.",
)
UPSTREAM_NO_VERIFY = _rule(
    "BST015",
    "upstream-tls-verify-off",
    "high",
    "An upstream's TLS certificate is not verified.",
    "Remove tls_verify: false; give the upstream's CA in ca_file instead.",
)
CREDENTIALS_OVER_PLAINTEXT = _rule(
    "BST016",
    "credentials-over-plaintext",
    "high",
    "A route that takes credentials is served on a plaintext listener.",
    "Serve credential-bearing routes over HTTPS only.",
)
DEVELOPMENT_CERTIFICATE = _rule(
    "BST017",
    "development-certificate",
    "low",
    "A TLS listener uses a generated self-signed development certificate.",
    "Configure tls.certificate and tls.private_key with a certificate clients trust.",
)

RULES: Final[tuple[Rule, ...]] = (
    INVALID_CONFIG,
    NO_AUTHENTICATION,
    NO_RATE_LIMIT,
    WEAK_HMAC_SECRET,
    JWKS_OVER_HTTP,
    OLD_TLS,
    PLAINTEXT_LISTENER,
    NO_BODY_LIMIT,
    CORS_WILDCARD_CREDENTIALS,
    CORS_WILDCARD,
    PUBLIC_ADMIN,
    ADMIN_WITHOUT_TOKEN,
    REPORT_ONLY,
    CERTIFICATE_EXPIRY,
    WIDE_TRUSTED_PROXIES,
    UPSTREAM_NO_VERIFY,
    CREDENTIALS_OVER_PLAINTEXT,
    DEVELOPMENT_CERTIFICATE,
)
"""Every rule, in id order."""


def _dotted(location: Location) -> str:
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class _Block:
    """A policies block and where it sits."""

    where: Location
    policies: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Route:
    where: Location
    name: str
    effective: dict[str, tuple[Location, dict[str, Any]]]


class _Review:
    """One audit run: collects findings with their lines."""

    def __init__(self, source: AuditSource, now: datetime) -> None:
        self.source = source
        self.doc = source.document
        self.now = now
        self.findings: list[Finding] = []

    def report(
        self, rule: Rule, where: Location, message: str, severity: Severity | None = None
    ) -> None:
        line = None
        probe = where
        while probe and line is None:  # a default setting: point at its nearest parent
            line = self.source.lines.get(probe)
            probe = probe[:-1]
        self.findings.append(
            Finding(
                rule=rule,
                severity=severity or rule.severity,
                message=message,
                path=_dotted(where) or "(top level)",
                line=line,
            )
        )

    # -- structure -------------------------------------------------------------------------

    def blocks(self) -> Iterator[_Block]:
        if "global_policies" in self.doc:
            yield _Block(("global_policies",), _mapping(self.doc["global_policies"]))
        else:
            yield _Block(("global_policies",), dict(_DEFAULT_GLOBAL))
        for s_index, service in enumerate(_list(self.doc.get("services"))):
            service = _mapping(service)
            yield _Block(("services", s_index, "policies"), _mapping(service.get("policies")))
            for r_index, route in enumerate(_list(service.get("routes"))):
                where: Location = ("services", s_index, "routes", r_index, "policies")
                yield _Block(where, _mapping(_mapping(route).get("policies")))

    def routes(self) -> Iterator[_Route]:
        global_block = next(self.blocks())
        for s_index, service in enumerate(_list(self.doc.get("services"))):
            service = _mapping(service)
            service_where: Location = ("services", s_index, "policies")
            service_policies = _mapping(service.get("policies"))
            for r_index, route in enumerate(_list(service.get("routes"))):
                route = _mapping(route)
                route_where: Location = ("services", s_index, "routes", r_index)
                effective: dict[str, tuple[Location, dict[str, Any]]] = {}
                for where, policies in (
                    (global_block.where, global_block.policies),
                    (service_where, service_policies),
                    ((*route_where, "policies"), _mapping(route.get("policies"))),
                ):
                    for name, settings in policies.items():
                        effective[str(name)] = ((*where, str(name)), _mapping(settings))
                yield _Route(route_where, str(route.get("name", r_index)), effective)

    def listeners(self) -> Iterator[tuple[Location, dict[str, Any]]]:
        for index, listener in enumerate(_list(self.doc.get("listeners"))):
            yield ("listeners", index), _mapping(listener)

    def resolve(self, value: str) -> Path:
        path = Path(value)
        if not path.is_absolute() and self.source.base_dir is not None:
            path = self.source.base_dir / path
        return path


def _enforcing(settings: dict[str, Any]) -> bool:
    return bool(settings.get("mode", "enforce") != "report_only")


def _check_validation(review: _Review) -> None:
    errors = review.source.errors
    if errors:
        shown = errors[:10]
        more = f"\n(and {len(errors) - 10} more)" if len(errors) > 10 else ""
        listing = "".join(f"\n- {line}" for line in shown)
        review.report(INVALID_CONFIG, (), f"bastion would refuse to start:{listing}{more}")


def _check_routes(review: _Review) -> None:
    plaintext = any(listener.get("plaintext") is True for _, listener in review.listeners())
    for route in review.routes():
        effective = route.effective
        label = f"route {route.name!r}"
        authn = [name for name in AUTHENTICATION_POLICIES if name in effective]
        if not any(_enforcing(effective[name][1]) for name in authn):
            detail = " (only in report_only mode)" if authn else ""
            review.report(
                NO_AUTHENTICATION, route.where, f"{label} has no authentication policy{detail}"
            )
        if "rate_limit" not in effective:
            review.report(NO_RATE_LIMIT, route.where, f"{label} has no rate_limit policy")
        if "size_limit" not in effective:
            cap = _mapping(review.doc.get("limits")).get("max_body_bytes", 10 * 1024 * 1024)
            review.report(
                NO_BODY_LIMIT,
                route.where,
                f"{label} has no size_limit policy (bodies up to {cap} bytes are accepted)",
            )
        if plaintext:
            for name in ("basic_auth", "api_key", "jwt"):
                if name in effective:
                    severity: Severity = "high" if name == "basic_auth" else "medium"
                    review.report(
                        CREDENTIALS_OVER_PLAINTEXT,
                        route.where,
                        f"{label} takes {name} credentials and a plaintext listener serves it",
                        severity,
                    )


def _check_policy_blocks(review: _Review) -> None:
    for block in review.blocks():
        for name, settings in block.policies.items():
            settings = _mapping(settings)
            where = (*block.where, str(name))
            if settings.get("mode") == "report_only":
                review.report(REPORT_ONLY, (*where, "mode"), f"{name} is in report_only mode")
            if name == "jwt":
                _check_jwt(review, where, settings)
            elif name == "cors":
                _check_cors(review, where, settings)


def _check_jwt(review: _Review, where: Location, settings: dict[str, Any]) -> None:
    secret = settings.get("secret")
    secret_at = (*where, "secret")
    if (
        isinstance(secret, str)
        and secret_at not in review.source.unresolved
        and len(secret.encode()) < MIN_HMAC_SECRET_BYTES
    ):
        review.report(
            WEAK_HMAC_SECRET,
            secret_at,
            f"the HMAC secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes",
        )
    uri = settings.get("jwks_uri")
    if isinstance(uri, str) and urlsplit(uri).scheme.lower() == "http":
        insecure = settings.get("allow_insecure_jwks") is True
        message = "jwks_uri is plain http" + (" (allow_insecure_jwks is on)" if insecure else "")
        review.report(JWKS_OVER_HTTP, (*where, "jwks_uri"), message)


def _check_cors(review: _Review, where: Location, settings: dict[str, Any]) -> None:
    origins = _list(settings.get("allow_origins"))
    if "*" not in origins:
        return
    if settings.get("allow_credentials") is True:
        review.report(
            CORS_WILDCARD_CREDENTIALS,
            (*where, "allow_origins"),
            'allow_origins is "*" and allow_credentials is true',
        )
    else:
        review.report(CORS_WILDCARD, (*where, "allow_origins"), 'allow_origins is "*"')


def _tls_below_1_2(value: object) -> bool:
    try:
        major, _, minor = str(value).strip().partition(".")
        return (int(major), int(minor or 0)) < (1, 2)
    except ValueError:
        return False  # not a version: validation reports it


def _check_listeners(review: _Review) -> None:
    for where, listener in review.listeners():
        bind = listener.get("bind", "?")
        if listener.get("plaintext") is True:
            review.report(
                PLAINTEXT_LISTENER, (*where, "plaintext"), f"listener {bind} serves plain HTTP"
            )
        tls = listener.get("tls")
        if not isinstance(tls, dict):
            continue
        if "min_version" in tls and _tls_below_1_2(tls["min_version"]):
            review.report(
                OLD_TLS, (*where, "tls", "min_version"), f"listener {bind} accepts TLS below 1.2"
            )
        certificate = tls.get("certificate")
        if certificate is None:
            review.report(
                DEVELOPMENT_CERTIFICATE,
                (*where, "tls"),
                f"listener {bind} serves a generated self-signed certificate",
            )
        elif isinstance(certificate, str):
            _check_certificate(review, (*where, "tls", "certificate"), certificate)


def _check_certificate(review: _Review, where: Location, value: str) -> None:
    path = review.resolve(value)
    try:
        expires = certificate_expiry(path)
    except ConfigError:
        review.report(
            CERTIFICATE_EXPIRY, where, f"certificate {value} cannot be read", severity="medium"
        )
        return
    remaining = expires - review.now
    stamp = expires.strftime("%Y-%m-%d %H:%M UTC")
    if remaining <= timedelta(0):
        review.report(
            CERTIFICATE_EXPIRY, where, f"certificate {value} expired on {stamp}", "critical"
        )
    elif remaining <= timedelta(days=CERTIFICATE_WARN_DAYS):
        review.report(
            CERTIFICATE_EXPIRY,
            where,
            f"certificate {value} expires in {remaining.days} days, on {stamp}",
        )


def _check_admin(review: _Review) -> None:
    admin = review.doc.get("admin")
    if not isinstance(admin, dict):
        return
    bind = str(admin.get("bind", "127.0.0.1:9901"))
    host = bind.rpartition(":")[0].strip("[]")
    try:
        public = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        public = False  # not an address: validation reports it
    if public:
        review.report(PUBLIC_ADMIN, ("admin", "bind"), f"the admin listener binds {bind}")
    if not admin.get("token"):
        review.report(
            ADMIN_WITHOUT_TOKEN,
            ("admin",),
            "the admin listener has no token" + (" and a public address" if public else ""),
            "high" if public else None,
        )


def _check_trusted_proxies(review: _Review) -> None:
    for index, entry in enumerate(_list(review.doc.get("trusted_proxies"))):
        try:
            network = ipaddress.ip_network(str(entry), strict=False)
        except ValueError:
            continue  # validation reports it
        widest = WIDEST_TRUSTED_V4 if network.version == 4 else WIDEST_TRUSTED_V6
        if network.prefixlen <= widest:
            review.report(
                WIDE_TRUSTED_PROXIES,
                ("trusted_proxies", index),
                f"trusted_proxies[{index}] is {network} "
                f"(2^{network.max_prefixlen - network.prefixlen} addresses)",
                "critical" if network.prefixlen == 0 else None,
            )


def _check_upstreams(review: _Review) -> None:
    for s_index, service in enumerate(_list(review.doc.get("services"))):
        service = _mapping(service)
        upstream = _mapping(service.get("upstream"))
        if upstream.get("tls_verify") is False:
            review.report(
                UPSTREAM_NO_VERIFY,
                ("services", s_index, "upstream", "tls_verify"),
                f"service {service.get('name', s_index)!r} does not verify its upstream's "
                "certificate",
            )


_CHECKS: Final[tuple[Callable[[_Review], None], ...]] = (
    _check_validation,
    _check_routes,
    _check_policy_blocks,
    _check_listeners,
    _check_admin,
    _check_trusted_proxies,
    _check_upstreams,
)


def audit_document(source: AuditSource, *, now: datetime) -> list[Finding]:
    """Run every rule on `source`; findings come most severe first, then by rule and place.

    Args:
        source: The config, from `load_source` or `source_from_text`.
        now: The current time (timezone-aware), for certificate expiry.

    Raises:
        ValueError: `now` is naive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    review = _Review(source, now)
    for check in _CHECKS:
        check(review)
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    return sorted(
        review.findings,
        key=lambda f: (order[f.severity], f.rule.id, f.line or 0, f.path),
    )
