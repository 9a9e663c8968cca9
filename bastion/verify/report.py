"""Rendering of a verify report: a rich pass/fail table, or JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.verify.model import VerifyReport

_STYLES = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]SKIP[/]"}


def render_json(report: VerifyReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.to_dict(), indent=2)


def print_text(report: VerifyReport, console: Console) -> None:
    """Print the table, then one line per failure and a summary."""
    table = Table(title="bastion verify", show_lines=False)
    for column in ("result", "policy", "target", "check", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(
            _STYLES[check.outcome],
            escape(check.policy),
            escape(check.target),
            escape(check.name),
            escape(check.reason),
        )
    console.print(table)
    for check in report.failed:
        console.print(escape(check.line()), style="red", soft_wrap=True)
    counts = {name: 0 for name in ("pass", "fail", "skip")}
    for check in report.checks:
        counts[check.outcome] += 1
    verdict = "verify passed" if report.passed else "verify FAILED"
    console.print(
        f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        f" ({report.requests} requests)",
        markup=False,
        soft_wrap=True,
    )
