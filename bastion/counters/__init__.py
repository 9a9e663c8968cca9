"""Shared counters for rate limits and lockouts: in process memory or in Redis.

The package import stays light (the core imports the `Counters` Protocol from `base`); the
implementations load on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.clock import Clock
    from bastion.counters.base import Counters

__all__ = ["make_counters"]


def make_counters(spec: str, clock: Clock | None = None) -> Counters:
    """Counters for a `counters:` setting: `memory` or `redis://host:port/db`.

    Raises:
        ValueError: the setting is neither.
    """
    if spec == "memory":
        from bastion.counters.memory import MemoryCounters

        return MemoryCounters(clock)
    from bastion.counters.redis_counters import RedisCounters  # redis is an optional extra

    return RedisCounters(spec, clock=clock)
