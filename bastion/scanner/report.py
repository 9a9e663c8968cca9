"""Scan reports: rich text, JSON, SARIF 2.1.0, JUnit XML and a self-contained HTML page."""

from __future__ import annotations

import html
import io
import json
from typing import TYPE_CHECKING, Final, Literal
from xml.sax.saxutils import escape, quoteattr

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion import __version__
from bastion.scanner.findings import SEVERITY_RANK, CheckInfo, Finding

if TYPE_CHECKING:  # the runner imports httpx; rendering a report does not need it
    from bastion.scanner.runner import ScanResult

Format = Literal["text", "json", "sarif", "junit", "html"]
FORMATS: Final[tuple[Format, ...]] = ("text", "json", "sarif", "junit", "html")
_SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI: Final = "https://github.com/bastion-gateway/bastion/blob/main/docs/scanner.md"
_COLOURS: Final = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
# SARIF `level` and GitHub's numeric `security-severity` for each scanner severity.
_SARIF_LEVEL: Final = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
_SECURITY_SEVERITY: Final = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "0.0",
}


def _finding_dict(finding: Finding) -> dict[str, str]:
    return {
        "id": finding.check.id,
        "title": finding.check.title,
        "severity": finding.level,
        "owasp": finding.check.owasp,
        "method": finding.method,
        "url": finding.url,
        "detail": finding.detail,
        "evidence": finding.evidence,
        "remediation": finding.check.remediation,
    }


def render_json(result: ScanResult) -> str:
    """The scan as one JSON document (findings most severe first)."""
    document = {
        "tool": {"name": "bastion scan", "version": __version__},
        "target": result.target,
        "spec_found": result.spec_found,
        "operations": result.operations,
        "requests": result.requests,
        "summary": _summary(result.findings),
        "findings": [_finding_dict(f) for f in result.findings],
        "notes": result.notes,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _summary(findings: list[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True), 0)
    for finding in findings:
        counts[finding.level] += 1
    return counts


def _rule(check: CheckInfo) -> dict[str, object]:
    return {
        "id": check.id,
        "name": check.title,
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": check.title + (f" ({check.owasp})" if check.owasp else "")},
        "help": {"text": check.remediation},
        "defaultConfiguration": {"level": _SARIF_LEVEL[check.severity]},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[check.severity],
            "tags": ["security", *([check.owasp] if check.owasp else [])],
        },
    }


def render_sarif(result: ScanResult) -> str:
    """The scan as a SARIF 2.1.0 log (OASIS), one rule per check and one result per finding."""
    rules = result.checks
    index = {check.id: i for i, check in enumerate(rules)}
    results = [
        {
            "ruleId": f.check.id,
            "ruleIndex": index[f.check.id],
            "level": _SARIF_LEVEL[f.level],
            "message": {
                "text": f"{f.check.title}: {f.method} {f.url}"
                + (f" ({f.detail})" if f.detail else "")
            },
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.url}}}],
            "properties": {"severity": f.level, "evidence": f.evidence},
        }
        for f in result.findings
    ]
    log = {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "version": __version__,
                        "informationUri": _INFO_URI,
                        "rules": [_rule(c) for c in rules],
                    }
                },
                "results": results,
                "properties": {"target": result.target, "requests": result.requests},
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def render_junit(result: ScanResult) -> str:
    """The scan as JUnit XML: one test case per check, failing with one entry per finding."""
    by_check: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_check.setdefault(finding.check.id, []).append(finding)
    failures = sum(1 for c in result.checks if c.id in by_check)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name={quoteattr("bastion scan")} tests="{len(result.checks)}" '
        f'failures="{failures}">',
        f'  <testsuite name={quoteattr(result.target)} tests="{len(result.checks)}" '
        f'failures="{failures}" errors="0" skipped="0">',
    ]
    for check in result.checks:
        name = quoteattr(f"{check.id} {check.title}")
        found = by_check.get(check.id)
        if not found:
            lines.append(f'    <testcase classname="bastion.scan" name={name}/>')
            continue
        lines.append(f'    <testcase classname="bastion.scan" name={name}>')
        message = quoteattr(f"{len(found)} finding(s), severity {found[0].level}")
        body = "\n\n".join(
            f"{f.method} {f.url}\n{f.detail}\n{f.evidence}\nremediation: {check.remediation}"
            for f in found
        )
        lines.append(f"      <failure message={message} type={quoteattr(found[0].level)}>")
        lines.append(escape(body))
        lines.append("      </failure>")
        lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


_CSS: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f24}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap;font-size:12px}
.sev{font-weight:600;text-transform:uppercase;font-size:12px}
.critical{color:#fff;background:#a40e26;padding:0 .3rem}.high{color:#cf222e}
.medium{color:#9a6700}.low{color:#0969da}.info{color:#57606a}
details{margin:.2rem 0}
"""


def render_html(result: ScanResult) -> str:
    """The scan as one HTML page with inline CSS, no scripts and no external resources."""
    e = html.escape
    summary = " · ".join(f"{n} {sev}" for sev, n in _summary(result.findings).items() if n)
    rows = []
    for f in result.findings:
        rows.append(
            "<tr>"
            f'<td><span class="sev {e(f.level)}">{e(f.level)}</span></td>'
            f"<td>{e(f.check.id)}</td>"
            f"<td><strong>{e(f.check.title)}</strong><br>{e(f.method)} {e(f.url)}"
            + (f"<br>{e(f.detail)}" if f.detail else "")
            + f"<details><summary>evidence and remediation</summary><p>{e(f.check.remediation)}"
            f"</p><pre>{e(f.evidence)}</pre></details></td>"
            "</tr>"
        )
    notes = "".join(f"<li>{e(n)}</li>" for n in result.notes)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>bastion scan: {e(result.target)}</title><style>{_CSS}</style></head><body>"
        f"<h1>bastion scan: {e(result.target)}</h1>"
        f"<p>{len(result.findings)} findings ({e(summary or 'none')}); {result.operations} "
        f"operations, {result.requests} requests; bastion {e(__version__)}</p>"
        "<table><thead><tr><th>severity</th><th>check</th><th>finding</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + "</body></html>\n"
    )


def print_text(result: ScanResult, console: Console) -> None:
    """Print the findings as a coloured table, then each one's evidence and remediation."""
    if not result.findings:
        console.print(f"[green]No findings[/] on {result.target} ({result.requests} requests).")
    else:
        table = Table(title=f"bastion scan: {result.target}", show_lines=False)
        table.add_column("severity")
        table.add_column("check")
        table.add_column("finding")
        table.add_column("where", overflow="fold")
        for f in result.findings:
            table.add_row(
                Text(f.level, style=_COLOURS[f.level]),
                f.check.id,
                f.check.title,
                f"{f.method} {f.url}",
            )
        console.print(table)
        for f in result.findings:
            console.rule(Text(f"{f.check.id} {f.check.title}", style=_COLOURS[f.level]))
            console.print(Text(f"{f.method} {f.url}" + (f" — {f.detail}" if f.detail else "")))
            if f.evidence:
                console.print(Text(f.evidence, style="dim"))
            console.print(Text("fix: " + f.check.remediation))
    summary = ", ".join(f"{n} {sev}" for sev, n in _summary(result.findings).items() if n)
    console.print(
        f"{len(result.findings)} findings{f' ({summary})' if summary else ''}; "
        f"{result.operations} operations, {result.requests} requests."
    )
    for note in result.notes:
        console.print(Text("note: " + note, style="dim"))


def render(result: ScanResult, fmt: Format) -> str:
    """Render `result` in a machine format, or as plain text for `text`."""
    if fmt == "json":
        return render_json(result)
    if fmt == "sarif":
        return render_sarif(result)
    if fmt == "junit":
        return render_junit(result)
    if fmt == "html":
        return render_html(result)
    buffer = io.StringIO()
    print_text(result, Console(file=buffer, width=120, no_color=True, force_terminal=False))
    return buffer.getvalue()
