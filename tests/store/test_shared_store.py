"""The per-process shared store follows a reload's peppers (a leaked pepper stops verifying)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config.loader import parse_config
from bastion.config.models import GatewayConfig
from bastion.store import close_shared_stores, gateway_store
from bastion.store.secrets import new_api_key

pytestmark = pytest.mark.anyio

CURRENT = "the-current-pepper-of-at-least-32-characters"
LEAKED = "a-leaked-old-pepper-of-at-least-32-characters"


def _config(db: Path, previous: list[str]) -> GatewayConfig:
    return parse_config(
        {
            "listeners": [{"bind": "127.0.0.1:18443", "plaintext": True}],
            "store": f"sqlite:///{db}",
            "pepper": CURRENT,
            "previous_peppers": previous,
        }
    )


async def test_a_reload_that_drops_a_previous_pepper_stops_it_verifying(tmp_path: Path) -> None:
    db = tmp_path / "bastion.db"
    try:
        before = gateway_store(_config(db, [LEAKED]))
        old = before.peppers
        assert old is not None
        _, key = new_api_key()
        leaked_id = next(p.id for p in old._by_id.values() if p.id != old.current.id)
        digest = old.digest(key, leaked_id)
        assert digest is not None
        assert old.matches(key, digest, leaked_id)

        after = gateway_store(_config(db, []))
        assert after is before  # the warm cache is kept across the reload
        assert after.peppers is not None
        assert not after.peppers.matches(key, digest, leaked_id)
    finally:
        await close_shared_stores()
