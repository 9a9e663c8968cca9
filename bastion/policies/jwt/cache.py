"""A bounded LRU cache of verified tokens, so a repeated token costs a dictionary hit.

Entries expire at the earlier of the token's `exp` and insertion time plus the cache TTL, so a
cached token is never honoured past its expiry nor long after a key was withdrawn (the policy
also clears the cache when keys disappear from the key set). Sans-IO: wall time comes from the
injected clock.
"""

from __future__ import annotations

from collections import OrderedDict

from bastion.clock import Clock
from bastion.core.context import Identity


class VerifiedTokenCache:
    """Token bytes → (identity, expiry), least recently used evicted first past `max_entries`."""

    __slots__ = ("_clock", "_entries", "_max", "_ttl")

    def __init__(self, max_entries: int, ttl: float, clock: Clock) -> None:
        self._entries: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl
        self._clock = clock

    def get(self, token: bytes) -> Identity | None:
        """The identity cached for `token`, or None when absent or expired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock.time() >= entry[1]:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry[0]

    def put(self, token: bytes, identity: Identity, expires_at: float) -> None:
        """Remember a verified token until `min(expires_at, now + ttl)`."""
        if self._max <= 0 or self._ttl <= 0:
            return
        until = min(expires_at, self._clock.time() + self._ttl)
        entries = self._entries
        entries[token] = (identity, until)
        entries.move_to_end(token)
        while len(entries) > self._max:
            entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the key set lost a key)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
