"""The authorization server's signing keys: made, rotated and published from the store.

How this works: keys live in the store so every worker and node signs with, and publishes, the
same set. A key signs new tokens from `created_at` until `retire_at` (`key_rotation_days`
later) and stays in the published key set until `expires_at`, which is `retire_at` plus the
access-token lifetime and a margin for clock skew: every token it signed has expired by then.
`refresh()` reloads the set (at most every `RELOAD_INTERVAL` seconds unless forced) and makes a
new key when none may sign any more; two processes racing to do so both succeed, and both keys
are published.

Private keys are stored as PKCS#8 PEM. With a `pepper` configured they are encrypted
(PKCS#8 `BestAvailableEncryption`, a key derived from the pepper by HMAC), so a copy of the
database alone cannot sign tokens; without one, they rely on the store's protection (the SQLite
file is created mode 0600; PostgreSQL's own access control).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk

from bastion.clock import Clock
from bastion.oauth.config import OAuthConfig
from bastion.policies.jwt.keys import KeySet, PinnedKey
from bastion.store.base import OAuthStore, SigningKeyRecord

_log = logging.getLogger("bastion.oauth")

RELOAD_INTERVAL: Final = 30.0
"""Seconds between reloads of the key set from the store (other processes may rotate)."""
EXPIRY_MARGIN: Final = 300.0
"""Seconds a retired key stays published after its last token's expiry (clock skew)."""
_DAY: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A usable signing key: the private JWK and the window in which it signs."""

    kid: str
    alg: str
    key: jwk.Key
    public_jwk: dict[str, object]
    retire_at: float
    expires_at: float


def _import(pem: bytes, alg: str) -> jwk.Key:
    """A PEM key as a JWK of the type `alg` needs (never guessed from the data)."""
    if alg == "ES256":
        return jwk.ECKey.import_key(pem)
    if alg == "RS256":
        return jwk.RSAKey.import_key(pem)
    raise ValueError(f"unsupported signing algorithm {alg}")


def _encryption_password(pepper: bytes) -> bytes:
    return hmac.digest(pepper, b"bastion oauth signing key", hashlib.sha256)


def generate_key(
    alg: str, now: float, config: OAuthConfig, pepper: bytes | None
) -> SigningKeyRecord:
    """A new key record for `alg` (ES256: P-256, RS256: RSA 3072), encrypted under `pepper`."""
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if pepper is not None:
        encryption = serialization.BestAvailableEncryption(_encryption_password(pepper))
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public = _import(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        alg,
    )
    kid = public.thumbprint()  # RFC 7638: the same key always gets the same kid
    document = {**public.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    retire_at = now + config.key_rotation_days * _DAY
    return SigningKeyRecord(
        kid=kid,
        alg=alg,
        private_pem=pem.decode(),
        encrypted=pepper is not None,
        public_jwk=json.dumps(document, sort_keys=True),
        created_at=now,
        retire_at=retire_at,
        expires_at=retire_at + config.access_token_ttl + EXPIRY_MARGIN,
    )


def load_key(record: SigningKeyRecord, pepper: bytes | None) -> SigningKey | None:
    """The usable key of a record; None (logged) when it cannot be decrypted or read."""
    password = None
    if record.encrypted:
        if pepper is None:
            _log.warning("signing key %s is encrypted but no pepper is configured", record.kid)
            return None
        password = _encryption_password(pepper)
    try:
        private = serialization.load_pem_private_key(record.private_pem.encode(), password)
        plain = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = _import(plain, record.alg)
        public = json.loads(record.public_jwk)
    except (ValueError, TypeError, KeyError) as exc:
        _log.warning("signing key %s cannot be loaded: %s", record.kid, type(exc).__name__)
        return None
    return SigningKey(record.kid, record.alg, key, public, record.retire_at, record.expires_at)


class KeyRing:
    """The current signing keys of this process, kept in step with the store."""

    def __init__(
        self, store: OAuthStore, config: OAuthConfig, clock: Clock, pepper: bytes | None
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._pepper = pepper
        self._keys: tuple[SigningKey, ...] = ()
        self._loaded_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self.verify_keys = KeySet()
        """The published keys as a `KeySet` for `verify_access_token` (pinned algorithms)."""

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """The loaded keys, oldest first."""
        return self._keys

    def signing_key(self) -> SigningKey | None:
        """The oldest key of `signing_alg` that may still sign, or None (call `refresh`).

        The oldest, not the newest: when two processes race to make a key, both see both
        keys after reloading and agree on the same one.
        """
        now = self._clock.time()
        for key in self._keys:
            if key.retire_at > now and key.alg == self._config.signing_alg:
                return key
        return None

    def jwks(self) -> dict[str, object]:
        """The public key set (RFC 7517 §5) of every key not yet expired."""
        now = self._clock.time()
        return {"keys": [key.public_jwk for key in self._keys if key.expires_at > now]}

    def needs_reload(self) -> bool:
        """Whether the keys are older than the reload interval or none may sign."""
        loaded = self._loaded_at
        if loaded is None or self._clock.monotonic() - loaded >= RELOAD_INTERVAL:
            return True
        return self.signing_key() is None

    async def refresh(self, *, force: bool = False) -> None:
        """Reload the keys from the store, and make a new one when none may sign.

        Raises:
            StoreUnavailable: the store could not answer.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not force and not self.needs_reload():
                return
            now = self._clock.time()
            records = await self._store.list_signing_keys(now)
            keys = [key for key in (load_key(r, self._pepper) for r in records) if key]
            usable = any(
                key.retire_at > now and key.alg == self._config.signing_alg for key in keys
            )
            if not usable:
                record = generate_key(self._config.signing_alg, now, self._config, self._pepper)
                await self._store.add_signing_key(record)
                _log.info("made a new %s token signing key %s", record.alg, record.kid)
                # Read back: a process that raced us may have made one too, and every process
                # must pick the same key to sign with (see `signing_key`).
                records = await self._store.list_signing_keys(now)
                keys = [key for key in (load_key(r, self._pepper) for r in records) if key]
            self._set(keys)
            self._loaded_at = self._clock.monotonic()

    def _set(self, keys: list[SigningKey]) -> None:
        # Keys of another algorithm (signing_alg changed) are still published and verified.
        self._keys = tuple(keys)
        pinned = []
        for key in keys:
            public = jwk.import_key(dict(key.public_jwk))  # type: ignore[arg-type]  # a JWK dict
            pinned.append(PinnedKey(key.alg, public, key.kid))
        self.verify_keys = KeySet.of(pinned)
