"""The authorization server's endpoints as functions of (headers, body) → Response.

The token endpoint implements the client-credentials grant (RFC 6749 §4.4), the
authorization-code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636) and refresh tokens with
rotation and reuse detection (RFC 9700 §4.14.2); `authorize.py` serves the login page. Introspection
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
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

import orjson
from joserfc import jws

from bastion.clock import Clock
from bastion.errors import StoreUnavailable
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth import pkce
from bastion.oauth.clients import (
    CLIENT_ID_PATTERN,
    authenticate_client,
    client_auth_failed,
    presented_credentials,
)
from bastion.oauth.config import OAuthConfig
from bastion.oauth.errors import (
    BAD_CODE,
    BAD_REFRESH_TOKEN,
    GRANT_NOT_ALLOWED,
    MISSING_CODE_PARAMETERS,
    MISSING_GRANT_TYPE,
    MISSING_REFRESH_TOKEN,
    MISSING_TOKEN,
    SCOPE_NOT_ALLOWED,
    UNSUPPORTED_GRANT,
    OAuthError,
    json_response,
)
from bastion.oauth.form import parse_form
from bastion.oauth.grant_store import (
    CodeGrant,
    GrantStore,
    RefreshGrant,
    new_secret_value,
)
from bastion.oauth.keys import KeyRing
from bastion.policies.jwt.verify import TokenError, TokenRules, VerifiedToken, verify_access_token
from bastion.store.base import OAuthClientRecord, OAuthStore
from bastion.store.sql import SQLStore

if TYPE_CHECKING:
    from bastion.oauth.revocation_bus import RevocationBus

_log = logging.getLogger("bastion.oauth")

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a path, not a secret
INTROSPECT_PATH: Final = "/oauth/introspect"
REVOKE_PATH: Final = "/oauth/revoke"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
JWKS_PATH: Final = "/.well-known/jwks.json"
AUTHORIZE_PATH: Final = "/oauth/authorize"

GRANT_TYPES: Final = ("client_credentials", "authorization_code", "refresh_token")
"""Grants this server implements (no implicit or password grant: RFC 9700 §2.1.2, §2.4)."""
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post")
TOKEN_AUTH_METHODS: Final = (*AUTH_METHODS, "none")
"""`none`: public clients, which send only `client_id` and prove themselves by PKCE."""
REVOCATION_SYNC_INTERVAL: Final = 1.0
"""Seconds between reloads of the revoked-token list written by other processes."""
FOLLOW_MAX_WAIT: Final = 5.0
"""Longest wait for a store notification before the follower checks it is still needed."""
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

    Checked synchronously on every request (a dict lookup). Other processes learn of a
    revocation by push: from a `RevocationBus` when one is attached (Redis pub/sub), or by
    reloading the set on each change notification of a store that has them (`follow`:
    PostgreSQL LISTEN/NOTIFY). In any case the set is also reloaded in the background, at most
    every `REVOCATION_SYNC_INTERVAL`, when requests check it.
    """

    def __init__(self, store: OAuthStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._synced_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._bus: RevocationBus | None = None
        self._wait_for_change: Callable[[float], Awaitable[None]] | None = None
        self._follower: asyncio.Task[None] | None = None

    def follow(self, wait_for_change: Callable[[float], Awaitable[None]]) -> None:
        """Reload the set whenever `wait_for_change` (the store's notifications) returns."""
        self._wait_for_change = wait_for_change
        self._start_listening()

    def attach(self, bus: RevocationBus) -> None:
        """Publish this process's revocations on `bus` and apply the ones it delivers."""
        self._bus = bus
        bus.subscribe(self)

    def add(self, jti: str, expires_at: float) -> None:
        """Refuse `jti` from now on in this process (`revoke` also tells the others)."""
        self._revoked[jti] = expires_at

    async def revoke(self, jti: str, client_id: str, expires_at: float) -> None:
        """Revoke `jti` here, in the store, and by push in every process listening.

        Raises:
            StoreUnavailable: the store could not record it (this process still refuses it).
        """
        self.add(jti, expires_at)
        await self._store.add_revocation(jti, client_id, expires_at, self._clock.time())
        if self._bus is not None:
            await self._bus.publish(jti, expires_at)

    def receive(self, jti: str, expires_at: float) -> None:
        """A revocation pushed by another process."""
        self.add(jti, expires_at)

    def resync(self) -> None:
        """Reload the whole set soon (after a (re)subscription, messages may have been lost)."""
        self._synced_at = float("-inf")
        self._maybe_sync()

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
        self._start_listening()  # a push source attached before the loop ran starts here

    def _start_listening(self) -> None:
        if self._bus is not None:
            self._bus.ensure_listening()
        wait = self._wait_for_change
        if wait is None or (self._follower is not None and not self._follower.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._follower = loop.create_task(_follow(weakref.ref(self), wait))

    async def close(self) -> None:
        """Stop following the store and reloading (before the store is closed)."""
        tasks = [task for task in (self._follower, self._task) if task is not None]
        self._follower = self._task = None
        self._wait_for_change = None
        for task in tasks:
            task.cancel()
        # A cancelled query returns its connection to the pool (rolled back): none is left
        # idle inside a transaction, holding locks.
        await asyncio.gather(*tasks, return_exceptions=True)

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


async def _follow(
    ref: weakref.ref[Revocations], wait_for_change: Callable[[float], Awaitable[None]]
) -> None:
    """Reload `ref`'s set after each store notification, until it is garbage (a reload)."""
    while True:
        await wait_for_change(FOLLOW_MAX_WAIT)
        revocations = ref()
        if revocations is None:
            return
        await revocations.sync()
        del revocations  # hold no strong reference while waiting


class AuthorizationServer:
    """The built-in OAuth 2.0 authorization server of one gateway configuration."""

    def __init__(
        self,
        config: OAuthConfig,
        store: OAuthStore,
        clock: Clock,
        *,
        pepper: bytes | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self.config = config
        self.issuer = config.issuer
        self.store = store
        self.clock = clock
        self.keys = KeyRing(store, config, clock, pepper)
        # Given on reload: the set must not start empty (it would accept revoked tokens
        # until the first background reload finished).
        self.revocations = revocations if revocations is not None else Revocations(store, clock)
        self.grants = GrantStore(store if isinstance(store, SQLStore) else None)
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
        public_id = _public_client_id(headers, params)
        credentials = None if public_id else presented_credentials(headers, params)
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", MISSING_GRANT_TYPE)
        if credentials is not None:
            client = await authenticate_client(self.store, credentials)
        else:
            client = await self._public_client(public_id)
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", UNSUPPORTED_GRANT)
        if grant_type not in client.grant_types or (
            grant_type == "client_credentials" and is_public(client)
        ):
            raise OAuthError("unauthorized_client", GRANT_NOT_ALLOWED)
        if grant_type == "authorization_code":
            return await self._authorization_code(client, params)
        if grant_type == "refresh_token":
            return await self._refresh_token(client, params)
        scopes = self._granted_scopes(client, params.get("scope"))
        token, expires_in = await self.issue_access_token(client, scopes, subject=client.id)
        return json_response(_token_document(token, expires_in, scopes))

    async def _public_client(self, client_id: str) -> OAuthClientRecord:
        record = None
        if CLIENT_ID_PATTERN.fullmatch(client_id):
            record = await self.store.get_oauth_client(client_id)
        if record is None or record.disabled or not is_public(record):
            raise client_auth_failed()
        return record

    async def _authorization_code(
        self, client: OAuthClientRecord, params: Mapping[str, str]
    ) -> Response:
        """RFC 6749 §4.1.3 with RFC 7636 §4.5-4.6: redeem a code, once, with its verifier."""
        code = params.get("code")
        redirect_uri = params.get("redirect_uri")
        verifier = params.get("code_verifier")
        if code is None or redirect_uri is None or verifier is None:
            raise OAuthError("invalid_request", MISSING_CODE_PARAMETERS)
        now = self.clock.time()
        # The code is spent by this call whatever follows: a code is never tried twice.
        outcome, grant = await self.grants.use_code(code, now)
        if outcome == "reused":
            _log.warning("authorization code reused: the tokens it bought are revoked")
            await self._revoke_code_access_token(code)
        if (
            grant is None
            or grant.client_id != client.id
            or grant.redirect_uri != redirect_uri
            or not pkce.verifier_matches(verifier, grant.code_challenge)
        ):
            raise OAuthError("invalid_grant", BAD_CODE)
        scopes = grant.scope.split()
        jti = secrets.token_urlsafe(16)
        token, expires_in = await self.issue_access_token(
            client, scopes, subject=grant.subject, jti=jti
        )
        await self.grants.record_code_token(code, jti, now + expires_in)
        document = _token_document(token, expires_in, scopes)
        if "refresh_token" in client.grant_types:
            family = RefreshGrant(
                grant.family_id,
                client.id,
                grant.subject,
                grant.scope,
                now + self.config.refresh_token_ttl,
            )
            document["refresh_token"] = await self._new_refresh_token(family, now)
        return json_response(document)

    async def _refresh_token(
        self, client: OAuthClientRecord, params: Mapping[str, str]
    ) -> Response:
        """RFC 6749 §6 with rotation: each refresh token works once; a reuse ends the family."""
        presented = params.get("refresh_token")
        if presented is None:
            raise OAuthError("invalid_request", MISSING_REFRESH_TOKEN)
        now = self.clock.time()
        outcome, grant = await self.grants.use_refresh_token(presented, now)
        if outcome == "reused":
            _log.warning("refresh token reused: its whole family is revoked")
        if grant is None:
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)
        if grant.client_id != client.id:
            await self.grants.revoke_family(grant.family_id, now)
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)
        original = grant.scope.split()
        requested = params.get("scope")
        scopes = original
        if requested is not None:
            wanted = requested.split(" ")
            if not all(_SCOPE_TOKEN.fullmatch(s) for s in wanted) or not set(wanted) <= set(
                original
            ):
                raise OAuthError("invalid_scope", SCOPE_NOT_ALLOWED)
            scopes = list(dict.fromkeys(wanted))
        token, expires_in = await self.issue_access_token(client, scopes, subject=grant.subject)
        document = _token_document(token, expires_in, scopes)
        # The new token keeps the original scope and the family's absolute expiry.
        document["refresh_token"] = await self._new_refresh_token(grant, now)
        return json_response(document)

    async def _revoke_code_access_token(self, code: str) -> None:
        issued = await self.grants.code_access_token(code)
        if issued is not None:
            client_id, jti, expires_at = issued
            await self.revocations.revoke(jti, client_id, expires_at)

    async def _new_refresh_token(self, grant: RefreshGrant, now: float) -> str:
        token = new_secret_value()
        await self.grants.add_refresh_token(token, grant, now)
        return token

    async def new_authorization_code(self, grant: CodeGrant) -> str:
        """Store a new single-use code for `grant` and return it (the login page's last step)."""
        code = new_secret_value()
        await self.grants.add_code(code, grant, self.clock.time())
        return code

    @staticmethod
    def granted_scopes(client: OAuthClientRecord, requested: str | None) -> list[str]:
        """The scopes to grant `client` for a `scope` parameter (RFC 6749 §3.3).

        Raises:
            OAuthError: `invalid_scope`.
        """
        return AuthorizationServer._granted_scopes(client, requested)

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
        self,
        client: OAuthClientRecord,
        scopes: list[str],
        *,
        subject: str,
        jti: str | None = None,
    ) -> tuple[str, int]:
        """A signed RFC 9068 access token and its lifetime in seconds (`jti` made if not given).

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
            "jti": jti or secrets.token_urlsafe(16),
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
            await self.revocations.revoke(verified.token_id, client_id, verified.expires_at)
        elif verified is None and self.grants.available:
            # A refresh token: revoking it ends its family (RFC 7009 §2.1).
            family = await self.grants.refresh_token_family(token, client_id)
            if family is not None:
                await self.grants.revoke_family(family, self.clock.time())
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
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "grant_types_supported": list(GRANT_TYPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": [pkce.METHOD],
            "authorization_response_iss_parameter_supported": True,
            "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": [self.config.signing_alg],
        }


def is_public(client: OAuthClientRecord) -> bool:
    """Whether the client is public: registered without a secret, it authenticates by PKCE."""
    return client.secret_digest == ""


def _public_client_id(headers: Headers, params: Mapping[str, str]) -> str:
    """The `client_id` of a request without any client authentication; "" otherwise."""
    if headers.get(b"authorization") is not None or "client_secret" in params:
        return ""
    return params.get("client_id", "")


def _token_document(token: str, expires_in: int, scopes: list[str]) -> dict[str, object]:
    document: dict[str, object] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if scopes:
        document["scope"] = " ".join(scopes)
    return document
