"""`bastion verify` against `bastion run` serving the banking demo config (issue 10's test)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.demo import ALICE, BANK_CONFIG
from bastion.cli.demo_oauth import (
    CUSTOMER_SCOPE,
    PARTNER_SCOPE,
    authorization_code,
    client_credentials,
    provision_demo,
)
from bastion.cli.main import main
from bastion.config.loader import load_config
from bastion.proxy.tls import client_context
from tests.integration.harness import free_ports, running_upstream, wait_ready

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "verify-demo-admin-token-0123456789"
BODY_LIMIT = "  size_limit: {max_body_bytes: 16384}\n"


@pytest.fixture(params=["demo", "demo-without-size-limit"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`bastion run` on examples/bank/bastion.yaml (or a copy without its body limit) on free
    ports, in front of the echo upstream; yields the variant and the environment it read."""
    https, redirect, admin = free_ports(3)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    source = REPO / BANK_CONFIG
    served = source
    if request.param == "demo-without-size-limit":
        text = source.read_text()
        assert BODY_LIMIT in text
        served = tmp_path / "served.yaml"  # with a copy of the openapi.yaml it names
        served.write_text(text.replace(BODY_LIMIT, ""))
        shutil.copy(source.parent / "openapi.yaml", tmp_path / "openapi.yaml")
    with running_upstream() as (upstream, _seen):
        env = {
            **os.environ,
            "BASTION_ADMIN_TOKEN": ADMIN_TOKEN,
            "BASTION_STATE_DIR": str(state),
            "BASTION_ACCESS_LOG": str(tmp_path / "access.log"),
            "BANK_HTTPS_BIND": f"127.0.0.1:{https}",
            "BANK_HTTP_BIND": f"127.0.0.1:{redirect}",
            "BANK_ADMIN_BIND": f"127.0.0.1:{admin}",
            "BANK_UPSTREAM": f"http://127.0.0.1:{upstream}",
            "BASTION_STORE": f"sqlite:///{state / 'bastion.db'}",  # the OAuth server's store
        }
        # The demo's clients and logins, as `bastion demo` registers them.
        demo = provision_demo(load_config(served, env=env), state)
        with (tmp_path / "gateway.out").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "bastion", "run", "-c", str(served)],
                stdout=out,
                stderr=out,
                env=env,
                cwd=REPO,
            )
        try:
            wait_ready(admin, process)
            # A customer's token through the authorization-code flow of the gateway itself.
            trust = client_context(ca_file=state / "dev-cert.pem")
            tokens = authorization_code(
                f"https://127.0.0.1:{https}",
                demo.customer_app,
                demo.login(ALICE),
                CUSTOMER_SCOPE,
                verify=trust,
            )
            env["VERIFY_TOKEN"] = tokens.access_token
            # The partner's token may read accounts but not move money: for the scopes probe.
            partner = client_credentials(
                f"https://127.0.0.1:{https}", demo.partner, PARTNER_SCOPE, verify=trust
            )
            env["VERIFY_LIMITED_TOKEN"] = partner.access_token
            yield request.param, env
        finally:
            process.terminate()
            process.wait(10)


def test_verify_on_the_demo_config_passes_and_names_a_missing_policy(
    demo: tuple[str, dict[str, str]],
) -> None:
    variant, env = demo
    args = [
        "verify",
        "-c",
        str(REPO / BANK_CONFIG),
        "--access-log",
        env["BASTION_ACCESS_LOG"],
        "--auth",
        "Bearer " + env["VERIFY_TOKEN"],
        "--limited-auth",
        "Bearer " + env["VERIFY_LIMITED_TOKEN"],
    ]
    result = CliRunner(env=env).invoke(main, args, terminal_width=200)
    if variant == "demo":
        assert "FAIL" not in result.output, result.output
        assert result.exit_code == 0
        for line in (
            "HSTS over HTTPS",
            "version v0 past its sunset",
            "verify passed",
        ):
            assert line in result.output
        # The partner's token (accounts:read only) is refused where transfers:write is needed.
        row = r"PASS\s*│\s*scopes\s*│\s*route transfers\s*│\s*credential without transfers:write"
        assert re.search(row, result.output), result.output
    else:
        assert result.exit_code == 1
        line = "FAIL size_limit on route transfers: 16385-byte body: expected 413, got"
        assert line in result.output
