"""The api_key policy: authenticate callers by a Bastion API key held in the store."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final
from urllib.parse import unquote_to_bytes

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import ServiceUnavailable, StoreUnavailable, Unauthenticated
from bastion.policies.api_key.config import APIKeyConfig
from bastion.store.cache import CachedStore, KeyEntry
from bastion.store.secrets import (
    KEY_ID_LENGTH,
    KEY_PREFIX,
    MAX_KEY_LENGTH,
    Peppers,
    parse_api_key,
)

MISSING_KEY: Final = "An API key is required."
"""Public detail of the 401 when the request carries no key."""
INVALID_KEY: Final = "The API key is not valid."
"""Public detail of the 401 for any key that is refused: malformed, unknown, wrong, expired,
revoked, or of a disabled consumer (which one is never said)."""
STORE_DOWN: Final = "Authentication is temporarily unavailable."
"""Public detail of the 503 when the credential store cannot answer (fail closed)."""

_ID_START: Final = len(KEY_PREFIX)
_ID_END: Final = _ID_START + KEY_ID_LENGTH

MAX_VERIFIED: Final = 100_000
"""Most keys whose verification is remembered at once (then the memory starts over)."""

NO_STORE: Final = "the api_key policy needs the gateway's `store`"
NO_PEPPER: Final = "the api_key policy needs the top-level `pepper` setting"


def _query_value(query: bytes, name: bytes) -> bytes | None:
    """The first value of parameter `name` in a raw query string, percent-decoded."""
    for part in query.split(b"&"):
        key, eq, value = part.partition(b"=")
        if eq and unquote_to_bytes(key) == name:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def _without_param(query: bytes, name: bytes) -> bytes:
    return b"&".join(
        part for part in query.split(b"&") if unquote_to_bytes(part.partition(b"=")[0]) != name
    )


class APIKeyPolicy(Policy[APIKeyConfig]):
    """Authenticate callers by an API key (`bst_<id>_<secret>`) kept as an HMAC in the store.

    The key id selects the record; the HMAC of the presented key under the record's pepper is
    compared in constant time. Every refusal is the same 401 with an `ApiKey` challenge. On a
    cache hit the check is synchronous; on a miss the chain awaits one store query. When the
    store cannot answer, requests are refused with 503 (authentication fails closed).

    Why a second digest: HMAC-SHA256 under the pepper costs ~1-2 us, most of a request's
    authentication budget. Once a key has matched its stored digest, the policy remembers a
    keyed BLAKE2s fingerprint of it (the key is a random per-process secret, so the fingerprint
    is useless outside this process) tied to that exact cache entry; later requests compare
    fingerprints in constant time (~0.5 us). A reloaded entry (revoked, rotated, expired) is a
    new object, so the remembered match no longer applies and the full check runs again.
    """

    name = "api_key"
    priority = Priority.AUTHENTICATE + 30
    authenticates = True

    def __init__(self, config: APIKeyConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        store = deps.store
        if store is None:
            raise ValueError(NO_STORE)
        if store.peppers is None:
            raise ValueError(NO_PEPPER)
        self._store: CachedStore = store
        self._peppers: Peppers = store.peppers
        self._clock = deps.clock
        self._header = config.header.lower().encode()
        self._param = config.query_param.encode() if config.allow_query else None
        self._strip = config.strip_credential
        self._challenge = f'ApiKey realm="{config.realm}"'
        self._fingerprint_key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[KeyEntry, bytes]] = {}

    def _invalid(self, ctx: RequestContext, reason: str) -> Unauthenticated:
        ctx.state(self)["reason"] = reason  # for logs; never part of the response
        return Unauthenticated(INVALID_KEY, challenge=self._challenge, code="invalid_credentials")

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        raw = request.headers.get(self._header)
        from_query = False
        if raw is None and self._param is not None and request.query:
            raw = _query_value(request.query, self._param)
            from_query = raw is not None
        if raw is None:
            raise Unauthenticated(
                MISSING_KEY, challenge=self._challenge, code="missing_credentials"
            )
        if self._strip:
            if from_query:
                request.query = _without_param(request.query, self._param or b"")
            else:
                request.headers.remove(self._header)
        if len(raw) != MAX_KEY_LENGTH:
            raise self._invalid(ctx, "malformed")
        # Fast path: a key this policy verified before. The id is sliced out without the full
        # shape check: only a key whose fingerprint matches (the very same key) is admitted
        # here; anything else takes the full path below.
        sliced_id = raw[_ID_START:_ID_END].decode("latin-1")
        remembered = self._verified.get(sliced_id)
        if remembered is not None:
            entry = self._store.cached_api_key(sliced_id)
            if entry is remembered[0] and hmac.compare_digest(
                remembered[1], self._fingerprint(raw)
            ):
                self._admit_matched(ctx, remembered[0])
                return None
        key = raw.decode("latin-1")
        key_id = parse_api_key(key)
        if key_id is None:
            raise self._invalid(ctx, "malformed")
        entry = self._store.cached_api_key(key_id)
        if isinstance(entry, KeyEntry):
            self._admit(ctx, entry, key)
            return None
        if entry is None:
            raise self._invalid(ctx, "unknown")
        return self._load(ctx, key_id, key)

    def _fingerprint(self, raw: bytes) -> bytes:
        return hashlib.blake2s(raw, key=self._fingerprint_key, digest_size=16).digest()

    async def _load(self, ctx: RequestContext, key_id: str, key: str) -> None:
        try:
            entry = await self._store.load_api_key(key_id)
        except StoreUnavailable:
            raise ServiceUnavailable(STORE_DOWN, code="store_unavailable") from None
        self._admit(ctx, entry, key)

    def _admit(self, ctx: RequestContext, entry: KeyEntry | None, key: str) -> None:
        if entry is None:
            raise self._invalid(ctx, "unknown")
        record = entry.record
        if not self._peppers.matches(key, record.digest, record.pepper_id):
            raise self._invalid(ctx, "mismatch")
        verified = self._verified
        if len(verified) >= MAX_VERIFIED:
            verified.clear()
        verified[record.id] = (entry, self._fingerprint(key.encode("latin-1")))
        self._admit_matched(ctx, entry)

    def _admit_matched(self, ctx: RequestContext, entry: KeyEntry) -> None:
        """Admit a caller whose key matched `entry`, unless the key or consumer is unusable."""
        record = entry.record
        if record.revoked_at is not None:  # immediate, whatever the nodes' clocks say
            raise self._invalid(ctx, "revoked")
        if record.expires_at is not None and record.expires_at <= self._clock.time():
            raise self._invalid(ctx, "expired")
        if entry.consumer.disabled:
            raise self._invalid(ctx, "consumer_disabled")
        ctx.authenticate(entry.identity)
