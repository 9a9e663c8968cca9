"""Config revisions through the store: how a node reads one, follows newer ones, starts up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bastion.admin.config_view import MASK, ConfigView
from bastion.admin.store_ops import (
    ConfigFollower,
    StartupConfig,
    config_from_store,
    process_origin,
    publish_config,
    startup_config,
)
from bastion.config.loader import ConfigErrors, parse_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError
from bastion.store import Store, open_store

pytestmark = pytest.mark.anyio

PEPPER_A = "node-a-pepper-with-at-least-32-characters"
PEPPER_B = "node-b-pepper-with-at-least-32-characters"


def _config(
    tmp_path: Path, *, port: int, pepper: str, paths: tuple[str, ...] = ("/a",)
) -> GatewayConfig:
    return parse_config(
        {
            "listeners": [{"bind": f"127.0.0.1:{port}", "plaintext": True}],
            "admin": {"bind": f"127.0.0.1:{port + 1}", "token": f"admin-token-{port}-long-enough"},
            "store": f"sqlite:///{tmp_path / 'bastion.db'}",
            "state_dir": str(tmp_path / f"state{port}"),
            "pepper": pepper,
            "services": [
                {
                    "name": "echo",
                    "upstream": {"targets": ["http://127.0.0.1:9"]},
                    "routes": [{"name": "r", "paths": list(paths)}],
                }
            ],
        }
    )


def _edited(config: GatewayConfig, path: str) -> dict[str, Any]:
    """What a client PUTs after GET: the masked document with one route path changed."""
    masked = ConfigView(config).masked
    assert isinstance(masked, dict)
    document: dict[str, Any] = dict(masked)
    document["services"][0]["routes"][0]["paths"] = [path]
    return document


@dataclass
class Host:
    """The server side of the follower: a config, a folder, and the configs applied."""

    config: GatewayConfig
    config_path: Path | None = None
    applied: list[GatewayConfig] = field(default_factory=list)
    refuse: bool = False

    def apply_config(self, config: GatewayConfig) -> None:
        if self.refuse:
            raise ConfigError("services[0].upstream", "cannot be built")
        self.applied.append(config)
        self.config = config


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = open_store(f"sqlite:///{tmp_path / 'bastion.db'}")
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


def test_stored_document_keeps_node_local_settings_and_this_nodes_secrets(
    tmp_path: Path,
) -> None:
    node_a = _config(tmp_path, port=8000, pepper=PEPPER_A)
    node_b = _config(tmp_path, port=9000, pepper=PEPPER_B)
    document = _edited(node_a, "/changed")
    assert document["pepper"] == MASK

    applied = config_from_store(node_b, document, tmp_path)

    assert applied.services[0].routes[0].paths == ["/changed"]
    assert applied.listeners == node_b.listeners
    assert applied.admin == node_b.admin
    assert applied.state_dir == node_b.state_dir
    assert applied.pepper is not None
    assert applied.pepper.get_secret_value() == PEPPER_B


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ports=st.tuples(st.integers(1024, 30000), st.integers(30001, 60000)),
    path=st.from_regex(r"/[a-z0-9]{1,12}(/[a-z0-9]{1,12}){0,3}", fullmatch=True),
    local_in_document=st.booleans(),
)
def test_any_stored_document_changes_shared_settings_only(
    tmp_path: Path, ports: tuple[int, int], path: str, local_in_document: bool
) -> None:
    node_a = _config(tmp_path, port=ports[0], pepper=PEPPER_A)
    node_b = _config(tmp_path, port=ports[1], pepper=PEPPER_B)
    document = _edited(node_a, path)
    if not local_in_document:  # a hand-written document may leave node settings out
        for key in ("listeners", "admin", "store", "state_dir"):
            document.pop(key)
    applied = config_from_store(node_b, document, tmp_path)
    assert applied.services[0].routes[0].paths == [path]
    assert (applied.listeners, applied.admin, applied.store, applied.state_dir) == (
        node_b.listeners,
        node_b.admin,
        node_b.store,
        node_b.state_dir,
    )
    assert applied.pepper == node_b.pepper


def test_stored_document_takes_a_new_literal_secret(tmp_path: Path) -> None:
    node_b = _config(tmp_path, port=9000, pepper=PEPPER_B)
    document = _edited(node_b, "/a")
    document["pepper"] = PEPPER_A
    applied = config_from_store(node_b, document, tmp_path)
    assert applied.pepper is not None
    assert applied.pepper.get_secret_value() == PEPPER_A


def test_stored_document_never_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_TEST_PATH", "/from-env")
    node = _config(tmp_path, port=9000, pepper=PEPPER_B)
    with_default = _edited(node, "${BASTION_TEST_PATH:-/default}")
    assert config_from_store(node, with_default, tmp_path).services[0].routes[0].paths == [
        "/default"
    ]
    with pytest.raises(ConfigErrors):
        config_from_store(node, _edited(node, "${BASTION_TEST_PATH}"), tmp_path)


async def test_follower_applies_a_revision_stored_by_another_process(
    tmp_path: Path, store: Store
) -> None:
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    follower = ConfigFollower(host, lambda: store)
    await follower.check()  # the first read only notes where the store is
    assert host.applied == []
    assert follower.status() == {"config_source": "file", "config_store_revision": None}

    node_a = _config(tmp_path, port=8000, pepper=PEPPER_A)
    await store.add_config_revision(
        _edited(node_a, "/b"), actor="admin-api", origin="node-a", before=None, after=None
    )
    await follower.check()

    assert [c.services[0].routes[0].paths for c in host.applied] == [["/b"]]
    assert host.config.listeners[0].bind == "127.0.0.1:9000"
    assert follower.status() == {"config_source": "store", "config_store_revision": 1}
    await follower.check()  # nothing newer: nothing applied again
    assert len(host.applied) == 1


async def test_follower_skips_what_this_process_published(tmp_path: Path, store: Store) -> None:
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    follower = ConfigFollower(host, lambda: store)
    await follower.check()
    revision = await publish_config(
        store, _edited(host.config, "/b"), before={"revision": 1}, after={"revision": 2}
    )
    assert revision.origin == process_origin()
    await follower.check()  # stored here after applying here (before `published` was called)
    assert host.applied == []
    assert follower.status() == {"config_source": "store", "config_store_revision": 1}
    follower.file_applied()  # SIGHUP
    assert follower.status() == {"config_source": "file", "config_store_revision": None}


async def test_follower_keeps_serving_when_a_revision_is_refused(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    follower = ConfigFollower(host, lambda: store)
    await follower.check()
    secret = "a-literal-secret-that-must-never-be-logged"
    bad = _edited(host.config, "/b")
    bad["services"][0]["routes"][0]["policies"] = {"rate_limit": {"limit": -5, "window": 60}}
    bad["pepper"] = secret
    await store.add_config_revision(bad, actor="admin-api", origin="x", before=None, after=None)

    with caplog.at_level(logging.INFO, logger="bastion.admin"):
        await follower.check()

    assert host.applied == []
    assert follower.status()["config_source"] == "file"
    assert "services[0].routes[0].policies.rate_limit.limit" in caplog.text
    assert secret not in caplog.text
    assert "-5" not in caplog.text

    # A config that validates but cannot be built is refused the same way.
    host.refuse = True
    good = _edited(host.config, "/c")
    await store.add_config_revision(good, actor="admin-api", origin="x", before=None, after=None)
    await follower.check()
    assert host.applied == []
    assert "config revision 2 from the store refused (settings: services[0].upstream)" in (
        caplog.text
    )


async def test_follower_reports_the_store_degraded_and_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.db"
    broken.mkdir()  # a directory where the database file should be: every query fails
    store = open_store(f"sqlite:///{broken}")
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    follower = ConfigFollower(host, lambda: store)
    try:
        with caplog.at_level(logging.WARNING, logger="bastion.admin"):
            await follower.check()
            assert follower.degraded
            await follower.check()  # still down: one log event per transition
            broken.rmdir()
            await follower.check()
        assert not follower.degraded
    finally:
        await store.close()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "store degraded (sqlite unavailable): serving the last good config and cache",
        "store recovered: it answers again",
    ]
    assert [getattr(r, "event.action", None) for r in caplog.records] == [
        "store-degraded",
        "store-recovered",
    ]


async def test_follower_started_without_the_store_adopts_its_newest_revision(
    tmp_path: Path, store: Store
) -> None:
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    await store.add_config_revision(
        _edited(host.config, "/b"), actor="admin-api", origin="x", before=None, after=None
    )
    follower = ConfigFollower(host, lambda: store, StartupConfig(host.config, "file", None, None))
    await follower.check()
    assert [c.services[0].routes[0].paths for c in host.applied] == [["/b"]]

    ignoring = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    start = StartupConfig(ignoring.config, "file", None, None, ignore_stored=True)
    await ConfigFollower(ignoring, lambda: store, start).check()
    assert ignoring.applied == []


async def test_follower_runs_until_stopped(tmp_path: Path, store: Store) -> None:
    host = Host(_config(tmp_path, port=9000, pepper=PEPPER_B))
    follower = ConfigFollower(host, lambda: store, poll_interval=0.05)
    follower.start()
    await asyncio.sleep(0.1)
    await store.add_config_revision(
        _edited(host.config, "/b"), actor="admin-api", origin="x", before=None, after=None
    )
    for _ in range(100):
        if host.applied:
            break
        await asyncio.sleep(0.02)
    await follower.stop()
    assert [c.services[0].routes[0].paths for c in host.applied] == [["/b"]]


def _store_revision(tmp_path: Path, document: dict[str, Any]) -> None:
    async def main() -> None:
        opened = open_store(f"sqlite:///{tmp_path / 'bastion.db'}")
        try:
            await opened.add_config_revision(
                document, actor="admin-api", origin="x", before=None, after=None
            )
        finally:
            await opened.close()

    asyncio.run(main())


def test_startup_serves_the_file_when_the_store_holds_no_revision(tmp_path: Path) -> None:
    config = _config(tmp_path, port=9000, pepper=PEPPER_B)
    start = startup_config(config, tmp_path / "bastion.yaml")
    assert start == StartupConfig(config, "file", None, 0)
    assert not (tmp_path / "bastion.db").exists()


def test_startup_prefers_the_stored_revision_unless_told_to_ignore_it(tmp_path: Path) -> None:
    config = _config(tmp_path, port=9000, pepper=PEPPER_B)
    _store_revision(tmp_path, _edited(config, "/stored"))

    start = startup_config(config, tmp_path / "bastion.yaml")
    assert (start.source, start.store_revision, start.watermark) == ("store", 1, 1)
    assert start.config.services[0].routes[0].paths == ["/stored"]

    ignored = startup_config(config, tmp_path / "bastion.yaml", ignore_stored=True)
    assert ignored == StartupConfig(config, "file", None, 1, ignore_stored=True)


def test_startup_refuses_an_invalid_stored_revision(tmp_path: Path) -> None:
    config = _config(tmp_path, port=9000, pepper=PEPPER_B)
    bad = _edited(config, "/b")
    bad["limits"] = {"idle_timeout": -1}
    _store_revision(tmp_path, bad)
    assert startup_config(config, None) == StartupConfig(config, "file", None, 1)


def test_startup_with_the_store_unreachable_serves_the_file(tmp_path: Path) -> None:
    (tmp_path / "bastion.db").mkdir()
    config = _config(tmp_path, port=9000, pepper=PEPPER_B)
    assert startup_config(config, None) == StartupConfig(config, "file", None, None)
