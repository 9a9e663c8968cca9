"""The introspection policy: authenticate callers by an opaque bearer token (RFC 7662).

Hot path: a cached verdict is a dictionary lookup on a digest of the token and no coroutine.
A miss returns an awaitable that POSTs the token to the authorization server's endpoint;
concurrent requests with the same token share that one call. Active answers are cached for
`cache_ttl` seconds but never past the token's `exp`; inactive ones for `inactive_cache_ttl`.
When the endpoint cannot be reached, answers with an error or with a document that is not
RFC 7662, the request is refused with 503 (authentication fails closed) and nothing is cached.

RFC 7662: https://www.rfc-editor.org/rfc/rfc7662
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final

import httptools
from typing_extensions import override

from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import ConfigError, ServiceUnavailable, Unauthenticated
from bastion.policies.introspection.answer import AnswerError, Rules, Verdict, read_answer
from bastion.policies.introspection.cache import VerdictCache, token_key
from bastion.policies.introspection.client import (
    IntrospectionClient,
    IntrospectionFetchError,
    basic_credentials,
)
from bastion.policies.introspection.config import IntrospectionConfig
from bastion.proxy.tls import client_context

_log = logging.getLogger("bastion.introspection")

TOKEN_MISSING: Final = "A bearer token is required."  # noqa: S105 - a message, not a secret
"""Public detail of the 401 when no bearer token was sent (RFC 6750 §3.1: no error code)."""
TOKEN_INVALID: Final = "The bearer token is invalid."  # noqa: S105 - a message, not a secret
"""Public detail of the 401 for any token the authorization server does not vouch for."""
UNAVAILABLE: Final = "Token introspection is unavailable."
"""Public detail of the 503 when the introspection endpoint cannot answer (fail closed)."""

_BEARER = b"bearer"
_AUTHORIZATION = b"authorization"


class IntrospectionPolicy(Policy[IntrospectionConfig]):
    """Authenticate callers by an opaque token checked at an RFC 7662 endpoint.

    Tokens are accepted only from the one `Authorization: Bearer` field (RFC 6750 §2.1); a
    request with two Authorization fields is refused.
    """

    name = "introspection"
    priority = Priority.AUTHENTICATE + 5
    authenticates = True

    def __init__(self, config: IntrospectionConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._clock = deps.clock
        self._rules = Rules(audiences=config.audiences, issuer=config.issuer)
        self._max_header = config.max_token_bytes + 64  # scheme and spaces
        self._ttl = config.cache_ttl
        self._inactive_ttl = config.inactive_cache_ttl
        self.cache = VerdictCache(config.cache_size, deps.clock)
        self.client = IntrospectionClient(
            config.introspection_endpoint,
            authorization=basic_credentials(
                config.client_id, config.client_secret.get_secret_value()
            ),
            ssl_context=self._ssl_context(config),
            timeout=config.timeout,
            max_bytes=config.max_response_bytes,
        )
        self.calls = 0
        """Introspection calls made (a metric source)."""
        self.failures = 0
        """Calls that failed: unreachable, non-200 or not RFC 7662 (a metric source)."""
        self._in_flight: dict[bytes, asyncio.Future[Verdict]] = {}
        self._missing_challenge = f'Bearer realm="{config.realm}"'
        self._invalid_challenge = f'Bearer realm="{config.realm}", error="invalid_token"'

    @staticmethod
    def _ssl_context(config: IntrospectionConfig) -> ssl.SSLContext:
        try:
            return client_context(verify=True, ca_file=config.ca_file)
        except ConfigError as exc:
            raise ValueError(exc.message) from exc

    def _invalid(self, ctx: RequestContext, reason: str) -> Unauthenticated:
        ctx.error = f"introspection: {reason}"
        return Unauthenticated(
            TOKEN_INVALID, challenge=self._invalid_challenge, code="invalid_token"
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
            raise Unauthenticated(
                TOKEN_MISSING, challenge=self._missing_challenge, code="missing_token"
            )
        if len(value) > self._max_header:
            raise self._invalid(ctx, "too_large")
        scheme, _, rest = value.partition(b" ")
        if scheme.lower() != _BEARER:
            raise Unauthenticated(
                TOKEN_MISSING, challenge=self._missing_challenge, code="missing_token"
            )
        token = rest.strip(b" ")
        # RFC 6750 §2.1 b64token: visible ASCII only; anything else never reaches the server.
        if not token or any(byte <= 0x20 or byte >= 0x7F for byte in token):
            raise self._invalid(ctx, "malformed")
        return token

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        token = self._bearer_token(ctx)
        key = token_key(token)
        found, identity = self.cache.get(key)
        if found:
            self._admit(ctx, identity, "inactive (cached)")
            return None
        return self._introspect_then_admit(ctx, token, key)

    def _admit(self, ctx: RequestContext, identity: Identity | None, reason: str) -> None:
        if identity is None:
            raise self._invalid(ctx, reason)
        ctx.authenticate(identity)

    async def _introspect_then_admit(self, ctx: RequestContext, token: bytes, key: bytes) -> None:
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(self._introspect(token, key))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # Shielded: a request that gives up must not cancel the call others are waiting on.
        verdict = await asyncio.shield(pending)
        if verdict.identity is None and verdict.reason == "unavailable":
            ctx.error = "introspection: endpoint unavailable"
            raise ServiceUnavailable(UNAVAILABLE, code="introspection_unavailable")
        self._admit(ctx, verdict.identity, verdict.reason)

    async def _introspect(self, token: bytes, key: bytes) -> Verdict:
        self.calls += 1
        try:
            reply = await self.client.introspect(token.decode("ascii"))
            if reply.status != 200:
                raise IntrospectionFetchError(f"the endpoint answered {reply.status}")
            verdict = read_answer(reply.body, self._rules, self._clock.time())
        except (
            OSError,
            TimeoutError,
            IntrospectionFetchError,
            AnswerError,
            httptools.HttpParserError,
        ) as exc:
            self.failures += 1
            _log.warning("token introspection failed (%s: %s)", type(exc).__name__, exc)
            return Verdict(None, "unavailable")
        if verdict.identity is None:
            self.cache.put(key, None, self._inactive_ttl)
            return verdict
        ttl = self._ttl
        if verdict.expires_at is not None:
            ttl = min(ttl, verdict.expires_at - self._clock.time())
        self.cache.put(key, verdict.identity, ttl)
        return verdict
