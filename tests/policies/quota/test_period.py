"""Calendar periods in UTC: bounds, lengths and labels for any instant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, strategies as st

from bastion.policies.quota.period import span_at

INSTANTS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # 1970..2100


@given(INSTANTS, st.sampled_from(["day", "month"]))
def test_the_span_contains_the_instant_and_the_next_starts_at_its_end(now, period):
    span = span_at(now, period)
    assert span.contains(now)
    following = span_at(span.end, period)
    assert following.start == span.end
    assert following.label != span.label
    assert span_at(span.end - 0.001, period) == span


@given(INSTANTS)
def test_days_last_86400_seconds_and_months_28_to_31_days(now):
    assert span_at(now, "day").seconds == 86_400
    assert span_at(now, "month").seconds // 86_400 in (28, 29, 30, 31)


@pytest.mark.parametrize(
    ("moment", "period", "label", "start", "end"),
    [
        ("2026-11-27T23:59:59", "day", "d20261127", "2026-11-27", "2026-11-28"),
        ("2026-12-31T12:00:00", "month", "m202612", "2026-12-01", "2027-01-01"),
        ("2024-02-29T00:00:00", "month", "m202402", "2024-02-01", "2024-03-01"),
        ("2026-01-01T00:00:00", "day", "d20260101", "2026-01-01", "2026-01-02"),
    ],
    ids=["day_last_second", "december_rolls_the_year", "leap_february", "day_first_second"],
)
def test_known_periods(moment, period, label, start, end):
    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())

    span = span_at(at(moment), period)
    assert (span.label, span.start, span.end) == (label, at(start), at(end))
