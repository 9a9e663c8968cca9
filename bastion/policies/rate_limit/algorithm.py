"""Rate-limit arithmetic: GCRA, a sliding-window counter and a sliding log, over integer time.

How this works: time is an integer count of microseconds (exact, and small enough for the
doubles of Redis' Lua), taken from an injected clock by the caller. Each limit is a `Rule`;
each key's state is one integer for GCRA, three for the sliding window, and at most `limit`
timestamps for the sliding log. `decide()` takes the stored state and the current time and
returns a `Decision` plus the state to store if the request is admitted; a refused request
leaves the state as it was, so only accepted requests are counted. The Redis Lua script
(`bastion.counters.redis_counters`) implements the same formulas.

GCRA (generic cell rate algorithm, a leaky bucket without a drip loop): with emission interval
`T = ceil(window / limit)` and tolerance `tau = burst * T`, the state is the theoretical arrival
time `tat` of the next request. A request at `now` is admitted iff `max(tat, now) - now <= tau`,
and then `tat = max(tat, now) + T`. Hence at most `burst + 1` requests at once and never more
than `limit + burst` in any window of `window` seconds; under steady demand exactly `limit`
per window. See https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm

Sliding window: fixed windows aligned on multiples of `window`; the estimate of requests in
the last `window` seconds is `previous * (window - elapsed) / window + current`, and a request
is admitted iff that estimate plus one stays within `limit` (all in integer arithmetic).

Sliding log: the state is the times of the admitted requests still inside the window, oldest
first. A request at `now` is admitted iff fewer than `limit` of them are later than
`now - window`; then `now` is appended. So no span of `window` microseconds (half-open) ever
holds more than `limit` admissions, under demand exactly `limit` are admitted per window, and a
refused request is told exactly when the oldest counted entry leaves the window. The log never
holds more than `limit` entries, which is why `limit` is capped at `MAX_LOG_LIMIT`. It comes in
two forms with one decision rule (`_log_decision`): `sliding_log` over an immutable tuple (the
reference, what `decide` uses: an admission builds a new tuple, O(limit)), and
`sliding_log_in_place` over a deque the caller keeps (what the memory counters use: expired
entries leave from the left, the caller appends `now` once it counts the request, so an
admission costs O(expired + 1) amortised, whatever `limit` is).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["gcra", "sliding_window", "sliding_log"]
MICROS = 1_000_000
MAX_LOG_LIMIT = 10_000
"""The largest `limit` of a sliding log: each key keeps one timestamp per admitted request."""

GCRAState = int
"""The theoretical arrival time of the next request, in microseconds."""
WindowState = tuple[int, int, int]
"""(index of the current fixed window, requests in the previous one, in the current one)."""
LogState = tuple[int, ...]
"""Times of the admitted requests of a sliding log, oldest first (at most `limit`)."""
LiveLog = deque[int]
"""A sliding log kept in place by its owner (`sliding_log_in_place`), oldest first."""
State = GCRAState | WindowState | LogState


def to_micros(seconds: float) -> int:
    """Seconds (a clock reading) as whole microseconds."""
    return int(seconds * MICROS)


def ceil_seconds(micros: int) -> int:
    """Microseconds rounded up to whole seconds (headers and Retry-After carry integers)."""
    return -(-micros // MICROS)


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit: `limit` requests per `window_us` microseconds, with `burst` extra at once.

    Raises:
        ValueError: a non-positive limit or window, a negative burst, a burst with another
            algorithm than gcra (the others have no notion of one), or a sliding log longer
            than `MAX_LOG_LIMIT`.
    """

    limit: int
    window_us: int
    burst: int = 0
    algorithm: Algorithm = "gcra"

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError("limit must be positive")
        if self.window_us <= 0:
            raise ValueError("window must be positive")
        if self.burst < 0:
            raise ValueError("burst must not be negative")
        if self.burst and self.algorithm != "gcra":
            raise ValueError("burst applies to the gcra algorithm only")
        if self.algorithm == "sliding_log" and self.limit > MAX_LOG_LIMIT:
            raise ValueError(f"sliding_log keeps at most {MAX_LOG_LIMIT:,} entries per key")

    @property
    def interval_us(self) -> int:
        """GCRA emission interval: rounded up, so `limit` intervals never undercut the window."""
        return -(-self.window_us // self.limit)

    @property
    def tolerance_us(self) -> int:
        """GCRA tolerance: how far ahead of `now` the theoretical arrival time may run."""
        return self.burst * self.interval_us

    @property
    def capacity(self) -> int:
        """Requests admitted at once by a rested key."""
        return self.burst + 1 if self.algorithm == "gcra" else self.limit


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one rule: admitted or not, and what the response headers report.

    `remaining` is how many more requests would be admitted right now; `reset_us` how long
    until the key is fully rested again; `retry_after_us` (refusals only) how long until a
    request would be admitted.
    """

    allowed: bool
    remaining: int
    reset_us: int
    retry_after_us: int = 0


def decide(rule: Rule, state: State | None, now: int) -> tuple[Decision, State | None]:
    """Decide one request at `now` (microseconds) given the key's stored `state`.

    Returns:
        The decision and the state to store if the request is counted (the unchanged
        `state` when it is refused).
    """
    if rule.algorithm == "gcra":
        tat = state if isinstance(state, int) else None
        return gcra(rule, tat, now)
    if rule.algorithm == "sliding_log":
        log = state if isinstance(state, tuple) else None
        return sliding_log(rule, log, now)
    window = state if isinstance(state, tuple) and len(state) == 3 else None
    return sliding_window(rule, window, now)


def gcra(rule: Rule, tat: int | None, now: int) -> tuple[Decision, int | None]:
    """GCRA for one request; `tat` is None for a key never seen (or expired)."""
    interval = rule.interval_us
    tolerance = rule.tolerance_us
    base = now if tat is None or tat < now else tat
    if base - now > tolerance:
        # Refused: the earliest admission is when `base - now` falls back to `tolerance`.
        retry = base - tolerance - now
        return Decision(False, 0, base - now, retry), tat
    new_tat = base + interval
    remaining = (now + tolerance + interval - new_tat) // interval
    return Decision(True, max(remaining, 0), new_tat - now), new_tat


def sliding_window(
    rule: Rule, state: WindowState | None, now: int
) -> tuple[Decision, WindowState | None]:
    """The sliding-window counter for one request; `state` None for a new key."""
    window = rule.window_us
    limit = rule.limit
    index, elapsed = divmod(now, window)
    previous, current = _roll(state, index)
    weight = window - elapsed  # share of the previous window still inside the sliding one
    # Admit iff previous * weight / window + current + 1 <= limit, without division.
    budget = limit * window - previous * weight
    if (current + 1) * window <= budget:
        current += 1
        remaining = max(budget // window - current, 0)
        decision = Decision(True, remaining, _window_reset(window, elapsed, current))
        return decision, (index, previous, current)
    retry = _retry(rule, previous, current, elapsed)
    return Decision(False, 0, _window_reset(window, elapsed, current), retry), state


def _roll(state: WindowState | None, index: int) -> tuple[int, int]:
    """(previous, current) counts as seen from fixed window `index`."""
    if state is None:
        return 0, 0
    stored_index, previous, current = state
    if stored_index == index:
        return previous, current
    if stored_index == index - 1:
        return current, 0
    return 0, 0


def _window_reset(window: int, elapsed: int, current: int) -> int:
    """Until the key is rested: the current window ends, then its count weighs for one more."""
    if current == 0:
        return window - elapsed
    return 2 * window - elapsed


def _retry(rule: Rule, previous: int, current: int, elapsed: int) -> int:
    """How long until `previous * (window - e) / window + current + 1 <= limit` holds."""
    window = rule.window_us
    limit = rule.limit
    room = limit - current - 1
    if room >= 0 and previous > 0:
        # Later in this window: previous * (window - e) <= room * window.
        needed = window - (room * window) // previous
        if needed < window:
            return max(needed - elapsed, 1)
    # In the next window the current count becomes the previous one.
    until_next = window - elapsed
    room_next = limit - 1
    if current <= room_next:
        return until_next
    needed = window - (room_next * window) // current
    return until_next + needed


def sliding_log(rule: Rule, log: LogState | None, now: int) -> tuple[Decision, LogState | None]:
    """The sliding log for one request; `log` None for a new key.

    Only an admission builds a new log (the entries still inside the window plus `now`), so
    a refusal costs a binary search and no copy.
    """
    entries = log or ()
    # Entries at or before now - window have left the window (the span is half-open).
    start = bisect_right(entries, now - rule.window_us)
    decision = _log_decision(rule, entries, start, now)
    if decision.allowed:
        return decision, (*entries[start:], now)
    return decision, log


def sliding_log_in_place(rule: Rule, log: LiveLog, now: int) -> tuple[Decision, int]:
    """The sliding log for one request over a log its owner keeps and mutates.

    Entries that have left the window are dropped from the left of `log` (they count for
    nothing, whatever the decision); nothing else changes. If the owner counts the request
    (this limit and every other one checked with it admitted it), it appends `now`: `log`
    then holds what `sliding_log` would have returned. Times must not go backwards.

    Returns:
        The decision (the same as `sliding_log`'s) and how many entries were dropped.
    """
    horizon = now - rule.window_us
    dropped = 0
    while log and log[0] <= horizon:
        log.popleft()
        dropped += 1
    return _log_decision(rule, log, 0, now), dropped


def _log_decision(rule: Rule, entries: Sequence[int], start: int, now: int) -> Decision:
    """Admit iff fewer than `limit` entries remain in `entries[start:]` (those in the window)."""
    window = rule.window_us
    limit = rule.limit
    count = len(entries) - start
    if count < limit:
        return Decision(True, limit - count - 1, window)
    # Admission needs count <= limit - 1: the entry at index count - limit of the live part
    # is the last that has to leave (with an unchanged limit, the oldest one).
    leaves_at = entries[start + count - limit] + window
    return Decision(False, 0, entries[-1] + window - now, leaves_at - now)
