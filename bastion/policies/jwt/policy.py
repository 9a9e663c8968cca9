"""The jwt policy: authenticate callers by an OAuth 2.0 bearer JWT (RFC 6750, RFC 9068).

Hot path: a verified-token cache hit is a dictionary lookup and no coroutine. A miss with a
known key verifies synchronously (one signature check). Only when keys must be fetched (first
use of a JWKS URL, or a `kid` the current set lacks, at a bounded rate) does `access` return an
awaitable. Every failure is a 401 whose body and challenge say only what RFC 6750 §3 allows
(`invalid_token`, or no error at all when no bearer token was sent); the precise reason goes to
the access log's `error.message`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from typing import Protocol

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import ConfigError, ServiceUnavailable, Unauthenticated
from bastion.policies.jwt.cache import VerifiedTokenCache
from bastion.policies.jwt.config import LOCAL_ISSUER_EXTRA, SELF_ISSUER, JWTConfig
from bastion.policies.jwt.jwks import Fetch, HTTPSFetcher, KeySource, file_fetcher
from bastion.policies.jwt.keys import KeySet, parse_jwks, parse_pem, secret_key_set
from bastion.policies.jwt.verify import (
    TokenError,
    TokenRules,
    UnknownKeyError,
    identity_from,
    verify_access_token,
)
from bastion.proxy.tls import client_context

TOKEN_MISSING = "A bearer token is required."  # noqa: S105 - a message, not a secret
"""Public detail of the 401 when no bearer token was sent (RFC 6750 §3.1: no error code)."""
TOKEN_INVALID = "The bearer token is invalid."  # noqa: S105 - a message, not a secret
"""Public detail of the 401 for any token that fails verification, whatever the reason."""
KEYS_UNAVAILABLE = "Token verification keys are unavailable."
"""Public detail of the 503 when no key set could ever be loaded (fail closed)."""

NO_LOCAL_ISSUER = "issuer: self needs the top-level `oauth:` block (the built-in OAuth server)"
"""Configuration error of `issuer: self` in a gateway without an authorization server."""
LOCAL_MIN_REFETCH = 1.0
"""Least seconds between two reloads of the gateway's own key set (an in-process read)."""

_BEARER = b"bearer"
_AUTHORIZATION = b"authorization"


class LocalIssuer(Protocol):
    """The gateway's own authorization server, as `issuer: self` uses it (bastion.oauth)."""

    @property
    def issuer(self) -> str:
        """The issuer URL (`iss` of its tokens)."""
        ...

    @property
    def default_audience(self) -> str:
        """The `aud` of tokens for clients without an audience of their own."""
        ...

    async def jwks_document(self) -> bytes:
        """The current public key set (RFC 7517 JSON), reloaded from the store."""
        ...

    def is_revoked(self, jti: str | None) -> bool:
        """Whether the token with this `jti` was revoked (synchronous: a set lookup)."""
        ...


class JWTPolicy(Policy[JWTConfig]):
    """Authenticate callers by a signed JWT access token in `Authorization: Bearer`.

    Tokens are accepted only from the Authorization header (not the query string or a form
    body, RFC 6750 §2.2-2.3, which leak into logs). A request with two Authorization fields is
    refused: proxies may disagree about which one counts.
    """

    name = "jwt"
    priority = Priority.AUTHENTICATE + 10
    authenticates = True

    def __init__(self, config: JWTConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._clock = deps.clock
        allowed = frozenset(config.allowed_algorithms)
        local: LocalIssuer | None = None
        if config.issuer == SELF_ISSUER:
            local = deps.extras.get(LOCAL_ISSUER_EXTRA)
            if local is None:
                raise ValueError(NO_LOCAL_ISSUER)
        # Revoked tokens of the gateway's own server are refused, on cache hits too.
        self._is_revoked = local.is_revoked if local is not None else None
        audiences = config.audiences
        if local is not None and not audiences:
            audiences = frozenset({local.default_audience})
        self._rules = TokenRules(
            issuer=local.issuer if local is not None else config.issuer,
            audiences=audiences,
            algorithms=allowed,
            leeway=config.leeway,
            required_claims=tuple(config.required_claims),
            max_token_bytes=config.max_token_bytes,
        )
        self._max_header = config.max_token_bytes + 64  # scheme and spaces
        self._groups_claim = config.groups_claim
        self._cache = VerifiedTokenCache(config.cache_size, config.cache_ttl, deps.clock)
        self._missing_challenge = f'Bearer realm="{config.realm}"'
        self._invalid_challenge = f'Bearer realm="{config.realm}", error="invalid_token"'

        def parse(document: bytes) -> KeySet:
            return parse_jwks(document, allowed)

        initial: KeySet | None = None
        fetch: Fetch | None = None
        min_interval = config.jwks_min_refetch_interval
        if local is not None:
            fetch = local.jwks_document
            min_interval = min(min_interval, LOCAL_MIN_REFETCH)
        elif config.secret is not None:
            initial = secret_key_set(
                config.secret.get_secret_value().encode(), config.allowed_algorithms[0]
            )
        elif config.public_key_pem is not None:
            initial = parse_pem(config.public_key_pem, allowed)
        elif config.jwks_file is not None:
            fetch = file_fetcher(config.jwks_file, config.jwks_max_bytes)
            initial = parse(config.jwks_file.read_bytes())  # OSError/ValueError: a config error
        elif config.jwks_uri is not None:
            fetch = HTTPSFetcher(
                config.jwks_uri,
                ssl_context=self._ssl_context(config),
                timeout=config.jwks_timeout,
                max_bytes=config.jwks_max_bytes,
            )
        self.keys = KeySource(
            clock=deps.clock,
            parse=parse,
            fetch=fetch,
            initial=initial,
            refresh_interval=config.jwks_refresh_interval,
            min_interval=min_interval,
            on_keys_removed=self._cache.clear,
        )
        if initial is None:
            self.keys.refresh_in_background()  # warm up when built inside the running loop

    @staticmethod
    def _ssl_context(config: JWTConfig) -> ssl.SSLContext:
        try:
            return client_context(verify=True, ca_file=config.jwks_ca_file)
        except ConfigError as exc:
            raise ValueError(exc.message) from exc

    def _invalid(self, ctx: RequestContext, reason: str) -> Unauthenticated:
        ctx.error = f"jwt: {reason}"
        return Unauthenticated(
            TOKEN_INVALID, challenge=self._invalid_challenge, code="invalid_token"
        )

    def _missing(self) -> Unauthenticated:
        return Unauthenticated(
            TOKEN_MISSING, challenge=self._missing_challenge, code="missing_token"
        )

    def _bearer_token(self, ctx: RequestContext) -> bytes:
        """The token from the one `Authorization: Bearer` field, or a 401."""
        value: bytes | None = None
        for name, field_value in ctx.request.headers.items():
            if name == _AUTHORIZATION:
                if value is not None:
                    raise self._invalid(ctx, "duplicate_authorization")
                value = field_value
        if value is None:
            raise self._missing()
        if len(value) > self._max_header:
            raise self._invalid(ctx, "too_large")
        scheme, _, rest = value.partition(b" ")
        if scheme.lower() != _BEARER:
            # Another scheme (Basic, ApiKey...) is not a bearer token: challenge without error.
            raise self._missing()
        token = rest.strip(b" ")
        if not token:
            raise self._invalid(ctx, "malformed")
        return token

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        token = self._bearer_token(ctx)
        identity = self._cache.get(token)
        if identity is not None:
            if self._is_revoked is not None and self._is_revoked(identity.credential_id):
                raise self._invalid(ctx, "revoked")
            ctx.authenticate(identity)
            return None
        source = self.keys
        keys = source.keys
        if keys is None:
            return self._verify_after_refresh(ctx, token)
        if source.is_stale():
            source.refresh_in_background()
        return self._verify(ctx, token, keys, may_refetch=True)

    def _verify(
        self, ctx: RequestContext, token: bytes, keys: KeySet, *, may_refetch: bool
    ) -> PhaseResult:
        try:
            verified = verify_access_token(token, keys, self._rules, self._clock)
        except UnknownKeyError as exc:
            if may_refetch and exc.kid is not None and self.keys.may_fetch():
                return self._verify_after_refresh(ctx, token)
            raise self._invalid(ctx, exc.reason) from None
        except TokenError as exc:
            raise self._invalid(ctx, exc.reason) from None
        if self._is_revoked is not None and self._is_revoked(verified.token_id):
            raise self._invalid(ctx, "revoked")
        identity = identity_from(verified, self._groups_claim)
        self._cache.put(token, identity, verified.expires_at)
        ctx.authenticate(identity)
        return None

    def _verify_after_refresh(self, ctx: RequestContext, token: bytes) -> Awaitable[None]:
        return self._refresh_then_verify(ctx, token)

    async def _refresh_then_verify(self, ctx: RequestContext, token: bytes) -> None:
        keys = await self.keys.refresh()
        if keys is None:
            ctx.error = "jwt: no key set could be loaded"
            raise ServiceUnavailable(KEYS_UNAVAILABLE, code="jwks_unavailable")
        self._verify(ctx, token, keys, may_refetch=False)
