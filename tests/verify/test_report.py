"""The verify report: access-log redaction verdicts, JSON and text rendering, exit status."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from bastion.cli.main import main
from bastion.verify.model import Check, VerifyReport
from bastion.verify.report import print_text, render_json
from bastion.verify.runner import access_log_check

SENT = [("random API key", "k3y-that-was-sent"), ("JWT", "eyJ.token.sig")]


def _log(tmp_path: Path, before: str, after: str) -> tuple[Path, int]:
    path = tmp_path / "access.log"
    path.write_text(before)
    start = path.stat().st_size
    path.write_text(before + after)
    return path, start


def test_access_log_check_fails_naming_the_kind_of_secret_logged(tmp_path: Path) -> None:
    path, start = _log(tmp_path, "", '{"url.query": "api_key=k3y-that-was-sent"}\n')
    check = access_log_check(path, start, SENT, wait=0)
    assert check.outcome == "fail"
    assert check.reason == "logged in clear: random API key"
    assert "k3y-that-was-sent" not in check.line()  # the report never repeats the secret


def test_access_log_check_reads_only_lines_written_during_the_probes(tmp_path: Path) -> None:
    path, start = _log(tmp_path, "old line eyJ.token.sig\n", '{"url.path": "/v1"}\n')
    check = access_log_check(path, start, SENT, wait=0)
    assert check.outcome == "pass"


def test_access_log_check_fails_when_the_log_did_not_grow(tmp_path: Path) -> None:
    path, start = _log(tmp_path, "line\n", "")
    check = access_log_check(path, start, SENT, wait=0)
    assert check.outcome == "fail"
    assert "did not grow" in check.reason


def _report() -> VerifyReport:
    report = VerifyReport(requests=3)
    report.checks.append(Check("jwt", "route a", "missing credential", "pass", "401"))
    report.checks.append(
        Check("rate_limit", "route a", "6 requests limited", "fail", "no 429 after 6 requests")
    )
    report.checks.append(Check("size_limit", "route a", "body", "skip", "no POST"))
    return report


def test_json_report_lists_every_check_and_the_verdict() -> None:
    document = json.loads(render_json(_report()))
    assert document["passed"] is False
    assert document["summary"] == {"pass": 1, "fail": 1, "skip": 1}
    assert document["checks"][1] == {
        "policy": "rate_limit",
        "target": "route a",
        "check": "6 requests limited",
        "outcome": "fail",
        "reason": "no 429 after 6 requests",
    }


def test_text_report_ends_with_one_line_per_failure() -> None:
    buffer = io.StringIO()
    print_text(_report(), Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    assert "FAIL rate_limit on route a: 6 requests limited: no 429 after 6 requests" in text
    assert "verify FAILED: 1 passed, 1 failed, 1 skipped (3 requests)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--base-url", "https://192.0.2.1:8443"], "loopback", id="remote-base-url"),
        pytest.param(["--auth", "token"], "expected", id="bad-auth"),
    ],
)
def test_verify_refuses_unsafe_or_malformed_options(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = tmp_path / "bastion.yaml"
    # A TLS listener would be probed first: keep to a config whose probes need no socket.
    config.write_text('listeners: [{bind: "192.0.2.7:8443", tls: {}}]\n')
    result = CliRunner().invoke(main, ["verify", "-c", str(config), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_verify_reports_config_errors_with_their_path(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("listeners: []\n")
    result = CliRunner().invoke(main, ["verify", "-c", str(config)])
    assert result.exit_code == 2
    assert "listeners" in result.output
