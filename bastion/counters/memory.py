"""In-process counters: a bounded dict of per-key rate-limit state that expires by itself."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.clock import Clock, SystemClock
from bastion.counters.base import Check, Decisions, OnError
from bastion.policies.rate_limit.algorithm import Decision, State, decide, to_micros

DEFAULT_MAX_KEYS = 100_000
_SWEEP = 64  # entries examined for expiry per insertion when full


class MemoryCounters:
    """Counters of one process, exact within it (the event loop runs one check at a time).

    Each entry keeps the key's algorithm state and the time at which it is rested (then it is
    worth nothing and is dropped). At `max_keys` entries, an insertion first drops expired
    entries from the oldest end, then the least recently counted key: that key starts afresh,
    so a flood of distinct keys can at worst reset old, idle keys, never grow memory.
    """

    kind = "memory"

    def __init__(
        self, clock: Clock | None = None, *, max_keys: int = DEFAULT_MAX_KEYS, spec: str = "memory"
    ) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        self.spec = spec
        self._clock = clock or SystemClock()
        self._max_keys = max_keys
        # key -> (state, rested_at in microseconds); insertion order = last counted.
        self._entries: dict[str, tuple[State, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, checks: Sequence[Check], *, on_error: OnError = "local") -> Decisions:
        """Decide and, if every check allows, count the request on each (never awaits)."""
        now = to_micros(self._clock.monotonic())
        entries = self._entries
        decisions: list[Decision] = []
        updates: list[tuple[str, State | None, int]] = []
        for key, rule in checks:
            entry = entries.get(key)
            state = None if entry is None or entry[1] <= now else entry[0]
            decision, new_state = decide(rule, state, now)
            decisions.append(decision)
            updates.append((key, new_state, now + decision.reset_us))
        if all(decision.allowed for decision in decisions):
            for key, new_state, rested_at in updates:
                if new_state is not None:
                    self._store(key, new_state, rested_at, now)
        return tuple(decisions)

    def _store(self, key: str, state: State, rested_at: int, now: int) -> None:
        entries = self._entries
        if entries.pop(key, None) is None and len(entries) >= self._max_keys:
            self._make_room(now)
        entries[key] = (state, rested_at)

    def _make_room(self, now: int) -> None:
        entries = self._entries
        expired = [key for key, (_, rested) in _head(entries, _SWEEP) if rested <= now]
        for key in expired:
            del entries[key]
        if len(entries) >= self._max_keys:
            del entries[next(iter(entries))]

    async def close(self) -> None:
        """Nothing to release."""
        self._entries.clear()


def _head(entries: dict[str, tuple[State, int]], count: int) -> list[tuple[str, tuple[State, int]]]:
    """The `count` oldest entries."""
    found: list[tuple[str, tuple[State, int]]] = []
    for item in entries.items():
        found.append(item)
        if len(found) >= count:
            break
    return found
