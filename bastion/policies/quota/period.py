"""Calendar periods in UTC for quotas: which day or month a timestamp falls in, and its end.

Pure: no clock is read here; callers pass Unix seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Span:
    """One calendar period: a label unique to it, and its bounds in Unix seconds."""

    label: str
    start: int
    end: int

    @property
    def seconds(self) -> int:
        """The period's length (a month has 28 to 31 days)."""
        return self.end - self.start

    def contains(self, now: float) -> bool:
        """Whether `now` lies in this period."""
        return self.start <= now < self.end


def span_at(now: float, period: Period) -> Span:
    """The UTC day or month that contains the Unix time `now`."""
    # Whole seconds first: fromtimestamp rounds microseconds, which could step over midnight.
    moment = datetime.fromtimestamp(math.floor(now), UTC)
    if period == "day":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        label = f"d{start:%Y%m%d}"
    else:
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        if moment.month == 12:
            end = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
        else:
            end = datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
        label = f"m{start:%Y%m}"
    return Span(label, int(start.timestamp()), int(end.timestamp()))
