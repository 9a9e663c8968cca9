"""The results of `bastion verify`: one check per probe, passed, failed or skipped with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """One probe's verdict.

    Attributes:
        policy: The policy (or `tls`, `redirect`, `access_log`) the probe proves.
        target: The route (`route bank-v1`) or listener (`listener 127.0.0.1:8443`) probed.
        name: What was sent, e.g. `forged key`.
        outcome: `pass`, `fail` or `skip`.
        reason: One line: what was observed (always set for failures and skips).
    """

    policy: str
    target: str
    name: str
    outcome: Outcome
    reason: str = ""

    def line(self) -> str:
        """The check as one line of text, e.g. for a failure summary."""
        text = f"{self.outcome.upper()} {self.policy} on {self.target}: {self.name}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(slots=True)
class VerifyReport:
    """Every check of one run, in the order the probes ran."""

    checks: list[Check] = field(default_factory=list)
    requests: int = 0

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if check.outcome == "fail"]

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form of the report."""
        counts = {name: 0 for name in ("pass", "fail", "skip")}
        for check in self.checks:
            counts[check.outcome] += 1
        return {
            "passed": self.passed,
            "requests": self.requests,
            "summary": counts,
            "checks": [
                {
                    "policy": check.policy,
                    "target": check.target,
                    "check": check.name,
                    "outcome": check.outcome,
                    "reason": check.reason,
                }
                for check in self.checks
            ],
        }
