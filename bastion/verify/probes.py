"""The probes: each sends a few requests to the running gateway and returns its checks.

A probe never raises for what the gateway does: a refused connection or an unexpected answer is
a failed check with a one-line reason. Credentials and tokens a probe sends are recorded in
`Session.sent_secrets` so the access log can be searched for them afterwards.
"""

from __future__ import annotations

import functools
import secrets
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from bastion.http.cidr import CIDRSet
from bastion.policies.api_key.config import APIKeyConfig
from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.policies.cors.config import CORSConfig
from bastion.policies.injection_guard.config import InjectionGuardConfig
from bastion.policies.introspection.config import IntrospectionConfig
from bastion.policies.ip_filter.config import IPFilterConfig
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.rate_limit.config import RateLimitConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.trusted_proxy.config import TrustedProxyConfig
from bastion.policies.versioning.config import VersioningConfig
from bastion.policies.versioning.headers import normalise_version
from bastion.verify import forge
from bastion.verify.client import ProbeError, Reply, handshake, request, tls_context
from bastion.verify.model import Check, Outcome
from bastion.verify.targets import Endpoint, RoutePlan

MAX_RATE_PROBE = 200
"""Largest limit (plus burst) the rate-limit probe exhausts; above it the probe is skipped."""
MAX_BODY_PROBE = 8 * 1024 * 1024
"""Largest body the size probe sends (the limit plus one byte)."""
AUTH_POLICIES = ("api_key", "basic_auth", "jwt", "introspection")
_SCHEMES = {"api_key": "ApiKey", "basic_auth": "Basic", "jwt": "Bearer", "introspection": "Bearer"}
_PAYLOADS = {
    "sqli": "' OR '1'='1' --",
    "xss": "<script>alert(1)</script>",
    "traversal": "../../../../etc/passwd",
    "cmdi": "; cat /etc/passwd",
    "nosql": '{"$ne": null}',
    "crlf": "x\r\nSet-Cookie: a=b",
    "ssrf": "http://169.254.169.254/latest/meta-data/",
}


@dataclass
class Session:
    """Shared state of one verify run: where to send, how to trust TLS, what was sent."""

    endpoint: Endpoint
    context: ssl.SSLContext
    timeout: float = 5.0
    trusted_loopback: bool = False
    sent_secrets: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0

    def send(
        self,
        plan: RoutePlan,
        *,
        method: str | None = None,
        target: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        """One request to the route's probe path (or `target`)."""
        self.requests += 1
        return request(
            self.endpoint,
            method or plan.method,
            target or plan.path,
            headers=headers,
            body=body,
            host=plan.host,
            context=self.context,
            timeout=self.timeout,
        )

    def remember(self, kind: str, value: str) -> str:
        """Record a secret a probe sends, for the access-log check."""
        self.sent_secrets.append((kind, value))
        return value


def _check(policy: str, plan: RoutePlan, name: str, outcome: Outcome, reason: str = "") -> Check:
    return Check(policy, f"route {plan.name}", name, outcome, reason)


def _expect(
    policy: str,
    plan: RoutePlan,
    name: str,
    send: Callable[[], Reply],
    statuses: tuple[int, ...],
    extra: Callable[[Reply], str | None] | None = None,
    *,
    limited_skips: bool = False,
) -> Check:
    """Send, and pass when the status is one of `statuses` and `extra` finds no problem.

    With `limited_skips`, a 429 from the route's rate limit (which runs before validation)
    is a skip: the probe never reached the policy it tests.
    """
    try:
        reply = send()
    except ProbeError as exc:
        return _check(policy, plan, name, "fail", str(exc))
    if limited_skips and reply.status == 429 and "rate_limit" in plan.policies:
        reason = "the route's rate limit answered 429 first (raise its burst to test this)"
        return _check(policy, plan, name, "skip", reason)
    wanted = " or ".join(str(status) for status in statuses)
    if reply.status not in statuses:
        return _check(policy, plan, name, "fail", f"expected {wanted}, got {reply.status}")
    problem = extra(reply) if extra is not None else None
    if problem:
        return _check(policy, plan, name, "fail", problem)
    return _check(policy, plan, name, "pass", f"{reply.status}")


def report_only(policy: str, plan: RoutePlan, config: BaseModel) -> Check | None:
    """A skip when the policy only reports (it would not reject anything)."""
    if getattr(config, "mode", "enforce") == "report_only":
        return _check(
            policy, plan, "enforcement", "skip", "mode: report_only (logs, never rejects)"
        )
    return None


# --- transport -----------------------------------------------------------------------------------


def _legacy_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 is the point
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = version
        context.maximum_version = version
    return context


def _local_refusal(exc: ssl.SSLError) -> bool:
    text = str(exc).lower()
    return "no protocols available" in text or "no_supported_versions" in text


def tls_checks(endpoint: Endpoint, certificate: Path | None, note: str) -> list[Check]:
    """TLS 1.1 refused; the lowest configured version accepted with the pinned certificate."""
    checks: list[Check] = []
    listener = endpoint.listener
    minimum = listener.tls.min_version if listener is not None and listener.tls else "1.2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.TLSVersion.TLSv1_1
    try:
        version = handshake(endpoint, _legacy_context(old))
        checks.append(
            Check("tls", endpoint.label, "TLS 1.1 refused", "fail", f"{version} accepted")
        )
    except ssl.SSLError as exc:
        if _local_refusal(exc):
            reason = "this machine's OpenSSL cannot offer TLS 1.1"
            checks.append(Check("tls", endpoint.label, "TLS 1.1 refused", "skip", reason))
        else:
            checks.append(
                Check("tls", endpoint.label, "TLS 1.1 refused", "pass", "handshake refused")
            )
    except OSError as exc:
        reason = f"cannot connect: {exc.strerror or exc}"
        checks.append(Check("tls", endpoint.label, "TLS 1.1 refused", "fail", reason))
        return checks
    pairs = [("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)]
    for label, version_enum in pairs:
        client = tls_context(certificate)
        client.minimum_version = version_enum
        client.maximum_version = version_enum
        name = f"TLS {label} " + ("accepted" if label >= minimum else "refused")
        try:
            negotiated = handshake(endpoint, client)
        except (ssl.SSLError, OSError) as exc:
            outcome: Outcome = "pass" if label < minimum else "fail"
            checks.append(Check("tls", endpoint.label, name, outcome, f"handshake failed: {exc}"))
            continue
        outcome = "pass" if label >= minimum else "fail"
        checks.append(Check("tls", endpoint.label, name, outcome, f"{negotiated}{note}"))
    return checks


def redirect_check(endpoint: Endpoint, timeout: float) -> Check:
    """A plain-HTTP listener answers 308 to an https:// Location with the same path and query."""
    name = "HTTP redirected with 308"
    try:
        reply = request(endpoint, "GET", "/bastion-verify?probe=1", timeout=timeout)
    except ProbeError as exc:
        return Check("redirect", endpoint.label, name, "fail", str(exc))
    location = reply.header("location") or ""
    if reply.status != 308:
        return Check("redirect", endpoint.label, name, "fail", f"got {reply.status}, not 308")
    if not location.startswith("https://") or not location.endswith("/bastion-verify?probe=1"):
        reason = f"Location {location!r} is not the same path over https"
        return Check("redirect", endpoint.label, name, "fail", reason)
    if reply.header("strict-transport-security") is not None:
        return Check("redirect", endpoint.label, name, "fail", "HSTS sent over plain HTTP")
    return Check("redirect", endpoint.label, name, "pass", f"308 to {location}")


def security_header_checks(
    plan: RoutePlan, config: SecurityHeadersConfig, reply: Reply, https: bool
) -> list[Check]:
    """Hardening headers present on a response of the route (HSTS only over HTTPS)."""
    policy = "security_headers"
    checks: list[Check] = []
    hsts = reply.header("strict-transport-security")
    if config.hsts and https:
        if hsts and f"max-age={config.max_age}" in hsts:
            checks.append(_check(policy, plan, "HSTS over HTTPS", "pass", hsts))
        else:
            reason = f"Strict-Transport-Security is {hsts!r}, expected max-age={config.max_age}"
            checks.append(_check(policy, plan, "HSTS over HTTPS", "fail", reason))
    elif not https:
        outcome: Outcome = "fail" if hsts else "pass"
        reason = "HSTS sent over plain HTTP" if hsts else "absent over plain HTTP"
        checks.append(_check(policy, plan, "no HSTS over HTTP", outcome, reason))
    wanted: list[tuple[str, str]] = []
    if config.content_type_options:
        wanted.append(("x-content-type-options", "nosniff"))
    if config.frame_options is not None:
        wanted.append(("x-frame-options", config.frame_options))
    if config.referrer_policy is not None:
        wanted.append(("referrer-policy", config.referrer_policy))
    for header, value in wanted:
        got = reply.header(header)
        name = f"{header}: {value}"
        if got is not None and got.lower() == value.lower():
            checks.append(_check(policy, plan, name, "pass", got))
        else:
            checks.append(_check(policy, plan, name, "fail", f"{header} is {got!r}"))
    return checks


# --- authentication ------------------------------------------------------------------------------


def _challenge(scheme: str | None) -> Callable[[Reply], str | None]:
    def check(reply: Reply) -> str | None:
        values = reply.all("www-authenticate")
        if not values:
            return "401 without WWW-Authenticate"
        if scheme is not None and not any(v.lower().startswith(scheme.lower()) for v in values):
            return f"WWW-Authenticate {values[0]!r} is not a {scheme} challenge"
        return None

    return check


def auth_checks(session: Session, plan: RoutePlan, name: str, config: BaseModel) -> list[Check]:
    """Missing and forged credentials (and expired tokens) are refused with 401."""
    skipped = report_only(name, plan, config)
    if skipped is not None:
        return [skipped]
    several = sum(1 for policy in AUTH_POLICIES if policy in plan.policies) > 1
    scheme = None if several else _SCHEMES[name]
    checks = [
        _expect(
            name, plan, "missing credential", lambda: session.send(plan), (401,), _challenge(scheme)
        )
    ]
    forged: list[tuple[str, list[tuple[str, str]]]] = []
    if isinstance(config, APIKeyConfig):
        key = session.remember("random API key", forge.random_api_key())
        forged.append(("forged API key", [(config.header, key)]))
    elif isinstance(config, BasicAuthConfig):
        value, password = forge.basic_credentials()
        session.remember("Basic credentials", value.partition(" ")[2])
        session.remember("password", password)
        forged.append(("wrong password", [("Authorization", value)]))
    elif isinstance(config, JWTConfig):
        for label, expired in (
            ("token signed by a throwaway key", False),
            ("expired token, throwaway key", True),
        ):
            token = session.remember("JWT", forge.throwaway_token(config, expired=expired))
            forged.append((label, [("Authorization", f"Bearer {token}")]))
        own = forge.signed_token(config, expired=True)
        if own is not None:
            session.remember("JWT", own)
            forged.append(("expired token, real secret", [("Authorization", f"Bearer {own}")]))
    elif isinstance(config, IntrospectionConfig):
        token = session.remember("opaque token", secrets.token_urlsafe(32))
        forged.append(("unknown opaque token", [("Authorization", f"Bearer {token}")]))
    for label, headers in forged:
        checks.append(
            _expect(
                name,
                plan,
                label,
                functools.partial(session.send, plan, headers=headers),
                (401,),
                _challenge(scheme),
            )
        )
    return checks


def credential_for(
    session: Session, plan: RoutePlan, supplied: list[tuple[str, str]]
) -> list[tuple[str, str]] | None:
    """Headers that pass the route's authentication, or None when none is known.

    `--auth` when given, else a token minted with the route's own HMAC secret; an empty list
    when the route has no authentication.
    """
    if not any(name in plan.policies for name in AUTH_POLICIES):
        return []
    if supplied:
        return supplied
    config = plan.policies.get("jwt")
    if isinstance(config, JWTConfig) and len([p for p in AUTH_POLICIES if p in plan.policies]) == 1:
        token = forge.signed_token(config, expired=False)
        if token is not None:
            return [("Authorization", "Bearer " + session.remember("JWT", token))]
    return None


_NEEDS_CREDENTIAL = "the route needs authentication: pass --auth (or use a jwt secret key)"


# --- input and network policies ----------------------------------------------------------------


def size_check(
    session: Session, plan: RoutePlan, config: SizeLimitConfig, auth: list[tuple[str, str]] | None
) -> Check:
    """A body one byte over the limit gets 413 (size_limit runs before authentication)."""
    policy = "size_limit"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    size = config.max_body_bytes + 1
    name = f"{size}-byte body"
    if plan.body_method is None:
        return _check(policy, plan, name, "skip", "the route allows no POST, PUT or PATCH")
    if size > MAX_BODY_PROBE:
        return _check(policy, plan, name, "skip", f"limit above {MAX_BODY_PROBE} bytes")
    headers = [("Content-Type", "application/octet-stream"), *(auth or [])]
    body = b"x" * size
    method = plan.body_method
    return _expect(
        policy,
        plan,
        name,
        lambda: session.send(plan, method=method, headers=headers, body=body),
        (413,),
    )


def injection_check(
    session: Session,
    plan: RoutePlan,
    config: InjectionGuardConfig,
    auth: list[tuple[str, str]] | None,
) -> Check:
    """A classic payload in the query string gets 400."""
    policy = "injection_guard"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    category = config.categories[0] if config.categories else "sqli"
    name = f"{category} payload in the query"
    if auth is None:
        return _check(policy, plan, name, "skip", _NEEDS_CREDENTIAL)
    from urllib.parse import quote

    target = f"{plan.path}?q={quote(_PAYLOADS.get(category, _PAYLOADS['sqli']), safe='')}"
    return _expect(
        policy,
        plan,
        name,
        lambda: session.send(plan, target=target, headers=auth),
        (400,),
        limited_skips=True,
    )


def openapi_check(
    session: Session, plan: RoutePlan, config: BaseModel, auth: list[tuple[str, str]] | None
) -> Check:
    """A malformed JSON body is refused (400/422, or 404/405/415 for an undocumented call)."""
    policy = "openapi"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    name = "malformed JSON body"
    if auth is None:
        return _check(policy, plan, name, "skip", _NEEDS_CREDENTIAL)
    if plan.body_method is None:
        return _check(policy, plan, name, "skip", "the route takes no request body")
    method = plan.body_method
    headers = [("Content-Type", "application/json"), *auth]
    return _expect(
        policy,
        plan,
        name,
        lambda: session.send(plan, method=method, headers=headers, body=b'{"bastion-verify": '),
        (400, 404, 405, 415, 422),
        limited_skips=True,
    )


def versioning_checks(
    session: Session,
    plan: RoutePlan,
    config: VersioningConfig,
    auth: list[tuple[str, str]] | None,
) -> list[Check]:
    """Each version past its sunset answers 410 (through the path or a version header)."""
    policy = "versioning"
    now = datetime.now(UTC)
    sunset = [
        name for name, item in config.versions.items() if item.sunset_at and item.sunset_at <= now
    ]
    if not sunset:
        return []
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return [skipped]
    first = plan.path.strip("/").split("/", 1)[0]
    in_path = next(
        (name for name in config.versions if normalise_version(name) == normalise_version(first)),
        None,
    )
    checks: list[Check] = []
    for name in sunset:
        label = f"version {name} past its sunset"
        headers: list[tuple[str, str]] = []
        if in_path is not None and "path" in config.sources:
            if in_path != name:
                continue  # the route's path names another version: not reachable here
        elif "header" in config.sources:
            headers = [(config.headers[0], name)]
        else:
            checks.append(_check(policy, plan, label, "skip", "no path or header selects it"))
            continue
        if auth is None:
            checks.append(_check(policy, plan, label, "skip", _NEEDS_CREDENTIAL))
            continue
        sent = [*headers, *auth]
        checks.append(
            _expect(
                policy,
                plan,
                label,
                functools.partial(session.send, plan, headers=sent),
                (410,),
                limited_skips=True,
            )
        )
    return checks


def cors_check(session: Session, plan: RoutePlan, config: CORSConfig) -> Check:
    """A preflight from a foreign origin is not granted; an allowed origin is."""
    policy = "cors"
    name = "foreign origin not allowed"
    foreign = f"https://bastion-verify-{secrets.token_hex(3)}.invalid"
    headers = [("Origin", foreign), ("Access-Control-Request-Method", "GET")]
    try:
        reply = session.send(plan, method="OPTIONS", headers=headers)
    except ProbeError as exc:
        return _check(policy, plan, name, "fail", str(exc))
    granted = reply.header("access-control-allow-origin")
    if config.allow_origins == ["*"]:
        if granted == "*" and reply.header("access-control-allow-credentials") == "true":
            return _check(policy, plan, name, "fail", "wildcard origin granted with credentials")
        return _check(policy, plan, name, "pass", "wildcard policy, no credentials")
    if granted in (foreign, "*"):
        return _check(policy, plan, name, "fail", f"Access-Control-Allow-Origin: {granted}")
    return _check(policy, plan, name, "pass", f"{reply.status}, no Access-Control-Allow-Origin")


def ip_filter_check(session: Session, plan: RoutePlan, config: IPFilterConfig) -> Check:
    """When the probe's own (loopback) address is refused by the filter, the route answers 403."""
    policy = "ip_filter"
    address = session.endpoint.host
    allowed = CIDRSet(config.allow)
    denied = CIDRSet(config.deny)
    refused = address in denied or (not allowed.is_empty and address not in allowed)
    name = f"client {address} refused"
    if not refused:
        return _check(policy, plan, name, "skip", f"{address} is allowed by the filter")
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    return _expect(policy, plan, name, lambda: session.send(plan), (403,))


def rate_limit_checks(
    session: Session,
    plan: RoutePlan,
    config: RateLimitConfig,
    auth: list[tuple[str, str]] | None,
) -> list[Check]:
    """N+1 requests get 429 with Retry-After and RateLimit; a spoofed X-Forwarded-For still does."""
    policy = "rate_limit"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return [skipped]
    budget = min(limit.limit + limit.burst for limit in config.resolved())
    name = f"{budget + 1} requests limited"
    if budget > MAX_RATE_PROBE:
        reason = f"limit {budget} is above {MAX_RATE_PROBE} requests: not exhausted"
        return [_check(policy, plan, name, "skip", reason)]
    if auth is None:
        return [_check(policy, plan, name, "skip", _NEEDS_CREDENTIAL)]
    limited: Reply | None = None
    sent = 0
    for _ in range(budget + 1):
        sent += 1
        try:
            reply = session.send(plan, headers=auth)
        except ProbeError as exc:
            return [_check(policy, plan, name, "fail", f"request {sent}: {exc}")]
        if reply.status == 429:
            limited = reply
            break
    if limited is None:
        reason = f"no 429 after {sent} requests (limit {budget})"
        return [_check(policy, plan, name, "fail", reason)]
    problems = []
    retry = limited.header("retry-after")
    if retry is None or not retry.isdigit():
        problems.append(f"Retry-After is {retry!r}")
    if config.headers and limited.header("ratelimit") is None:
        problems.append("no RateLimit header")
    if config.headers and limited.header("ratelimit-policy") is None:
        problems.append("no RateLimit-Policy header")
    checks = [
        _check(policy, plan, name, "fail", "; ".join(problems))
        if problems
        else _check(
            policy,
            plan,
            name,
            "pass",
            f"429 after {sent} request{'s' if sent > 1 else ''}, Retry-After {retry}",
        )
    ]
    checks.append(_spoof_check(session, plan, auth))
    return checks


def _spoof_check(session: Session, plan: RoutePlan, auth: list[tuple[str, str]]) -> Check:
    policy = "trusted_proxy"
    name = "spoofed X-Forwarded-For ignored"
    if session.trusted_loopback:
        return _check(policy, plan, name, "skip", "the probe's loopback address is a trusted proxy")
    spoofed = f"203.0.113.{secrets.randbelow(250) + 1}"
    headers = [("X-Forwarded-For", spoofed), ("Forwarded", f"for={spoofed}"), *auth]
    return _expect(
        policy,
        plan,
        name,
        lambda: session.send(plan, headers=headers),
        (429,),
    )


def trusted_loopback(global_proxies: list[str], configs: list[BaseModel], address: str) -> bool:
    """Whether the probe's address may set forwarding headers (then spoofing is not testable)."""
    networks = list(global_proxies)
    for config in configs:
        if isinstance(config, TrustedProxyConfig):
            networks.extend(config.proxies)
    return bool(networks) and address in CIDRSet(networks)
