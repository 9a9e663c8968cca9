"""The basic_auth policy: HTTP Basic authentication against argon2id hashes in the store."""

from __future__ import annotations

import base64
import binascii
from typing import Final

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import Forbidden, ServiceUnavailable, StoreUnavailable, Unauthenticated
from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.store.cache import CachedStore
from bastion.store.secrets import MAX_PASSWORD_BYTES, PasswordBusy

MISSING_CREDENTIALS: Final = "Basic credentials are required."
"""Public detail of the 401 when the request has no Basic `Authorization` header."""
INVALID_CREDENTIALS: Final = "The username or password is not valid."
"""Public detail of the 401 for malformed, unknown or wrong credentials and disabled consumers."""
HTTPS_REQUIRED: Final = "Basic authentication is accepted over HTTPS only."
"""Public detail of the 403 for Basic credentials sent over plain HTTP."""
STORE_DOWN: Final = "Authentication is temporarily unavailable."
"""Public detail of the 503 when the store cannot answer or verification is saturated."""

NO_STORE: Final = "the basic_auth policy needs the gateway's `store`"
# base64 of "user:password" for the longest password accepted, plus room for the username.
MAX_CREDENTIALS_BYTES: Final = 4 * ((MAX_PASSWORD_BYTES + 256) // 3 + 1)


class BasicAuthPolicy(Policy[BasicAuthConfig]):
    """Authenticate callers by HTTP Basic credentials (RFC 7617) checked against argon2id.

    RFC 7617: https://www.rfc-editor.org/rfc/rfc7617. Credentials are UTF-8 (the challenge
    says `charset="UTF-8"`). Requests that reached Bastion over plain HTTP are refused unless a
    trusted proxy said the client used HTTPS. Verification runs in the store's bounded argon2
    thread pool; successes are cached for `cache_ttl` seconds under an HMAC of the credentials.
    """

    name = "basic_auth"
    priority = Priority.AUTHENTICATE + 20
    authenticates = True

    def __init__(self, config: BasicAuthConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        if deps.store is None:
            raise ValueError(NO_STORE)
        self._store: CachedStore = deps.store
        self._ttl = config.cache_ttl
        self._strip = config.strip_credential
        self._challenge = f'Basic realm="{config.realm}", charset="UTF-8"'

    def _unauthenticated(self, ctx: RequestContext, reason: str) -> Unauthenticated:
        ctx.state(self)["reason"] = reason  # for logs; never part of the response
        if reason == "missing":
            return Unauthenticated(
                MISSING_CREDENTIALS, challenge=self._challenge, code="missing_credentials"
            )
        return Unauthenticated(
            INVALID_CREDENTIALS, challenge=self._challenge, code="invalid_credentials"
        )

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        if request.scheme != "https" and request.extra.get("forwarded_proto") != "https":
            raise Forbidden(HTTPS_REQUIRED, code="https_required")
        value = request.headers.get(b"authorization")
        if value is None:
            raise self._unauthenticated(ctx, "missing")
        scheme, _, encoded = value.partition(b" ")
        if scheme.lower() != b"basic":
            raise self._unauthenticated(ctx, "missing")
        encoded = encoded.strip(b" \t")
        if not encoded or len(encoded) > MAX_CREDENTIALS_BYTES:
            raise self._unauthenticated(ctx, "malformed")
        try:
            decoded = base64.b64decode(encoded, validate=True)
            text = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise self._unauthenticated(ctx, "malformed") from None
        username, colon, password = text.partition(":")
        if not colon or not username or not password:
            raise self._unauthenticated(ctx, "malformed")
        if self._strip:
            request.headers.remove(b"authorization")
        digest = self._store.credential_digest(username.encode(), password.encode())
        identity = self._store.cached_verified(digest) if self._ttl else None
        if identity is None:
            return self._verify(ctx, username, password, digest)
        ctx.authenticate(identity)
        return None

    async def _verify(
        self, ctx: RequestContext, username: str, password: str, digest: bytes
    ) -> None:
        store = self._store
        try:
            entry = await store.load_password(username)
            ok = await store.passwords.verify(
                entry.record.password_hash if entry is not None else None, password
            )
        except (StoreUnavailable, PasswordBusy):
            raise ServiceUnavailable(STORE_DOWN, code="store_unavailable") from None
        if entry is None or not ok:
            raise self._unauthenticated(ctx, "wrong")
        if entry.consumer.disabled:
            raise self._unauthenticated(ctx, "consumer_disabled")
        if self._ttl:
            store.remember_verified(digest, entry.identity, self._ttl)
        ctx.authenticate(entry.identity)
