"""Leases on in-flight request slots for the concurrency_limit policy: in memory or in Redis.

How this works: `acquire(key, limit)` admits a request iff fewer than `limit` leases are held
on `key`, and then hands out a `Lease` whose `release()` frees the slot (once; later calls do
nothing). In memory a key is a plain count of one process. In Redis a key is a sorted set:
member = a lease id unique across processes, score = the lease's expiry in microseconds of
Redis' own clock (`TIME`, one time base for every node). The acquire script first drops
expired members, then admits iff `ZCARD < limit`; release is `ZREM`. While a node holds leases
it renews them every third of `lease_us`, so the expiry only bounds how long the slots of a
node that crashed (and never released) stay taken, not how long a request may run.

Failure: Redis calls go through `RedisBatch` (one pipeline per tick, bounded timeout,
degraded/recovered events). When Redis is down, `on_error` decides: `local` takes a lease in
this process's memory instead, `allow` admits without a lease, `deny` refuses (the caller
answers 503). A release that cannot reach Redis is dropped; the lease expires on its own.
The Redis store lives in `bastion.counters.leases_redis` (redis is an optional extra).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from bastion.clock import Clock
from bastion.counters.attached import attach

if TYPE_CHECKING:
    from bastion.counters.leases_redis import RedisLeases

OnError = Literal["local", "allow", "deny"]


class Lease:
    """One held slot; `release()` frees it exactly once."""

    __slots__ = ("key", "member", "released", "store")

    def __init__(self, store: MemoryLeases | RedisLeases, key: str, member: str = "") -> None:
        self.store = store
        self.key = key
        self.member = member
        self.released = False

    def release(self) -> None:
        """Free the slot; calling it again does nothing."""
        if self.released:
            return
        self.released = True
        self.store.release(self)


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to one acquire: admitted or not, leases held on the key, the lease if any.

    `lease` is None when refused, and also when admitted without one (Redis down and
    `on_error` is `allow`).
    """

    allowed: bool
    held: int
    lease: Lease | None = None


class LeaseStore(Protocol):
    """Acquires leases; answers synchronously unless it must ask Redis."""

    kind: str

    def acquire(
        self, key: str, limit: int, *, lease_us: int, on_error: OnError = "local"
    ) -> Grant | Awaitable[Grant | None] | None:
        """Take a slot on `key` if fewer than `limit` are held.

        Returns:
            The grant; `None` when Redis is unavailable and `on_error` is `allow` or `deny`.
        """
        ...

    def held(self, key: str) -> int:
        """Leases this process holds on `key` (memory) or tracks for renewal (Redis)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryLeases:
    """In-flight counts of one process; a key disappears when its last lease is released."""

    kind = "memory"

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def acquire(
        self, key: str, limit: int, *, lease_us: int = 0, on_error: OnError = "local"
    ) -> Grant:
        """Take a slot at once (never awaits; `lease_us` and `on_error` do not apply)."""
        count = self._counts.get(key, 0)
        if count >= limit:
            return Grant(False, count)
        self._counts[key] = count + 1
        return Grant(True, count + 1, Lease(self, key))

    def release(self, lease: Lease) -> None:
        """Free `lease`'s slot (called through `Lease.release`, which guards against twice)."""
        count = self._counts.get(lease.key, 0) - 1
        if count > 0:
            self._counts[lease.key] = count
        else:
            self._counts.pop(lease.key, None)

    def held(self, key: str) -> int:
        """Leases held on `key`."""
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)

    async def close(self) -> None:
        """Nothing to release."""
        return None


def leases_for(counters: object, clock: Clock | None = None) -> MemoryLeases | RedisLeases:
    """The lease store beside the gateway's `counters`: Redis when they are, else memory."""
    if getattr(counters, "kind", "memory") == "redis":
        from bastion.counters.leases_redis import RedisLeases  # redis is an optional extra

        spec = str(getattr(counters, "spec", ""))
        return attach(counters, "leases", lambda: RedisLeases(spec, clock=clock))
    return attach(counters, "leases", MemoryLeases)
