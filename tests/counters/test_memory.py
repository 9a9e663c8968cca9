"""MemoryCounters: synchronous answers, all-or-nothing counting, bounded size, expiry."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.counters import make_counters
from bastion.counters.memory import MemoryCounters
from bastion.policies.rate_limit.algorithm import MICROS, Decision, Rule

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
