"""Per-period request counts for the quota policy: in process memory or in Redis.

How this works: a quota key and a period label (`d20261127`, `m202611`) name one counter.
`take(key, label, limit, end)` counts one request iff the count stays within `limit` and
answers the count after it; a refused request leaves the count as it was. `refund` takes one
back (the policy calls it when a later policy refused the request, so only admitted requests
count). In Redis one Lua script does INCR, sets EXPIREAT to the period's end on the first
count, and DECRs again when over the limit: atomic across every node. Keys carry the period's
label, so a new period starts at zero without any reset.

Failure: as the lease store, through `RedisBatch`: `on_error` `local` counts in this process
meanwhile, `allow` admits, `deny` refuses (the caller answers 503). The Redis store lives in
`bastion.counters.quota_redis` (redis is an optional extra).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from bastion.clock import Clock
from bastion.counters.attached import attach

if TYPE_CHECKING:
    from bastion.counters.quota_redis import RedisQuotas

OnError = Literal["local", "allow", "deny"]
DEFAULT_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Usage:
    """The answer to one take: admitted or not, and the period's count after it.

    `local` marks a count made in process memory while Redis was down (refunded there too).
    """

    allowed: bool
    used: int
    local: bool = False


class QuotaStore(Protocol):
    """Counts requests per key and period; answers synchronously unless it must ask Redis."""

    kind: str

    def take(
        self, key: str, label: str, limit: int, end: int, *, on_error: OnError = "local"
    ) -> Usage | Awaitable[Usage | None] | None:
        """Count one request on (`key`, `label`) if that stays within `limit`.

        Returns:
            The usage; `None` when Redis is unavailable and `on_error` is `allow` or `deny`.
        """
        ...

    def refund(self, key: str, label: str, *, local: bool = False) -> None:
        """Take back one counted request (`local`: one counted in the fallback)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryQuotas:
    """Counts of one process, bounded: past `max_keys`, counts of earlier periods go first.

    Then the least recently counted key is dropped (it starts the period afresh), so a flood of
    distinct keys cannot grow memory; say so wherever memory quotas are documented.
    """

    kind = "memory"

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        self._max_keys = max_keys
        # key -> (period label, count); insertion order = last counted.
        self._counts: dict[str, tuple[str, int]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def used(self, key: str, label: str) -> int:
        """Requests counted on `key` in the period `label`."""
        found = self._counts.get(key)
        return found[1] if found is not None and found[0] == label else 0

    def take(
        self, key: str, label: str, limit: int, end: int = 0, *, on_error: OnError = "local"
    ) -> Usage:
        """Count at once (never awaits; `end` and `on_error` do not apply)."""
        used = self.used(key, label)
        if used >= limit:
            return Usage(False, used)
        counts = self._counts
        if counts.pop(key, None) is None and len(counts) >= self._max_keys:
            self._make_room(label)
        counts[key] = (label, used + 1)
        return Usage(True, used + 1)

    def refund(self, key: str, label: str, *, local: bool = False) -> None:
        """Take back one request of the period `label` (nothing once the period changed)."""
        used = self.used(key, label)
        if used > 0:
            self._counts[key] = (label, used - 1)

    def _make_room(self, label: str) -> None:
        counts = self._counts
        stale = [key for key, (seen, _) in counts.items() if seen != label][:64]
        for key in stale:
            del counts[key]
        if len(counts) >= self._max_keys:
            del counts[next(iter(counts))]

    async def close(self) -> None:
        """Nothing to release."""
        self._counts.clear()


def quotas_for(counters: object, clock: Clock | None = None) -> MemoryQuotas | RedisQuotas:
    """The quota store beside the gateway's `counters`: Redis when they are, else memory."""
    if getattr(counters, "kind", "memory") == "redis":
        from bastion.counters.quota_redis import RedisQuotas  # redis is an optional extra

        spec = str(getattr(counters, "spec", ""))
        return attach(counters, "quotas", lambda: RedisQuotas(spec, clock=clock))
    return attach(counters, "quotas", MemoryQuotas)
