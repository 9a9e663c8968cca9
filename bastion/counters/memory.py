"""In-process counters: a bounded dict of per-key rate-limit state that expires by itself."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import islice

from bastion.clock import Clock, SystemClock
from bastion.counters.base import Check, Decisions, OnError
from bastion.policies.rate_limit.algorithm import (
    Decision,
    LiveLog,
    State,
    decide,
    sliding_log_in_place,
    to_micros,
)

DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_LOG_ENTRIES = 1_000_000
"""Sliding-log timestamps kept across all keys (about 40 MB: an int and a deque slot each)."""
_SWEEP = 64  # entries examined for expiry per insertion when full


class MemoryCounters:
    """Counters of one process, exact within it (the event loop runs one check at a time).

    Each entry keeps the key's algorithm state and the time at which it is rested (then it is
    worth nothing and is dropped). A sliding log is a deque kept in place: entries that left
    the window are dropped from its left when the key is checked, and an admission appends
    one, so a check costs O(expired + 1) amortised at any `limit`. Memory is bounded twice,
    whatever the limits:

    - keys: at `max_keys` entries, an insertion first drops expired entries from the oldest
      end, then the least recently counted key;
    - sliding-log timestamps: when a request counted on logs takes the total beyond
      `max_log_entries`, the least recently counted logs are dropped until the rest fit, never
      those it was just counted on. So at most `max(max_log_entries, n * MAX_LOG_LIMIT)`
      timestamps are held, `n` being the most sliding-log checks of one request.

    A dropped key starts afresh, so a flood of distinct keys or of full logs can at worst
    reset old, idle keys, never grow memory.
    """

    kind = "memory"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_log_entries: int = DEFAULT_MAX_LOG_ENTRIES,
        spec: str = "memory",
    ) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        if max_log_entries <= 0:
            raise ValueError("max_log_entries must be positive")
        self.spec = spec
        self._clock = clock or SystemClock()
        self._max_keys = max_keys
        self._max_log_entries = max_log_entries
        # key -> (state, rested_at in microseconds); insertion order = last counted. A sliding
        # log's state is None here (other algorithms then start afresh) and the log is in
        # `_logs`; `_log_entries` is the total length of the logs.
        self._entries: dict[str, tuple[State | None, int]] = {}
        self._logs: dict[str, LiveLog] = {}
        self._log_entries = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def log_entries(self) -> int:
        """Sliding-log timestamps held across all keys."""
        return self._log_entries

    def hit(self, checks: Sequence[Check], *, on_error: OnError = "local") -> Decisions:
        """Decide and, if every check allows, count the request on each (never awaits)."""
        now = to_micros(self._clock.monotonic())
        entries = self._entries
        decisions: list[Decision] = []
        updates: list[tuple[str, State | None, int]] = []
        logs: dict[str, tuple[LiveLog, int]] | None = None  # a key checked twice counts once
        for key, rule in checks:
            entry = entries.get(key)
            if rule.algorithm == "sliding_log":
                log = self._logs.get(key)
                if log is None:
                    log = deque()  # stored only if the request is counted
                elif entry is not None and entry[1] <= now:  # rested: every entry has left
                    self._log_entries -= len(log)
                    log.clear()
                decision, dropped = sliding_log_in_place(rule, log, now)
                self._log_entries -= dropped
                if logs is None:
                    logs = {}
                logs[key] = (log, now + rule.window_us)
            else:
                state = None if entry is None or entry[1] <= now else entry[0]
                decision, new_state = decide(rule, state, now)
                updates.append((key, new_state, now + decision.reset_us))
            decisions.append(decision)
        if all(decision.allowed for decision in decisions):
            for key, new_state, rested_at in updates:
                if new_state is not None:
                    self._store(key, new_state, rested_at, now)
            if logs is not None:
                for key, (log, rested_at) in logs.items():
                    self._count_log(key, log, now, rested_at)
                if self._log_entries > self._max_log_entries:
                    self._shed(keep=len(logs))
        return tuple(decisions)

    def _store(self, key: str, state: State, rested_at: int, now: int) -> None:
        entries = self._entries
        old = entries.pop(key, None)
        if old is None:
            if len(entries) >= self._max_keys:
                self._make_room(now)
        elif old[0] is None:  # it held a log (a reload changed the algorithm)
            self._log_entries -= len(self._logs.pop(key))
        entries[key] = (state, rested_at)

    def _count_log(self, key: str, log: LiveLog, now: int, rested_at: int) -> None:
        """Append `now` to the key's log and make it the most recently counted."""
        entries = self._entries
        logs = self._logs
        if entries.pop(key, None) is None and len(entries) >= self._max_keys:
            self._make_room(now)
        # `log` is the one stored under the key, or None: a new key, or a log dropped for room
        # or replaced by another algorithm's state while this request was counted.
        if logs.pop(key, None) is None:
            self._log_entries += len(log)
        log.append(now)
        self._log_entries += 1
        entries[key] = (None, rested_at)
        logs[key] = log

    def _make_room(self, now: int) -> None:
        entries = self._entries
        expired = [key for key, (_, rested) in _head(entries, _SWEEP) if rested <= now]
        for key in expired:
            self._drop(key)
        if len(entries) >= self._max_keys:
            self._drop(next(iter(entries)))

    def _shed(self, *, keep: int) -> None:
        """Drop the least recently counted logs until the timestamps fit the budget.

        The `keep` most recent logs (those the current request was counted on) stay.
        """
        logs = self._logs
        excess = self._log_entries - self._max_log_entries
        victims: list[str] = []
        # Collected first: a dict must not change while it is iterated.
        for key, log in islice(logs.items(), len(logs) - keep):
            if excess <= 0:
                break
            victims.append(key)
            excess -= len(log)
        for key in victims:
            self._drop(key)

    def _drop(self, key: str) -> None:
        state, _ = self._entries.pop(key)
        if state is None:
            self._log_entries -= len(self._logs.pop(key))

    async def close(self) -> None:
        """Forget every key (there is nothing else to release)."""
        self._entries.clear()
        self._logs.clear()
        self._log_entries = 0


def _head(
    entries: dict[str, tuple[State | None, int]], count: int
) -> list[tuple[str, tuple[State | None, int]]]:
    """The `count` oldest entries."""
    found: list[tuple[str, tuple[State | None, int]]] = []
    for item in entries.items():
        found.append(item)
        if len(found) >= count:
            break
    return found
