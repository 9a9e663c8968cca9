"""The in-process read cache in front of the store, and the watcher that keeps it honest.

How this works: credential lookups on the hot path read a plain dict (`cached_api_key`,
`cached_password`). A miss, or a cache that may be stale, sends the caller to the awaitable
`load_*` methods, which query the store and fill the cache. Staleness is bounded, not hoped
for: a watcher task follows the store's audit log (every change writes an entry in the same
transaction) and drops the cached entries each change touches. It wakes on PostgreSQL
LISTEN/NOTIFY at once, and polls every `poll_interval` (1 s) regardless. The cache answers only
while the last successful sync *started* less than `max_staleness` (2 s) ago; otherwise every
lookup goes to the store (and fails closed if the store is down). So a revocation committed at
time R is honoured by every node from R + 2 s on, whatever happens to notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from bastion.clock import Clock, SystemClock
from bastion.core.context import Identity
from bastion.errors import BastionError, StoreUnavailable
from bastion.store.base import APIKeyRecord, AuditEntry, Consumer, PasswordRecord, Store
from bastion.store.secrets import PasswordVerifier, Peppers

_log = logging.getLogger("bastion.store")

DEFAULT_TTL: Final = 30.0
POLL_INTERVAL: Final = 1.0
MAX_STALENESS: Final = 2.0
MAX_ENTRIES: Final = 10_000
# Audit ids can commit out of order in PostgreSQL (two concurrent writers); re-reading this
# many ids below the watermark, and skipping those already seen, catches the late ones.
LOOKBACK_IDS: Final = 64


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""Returned by `cached_*` when the cache cannot answer: await the matching `load_*`."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A cached API key: its record, its consumer and the identity it authenticates as."""

    record: APIKeyRecord
    consumer: Consumer
    identity: Identity


@dataclass(frozen=True, slots=True)
class PasswordEntry:
    """A cached password record (the hash only; verification results are cached separately)."""

    record: PasswordRecord
    consumer: Consumer
    identity: Identity


@dataclass(slots=True)
class _Slot:
    value: object
    expires: float
    consumer_id: str | None


class TTLCache:
    """A bounded map with per-entry expiry; when full, the oldest insertion goes first."""

    def __init__(self, clock: Clock, *, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._max = max_entries
        self._data: dict[Hashable, _Slot] = {}

    def get(self, key: Hashable) -> object:
        """The value, or MISSING when absent or expired."""
        slot = self._data.get(key)
        if slot is None:
            return MISSING
        if slot.expires <= self._clock.monotonic():
            del self._data[key]
            return MISSING
        return slot.value

    def put(self, key: Hashable, value: object, ttl: float, consumer_id: str | None) -> None:
        """Store `value` for `ttl` seconds, tagged with the consumer it belongs to."""
        data = self._data
        if key not in data and len(data) >= self._max:
            del data[next(iter(data))]
        data[key] = _Slot(value, self._clock.monotonic() + ttl, consumer_id)

    def drop(self, key: Hashable) -> None:
        """Forget one entry."""
        self._data.pop(key, None)

    def drop_consumer(self, consumer_id: str) -> None:
        """Forget every entry of one consumer (a scan: changes are rare, lookups are not)."""
        stale = [key for key, slot in self._data.items() if slot.consumer_id == consumer_id]
        for key in stale:
            del self._data[key]

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def _identity(consumer: Consumer, credential_id: str, method: str) -> Identity:
    return Identity(
        consumer_id=consumer.id,
        consumer_name=consumer.name,
        groups=consumer.groups,
        credential_id=credential_id,
        method=method,
    )


class CachedStore:
    """A store with a read cache, the API-key peppers and the password verifier.

    This is the object policies receive as `deps.store`; the CLI uses `backend` directly.
    """

    def __init__(
        self,
        backend: Store,
        *,
        peppers: Peppers | None = None,
        clock: Clock | None = None,
        ttl: float = DEFAULT_TTL,
        poll_interval: float = POLL_INTERVAL,
        max_staleness: float = MAX_STALENESS,
        max_entries: int = MAX_ENTRIES,
        verifier: PasswordVerifier | None = None,
    ) -> None:
        self.backend = backend
        self.peppers = peppers
        self.clock = clock or SystemClock()
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.cache = TTLCache(self.clock, max_entries=max_entries)
        self.passwords = verifier or PasswordVerifier()
        # Keys verified-password cache entries: HMAC under a per-process random key, so the
        # cache never holds a password and its keys are useless outside this process.
        self._credential_key = secrets.token_bytes(32)
        self._synced_at = float("-inf")
        self._watermark: int | None = None
        self._seen: set[int] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._watcher_loop: asyncio.AbstractEventLoop | None = None
        self._warned = False

    # Freshness and the watcher.

    @property
    def fresh(self) -> bool:
        """Whether cached entries may be used (the last good sync started recently enough)."""
        return self.clock.monotonic() - self._synced_at <= self.max_staleness

    async def _ensure_started(self) -> None:
        """Before the first load: find the end of the audit log, then start the watcher."""
        if self._watermark is None:
            started = self.clock.monotonic()
            await self.sync()
            self._synced_at = started
        self._ensure_watcher()

    def _ensure_watcher(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watcher is not None and not self._watcher.done() and self._watcher_loop is loop:
            return
        self._watcher_loop = loop
        self._watcher = loop.create_task(self._watch(), name="bastion-store-watcher")

    async def _watch(self) -> None:
        while True:
            started = self.clock.monotonic()
            try:
                await self.sync()
            except (StoreUnavailable, BastionError) as exc:
                if not self._warned:
                    _log.warning("store sync failed, cache disabled until it recovers: %s", exc)
                    self._warned = True
            else:
                self._synced_at = started
                self._warned = False
            await self.backend.wait_for_change(self.poll_interval)

    async def sync(self) -> None:
        """Apply the audit entries written since the last sync (the watcher calls this).

        The first sync only records where the log ends and empties the cache, since entries
        loaded before it may predate changes it will never replay.

        Raises:
            StoreUnavailable: the store could not answer.
        """
        if self._watermark is None:
            self._watermark = await self.backend.last_audit_id()
            self.cache.clear()
            return
        low = max(self._watermark - LOOKBACK_IDS, 0)
        entries = await self.backend.audit_log(low, limit=10_000)
        for entry in entries:
            if entry.id in self._seen or entry.id <= low:
                continue
            self.invalidate(entry)
            self._seen.add(entry.id)
            self._watermark = max(self._watermark, entry.id)
        floor = self._watermark - LOOKBACK_IDS
        self._seen = {seen for seen in self._seen if seen > floor}

    def invalidate(self, entry: AuditEntry) -> None:
        """Drop whatever cached data the change in `entry` affects."""
        if entry.subject_type == "api_key":
            self.cache.drop(("key", entry.subject_id))
        elif entry.subject_type == "consumer":
            self.cache.drop_consumer(entry.subject_id)
        elif entry.subject_type in ("config", "oauth_client"):
            return  # nothing cached here: configs are followed by bastion/admin/store_ops.py
        else:  # a password: its consumer's entries and any cached "no such user"
            self.cache.drop_consumer(entry.subject_id)
            for side in (entry.before, entry.after):
                if side and isinstance(side.get("username"), str):
                    self.cache.drop(("user", side["username"]))

    # API keys.

    def cached_api_key(self, key_id: str) -> KeyEntry | _Missing | None:
        """The cached key (None: known not to exist), or MISSING: await `load_api_key`."""
        if self._synced_at + self.max_staleness < self.clock.monotonic():
            return MISSING
        return self.cache.get(("key", key_id))  # type: ignore[return-value]  # put() below

    async def load_api_key(self, key_id: str) -> KeyEntry | None:
        """Read a key from the store and cache the answer (a miss too, so floods stay cheap).

        Raises:
            StoreUnavailable: the store could not answer.
        """
        await self._ensure_started()
        found = await self.backend.get_api_key(key_id)
        entry: KeyEntry | None = None
        consumer_id: str | None = None
        if found is not None:
            record, consumer = found
            entry = KeyEntry(record, consumer, _identity(consumer, record.id, "api_key"))
            consumer_id = consumer.id
        self.cache.put(("key", key_id), entry, self.ttl, consumer_id)
        return entry

    # Passwords.

    def credential_digest(self, username: bytes, password: bytes) -> bytes:
        """The cache key of a username/password pair: an HMAC, never the password itself."""
        message = len(username).to_bytes(4, "big") + username + password
        return hmac.digest(self._credential_key, message, hashlib.sha256)

    def cached_verified(self, digest: bytes) -> Identity | None:
        """The identity of a recently verified username/password pair, if cached and fresh."""
        if self._synced_at + self.max_staleness < self.clock.monotonic():
            return None
        value = self.cache.get(("verified", digest))
        return value if isinstance(value, Identity) else None

    def remember_verified(self, digest: bytes, identity: Identity, ttl: float) -> None:
        """Cache a successful verification for `ttl` seconds."""
        self.cache.put(("verified", digest), identity, ttl, identity.consumer_id)

    async def load_password(self, username: str) -> PasswordEntry | None:
        """The password record of `username` from the store (not cached: read per verification).

        Raises:
            StoreUnavailable: the store could not answer.
        """
        await self._ensure_started()
        found = await self.backend.get_password(username)
        if found is None:
            return None
        record, consumer = found
        identity = _identity(consumer, f"password:{consumer.id}", "basic_auth")
        return PasswordEntry(record, consumer, identity)

    async def close(self) -> None:
        """Stop the watcher, the password threads and the backend's connections."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await watcher
        self.passwords.close()
        await self.backend.close()
        self._synced_at = float("-inf")
        self._watermark = None


_SHARED: dict[tuple[int, str, str | None], CachedStore] = {}


def shared_store(backend_url: str, make: Store, peppers: Peppers | None) -> CachedStore:
    """One `CachedStore` per process and URL, so a config reload keeps the warm cache."""
    pepper_id = peppers.current.id if peppers else None
    key = (os.getpid(), backend_url, pepper_id)
    found = _SHARED.get(key)
    if found is None:
        found = _SHARED[key] = CachedStore(make, peppers=peppers)
    else:
        # Same current pepper, but `previous_peppers` may have changed: a pepper removed from
        # the list (say, after a leak) must stop verifying keys at this reload, not at restart.
        found.peppers = peppers
    return found


async def close_shared_stores() -> None:
    """Close every shared store of this process (call once at shutdown)."""
    pid = os.getpid()
    for key in [key for key in _SHARED if key[0] == pid]:
        await _SHARED.pop(key).close()
