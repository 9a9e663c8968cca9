"""The authorization server's endpoints as functions of (headers, body) → Response.

The token endpoint implements the client-credentials grant (RFC 6749 §4.4); introspection
(RFC 7662), revocation (RFC 7009), metadata (RFC 8414) and the public key set complete it.
Access tokens are JWTs per RFC 9068. These functions do no socket I/O (the store is awaited);
`routes.py` connects them to the gateway's listener.

RFC 6749 §4.4: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
RFC 9068: https://www.rfc-editor.org/rfc/rfc9068
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Final

import orjson
from joserfc import jws

from bastion.clock import Clock
from bastion.errors import StoreUnavailable
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth.clients import authenticate_client, presented_credentials
from bastion.oauth.config import OAuthConfig
from bastion.oauth.errors import (
    GRANT_NOT_ALLOWED,
    MISSING_GRANT_TYPE,
    MISSING_TOKEN,
    SCOPE_NOT_ALLOWED,
    UNSUPPORTED_GRANT,
    OAuthError,
    json_response,
)
from bastion.oauth.form import parse_form
from bastion.oauth.keys import KeyRing
from bastion.policies.jwt.verify import TokenError, TokenRules, VerifiedToken, verify_access_token
from bastion.store.base import OAuthClientRecord, OAuthStore

_log = logging.getLogger("bastion.oauth")

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a path, not a secret
INTROSPECT_PATH: Final = "/oauth/introspect"
REVOKE_PATH: Final = "/oauth/revoke"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
JWKS_PATH: Final = "/.well-known/jwks.json"

GRANT_TYPES: Final = ("client_credentials",)
"""Grants this server implements (no implicit or password grant: RFC 9700 §2.1.2, §2.4)."""
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post")
REVOCATION_SYNC_INTERVAL: Final = 1.0
"""Seconds between reloads of the revoked-token list written by other processes."""
LEEWAY: Final = 30.0
# RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_MAX_SCOPES: Final = 64


class _AnyAudience(frozenset[str]):
    """Every audience: the server checks its own tokens whatever client audience they carry."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


class Revocations:
    """Revoked access tokens by `jti`, each kept until the token expires.

    Checked synchronously on every request (a dict lookup); the set written by other processes
    is reloaded from the store in the background, at most every `REVOCATION_SYNC_INTERVAL`.
    """

    def __init__(self, store: OAuthStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._synced_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def add(self, jti: str, expires_at: float) -> None:
        """Refuse `jti` from now on in this process (the store tells the others)."""
        self._revoked[jti] = expires_at

    def is_revoked(self, jti: str | None) -> bool:
        """Whether the token with this `jti` was revoked (and has not expired yet)."""
        self._maybe_sync()
        if jti is None:
            return False
        expires = self._revoked.get(jti)
        return expires is not None and expires > self._clock.time() - LEEWAY

    def _maybe_sync(self) -> None:
        if self._clock.monotonic() - self._synced_at < REVOCATION_SYNC_INTERVAL:
            return
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._synced_at = self._clock.monotonic()
        self._task = loop.create_task(self.sync())

    async def sync(self) -> None:
        """Reload the revoked tokens from the store (failures logged, the old set kept)."""
        now = self._clock.time()
        try:
            rows = await self._store.list_revocations(now - LEEWAY)
        except StoreUnavailable as exc:
            _log.warning("revoked tokens could not be reloaded: %s", exc)
            return
        fresh = {jti: expires for jti, expires in self._revoked.items() if expires > now - LEEWAY}
        fresh.update(rows)
        self._revoked = fresh


class AuthorizationServer:
    """The built-in OAuth 2.0 authorization server of one gateway configuration."""

    def __init__(
        self,
        config: OAuthConfig,
        store: OAuthStore,
        clock: Clock,
        *,
        pepper: bytes | None = None,
    ) -> None:
        self.config = config
        self.issuer = config.issuer
        self.store = store
        self.clock = clock
        self.keys = KeyRing(store, config, clock, pepper)
        self.revocations = Revocations(store, clock)
        self._rules = TokenRules(
            issuer=config.issuer,
            audiences=_AnyAudience(),
            algorithms=frozenset({"ES256", "RS256"}),
            leeway=LEEWAY,
        )

    # What the jwt policy uses for `issuer: self` (see bastion.policies.jwt.policy.LocalIssuer).

    @property
    def default_audience(self) -> str:
        """The `aud` of tokens for clients without their own audience: the issuer URL."""
        return self.issuer

    async def jwks_document(self) -> bytes:
        """The current public key set as JSON, reloaded from the store when due."""
        await self.keys.refresh(force=True)
        return orjson.dumps(self.keys.jwks())

    def is_revoked(self, jti: str | None) -> bool:
        """Whether an access token was revoked (synchronous; see `Revocations`)."""
        return self.revocations.is_revoked(jti)

    # Endpoints.

    async def token(self, headers: Headers, body: bytes) -> Response:
        """POST /oauth/token (RFC 6749 §3.2): issue an access token.

        Raises:
            OAuthError: any refusal, per RFC 6749 §5.2.
            StoreUnavailable: the store could not answer.
        """
        params = parse_form(body)
        credentials = presented_credentials(headers, params)
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", MISSING_GRANT_TYPE)
        client = await authenticate_client(self.store, credentials)
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", UNSUPPORTED_GRANT)
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", GRANT_NOT_ALLOWED)
        scopes = self._granted_scopes(client, params.get("scope"))
        token, expires_in = await self.issue_access_token(client, scopes, subject=client.id)
        document: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }
        if scopes:
            document["scope"] = " ".join(scopes)
        return json_response(document)

    @staticmethod
    def _granted_scopes(client: OAuthClientRecord, requested: str | None) -> list[str]:
        """The requested scopes if all are allowed; all allowed ones when none are asked for."""
        if requested is None:
            return sorted(client.scopes)
        wanted = requested.split(" ")
        if len(wanted) > _MAX_SCOPES or not all(_SCOPE_TOKEN.fullmatch(s) for s in wanted):
            raise OAuthError("invalid_scope", SCOPE_NOT_ALLOWED)
        if not set(wanted) <= client.scopes:
            raise OAuthError("invalid_scope", SCOPE_NOT_ALLOWED)
        return list(dict.fromkeys(wanted))

    async def issue_access_token(
        self, client: OAuthClientRecord, scopes: list[str], *, subject: str
    ) -> tuple[str, int]:
        """A signed RFC 9068 access token and its lifetime in seconds.

        Raises:
            StoreUnavailable: the signing keys could not be loaded.
        """
        if self.keys.needs_reload():
            await self.keys.refresh()
        key = self.keys.signing_key()
        if key is None:
            raise StoreUnavailable("no signing key")
        now = int(self.clock.time())
        ttl = self.config.access_token_ttl
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": client.audience or self.default_audience,
            "client_id": client.id,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + ttl,
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        header = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
        token = jws.serialize_compact(header, orjson.dumps(claims), key.key)
        return token, ttl

    def _verify_own(self, token: str) -> VerifiedToken | None:
        """One of this server's tokens, verified (signature, issuer, expiry); None otherwise."""
        try:
            verified = verify_access_token(token, self.keys.verify_keys, self._rules, self.clock)
        except TokenError:
            return None
        return verified

    async def _client_and_token(self, headers: Headers, body: bytes) -> tuple[str, str]:
        params = parse_form(body)
        credentials = presented_credentials(headers, params)
        client = await authenticate_client(self.store, credentials)
        token = params.get("token")
        if token is None:
            raise OAuthError("invalid_request", MISSING_TOKEN)
        if self.keys.needs_reload():
            await self.keys.refresh()
        return client.id, token

    async def introspect(self, headers: Headers, body: bytes) -> Response:
        """POST /oauth/introspect (RFC 7662 §2): whether a token is active, and its claims.

        Raises:
            OAuthError: client authentication failed or the token parameter is missing.
            StoreUnavailable: the store could not answer.
        """
        _, token = await self._client_and_token(headers, body)
        verified = self._verify_own(token)
        if verified is None or self.is_revoked(verified.token_id):
            return json_response({"active": False})
        document: dict[str, object] = {"active": True, "token_type": "Bearer"}
        for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti"):
            if name in verified.claims:
                document[name] = verified.claims[name]
        return json_response(document)

    async def revoke(self, headers: Headers, body: bytes) -> Response:
        """POST /oauth/revoke (RFC 7009 §2): revoke one of the calling client's tokens.

        Unknown, invalid and other clients' tokens get the same 200 (RFC 7009 §2.2), so the
        endpoint cannot be used to test tokens.

        Raises:
            OAuthError: client authentication failed or the token parameter is missing.
            StoreUnavailable: the store could not answer.
        """
        client_id, token = await self._client_and_token(headers, body)
        verified = self._verify_own(token)
        if (
            verified is not None
            and verified.token_id is not None
            and verified.claims.get("client_id") == client_id
        ):
            self.revocations.add(verified.token_id, verified.expires_at)
            await self.store.add_revocation(
                verified.token_id, client_id, verified.expires_at, self.clock.time()
            )
        return json_response({})

    def metadata(self) -> Mapping[str, object]:
        """The RFC 8414 §2 authorization server metadata document."""
        base = self.issuer
        return {
            "issuer": base,
            "token_endpoint": base + TOKEN_PATH,
            "jwks_uri": base + JWKS_PATH,
            "introspection_endpoint": base + INTROSPECT_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "grant_types_supported": list(GRANT_TYPES),
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": [self.config.signing_alg],
        }
