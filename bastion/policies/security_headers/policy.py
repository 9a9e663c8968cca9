"""The security_headers policy: hardening headers on every response, errors included."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import Policy, PolicyDeps, Priority
from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.trusted_proxy.policy import FORWARDED_PROTO

_NO_STORE = b"no-store"


class SecurityHeadersPolicy(Policy[SecurityHeadersConfig]):
    """Add browser hardening headers to responses and remove ones that fingerprint the upstream.

    Works on the response head only and keeps no per-request state, so it also decorates the
    problem+json replies of rejected requests. HSTS goes only on responses to HTTPS requests:
    RFC 6797 §7.2 (https://www.rfc-editor.org/rfc/rfc6797#section-7.2).
    """

    name = "security_headers"
    priority = Priority.HARDEN

    def __init__(self, config: SecurityHeadersConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        hsts = None
        if config.hsts:
            hsts = b"max-age=%d" % config.max_age
            if config.include_subdomains:
                hsts += b"; includeSubDomains"
            if config.preload:
                hsts += b"; preload"
        self._hsts = hsts
        self._csp = (
            config.content_security_policy.encode("ascii")
            if config.content_security_policy is not None
            else None
        )
        # Set unconditionally, replacing an upstream's value: Bastion's config is the policy.
        fixed: list[tuple[bytes, bytes]] = []
        if config.content_type_options:
            fixed.append((b"x-content-type-options", b"nosniff"))
        if config.frame_options is not None:
            fixed.append((b"x-frame-options", config.frame_options.encode("ascii")))
        if config.referrer_policy is not None:
            fixed.append((b"referrer-policy", config.referrer_policy.encode("ascii")))
        self._fixed = tuple(fixed)
        self._remove = frozenset(name.encode("ascii") for name in config.remove_headers)
        # One pass drops everything this policy removes or replaces; the fixed values are then
        # appended (cheaper than a `set` per header on every response).
        self._drop = self._remove | {name for name, _ in fixed}
        self._drop_with_hsts = self._drop | {b"strict-transport-security"}
        self._no_store_from = 0 if config.no_store_all else 400 if config.no_store_errors else None

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        headers = ctx.response_headers
        request = ctx.request
        # Behind a TLS-terminating proxy the trusted_proxy policy records the client's scheme.
        https = request.scheme == "https" or request.extra.get(FORWARDED_PROTO) == "https"
        hsts = self._hsts if https else None
        headers.remove_many(self._drop_with_hsts if hsts is not None else self._drop)
        items = headers.items()
        items.extend(self._fixed)
        if hsts is not None:
            items.append((b"strict-transport-security", hsts))
        if self._csp is not None:
            headers.setdefault(b"content-security-policy", self._csp)
        if self._no_store_from is not None and ctx.status >= self._no_store_from:
            headers.set(b"cache-control", _NO_STORE)
