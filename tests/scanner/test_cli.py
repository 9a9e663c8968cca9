"""`bastion scan` on the command line: formats, output file, --fail-on exit codes."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from bastion.cli.main import main
from tests.scanner.tls_server import closed_port, https_server

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("fail_on", "exit_code"),
    [("low", 1), ("critical", 0), ("none", 0)],
    ids=["fails-at-low", "passes-below-critical", "never-fails"],
)
def test_scan_command_writes_json_report_and_exits_by_severity(
    tmp_path: Path, fail_on: str, exit_code: int
):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", not_after=NOW + dt.timedelta(days=10))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    report = tmp_path / "report.json"
    with https_server(cert) as server:
        args = [
            "scan",
            server.url,
            "--ca-cert",
            str(tmp_path / "ca.pem"),
            "--rate",
            "0",
            "--http-port",
            str(closed_port()),
            "--format",
            "json",
            "-o",
            str(report),
            "--fail-on",
            fail_on,
            "--timeout",
            "3",
            "--only",
            "transport",
        ]
        outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == exit_code, (outcome.output, outcome.exception)
    document = json.loads(report.read_text())
    assert {f["id"] for f in document["findings"]} == {"TRANSPORT-006"}
    assert document["target"] == server.url


def test_scan_command_junit_lists_only_the_checks_it_ran(tmp_path: Path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with https_server(cert) as server:
        args = ["scan", server.url, "--ca-cert", str(tmp_path / "ca.pem"), "--rate", "0"]
        args += ["--http-port", str(closed_port()), "--only", "transport", "--format", "junit"]
        outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == 0, outcome.output
    assert 'failures="0"' in outcome.output
    names = re.findall(r'<testcase classname="bastion.scan" name="([A-Z]+)-', outcome.output)
    assert set(names) == {"TRANSPORT"}


def test_scan_command_refuses_a_target_that_is_not_a_url():
    outcome = CliRunner().invoke(main, ["scan", "example.com"])
    assert outcome.exit_code == 2
    assert "http:// or https://" in outcome.output


def test_scan_command_refuses_a_malformed_login_recipe_before_sending_anything():
    port = closed_port()
    outcome = CliRunner().invoke(
        main, ["scan", f"https://127.0.0.1:{port}", "--login", "POST /login {} no-token-path"]
    )
    assert outcome.exit_code == 2
    assert "--login must look like" in outcome.output
