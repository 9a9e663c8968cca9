"""Audit output: a rich table for people, JSON for scripts, SARIF 2.1.0 for code-scanning tools.

SARIF: OASIS Static Analysis Results Interchange Format 2.1.0
(https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html). Each rule becomes a
`reportingDescriptor` (§3.49) and each finding a `result` (§3.27) whose location is the config
file and line (`physicalLocation`, §3.29) plus the dotted setting path (`logicalLocation`,
§3.33). `security-severity` is the property GitHub code scanning reads to rank results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion import __version__
from bastion.audit.model import SEVERITIES, Finding, Rule, Severity

SARIF_VERSION: Final = "2.1.0"
SARIF_SCHEMA: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL_NAME: Final = "bastion-audit"
_LEVELS: Final[dict[Severity, str]] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
}
# CVSS-like scores: GitHub maps >= 9.0 to critical, >= 7.0 high, >= 4.0 medium, else low.
_SCORES: Final[dict[Severity, str]] = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
}
_STYLES: Final[dict[Severity, str]] = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
}


def summary(findings: Sequence[Finding]) -> dict[Severity, int]:
    """Number of findings per severity, every severity present."""
    counts = Counter(finding.severity for finding in findings)
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


def _where(finding: Finding) -> str:
    return f"{finding.path} (line {finding.line})" if finding.line else finding.path


def render_text(findings: Sequence[Finding], console: Console, *, source: str) -> None:
    """Print a table of `findings`, what to do about each rule found, and a summary line."""
    if not findings:
        console.print(Text(f"{source}: no findings"), soft_wrap=True)
        return
    table = Table(title=Text(f"bastion audit: {source}"), show_lines=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Setting", overflow="fold")
    table.add_column("Finding", ratio=1)
    for finding in findings:
        table.add_row(
            Text(finding.severity, style=_STYLES[finding.severity]),
            Text(finding.rule.id),
            Text(_where(finding)),
            Text(finding.message),
        )
    console.print(table)
    seen: dict[str, Rule] = {finding.rule.id: finding.rule for finding in findings}
    for rule_id in sorted(seen):
        rule = seen[rule_id]
        console.print(Text(f"{rule.id} {rule.name}: {rule.help}"), soft_wrap=True)
    counts = summary(findings)
    text = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts[s])
    console.print(Text(f"{len(findings)} findings: {text}"), soft_wrap=True)


def _finding_json(finding: Finding) -> dict[str, object]:
    return {
        "rule": finding.rule.id,
        "name": finding.rule.name,
        "severity": finding.severity,
        "message": finding.message,
        "path": finding.path,
        "line": finding.line,
        "help": finding.rule.help,
    }


def render_json(findings: Sequence[Finding], *, source: str) -> bytes:
    """A JSON document: tool, config, counts per severity and the findings."""
    document = {
        "tool": TOOL_NAME,
        "version": __version__,
        "config": source,
        "summary": summary(findings),
        "findings": [_finding_json(finding) for finding in findings],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def _descriptor(rule: Rule) -> dict[str, object]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary} {rule.help}"},
        "help": {"text": rule.help},
        "defaultConfiguration": {"level": _LEVELS[rule.severity]},
        "properties": {
            "tags": ["security", "configuration"],
            "problem.severity": rule.severity,
            "security-severity": _SCORES[rule.severity],
        },
    }


def render_sarif(
    findings: Sequence[Finding], rules: Sequence[Rule], *, artifact: Path | None
) -> bytes:
    """A SARIF 2.1.0 log with one run: every rule, and one result per finding.

    Args:
        findings: What the audit found.
        rules: The whole catalogue (listed even when nothing matched, so viewers can show it).
        artifact: The audited file (relative paths stay relative); None for a built-in config.
    """
    index = {rule.id: position for position, rule in enumerate(rules)}
    results: list[dict[str, object]] = []
    for finding in findings:
        location: dict[str, object] = {
            "logicalLocations": [{"fullyQualifiedName": finding.path, "kind": "member"}]
        }
        if artifact is not None:
            uri = artifact.as_uri() if artifact.is_absolute() else artifact.as_posix()
            physical: dict[str, object] = {"artifactLocation": {"uri": uri}}
            if finding.line is not None:
                physical["region"] = {"startLine": finding.line}
            location["physicalLocation"] = physical
        results.append(
            {
                "ruleId": finding.rule.id,
                "ruleIndex": index[finding.rule.id],
                "level": _LEVELS[finding.severity],
                "message": {"text": f"{finding.message}. {finding.rule.help}"},
                "locations": [location],
                "properties": {
                    "severity": finding.severity,
                    "security-severity": _SCORES[finding.severity],
                },
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": __version__,
                        "rules": [_descriptor(rule) for rule in rules],
                    }
                },
                "results": results,
            }
        ],
    }
    return orjson.dumps(log, option=orjson.OPT_INDENT_2)
