"""Run every probe the config calls for against the running gateway and collect the checks.

How this works: the listeners of the config (or `--base-url`) give loopback endpoints; TLS and
redirect listeners are probed first; then each route, with its policies merged as the gateway
merges them (route over service over global), gets a baseline request (security headers) and
one probe per policy. Rate limits run last, because exhausting a bucket would turn every later
probe into a 429. Finally the access log, if given, is searched for every credential sent.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from bastion.config.models import GatewayConfig, ListenerConfig
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.cors.config import CORSConfig
from bastion.policies.injection_guard.config import InjectionGuardConfig
from bastion.policies.ip_filter.config import IPFilterConfig
from bastion.policies.rate_limit.config import RateLimitConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.versioning.config import VersioningConfig
from bastion.proxy.tls import DEV_CERT_FILE
from bastion.verify import authz, probes
from bastion.verify.client import ProbeError, tls_context
from bastion.verify.model import Check, VerifyReport
from bastion.verify.targets import (
    Endpoint,
    RoutePlan,
    effective_policies,
    endpoint_from_url,
    listener_endpoints,
    probe_endpoint,
)

_UNVERIFIED = " (certificate not verified: no certificate file found)"


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """How to run the probes.

    Attributes:
        base_url: Send route probes here instead of the config's first listener (loopback only).
        access_log: The gateway's access log, searched afterwards for the credentials sent.
        auth: Credentials that pass the routes' authentication (`Bearer ...`, `Basic ...` or
            `Header: value`), needed to reach rate limits and validation behind it.
        limited_auth: Credentials that authenticate but lack a route's scopes or groups, to
            prove the scopes and acl policies refuse them.
        allow_lockout: Let the brute_force probe lock this machine's address out of a route
            for its cool-down (needed where credentials name no identity, e.g. bearer tokens).
        timeout: Seconds per request.
        log_wait: Longest wait, in seconds, for the gateway to flush its access log.
    """

    base_url: str | None = None
    access_log: Path | None = None
    auth: tuple[str, ...] = ()
    limited_auth: tuple[str, ...] = ()
    allow_lockout: bool = False
    timeout: float = 5.0
    log_wait: float = 6.0


def parse_auth(value: str) -> tuple[str, str]:
    """`Bearer x` / `Basic x` → an Authorization header; `Name: value` → that header.

    Raises:
        ValueError: the value has neither form.
    """
    scheme = value.split(" ", 1)[0].lower()
    if scheme in ("bearer", "basic") and " " in value:
        return "Authorization", value
    name, sep, rest = value.partition(":")
    if not sep or not name.strip() or " " in name.strip() or not rest.strip():
        raise ValueError("expected 'Bearer TOKEN', 'Basic B64' or 'Header: value'")
    return name.strip(), rest.strip()


def _certificate(listener: ListenerConfig | None, config: GatewayConfig) -> Path | None:
    if listener is not None and listener.tls is not None and listener.tls.certificate is not None:
        return Path(listener.tls.certificate)
    dev = Path(config.state_dir) / DEV_CERT_FILE
    return dev if dev.is_file() else None


def _https_listener(config: GatewayConfig) -> ListenerConfig | None:
    return next((item for item in config.listeners if item.tls is not None), None)


def _context(endpoint: Endpoint, config: GatewayConfig) -> tuple[ssl.SSLContext, str]:
    listener = endpoint.listener or _https_listener(config)
    certificate = _certificate(listener, config)
    return tls_context(certificate), "" if certificate is not None else _UNVERIFIED


def _route_checks(
    session: probes.Session,
    plan: RoutePlan,
    supplied: list[tuple[str, str]],
    limited: list[tuple[str, str]],
) -> tuple[list[Check], bool, list[tuple[str, str]] | None]:
    """The route's probes except rate limits; whether it was reached; the credential used."""
    checks: list[Check] = []
    policies = plan.policies
    ip_filter = policies.get("ip_filter")
    if isinstance(ip_filter, IPFilterConfig):
        check = probes.ip_filter_check(session, plan, ip_filter)
        checks.append(check)
        if check.outcome != "skip":  # the route refuses the probe's own address: nothing else
            return checks, False, None
    auth = probes.credential_for(session, plan, supplied)
    target = f"route {plan.name}"
    try:
        # Without credentials: hardening headers reach rejections too, and a rate limit's
        # budget is kept for the probes that need it.
        baseline = session.send(plan)
    except ProbeError as exc:
        checks.append(Check("route", target, "route answers", "fail", str(exc)))
        return checks, False, None
    headers = policies.get("security_headers")
    if isinstance(headers, SecurityHeadersConfig):
        https = session.endpoint.kind == "https"
        checks.extend(probes.security_header_checks(plan, headers, baseline, https))
    for name in probes.AUTH_POLICIES:
        if name in policies:
            checks.extend(probes.auth_checks(session, plan, name, policies[name]))
    checks.extend(authz.authorization_checks(session, plan, policies, limited))
    size = policies.get("size_limit")
    if isinstance(size, SizeLimitConfig):
        checks.append(probes.size_check(session, plan, size, auth))
    guard = policies.get("injection_guard")
    if isinstance(guard, InjectionGuardConfig):
        checks.append(probes.injection_check(session, plan, guard, auth))
    if "openapi" in policies:
        checks.append(probes.openapi_check(session, plan, policies["openapi"], auth))
    versioning = policies.get("versioning")
    if isinstance(versioning, VersioningConfig):
        checks.extend(probes.versioning_checks(session, plan, versioning, auth))
    cors = policies.get("cors")
    if isinstance(cors, CORSConfig):
        checks.append(probes.cors_check(session, plan, cors))
    return checks, True, auth


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def access_log_check(path: Path, start: int, sent: list[tuple[str, str]], wait: float) -> Check:
    """Wait for the gateway's periodic flush, then search the new lines for every secret sent."""
    target = f"access log {path}"
    name = "no probe credential logged"
    deadline = time.monotonic() + wait
    size = _log_size(path)
    while time.monotonic() < deadline:
        time.sleep(1.2)
        now = _log_size(path)
        if now > start and now == size:
            break
        size = now
    size = _log_size(path)
    if size <= start:
        reason = "the log did not grow during the probes: is this the gateway's access log?"
        return Check("access_log", target, name, "fail", reason)
    with path.open("rb") as handle:
        handle.seek(start)
        text = handle.read(size - start).decode("utf-8", "replace")
    leaked = sorted({kind for kind, value in sent if value and value in text})
    if leaked:
        return Check("access_log", target, name, "fail", "logged in clear: " + ", ".join(leaked))
    if not sent:
        return Check("access_log", target, name, "skip", "no probe sent a credential")
    return Check("access_log", target, name, "pass", f"{len(sent)} secrets searched, none found")


def run_verify(config: GatewayConfig, options: VerifyOptions) -> VerifyReport:
    """Probe the running gateway described by `config`.

    Raises:
        ValueError: `base_url` is not a loopback URL or an `auth` value is malformed.
    """
    report = VerifyReport()
    supplied = [parse_auth(value) for value in options.auth]
    limited = [parse_auth(value) for value in options.limited_auth]
    chosen = endpoint_from_url(options.base_url) if options.base_url else None
    endpoints, remote = listener_endpoints(config)
    for bind in remote:
        reason = "not a loopback address: probes stay on this machine"
        report.checks.append(Check("listener", f"listener {bind}", "reachable", "skip", reason))
    for endpoint in endpoints:
        if endpoint.kind == "https":
            certificate = _certificate(endpoint.listener, config)
            note = "" if certificate is not None else _UNVERIFIED
            report.checks.extend(probes.tls_checks(endpoint, certificate, note))
        elif endpoint.kind == "redirect":
            report.checks.append(probes.redirect_check(endpoint, options.timeout))
            report.requests += 1
    base = chosen or probe_endpoint(endpoints)
    if base is None:
        reason = "no loopback HTTPS or plaintext listener to send route probes to"
        report.checks.append(Check("route", "gateway", "routes probed", "fail", reason))
        return report
    context, _ = _context(base, config)
    plans = effective_policies(config)
    proxies = [plan.policies["trusted_proxy"] for plan in plans if "trusted_proxy" in plan.policies]
    session = probes.Session(
        endpoint=base,
        context=context,
        timeout=options.timeout,
        trusted_loopback=probes.trusted_loopback(config.trusted_proxies, proxies, base.host),
    )
    for kind, value in supplied:
        session.remember(f"--auth {kind}", value)
    for kind, value in limited:
        session.remember(f"--limited-auth {kind}", value)
    log_start = _log_size(options.access_log) if options.access_log else 0
    deferred: list[tuple[RoutePlan, RateLimitConfig, list[tuple[str, str]] | None]] = []
    lockouts: list[tuple[RoutePlan, BruteForceConfig, int]] = []
    for plan in plans:
        checks, reached, auth = _route_checks(session, plan, supplied, limited)
        report.checks.extend(checks)
        limit = plan.policies.get("rate_limit")
        if reached and isinstance(limit, RateLimitConfig):
            deferred.append((plan, limit, auth))
        guard = plan.policies.get("brute_force")
        if reached and isinstance(guard, BruteForceConfig):
            # Every authentication probe of the route may have counted as a failure.
            failures = sum(1 for check in checks if check.policy in probes.AUTH_POLICIES)
            lockouts.append((plan, guard, failures))
    for plan, limit, auth in deferred:
        report.checks.extend(probes.rate_limit_checks(session, plan, limit, auth))
    # Last: a lockout would turn the probes after it into 429s.
    for plan, guard, failures in lockouts:
        report.checks.extend(
            authz.brute_force_checks(
                session,
                plan,
                guard,
                failures_sent=failures,
                allow_lockout=options.allow_lockout,
            )
        )
    if options.access_log is not None:
        report.checks.append(
            access_log_check(options.access_log, log_start, session.sent_secrets, options.log_wait)
        )
    report.requests += session.requests
    return report
