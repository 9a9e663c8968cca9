"""Credential secrets: API key format and HMAC digests with a versioned pepper, argon2id passwords.

API keys look like `bst_<id>_<secret>`: `<id>` is 12 lower-case hex characters, a public
lookup handle; `<secret>` is 256 random bits in unpadded base64url (43 characters). The store
keeps only HMAC-SHA256(pepper, whole key) with the pepper's id, so a stolen database without the
pepper (which lives in the environment, not the database) cannot even confirm a guessed key.
Passwords are argon2id hashes with at least the OWASP minimum parameters (m=19 MiB, t=2, p=1),
verified in a bounded thread pool so the event loop never runs the 20-ms hash itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

KEY_PREFIX: Final = "bst_"
KEY_ID_LENGTH: Final = 12
SECRET_LENGTH: Final = 43
MIN_PEPPER_LENGTH: Final = 32
# The longest value worth parsing: anything longer is not a Bastion key.
MAX_KEY_LENGTH: Final = len(KEY_PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH
_KEY_SHAPE: Final = re.compile(r"bst_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
# https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html
ARGON2_MEMORY_KIB: Final = 19 * 1024
ARGON2_TIME_COST: Final = 2
ARGON2_PARALLELISM: Final = 1
MAX_PASSWORD_BYTES: Final = 1024


def new_key_id() -> str:
    """A random 48-bit key id in hex (the store refuses duplicates)."""
    return secrets.token_hex(KEY_ID_LENGTH // 2)


def new_api_key(key_id: str | None = None) -> tuple[str, str]:
    """A new key from 256 random bits: (key id, key). Show the key once, then forget it."""
    key_id = key_id or new_key_id()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def parse_api_key(value: str) -> str | None:
    """The key id of a well-formed key, or None for anything else (never raises)."""
    if len(value) != MAX_KEY_LENGTH:
        return None
    match = _KEY_SHAPE.fullmatch(value)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Pepper:
    """One HMAC key for API-key digests, with its public id (a fingerprint of the key)."""

    id: str
    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> Pepper:
        """Derive the pepper and its id from the configured secret.

        Raises:
            ValueError: the secret is shorter than 32 characters.
        """
        if len(secret) < MIN_PEPPER_LENGTH:
            raise ValueError(f"the pepper must be at least {MIN_PEPPER_LENGTH} characters")
        key = secret.encode()
        fingerprint = hmac.digest(key, b"bastion pepper id", hashlib.sha256).hex()[:8]
        return cls(id=f"p{fingerprint}", key=key)


class Peppers:
    """The current pepper (used for new keys) and earlier ones still accepted for old keys."""

    def __init__(self, current: Pepper, previous: Sequence[Pepper] = ()) -> None:
        self.current = current
        self._by_id = {pepper.id: pepper for pepper in (*previous, current)}

    def digest(self, key: str, pepper_id: str | None = None) -> str | None:
        """HMAC-SHA256 of `key` in hex under `pepper_id` (default: current); None if unknown."""
        pepper = self.current if pepper_id is None else self._by_id.get(pepper_id)
        if pepper is None:
            return None
        return hmac.digest(pepper.key, key.encode(), hashlib.sha256).hex()

    def matches(self, key: str, digest: str, pepper_id: str) -> bool:
        """Whether `key` hashes to `digest` under `pepper_id`, compared in constant time."""
        computed = self.digest(key, pepper_id)
        return computed is not None and hmac.compare_digest(computed, digest)


_HASHER: Final = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    type=Type.ID,
)


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of `password`; slow on purpose (run it off the event loop).

    Raises:
        ValueError: the password is empty or longer than 1024 bytes.
    """
    if not password or len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"a password must be 1 to {MAX_PASSWORD_BYTES} bytes long")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches the argon2id hash; False for a malformed hash too."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_hash_is_current(password_hash: str) -> bool:
    """Whether the hash uses at least today's parameters (else rehash on the next success)."""
    try:
        return not _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


# Verifying against this when the username is unknown makes "no such user" cost as much as
# "wrong password", so response times do not reveal which usernames exist.
_DUMMY_HASH: list[str] = []
_DUMMY_LOCK = threading.Lock()


def _dummy_hash() -> str:
    with _DUMMY_LOCK:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(_HASHER.hash(secrets.token_urlsafe(16)))
        return _DUMMY_HASH[0]


class PasswordBusy(Exception):
    """Too many password verifications are already queued."""


class PasswordVerifier:
    """Verifies argon2id hashes in a small thread pool with a bounded queue.

    argon2 releases the GIL while hashing, so `workers` threads use that many cores; beyond
    `max_pending` waiting verifications new ones are refused (`PasswordBusy`) instead of
    queueing without end, which would let a flood of wrong passwords exhaust memory and time.
    """

    def __init__(self, *, workers: int = 2, max_pending: int = 64) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._workers = workers
        self._max_pending = max_pending
        self._pending = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash (unknown user), spend the same time, say no.

        Raises:
            PasswordBusy: the queue is full.
        """
        if self._pending >= self._max_pending:
            raise PasswordBusy
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="bastion-argon2")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            target = password_hash if password_hash is not None else _dummy_hash()
            ok = await loop.run_in_executor(self._executor, verify_password, target, password)
        finally:
            self._pending -= 1
        return ok and password_hash is not None

    def close(self) -> None:
        """Stop the worker threads (queued verifications finish first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
