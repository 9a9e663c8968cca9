"""A bounded, expiring memory of introspection verdicts, keyed by a digest of the token."""

from __future__ import annotations

import hashlib

from bastion.clock import Clock
from bastion.core.context import Identity


def token_key(token: bytes) -> bytes:
    """The cache key of a token: its SHA-256 (tokens are never kept in memory as such)."""
    return hashlib.sha256(token).digest()


class VerdictCache:
    """Verdicts (an identity, or None for inactive) kept until a monotonic deadline.

    At `size` entries the oldest insertion is dropped first; expired entries go on lookup.
    """

    def __init__(self, size: int, clock: Clock) -> None:
        self._size = size
        self._clock = clock
        self._entries: dict[bytes, tuple[Identity | None, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[bool, Identity | None]:
        """(found, verdict): found is False when nothing usable is cached."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        identity, until = entry
        if until <= self._clock.monotonic():
            del self._entries[key]
            return False, None
        return True, identity

    def put(self, key: bytes, identity: Identity | None, ttl: float) -> None:
        """Keep the verdict for `ttl` seconds (nothing is kept for a ttl of 0 or less)."""
        if ttl <= 0:
            return
        entries = self._entries
        entries.pop(key, None)
        while len(entries) >= self._size:
            del entries[next(iter(entries))]
        entries[key] = (identity, self._clock.monotonic() + ttl)
