"""MemoryCounters: synchronous answers, all-or-nothing counting, bounded size, expiry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.counters import make_counters
from bastion.counters.memory import MemoryCounters
from bastion.policies.rate_limit.algorithm import MICROS, Decision, Rule, State, decide, to_micros

PER_SECOND = Rule(1, MICROS)


def test_hit_answers_synchronously_with_one_decision_per_check():
    counters = MemoryCounters(FakeClock())
    decisions = counters.hit([("a", PER_SECOND), ("b", Rule(5, MICROS, burst=4))])
    assert isinstance(decisions, tuple)
    assert [d.allowed for d in decisions] == [True, True]


def test_a_refusal_by_one_check_counts_on_none():
    clock = FakeClock()
    counters = MemoryCounters(clock)
    counters.hit([("b", PER_SECOND)])
    roomy = Rule(10, 10 * MICROS, burst=9)
    for _ in range(5):
        assert not all(d.allowed for d in counters.hit([("a", roomy), ("b", PER_SECOND)]))
    assert counters.hit([("a", roomy)])[0].remaining == 9


def test_rested_keys_are_dropped_when_room_is_needed():
    clock = FakeClock()
    counters = MemoryCounters(clock, max_keys=10)
    for index in range(10):
        counters.hit([(f"old{index}", PER_SECOND)])
    clock.advance(2)
    for index in range(10):
        counters.hit([(f"new{index}", PER_SECOND)])
    assert len(counters) == 10


def test_size_stays_bounded_under_a_flood_of_distinct_keys():
    counters = MemoryCounters(FakeClock(), max_keys=100)
    for index in range(5_000):
        counters.hit([(f"k{index}", Rule(1, 3600 * MICROS))])
    assert len(counters) == 100


def test_a_key_counted_recently_survives_eviction_of_idle_ones():
    counters = MemoryCounters(FakeClock(), max_keys=3)
    slow = Rule(1, 3600 * MICROS)
    counters.hit([("busy", slow)])
    counters.hit([("idle1", slow)])
    counters.hit([("idle2", slow)])
    counters.hit([("busy", Rule(2, 3600 * MICROS, burst=5))])  # counted again: now newest
    counters.hit([("new", slow)])
    assert not counters.hit([("busy", slow)])[0].allowed


def test_refuses_a_non_positive_size():
    with pytest.raises(ValueError, match="positive"):
        MemoryCounters(max_keys=0)


def test_make_counters_builds_memory_and_redis():
    assert make_counters("memory").kind == "memory"
    redis = make_counters("redis://127.0.0.1:6379/0?prefix=x:&timeout_ms=20")
    assert redis.kind == "redis"
    assert redis.spec == "redis://127.0.0.1:6379/0?prefix=x:&timeout_ms=20"


def test_sliding_log_key_expires_one_window_after_its_newest_entry():
    clock = FakeClock()
    counters = MemoryCounters(clock, max_keys=2)
    log = Rule(2, 10 * MICROS, algorithm="sliding_log")
    counters.hit([("log", log)])
    clock.advance(4)
    counters.hit([("log", log)])
    assert not counters.hit([("log", log)])[0].allowed
    clock.advance(9.999)  # the first entry has left, the newest (4 s) has not: one slot
    assert counters.hit([("log", log)])[0] == Decision(True, 0, 10 * MICROS)
    clock.advance(10)  # every entry has left: the key is rested and is dropped for room
    counters.hit([("other", log)])
    counters.hit([("third", log)])
    assert len(counters) == 2
    assert counters.hit([("log", log)])[0].remaining == 1  # starts afresh


def test_a_sliding_log_refused_by_another_check_records_nothing():
    counters = MemoryCounters(FakeClock())
    log = Rule(3, 60 * MICROS, algorithm="sliding_log")
    counters.hit([("b", PER_SECOND)])
    for _ in range(5):
        assert not all(d.allowed for d in counters.hit([("a", log), ("b", PER_SECOND)]))
    assert counters.hit([("a", log)])[0].remaining == 2


# Sliding logs are deques kept in place (an admission appends, expired entries leave from the
# left) under a budget of timestamps across keys. The reference below is the counters'
# behaviour before that: immutable tuples through `decide`, check-then-commit, no eviction.
class _TupleCounters:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.states: dict[str, tuple[State, int]] = {}

    def hit(self, checks: list[tuple[str, Rule]]) -> tuple[Decision, ...]:
        now = to_micros(self.clock.monotonic())
        decisions = []
        updates = []
        for key, rule in checks:
            entry = self.states.get(key)
            state = None if entry is None or entry[1] <= now else entry[0]
            decision, new_state = decide(rule, state, now)
            decisions.append(decision)
            updates.append((key, new_state, now + decision.reset_us))
        if all(decision.allowed for decision in decisions):
            for key, new_state, rested_at in updates:
                if new_state is not None:
                    self.states[key] = (new_state, rested_at)
        return tuple(decisions)


# Each key belongs to one rule, as the policy's keys do (the limit's name is in the key).
_RULES = {
    "log3": Rule(3, 2 * MICROS, algorithm="sliding_log"),
    "log5": Rule(5, MICROS, algorithm="sliding_log"),
    "gcra": Rule(2, MICROS),  # refuses bursts: requests its other limits admitted are refused
    "window": Rule(4, MICROS, algorithm="sliding_window"),
}
_KEYS = [f"{name}:{who}" for name in _RULES for who in ("a", "b")]
_steps = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 2), st.integers(0, 1_200_000), st.just(MICROS)),
        st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=200,
)


def _checks(keys: list[str]) -> list[tuple[str, Rule]]:
    return [(key, _RULES[key.split(":")[0]]) for key in keys]


@settings(max_examples=200)
@given(steps=_steps)
def test_sliding_logs_decide_exactly_as_the_tuple_reference(steps):
    clock = FakeClock()
    counters = MemoryCounters(clock)
    reference = _TupleCounters(clock)
    for gap, keys in steps:
        clock.advance(gap / MICROS)
        assert counters.hit(_checks(keys)) == reference.hit(_checks(keys))


@settings(max_examples=200)
@given(
    steps=_steps,
    max_keys=st.integers(3, 8),
    max_log_entries=st.integers(1, 12),
)
def test_log_entries_stay_within_the_budget(steps, max_keys, max_log_entries):
    clock = FakeClock()
    counters = MemoryCounters(clock, max_keys=max_keys, max_log_entries=max_log_entries)
    protected = 0  # entries of the logs that the latest request counted on a log was counted on
    for gap, keys in steps:
        clock.advance(gap / MICROS)
        held = counters.log_entries
        checks = _checks(keys)
        decisions = counters.hit(checks)
        assert len(counters) <= max_keys
        if not all(decision.allowed for decision in decisions):
            assert counters.log_entries <= held  # only expiry changed anything
            continue
        # A counted log holds limit - remaining entries. The logs a request was just counted
        # on are never dropped for it; everything else fits the budget.
        own = {
            key: rule.limit - decision.remaining
            for (key, rule), decision in zip(checks, decisions, strict=True)
            if rule.algorithm == "sliding_log"
        }
        if own:
            protected = sum(own.values())
            assert protected <= counters.log_entries
        assert counters.log_entries <= max(max_log_entries, protected)


def test_over_the_budget_the_least_recently_counted_logs_are_dropped_first():
    clock = FakeClock()
    counters = MemoryCounters(clock, max_log_entries=10)
    log = Rule(5, 3600 * MICROS, algorithm="sliding_log")
    for key in ("a", "b", "a", "b", "a", "b", "a", "b"):
        counters.hit([(key, log)])
    counters.hit([("a", log)])  # a: 5 entries, counted last; b: 4
    assert counters.log_entries == 9
    counters.hit([("c", log)])
    counters.hit([("c", log)])  # 11 entries: b, the least recently counted, is dropped
    assert counters.log_entries == 7
    assert counters.hit([("b", log)])[0].remaining == 4  # starts afresh
    assert not counters.hit([("a", log)])[0].allowed  # still full: kept, limit enforced
    assert len(counters) == 3


def test_a_log_is_never_dropped_for_the_request_counted_on_it():
    counters = MemoryCounters(FakeClock(), max_log_entries=3)
    day = Rule(5, 86_400 * MICROS, algorithm="sliding_log")
    hour = Rule(4, 3600 * MICROS, algorithm="sliding_log")
    for _ in range(4):
        assert all(d.allowed for d in counters.hit([("day", day), ("hour", hour)]))
    assert counters.log_entries == 8  # over the budget: only this request's logs are held
    assert not counters.hit([("day", day), ("hour", hour)])[1].allowed  # hour: exactly 4
    assert counters.hit([("day", day)])[0] == Decision(True, 0, 86_400 * MICROS)
    assert counters.log_entries == 5  # the hour log was the least recently counted


def test_expired_log_entries_are_released_even_by_a_refused_request():
    clock = FakeClock()
    counters = MemoryCounters(clock, max_keys=2)
    log = Rule(100, 10 * MICROS, algorithm="sliding_log")
    hourly = Rule(1, 3600 * MICROS)
    counters.hit([("veto", hourly)])  # refuses every later request that checks it
    for _ in range(50):
        counters.hit([("a", log)])
        clock.advance(0.1)
    assert counters.log_entries == 50
    clock.advance(5.95)  # the first 10 entries (0 s to 0.9 s) have left the window
    assert [d.allowed for d in counters.hit([("a", log), ("veto", hourly)])] == [True, False]
    assert counters.log_entries == 40
    assert counters.hit([("a", log)])[0].remaining == 100 - 40 - 1
    assert counters.log_entries == 41
    clock.advance(10.5)  # every entry has left: the key is rested
    assert [d.allowed for d in counters.hit([("a", log), ("veto", hourly)])] == [True, False]
    assert counters.log_entries == 0
    counters.hit([("b", PER_SECOND)])  # full: the rested log is swept for room, not veto
    assert len(counters) == 2
    assert not counters.hit([("veto", hourly)])[0].allowed


def test_a_key_switched_between_a_log_and_another_algorithm_starts_afresh():
    # A reload can change a limit's algorithm; the policy keys logs apart, the counters cope.
    counters = MemoryCounters(FakeClock())
    log = Rule(3, 60 * MICROS, algorithm="sliding_log")
    gcra = Rule(3, 60 * MICROS, burst=2)
    counters.hit([("k", log)])
    counters.hit([("k", log)])
    assert counters.hit([("k", gcra)])[0].remaining == 2
    assert counters.log_entries == 0
    assert counters.hit([("k", log)])[0].remaining == 2
    assert counters.log_entries == 1


def test_refuses_a_non_positive_log_budget():
    with pytest.raises(ValueError, match="max_log_entries must be positive"):
        MemoryCounters(max_log_entries=0)


@pytest.mark.anyio
async def test_close_releases_every_log():
    counters = MemoryCounters(FakeClock())
    counters.hit([("k", Rule(3, MICROS, algorithm="sliding_log"))])
    await counters.close()
    assert (len(counters), counters.log_entries) == (0, 0)
