"""Lockout arithmetic over the rate-limit `Counters`: failure rules, lock and probe rules.

How this works: the `Counters` seam offers one operation, an atomic check-and-count. Failures
are counted with a sliding-window rule (`max_failures` per `window`); the failure that uses
up the budget (or is refused by it) locks the source. A lock is a second counter key in GCRA
state (a "theoretical arrival time" `tat`):

- the access phase *probes* it with `PROBE`, a rule whose interval is 1 µs and tolerance
  `PROBE_TOLERANCE_US`: the probe is admitted (and counted, moving `tat` by 1 µs) while
  `tat - now <= tolerance`, and refused while the key is locked;
- locking hits the same key with `lock_rule(lockout)`, whose interval is `lockout +
  tolerance`: it moves `tat` to about `now + lockout + tolerance`, so probes are refused for
  `lockout` seconds and the refusal's retry time is the rest of the lockout.

Probes move `tat` by a microsecond each, so only more than a million requests a second from
one source for `PROBE_TOLERANCE_US` could lock it by probing alone. Both rules are plain
GCRA, so the memory and Redis counters (same Lua formulas) give the same answers.
"""

from __future__ import annotations

from typing import Final

from bastion.policies.rate_limit.algorithm import MICROS, Decision, Rule, ceil_seconds

PROBE_TOLERANCE_US: Final = 60 * MICROS
PROBE: Final = Rule(
    limit=PROBE_TOLERANCE_US, window_us=PROBE_TOLERANCE_US, burst=PROBE_TOLERANCE_US
)
"""Probe of a lock key: interval 1 µs, tolerance `PROBE_TOLERANCE_US`."""
_SLACK_US: Final = 1000  # probe drift ignored when rounding Retry-After up to seconds


def lock_rule(lockout: int) -> Rule:
    """The rule that locks a key for `lockout` seconds (as seen by `PROBE`)."""
    return Rule(limit=1, window_us=lockout * MICROS + PROBE_TOLERANCE_US, burst=1)


def failure_rule(max_failures: int, window: int) -> Rule:
    """`max_failures` failures per sliding `window` seconds."""
    return Rule(limit=max_failures, window_us=window * MICROS, algorithm="sliding_window")


def reaches_threshold(decision: Decision) -> bool:
    """Whether counting a failure used up (or was refused by) the failure budget."""
    return not decision.allowed or decision.remaining == 0


def retry_after_seconds(decisions: tuple[Decision, ...]) -> int | None:
    """Retry-After of refused probes (the longest lock), None when no probe was refused."""
    longest = None
    for decision in decisions:
        if not decision.allowed:
            longest = max(longest or 0, decision.retry_after_us)
    if longest is None:
        return None
    return max(ceil_seconds(longest - _SLACK_US), 1)
