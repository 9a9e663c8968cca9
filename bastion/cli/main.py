"""The `bastion` command: run, check, config schema, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bastion import __version__
from bastion.cli.audit import audit
from bastion.cli.credentials import basic, consumers, keys, migrate
from bastion.cli.oauth import clients
from bastion.cli.scan import scan
from bastion.cli.verify import verify
from bastion.config.loader import ConfigErrors, load_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError


def _load_or_exit(path: Path) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigErrors as exc:
        for line in exc.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


def _setup_logging(level: str) -> None:
    from bastion.observability.logging import configure_logging

    configure_logging(level)


@click.group()
@click.version_option(__version__, prog_name="bastion")
def main() -> None:
    """Bastion: an API security gateway that enforces and proves API security practices."""


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The YAML configuration file.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the listeners (SO_REUSEPORT).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--ignore-stored-config",
    is_flag=True,
    help="Start with the file even when the store holds a newer config applied through the "
    "admin API (later ones still apply).",
)
def run(config_path: Path, workers: int, log_level: str, ignore_stored_config: bool) -> None:
    """Serve per the config; SIGHUP reloads it, SIGTERM drains and stops."""
    from bastion.server.run import serve

    config = _load_or_exit(config_path)
    _setup_logging(log_level)
    try:
        sys.exit(serve(config, config_path, workers, ignore_stored_config=ignore_stored_config))
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The YAML configuration file.",
)
def check(config_path: Path) -> None:
    """Validate a config file; errors name the dotted path of each bad setting."""
    from bastion.gateway.build import build_gateway

    config = _load_or_exit(config_path)
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        build_gateway(config, loop=loop)  # policies validate what pydantic cannot
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        loop.close()
    routes = sum(len(service.routes) for service in config.services)
    click.echo(
        f"ok: {config_path}: {len(config.listeners)} listeners, "
        f"{len(config.services)} services, {routes} routes"
    )


@main.group()
def config() -> None:
    """Configuration helpers."""


@config.command()
def schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    document = GatewayConfig.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Bastion gateway configuration"
    click.echo(json.dumps(document, indent=2, sort_keys=True))


_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("var"),
    show_default=True,
    help="Where the demo keeps its database, certificate, secrets.",
)


@main.group(invoke_without_command=True)
@_STATE_DIR
@click.pass_context
def demo(context: click.Context, state_dir: Path) -> None:
    """Start the banking example behind the gateway (HTTPS :8443, redirect :8080, admin :9901)."""
    if context.invoked_subcommand is None:
        _run_demo(state_dir)


@demo.command()
@_STATE_DIR
@click.option("--no-scan", is_flag=True, help="Skip the scan comparison.")
def attacks(state_dir: Path, no_scan: bool) -> None:
    """Replay the seed's threats against the running demo; then scan with and without Bastion."""
    from bastion.cli.demo import has_demo_state
    from bastion.cli.demo_attacks import main as run_attacks

    if not has_demo_state(state_dir):
        click.echo(f"error: no demo state in {state_dir}: start `bastion demo` first", err=True)
        sys.exit(2)
    sys.exit(run_attacks(state_dir.resolve(), Path.cwd(), scan=not no_scan))


def _run_demo(state_dir: Path) -> None:
    from bastion.cli.demo import run_demo

    _setup_logging("info")
    try:
        code = run_demo(state_dir.resolve(), Path.cwd())
    except ConfigErrors as exc:
        for line in exc.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)
    sys.exit(code)


main.add_command(migrate)
main.add_command(consumers)
main.add_command(keys)
main.add_command(basic)
main.add_command(audit)
main.add_command(clients)
main.add_command(scan)
main.add_command(verify)
