"""`bastion consumers|keys|basic|migrate` against a real SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import main
from bastion.store import open_store
from bastion.store.secrets import parse_api_key, verify_password

PEPPER = "cli-test-pepper-with-at-least-32-characters"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        'listeners: [{bind: "127.0.0.1:18080", plaintext: true}]\n'
        'store: "sqlite:///var/bastion.db"\n'
        'pepper: "${BASTION_TEST_PEPPER}"\n'
    )
    return path


def _run(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        main, [*args, "-c", str(config)], input=stdin, env={"BASTION_TEST_PEPPER": PEPPER}
    )
    return result.exit_code, result.stdout, result.stderr


def test_migrate_creates_the_schema_then_reports_it_current(config: Path) -> None:
    from bastion.store.migrate import load_migrations

    every = [f"{m.version:04d}_{m.name}" for m in load_migrations("sqlite")]
    first = _run(config, "migrate")[1].strip()
    assert first.startswith("applied: ")
    assert first.removeprefix("applied: ").split(", ") == every
    assert _run(config, "migrate")[1].strip() == "the schema is up to date"
    assert (config.parent / "var" / "bastion.db").exists()  # relative to the config file


def test_consumer_lifecycle(config: Path) -> None:
    code, out, _ = _run(config, "consumers", "add", "alice", "--group", "ops", "--meta", "t=x")
    assert code == 0
    assert "created consumer alice" in out
    assert _run(config, "consumers", "add", "alice")[0] == 1  # names are unique
    assert "alice" in _run(config, "consumers", "list")[1]
    assert _run(config, "consumers", "disable", "alice")[0] == 0
    assert "disabled" in _run(config, "consumers", "list")[1]
    assert _run(config, "consumers", "disable", "nobody")[0] == 1


def test_keys_issue_prints_the_key_once_and_only_on_stdout(config: Path) -> None:
    _run(config, "consumers", "add", "alice")
    code, out, err = _run(config, "keys", "issue", "alice", "--expires-in", "90d")
    assert code == 0
    key = out.strip()
    key_id = parse_api_key(key)
    assert key_id is not None
    assert key not in err
    listing = _run(config, "keys", "list", "alice")[1]
    assert key_id in listing
    assert key not in listing
    assert "active" in listing


def test_keys_revoke_and_rotate(config: Path) -> None:
    _run(config, "consumers", "add", "alice")
    first = _run(config, "keys", "issue", "alice")[1].strip()
    first_id = parse_api_key(first)
    assert first_id is not None
    code, out, _ = _run(config, "keys", "rotate", first_id, "--overlap", "1h")
    assert code == 0
    second_id = parse_api_key(out.strip())
    assert second_id is not None
    assert second_id != first_id
    assert _run(config, "keys", "revoke", second_id)[0] == 0
    listing = _run(config, "keys", "list")[1]
    assert f"{second_id}  " in listing
    assert "revoked" in listing
    assert _run(config, "keys", "revoke", "000000000000")[0] == 1


def test_keys_issue_needs_a_pepper(tmp_path: Path) -> None:
    path = tmp_path / "nopepper.yaml"
    path.write_text('listeners: [{bind: "127.0.0.1:18080", plaintext: true}]\n')
    _run(path, "consumers", "add", "alice")
    code, _, err = _run(path, "keys", "issue", "alice")
    assert code == 1
    assert "pepper" in err


def test_set_password_reads_stdin_and_stores_only_an_argon2id_hash(config: Path) -> None:
    _run(config, "consumers", "add", "alice")
    code, out, _ = _run(
        config, "basic", "set-password", "alice", "--password-stdin", stdin="s3cret pass\n"
    )
    assert code == 0
    assert "s3cret" not in out

    async def stored() -> str:
        store = open_store(f"sqlite:///{config.parent / 'var' / 'bastion.db'}")
        try:
            found = await store.get_password("alice")
            assert found is not None
            return found[0].password_hash
        finally:
            await store.close()

    password_hash = asyncio.run(stored())
    assert password_hash.startswith("$argon2id$")
    assert verify_password(password_hash, "s3cret pass")


def test_set_password_prompts_hidden_with_confirmation(config: Path) -> None:
    _run(config, "consumers", "add", "alice")
    code, out, _ = _run(config, "basic", "set-password", "alice", stdin="pw-one\npw-one\n")
    assert code == 0
    assert "pw-one" not in out


def test_set_password_takes_no_password_argument(config: Path) -> None:
    code, _, _ = _run(config, "basic", "set-password", "alice", "--password", "x")
    assert code == 2
