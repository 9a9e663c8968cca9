"""The `bastion scan` command: test any API for the weaknesses Bastion protects against."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from bastion.scanner.findings import CHECK_MODULES, SEVERITIES, Severity, at_or_above
from bastion.scanner.report import FORMATS, Format, print_text, render

if TYPE_CHECKING:  # imported when the command runs: httpx loads only for `bastion scan`
    from bastion.scanner.runner import ScanOptions, ScanResult


def _run(options: ScanOptions, show_progress: bool) -> ScanResult:
    from bastion.scanner.runner import run_scan

    console = Console(stderr=True)
    if not show_progress:
        return asyncio.run(run_scan(options))
    with Progress(
        TextColumn("[bold]scan[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("discovery", total=None)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        return asyncio.run(run_scan(options, progress=progress))


@click.command()
@click.argument("url")
@click.option("--openapi", "openapi", metavar="SPEC|URL", help="OpenAPI document (file or URL).")
@click.option(
    "--auth", metavar="VALUE", help="Identity 1: 'Bearer …', 'Basic …' or 'Header: value'."
)
@click.option(
    "--auth2", metavar="VALUE", help="Identity 2 (for BOLA checks), same forms as --auth."
)
@click.option(
    "--login",
    metavar="RECIPE",
    help='Log in as identity 1: \'POST /login {"username": "u", "password": "p"} '
    "token=$.access_token [header=X-API-Key]'.",
)
@click.option("--login2", metavar="RECIPE", help="Log in as identity 2, same form as --login.")
@click.option(
    "--time-budget",
    type=click.FloatRange(0),
    default=20.0,
    show_default=True,
    help="Seconds for time-based injection probes, and again for ReDoS probes; 0: off.",
)
@click.option(
    "--safe/--allow-unsafe",
    "safe",
    default=True,
    show_default=True,
    help="--safe sends only GET/HEAD/OPTIONS; --allow-unsafe also POST/PUT/PATCH/DELETE probes.",
)
@click.option(
    "--budget",
    type=click.IntRange(10, 100_000),
    default=1000,
    show_default=True,
    help="Most requests the scan may send.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    default=50.0,
    show_default=True,
    help="Requests per second (0: no pacing).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for probe values.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds per request.",
)
@click.option(
    "--ca-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle that the target's certificate must chain to.",
)
@click.option(
    "--http-port",
    type=click.IntRange(1, 65535),
    help="Port of the plain-HTTP listener to test for redirects (default 80).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here instead of standard output.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(CHECK_MODULES),
    help="Run only this group of checks (repeatable); default: all.",
)
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "none"]),
    default="none",
    show_default=True,
    help="Exit with 1 when a finding is at least this severe.",
)
def scan(
    url: str,
    openapi: str | None,
    auth: str | None,
    auth2: str | None,
    login: str | None,
    login2: str | None,
    time_budget: float,
    safe: bool,
    budget: int,
    rate: float,
    seed: int,
    timeout: float,
    ca_cert: str | None,
    http_port: int | None,
    fmt: Format,
    output: Path | None,
    only: tuple[str, ...],
    fail_on: str,
) -> None:
    """Scan the API at URL for security weaknesses (OWASP API Security Top 10)."""
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the target must be an http:// or https:// URL", param_hint="URL")
    from bastion.scanner.runner import ScanError, ScanOptions

    options = ScanOptions(
        target=url,
        openapi=openapi,
        auth=auth,
        auth2=auth2,
        login=login,
        login2=login2,
        time_budget=time_budget,
        allow_unsafe=not safe,
        budget=budget,
        rate=rate,
        seed=seed,
        timeout=timeout,
        verify=ca_cert or True,
        http_port=http_port,
        checks=only,
    )
    interactive = fmt == "text" and output is None and sys.stderr.isatty()
    try:
        result = _run(options, interactive)
    except ScanError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if fmt == "text" and output is None:
        print_text(result, Console())
    else:
        text = render(result, fmt)
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            click.echo(f"wrote {fmt} report to {output}", err=True)
    threshold = cast("Severity", fail_on)  # click.Choice allows only severities and "none"
    if fail_on != "none" and at_or_above(result.findings, threshold):
        sys.exit(1)
