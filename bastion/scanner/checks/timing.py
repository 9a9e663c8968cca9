"""Time-based probes with a measured baseline, a confirmation and a time budget.

How this works: a probe that asks the server to wait one time unit (a SQL sleep, a shell
`sleep`) counts only if the answer is late by at least 80 % of the delay compared with a
baseline measured just before (the slower of two benign requests); the same payload asking
for three units must then be later again by at least one unit (half the difference, so that
jitter on one answer does not decide), and a benign request sent right after must be fast
again (a server that merely became slow fails this last step). A late but unconfirmed probe
ends the probing of that parameter. Every request sent here counts against
`ScanOptions.time_budget`; when the budget runs out, the probes stop and the report notes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bastion.scanner.http import Exchange
from bastion.scanner.runner import ScanContext

Sender = Callable[[str], Awaitable[Exchange | None]]
# A payload template: the delay in seconds → the value to send.
Template = Callable[[float], str]
_LATE: Final = 0.8  # a probe counts as delayed at 80 % of the requested delay (timer slack)


@dataclass(frozen=True, slots=True)
class Delayed:
    """A confirmed delay: both probes and the baseline they were measured against."""

    first: Exchange
    second: Exchange
    baseline: float
    delays: tuple[float, float]

    def note(self) -> str:
        """One line for the evidence: requested delays against measured times."""
        d1, d2 = self.delays
        return (
            f"baseline {self.baseline:.2f}s; asked for {d1:g}s → {self.first.elapsed:.2f}s, "
            f"asked for {d2:g}s → {self.second.elapsed:.2f}s; a benign request after was fast"
        )


async def _timed(ctx: ScanContext, send: Sender, value: str) -> Exchange | None:
    exchange = await send(value)
    if exchange is not None:
        ctx.time_spent += exchange.elapsed
    return exchange


def budget_allows(ctx: ScanContext, seconds: float) -> bool:
    """Whether `seconds` more of time-based probing fit in the budget (notes it when not)."""
    if ctx.time_left() >= seconds:
        return True
    if ctx.options.time_budget > 0:
        ctx.note(f"time-based probes stopped: the time budget of {ctx.options.time_budget:g}s")
    return False


async def baseline(ctx: ScanContext, send: Sender, benign: str) -> float | None:
    """The slowest of two benign requests, or None when either fails or errors."""
    times = []
    for _ in range(2):
        exchange = await _timed(ctx, send, benign)
        if exchange is None or exchange.status >= 500:
            return None
        times.append(exchange.elapsed)
    return max(times)


async def confirm_delay(
    ctx: ScanContext, send: Sender, benign: str, templates: tuple[Template, ...]
) -> tuple[Template, Delayed] | None:
    """Try each template; return the first whose delay is confirmed, else None."""
    unit = ctx.options.time_unit
    d1, d2 = unit, 3 * unit
    if not budget_allows(ctx, d1 + d2):
        return None
    base = await baseline(ctx, send, benign)
    if base is None:
        return None
    for template in templates:
        if not budget_allows(ctx, base + d1):
            return None
        first = await _timed(ctx, send, template(d1))
        if first is None or first.elapsed < base + _LATE * d1:
            continue
        if not budget_allows(ctx, base + d2):
            return None
        second = await _timed(ctx, send, template(d2))
        if second is None or second.elapsed < first.elapsed + (d2 - d1) / 2:
            # Late, but not later by about the extra delay asked for: this value is slow for
            # another reason (a backtracking regex, a tarpit), and so would the other payloads
            # be; stop here rather than spend the budget on them.
            return None
        after = await _timed(ctx, send, benign)
        if after is None or after.elapsed >= base + _LATE * d1:
            return None  # the server is slow for everyone now: not our delay
        return template, Delayed(first, second, base, (d1, d2))
    return None
