"""`bastion audit`: review a config file for security weaknesses; exit 1 at a chosen severity."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from bastion.audit import RULES, SEVERITIES, at_or_above, audit_document, load_source
from bastion.audit.report import render_json, render_sarif, render_text
from bastion.errors import ConfigError

EXIT_FINDINGS = 1
"""Exit status when a finding is at or above --fail-on."""
EXIT_UNREADABLE = 2
"""Exit status when the file cannot be read or is not a YAML mapping."""


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The YAML configuration file.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="high",
    show_default=True,
    help="Exit with status 1 when a finding is at least this severe.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    default=None,
    help="Write the report to this file instead of standard output.",
)
def audit(config_path: Path, output_format: str, fail_on: str, output: Path | None) -> None:
    """Review a config for weaknesses (no auth, weak secrets, plaintext, wide trust...).

    Rule ids (BST000...) are stable. Secrets in the config are never printed.
    """
    try:
        source = load_source(config_path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    findings = audit_document(source, now=datetime.now(UTC))
    if output_format == "text":
        if output is None:
            render_text(findings, Console(), source=str(config_path))
        else:
            with output.open("w", encoding="utf-8") as handle:
                render_text(findings, Console(file=handle, width=160), source=str(config_path))
    else:
        data = (
            render_json(findings, source=str(config_path))
            if output_format == "json"
            else render_sarif(findings, RULES, artifact=config_path)
        )
        if output is None:
            click.echo(data.decode())
        else:
            output.write_bytes(data + b"\n")
    threshold = next(s for s in SEVERITIES if s == fail_on)
    if any(at_or_above(finding.severity, threshold) for finding in findings):
        sys.exit(EXIT_FINDINGS)
