"""What a scan reports: findings with a check id, severity, evidence and remediation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]

SEVERITIES: Final[tuple[Severity, ...]] = ("info", "low", "medium", "high", "critical")
# Check modules in the order a scan runs them (`bastion scan --only NAME` picks some).
CHECK_MODULES: Final = (
    "transport",
    "headers",
    "cors",
    "auth",
    "injection",
    "input",
    "inventory",
    "resource",
    "misconfig",
)
SEVERITY_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """The fixed description of one check: what it looks for and how to fix what it finds."""

    id: str
    title: str
    severity: Severity
    remediation: str
    owasp: str = ""  # OWASP API Security Top 10 (2023) category, e.g. "API2:2023"


@dataclass(frozen=True, slots=True)
class Finding:
    """One weakness observed on the target, with the exchange that proves it."""

    check: CheckInfo
    url: str
    method: str = "GET"
    detail: str = ""
    evidence: str = ""
    severity: Severity | None = None  # overrides the check's default when set

    @property
    def level(self) -> Severity:
        """The severity of this finding (the check's unless overridden)."""
        return self.severity or self.check.severity

    def sort_key(self) -> tuple[int, str, str, str]:
        """Most severe first, then by check id and location, so reports are deterministic."""
        return (-SEVERITY_RANK[self.level], self.check.id, self.url, self.method)


@dataclass(slots=True)
class CheckRegistry:
    """Every check the scanner knows, by id (reports list the rules they ran)."""

    checks: dict[str, CheckInfo] = field(default_factory=dict)

    def add(self, info: CheckInfo) -> CheckInfo:
        """Register `info` and return it (used at module level by each check module)."""
        self.checks[info.id] = info
        return info


CHECKS: Final = CheckRegistry()


def at_or_above(findings: list[Finding], threshold: Severity) -> list[Finding]:
    """Return the findings whose severity is `threshold` or worse."""
    floor = SEVERITY_RANK[threshold]
    return [f for f in findings if SEVERITY_RANK[f.level] >= floor]
