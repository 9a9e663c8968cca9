"""The `bastion verify` command: prove on the running gateway that each configured policy fires."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from bastion.config.loader import ConfigErrors, load_config

EXIT_FAILED = 1
"""Exit status when a probe failed."""
EXIT_USAGE = 2
"""Exit status when the config or an option is unusable."""


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The gateway's YAML configuration file.",
)
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="Send route probes here (a loopback URL) instead of the config's first listener.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--access-log",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The gateway's access log: afterwards, no credential a probe sent may appear in it.",
)
@click.option(
    "--auth",
    "auth",
    multiple=True,
    metavar="VALUE",
    help="A valid credential ('Bearer …', 'Basic …' or 'Header: value') to reach the rate "
    "limits and validation behind authentication.",
)
@click.option(
    "--limited-auth",
    "limited_auth",
    multiple=True,
    metavar="VALUE",
    help="A credential that authenticates but lacks some route's scopes or groups (a JWT: its "
    "claims say what it lacks), to prove the scopes and acl policies refuse it with 403.",
)
@click.option(
    "--allow-lockout",
    is_flag=True,
    default=False,
    help="Let the brute_force probe lock this machine's address out of a route for the "
    "policy's cool-down (needed where credentials name no identity, such as bearer tokens).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=5.0,
    show_default=True,
    help="Seconds per request.",
)
def verify(
    config_path: Path,
    base_url: str | None,
    output_format: str,
    access_log: Path | None,
    auth: tuple[str, ...],
    limited_auth: tuple[str, ...],
    allow_lockout: bool,
    timeout: float,
) -> None:
    """Send probes to the RUNNING gateway proving each configured policy fires.

    Missing, forged and expired credentials must get 401, credentials without a route's scopes
    or groups 403, repeated failures 429, N+1 requests 429, oversized and malformed bodies
    413/400, plain HTTP a 308, HTTPS responses HSTS. Exit status 1 when any
    probe fails. Probes go to loopback addresses only.
    """
    from bastion.verify import VerifyOptions, run_verify
    from bastion.verify.report import print_text, render_json

    try:
        config = load_config(config_path)
    except ConfigErrors as exc:
        for line in exc.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)
    options = VerifyOptions(
        base_url=base_url,
        access_log=access_log,
        auth=auth,
        limited_auth=limited_auth,
        allow_lockout=allow_lockout,
        timeout=timeout,
    )
    try:
        report = run_verify(config, options)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if output_format == "json":
        click.echo(render_json(report))
    else:
        # Piped output (CI logs) gets a wide table rather than rich's 80-column default.
        print_text(report, Console(width=None if sys.stdout.isatty() else 200))
    sys.exit(0 if report.passed else EXIT_FAILED)
