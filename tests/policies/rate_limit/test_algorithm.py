"""GCRA, sliding-window and sliding-log arithmetic: exact admission counts and recovery."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from bastion.policies.rate_limit.algorithm import (
    MAX_LOG_LIMIT,
    MICROS,
    Decision,
    LogState,
    Rule,
    State,
    ceil_seconds,
    decide,
    sliding_log,
    sliding_log_in_place,
    to_micros,
)


def _run(rule: Rule, arrivals: list[int]) -> list[int]:
    """Feed sorted arrival times; return the times of admitted requests."""
    state: State | None = None
    admitted: list[int] = []
    for now in arrivals:
        decision, new_state = decide(rule, state, now)
        if decision.allowed:
            admitted.append(now)
            state = new_state
        else:
            assert new_state == state  # a refusal never changes the count
    return admitted


def _max_in_any_window(times: list[int], window: int) -> int:
    best = 0
    start = 0
    for end, time in enumerate(times):
        while times[start] <= time - window:
            start += 1
        best = max(best, end - start + 1)
    return best


rules = st.builds(
    Rule,
    limit=st.integers(1, 50),
    window_us=st.integers(1, 120).map(lambda s: s * MICROS),
    burst=st.integers(0, 10),
)
gaps = st.lists(st.integers(0, 3 * MICROS), min_size=1, max_size=300)


def _times(gap_list: list[int]) -> list[int]:
    times = []
    now = 5 * MICROS
    for gap in gap_list:
        now += gap
        times.append(now)
    return times


@settings(max_examples=300)
@given(rule=rules, gap_list=gaps)
def test_gcra_never_admits_more_than_limit_plus_burst_in_any_window(rule, gap_list):
    admitted = _run(rule, _times(gap_list))
    assert _max_in_any_window(admitted, rule.window_us) <= rule.limit + rule.burst


@settings(max_examples=200)
@given(
    limit=st.integers(1, 200),
    per_interval=st.integers(1, 5),
    tick=st.integers(1, 100_000),
    start=st.integers(0, 10**12),
)
def test_gcra_admits_exactly_limit_in_a_fresh_window_under_steady_demand(
    limit, per_interval, tick, start
):
    # Steady demand at 1-5 times the limit's rate, on a grid that the interval falls on.
    rule = Rule(limit, limit * per_interval * tick)
    arrivals = list(range(start, start + rule.window_us, tick))
    assert len(_run(rule, arrivals)) == limit


def test_gcra_without_burst_does_not_make_up_for_late_arrivals():
    # Documented: with burst 0 a request arriving late moves the schedule; burst absorbs jitter.
    rule = Rule(5, 5 * MICROS)
    late = [0, 1_100_000, 2_200_000, 3_300_000, 4_400_000]
    assert len(_run(rule, late)) == 5
    assert _run(rule, [*late, 4_999_999]) == late
    tolerant = Rule(5, 5 * MICROS, burst=1)
    assert len(_run(tolerant, [0, 1_100_000, 1_100_001])) == 3


@settings(max_examples=200)
@given(rule=rules, gap_list=gaps, wait=st.integers(0, 200 * MICROS))
def test_gcra_recovery_is_monotonic_and_complete(rule, gap_list, wait):
    times = _times(gap_list)
    state: State | None = None
    for now in times:
        decision, new_state = decide(rule, state, now)
        if decision.allowed:
            state = new_state
    now = times[-1]
    earlier = decide(rule, state, now + wait)[0]
    later = decide(rule, state, now + wait + rule.interval_us)[0]
    assert later.remaining >= earlier.remaining or not earlier.allowed
    assert later.allowed or not earlier.allowed
    rested = decide(rule, state, now + (rule.burst + 1) * rule.interval_us + rule.window_us)[0]
    assert rested.allowed
    assert rested.remaining == rule.burst


@settings(max_examples=200)
@given(rule=rules, gap_list=gaps)
def test_gcra_refusal_says_when_to_retry(rule, gap_list):
    times = _times(gap_list)
    state: State | None = None
    for now in times:
        decision, new_state = decide(rule, state, now)
        if decision.allowed:
            state = new_state
            continue
        assert decision.retry_after_us > 0
        assert not decide(rule, state, now + decision.retry_after_us - 1)[0].allowed
        assert decide(rule, state, now + decision.retry_after_us)[0].allowed


def test_gcra_spaces_requests_by_the_emission_interval():
    rule = Rule(100, 60 * MICROS)  # one every 0.6 s
    now = 1_000 * MICROS
    first, state = decide(rule, None, now)
    assert first == Decision(True, 0, 600_000)
    refused, _ = decide(rule, state, now + 100_000)
    assert refused == Decision(False, 0, 500_000, 500_000)
    assert decide(rule, state, now + 600_000)[0].allowed


def test_gcra_burst_is_available_at_once_then_drains():
    rule = Rule(3, 3 * MICROS, burst=2)
    state: State | None = None
    remaining = []
    for _ in range(4):
        decision, state = decide(rule, state, 0 + 10 * MICROS)
        remaining.append((decision.allowed, decision.remaining))
    assert remaining == [(True, 2), (True, 1), (True, 0), (False, 0)]


@settings(max_examples=300)
@given(
    limit=st.integers(1, 50),
    window=st.integers(1, 120),
    gap_list=gaps,
)
def test_sliding_window_admits_at_most_limit_per_fixed_window_and_two_limits_per_window(
    limit, window, gap_list
):
    rule = Rule(limit, window * MICROS, algorithm="sliding_window")
    admitted = _run(rule, _times(gap_list))
    per_fixed: dict[int, int] = {}
    for time in admitted:
        per_fixed[time // rule.window_us] = per_fixed.get(time // rule.window_us, 0) + 1
    assert max(per_fixed.values(), default=0) <= limit
    # The estimate assumes the previous window's requests were spread evenly: at worst
    # a sliding window holds one full previous window plus the current allowance.
    assert _max_in_any_window(admitted, rule.window_us) <= 2 * limit


@settings(max_examples=200)
@given(limit=st.integers(1, 50), window=st.integers(1, 120), gap_list=gaps)
def test_sliding_window_refusal_says_when_to_retry(limit, window, gap_list):
    rule = Rule(limit, window * MICROS, algorithm="sliding_window")
    state: State | None = None
    for now in _times(gap_list):
        decision, new_state = decide(rule, state, now)
        if decision.allowed:
            state = new_state
            continue
        assert decision.retry_after_us > 0
        assert decide(rule, state, now + decision.retry_after_us)[0].allowed


def test_sliding_window_admits_limit_in_a_fresh_window():
    rule = Rule(5, 10 * MICROS, algorithm="sliding_window")
    arrivals = [20 * MICROS + i for i in range(8)]
    assert len(_run(rule, arrivals)) == 5


def test_sliding_window_weighs_the_previous_window():
    rule = Rule(10, 10 * MICROS, algorithm="sliding_window")
    full = _run(rule, [i for i in range(10 * MICROS, 11 * MICROS, 10_000)])
    assert len(full) == 10
    state: State | None = (1, 0, 10)
    # Half-way through the next window half the previous count still weighs: 5 admitted.
    decisions = []
    for i in range(7):
        decision, new_state = decide(rule, state, 25 * MICROS + i)
        decisions.append(decision.allowed)
        if decision.allowed:
            state = new_state
    assert decisions == [True] * 5 + [False] * 2


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"limit": 0, "window_us": 1}, "limit must be positive"),
        ({"limit": -1, "window_us": 1}, "limit must be positive"),
        ({"limit": 1, "window_us": 0}, "window must be positive"),
        ({"limit": 1, "window_us": 1, "burst": -1}, "burst must not be negative"),
        (
            {"limit": 1, "window_us": 1, "burst": 1, "algorithm": "sliding_window"},
            "gcra algorithm only",
        ),
        (
            {"limit": 1, "window_us": 1, "burst": 1, "algorithm": "sliding_log"},
            "gcra algorithm only",
        ),
        (
            {"limit": MAX_LOG_LIMIT + 1, "window_us": 1, "algorithm": "sliding_log"},
            "at most 10,000 entries",
        ),
    ],
    ids=[
        "zero_limit",
        "negative_limit",
        "zero_window",
        "negative_burst",
        "burst_sliding",
        "burst_log",
        "log_too_long",
    ],
)
def test_rule_refuses_impossible_limits(settings_, message):
    with pytest.raises(ValueError, match=message):
        Rule(**settings_)


def test_time_conversions_round_the_safe_way():
    assert to_micros(1.5) == 1_500_000
    assert ceil_seconds(1) == 1
    assert ceil_seconds(1_000_000) == 1
    assert ceil_seconds(1_000_001) == 2
    assert ceil_seconds(0) == 0


# Sliding log. Arrival gaps include 0 (several requests in one microsecond) and gaps around
# the window length, where an off-by-one at the window edge would show.
log_rules = st.builds(
    Rule,
    limit=st.integers(1, 30),
    window_us=st.integers(1, 20).map(lambda s: s * MICROS // 4),
    algorithm=st.just("sliding_log"),
)
log_gap = st.one_of(
    st.integers(0, 3),
    st.integers(0, 2 * MICROS),
    st.sampled_from([MICROS // 4 - 1, MICROS // 4, MICROS // 4 + 1]),
)
log_gaps = st.lists(log_gap, min_size=1, max_size=300)


@settings(max_examples=300)
@given(rule=log_rules, gap_list=log_gaps)
def test_sliding_log_admits_iff_fewer_than_limit_were_admitted_in_the_window(rule, gap_list):
    # Oracle: the definition itself, over the requests admitted so far (refused ones are
    # never counted): admit iff fewer than `limit` admissions lie in (now - window, now].
    state: State | None = None
    admitted: list[int] = []
    for now in _times(gap_list):
        decision, new_state = decide(rule, state, now)
        in_window = sum(1 for time in admitted if time > now - rule.window_us)
        assert decision.allowed == (in_window < rule.limit)
        if decision.allowed:
            assert decision.remaining == rule.limit - in_window - 1
            assert decision.reset_us == rule.window_us
            admitted.append(now)
            state = new_state
            assert isinstance(state, tuple)
            assert len(state) <= rule.limit  # bounded memory: never more than `limit` entries
        else:
            assert new_state == state  # a refusal never changes the log
            assert decision.remaining == 0
    assert _max_in_any_window(admitted, rule.window_us) <= rule.limit


@settings(max_examples=300)
@given(rule=log_rules, gap_list=log_gaps)
def test_sliding_log_never_admits_more_than_limit_in_any_window(rule, gap_list):
    admitted = _run(rule, _times(gap_list))
    assert _max_in_any_window(admitted, rule.window_us) <= rule.limit


@settings(max_examples=300)
@given(rule=log_rules, gap_list=log_gaps)
def test_sliding_log_refusal_says_exactly_when_to_retry(rule, gap_list):
    state: State | None = None
    for now in _times(gap_list):
        decision, new_state = decide(rule, state, now)
        if decision.allowed:
            state = new_state
            continue
        assert isinstance(state, tuple)
        # The oldest counted entry leaves the window then, and not a microsecond earlier.
        assert decision.retry_after_us == state[-rule.limit] + rule.window_us - now
        assert decision.retry_after_us > 0
        assert not decide(rule, state, now + decision.retry_after_us - 1)[0].allowed
        assert decide(rule, state, now + decision.retry_after_us)[0].allowed
        assert decision.reset_us == state[-1] + rule.window_us - now


@settings(max_examples=200)
@given(
    limit=st.integers(1, 100),
    per_slot=st.integers(1, 5),
    tick=st.integers(1, 50_000),
    windows=st.integers(1, 4),
    start=st.integers(0, 10**12),
)
def test_sliding_log_admits_exactly_limit_per_window_under_demand(
    limit, per_slot, tick, windows, start
):
    # Demand at 1-5 times the limit, on a grid the window falls on: every fixed window counted
    # from the first admission holds exactly `limit` admissions, never one more or one less.
    rule = Rule(limit, limit * per_slot * tick, algorithm="sliding_log")
    arrivals = list(range(start, start + windows * rule.window_us, tick))
    admitted = _run(rule, arrivals)
    for index in range(windows):
        low = start + index * rule.window_us
        assert sum(1 for time in admitted if low <= time < low + rule.window_us) == limit


def test_sliding_log_counts_a_burst_then_frees_one_slot_per_expired_entry():
    rule = Rule(3, 10 * MICROS, algorithm="sliding_log")
    state: State | None = None
    answers = []
    for now in (0, 1 * MICROS, 2 * MICROS, 3 * MICROS):
        decision, state = decide(rule, state, now)
        answers.append(decision)
    assert answers == [
        Decision(True, 2, 10 * MICROS),
        Decision(True, 1, 10 * MICROS),
        Decision(True, 0, 10 * MICROS),
        Decision(False, 0, 9 * MICROS, 7 * MICROS),
    ]
    assert state == (0, 1 * MICROS, 2 * MICROS)
    # At exactly 10 s the first entry has left (the window is half-open): one slot, not three.
    decision, state = decide(rule, state, 10 * MICROS)
    assert decision == Decision(True, 0, 10 * MICROS)
    assert state == (1 * MICROS, 2 * MICROS, 10 * MICROS)
    assert decide(rule, state, 10 * MICROS + 1)[0] == Decision(
        False, 0, 10 * MICROS - 1, MICROS - 1
    )


@settings(max_examples=300)
@given(
    rule=log_rules,
    steps=st.lists(st.tuples(log_gap, st.booleans()), min_size=1, max_size=300),
)
def test_sliding_log_in_place_decides_as_the_tuple_log_and_keeps_only_live_entries(rule, steps):
    # The memory counters keep the log in a deque and append only when they count the
    # request; `counted` False stands for another limit of the same request refusing it.
    state: LogState | None = None
    log: deque[int] = deque()
    now = 5 * MICROS
    for gap, counted in steps:
        now += gap
        expected, new_state = sliding_log(rule, state, now)
        held = len(log)
        live = [time for time in log if time > now - rule.window_us]
        decision, dropped = sliding_log_in_place(rule, log, now)
        assert decision == expected
        assert list(log) == live  # exactly the entries that left the window were dropped
        assert dropped == held - len(live)
        if decision.allowed and counted:
            log.append(now)
            state = new_state
        assert len(log) <= rule.limit
        assert tuple(log) == tuple(time for time in state or () if time > now - rule.window_us)


def test_sliding_log_in_place_drops_only_expired_entries_even_when_refused():
    rule = Rule(2, 10 * MICROS, algorithm="sliding_log")
    log = deque([0, 5 * MICROS, 9 * MICROS])  # a limit lowered from 3 (a reload)
    decision, dropped = sliding_log_in_place(rule, log, 10 * MICROS)
    assert (decision, dropped) == (Decision(False, 0, 9 * MICROS, 5 * MICROS), 1)
    assert list(log) == [5 * MICROS, 9 * MICROS]
    assert sliding_log_in_place(rule, log, 15 * MICROS) == (Decision(True, 0, 10 * MICROS), 1)
    assert list(log) == [9 * MICROS]  # nothing appended: that is the caller's to do


def test_sliding_log_at_the_largest_limit_is_accepted():
    rule = Rule(MAX_LOG_LIMIT, MICROS, algorithm="sliding_log")
    assert rule.capacity == MAX_LOG_LIMIT
