"""`bastion check`, `bastion config schema` and `bastion --version` through click's runner."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from bastion import __version__
from bastion.cli.main import main

GOOD = """\
listeners:
  - {bind: "127.0.0.1:8443", tls: {}}
  - {bind: "127.0.0.1:8080", redirect_https: "https://localhost:8443"}
admin: {bind: "127.0.0.1:9901", token: "0123456789abcdef0123"}
trusted_proxies: ["10.0.0.0/8"]
global_policies: {request_id: {}, security_headers: {}}
services:
  - name: bank
    upstream: {targets: ["http://127.0.0.1:9000"], connect_timeout: 2, read_timeout: 30}
    routes:
      - name: accounts
        paths: ["/v1/accounts", "/v1/accounts/{account_id}"]
        methods: [GET]
        policies:
          cors: {allow_origins: ["https://app.example"]}
      - name: transfers
        paths: ["/v1/transfers"]
        methods: [POST]
        policies:
          size_limit: {max_body_bytes: 4096}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write(folder: Path, text: str) -> Path:
    path = folder / "bastion.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line]


# --- check -----------------------------------------------------------------------------------


def test_check_accepts_a_good_config(tmp_path):
    path = write(tmp_path, GOOD)
    result = run("check", "-c", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {path}: 2 listeners, 1 services, 2 routes\n"
    assert result.stderr == ""


def test_check_accepts_the_long_option(tmp_path):
    result = run("check", "--config", str(write(tmp_path, GOOD)))
    assert result.exit_code == 0
    assert result.stdout.startswith("ok: ")


def test_check_reports_a_typo_with_its_dotted_path(tmp_path):
    path = write(tmp_path, GOOD.replace("read_timeout: 30", "read_timout: 30"))
    result = run("check", "-c", str(path))
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: services[0].upstream.read_timout: unknown setting (check the spelling)"
    ]
    assert "ok:" not in result.stdout


def test_check_reports_a_wrong_type_with_the_bad_value(tmp_path):
    path = write(tmp_path, GOOD.replace("max_body_bytes: 4096", "max_body_bytes: lots"))
    result = run("check", "-c", str(path))
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: services[0].routes[1].policies.size_limit.max_body_bytes: ")
    assert line.endswith("(got 'lots')")


def test_check_reports_one_line_per_error(tmp_path):
    broken = (
        GOOD.replace("read_timeout: 30", "read_timout: 30")
        .replace("max_body_bytes: 4096", "max_body_bytes: lots")
        .replace('"10.0.0.0/8"', '"0.0.0.0/0"')
    )
    result = run("check", "-c", str(write(tmp_path, broken)))
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 3
    assert all(line.startswith("error: ") for line in lines)
    assert sorted(line.split(":", 2)[1].strip() for line in lines) == [
        "services[0].routes[1].policies.size_limit.max_body_bytes",
        "services[0].upstream.read_timout",
        "trusted_proxies",
    ]


def test_check_hides_secret_values(tmp_path):
    path = write(tmp_path, GOOD.replace("0123456789abcdef0123", "tiny-secret"))
    result = run("check", "-c", str(path))
    assert result.exit_code == 1
    assert "tiny-secret" not in result.output
    assert error_lines(result) == [
        "error: admin.token: must be at least 16 characters (got (hidden))"
    ]


def test_check_reports_a_missing_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("BASTION_TEST_UNSET_TOKEN", raising=False)
    path = write(tmp_path, GOOD.replace('"0123456789abcdef0123"', '"${BASTION_TEST_UNSET_TOKEN}"'))
    result = run("check", "-c", str(path))
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: admin.token: environment variable BASTION_TEST_UNSET_TOKEN is not set"
        " and has no default"
    ]


def test_check_reports_a_missing_file_clearly(tmp_path):
    missing = tmp_path / "absent.yaml"
    result = run("check", "-c", str(missing))
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: {missing}: cannot read (No such file or directory)"]
    assert "Traceback" not in result.output


def test_check_reports_invalid_yaml_with_its_position(tmp_path):
    result = run("check", "-c", str(write(tmp_path, "listeners: [\n")))
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: ")
    assert ": line 2, column 1: " in line


def test_check_requires_a_config_option():
    result = run("check")
    assert result.exit_code == 2
    assert "--config" in result.output


# --- config schema ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    result = run("config", "schema")
    assert result.exit_code == 0
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_schema_is_a_valid_draft_2020_12_json_schema(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Bastion gateway configuration"


def test_schema_accepts_a_good_config_document(schema):
    Draft202012Validator(schema).validate(yaml.safe_load(GOOD))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("read_timeout: 30", "read_timout: 30"), ["services", 0, "upstream"]),
        (("methods: [GET]", "methods: [FETCH]"), ["services", 0, "routes", 0, "methods"]),
        (("connect_timeout: 2", "connect_timeout: soon"), ["services", 0, "upstream"]),
    ],
    ids=["unknown_key", "unknown_method", "wrong_type"],
)
def test_schema_lets_editors_flag_bad_settings(schema, change, where):
    document = yaml.safe_load(GOOD.replace(*change))
    errors = list(Draft202012Validator(schema).iter_errors(document))
    assert errors
    assert any(list(error.absolute_path)[: len(where)] == where for error in errors)


# --- version ---------------------------------------------------------------------------------


def test_version_option_prints_the_package_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"bastion, version {__version__}\n"
