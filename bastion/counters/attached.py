"""Stores that live beside the gateway's rate-limit counters (leases, quotas), one set per instance.

The gateway builds one `Counters` per `counters:` setting and keeps it across reloads; the lease
and quota stores are attached to that instance, so they share its lifetime too: a reload keeps
the in-flight leases and the quota counts, and a changed `counters:` setting starts fresh ones.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol, TypeVar, cast


class Closable(Protocol):
    """A store with connections to release."""

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


S = TypeVar("S", bound=Closable)

_ATTACHED: weakref.WeakKeyDictionary[object, dict[str, Closable]] = weakref.WeakKeyDictionary()


def attach(counters: object, name: str, factory: Callable[[], S]) -> S:
    """The `name` store attached to `counters`, created by `factory` the first time.

    Each `name` belongs to one module (`leases`, `quotas`), which always passes the same
    factory type for it.
    """
    stores = _ATTACHED.setdefault(counters, {})
    found = stores.get(name)
    if found is None:
        found = stores[name] = factory()
    return cast(S, found)  # stored under `name` only by this function, from a factory of S


def attached_degraded(counters: object) -> bool:
    """Whether a store attached to `counters` cannot reach Redis (for the degraded gauge)."""
    return any(getattr(store, "degraded", False) for store in _ATTACHED.get(counters, {}).values())


async def close_attached(counters: object) -> None:
    """Close every store attached to `counters` (call right after `counters.close()`)."""
    stores = _ATTACHED.pop(counters, {})
    for store in stores.values():
        await store.close()
