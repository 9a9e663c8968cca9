"""`bastion audit` through click's runner: formats, --fail-on exit codes, output files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import main
from tests.audit.conftest import write_certificate

ENV = {
    "BASTION_ADMIN_TOKEN": "admin-token-that-is-long-enough-0123456789",
    "BASTION_PEPPER": "pepper-that-is-at-least-thirty-two-characters-long",
}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", *args], env=ENV)
    return result.exit_code, result.output


@pytest.fixture
def fresh_good(good_config: Path) -> Path:
    # The command uses the real clock: give the certificate a year from now.
    write_certificate(
        good_config.parent / "cert.pem", expires=datetime.now(UTC) + timedelta(days=365)
    )
    return good_config


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [
        pytest.param("critical", 1, id="critical"),
        pytest.param("high", 1, id="high"),
        pytest.param("low", 1, id="low"),
    ],
)
def test_audit_exits_1_on_the_bad_config(bad_config: Path, fail_on: str, code: int):
    assert _run("-c", str(bad_config), "--fail-on", fail_on)[0] == code


def test_audit_exits_0_on_the_good_config(fresh_good: Path):
    code, output = _run("-c", str(fresh_good), "--fail-on", "low")
    assert code == 0
    assert "no findings" in output


def test_audit_fail_on_threshold_ignores_lesser_findings(fresh_good: Path):
    text = fresh_good.read_text().replace("  rate_limit: {limit: 100, window: 60, key: ip}\n", "")
    fresh_good.write_text(text)  # the `partners` route loses its only rate limit: medium
    assert _run("-c", str(fresh_good))[0] == 0  # default --fail-on high
    assert _run("-c", str(fresh_good), "--fail-on", "medium")[0] == 1


def test_audit_json_output(bad_config: Path):
    code, output = _run("-c", str(bad_config), "--format", "json")
    assert code == 1
    document = json.loads(output)
    assert document["config"] == str(bad_config)
    assert {f["rule"] for f in document["findings"]} >= {"BST001", "BST008", "BST014"}


def test_audit_writes_sarif_to_a_file(bad_config: Path, tmp_path: Path):
    target = tmp_path / "audit.sarif"
    code, output = _run("-c", str(bad_config), "--format", "sarif", "-o", str(target))
    assert code == 1
    assert output == ""
    log = json.loads(target.read_text())
    assert log["version"] == "2.1.0"
    assert log["runs"][0]["results"]


def test_audit_writes_text_to_a_file(bad_config: Path, tmp_path: Path):
    target = tmp_path / "audit.txt"
    _run("-c", str(bad_config), "-o", str(target))
    assert "BST015 upstream-tls-verify-off" in target.read_text()


def test_audit_exits_2_on_an_unreadable_config(tmp_path: Path):
    code, output = _run("-c", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "cannot read" in output
