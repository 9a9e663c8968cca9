"""Audit vocabulary: severities, rules with stable ids, and findings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = ("low", "medium", "high", "critical")
"""Severities from least to most severe."""


def at_or_above(severity: Severity, threshold: Severity) -> bool:
    """Whether `severity` is `threshold` or more severe."""
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


@dataclass(frozen=True, slots=True)
class Rule:
    """One audit rule; `id` (BSTnnn) and `name` never change once released."""

    id: str
    name: str
    severity: Severity
    summary: str
    help: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a config: which rule, how bad, where, and why.

    `message` is built from fixed text, setting names and non-secret figures only; it never
    holds a secret value.
    """

    rule: Rule
    severity: Severity
    message: str
    path: str
    line: int | None = None
