"""KeySource: refresh on demand and when stale, at a bounded rate, keeping the last good set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.policies.jwt.jwks import FetchError, KeySource, file_fetcher
from bastion.policies.jwt.keys import KeySet, parse_jwks
from tests.policies.jwt.tokens import ec_key, jwks, rsa_key

pytestmark = pytest.mark.anyio

ALLOWED = frozenset({"RS256", "ES256"})


class FakeIdP:
    """Serves whatever document (or failure) the test sets, counting requests."""

    def __init__(self, document: bytes | Exception) -> None:
        self.document = document
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> bytes:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.document, Exception):
            raise self.document
        return self.document


def parse(document: bytes) -> KeySet:
    return parse_jwks(document, ALLOWED)


def source_for(idp: FakeIdP, clock: FakeClock, **kwargs: object) -> KeySource:
    return KeySource(clock=clock, parse=parse, fetch=idp.fetch, **kwargs)  # type: ignore[arg-type]


async def test_first_refresh_loads_the_set():
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, FakeClock())
    assert source.keys is None
    keys = await source.refresh()
    assert keys is not None
    assert keys.kids == {"rsa-1"}
    assert idp.calls == 1


async def test_refresh_is_rate_limited_between_attempts():
    clock = FakeClock()
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, clock, min_interval=60)
    await source.refresh()
    idp.document = jwks(rsa_key(), ec_key())
    clock.advance(59)
    assert not source.may_fetch()
    assert (await source.refresh()).kids == {"rsa-1"}  # type: ignore[union-attr]
    assert idp.calls == 1
    clock.advance(1)
    assert source.may_fetch()
    assert (await source.refresh()).kids == {"rsa-1", "ec-1"}  # type: ignore[union-attr]
    assert idp.calls == 2


async def test_failed_fetch_keeps_the_last_good_set_and_counts_toward_the_rate_limit():
    clock = FakeClock()
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, clock, min_interval=10)
    good = await source.refresh()
    for failure in (OSError("refused"), TimeoutError(), FetchError("503"), b"not json"):
        idp.document = failure
        clock.advance(10)
        assert await source.refresh() is good
    assert source.failures == 4
    assert not source.may_fetch()


async def test_no_set_ever_loaded_gives_none():
    source = source_for(FakeIdP(OSError("down")), FakeClock())
    assert await source.refresh() is None


async def test_concurrent_refreshes_share_one_fetch():
    idp = FakeIdP(jwks(rsa_key()))
    idp.gate = asyncio.Event()
    source = source_for(idp, FakeClock())
    waiters = [asyncio.ensure_future(source.refresh()) for _ in range(5)]
    await asyncio.sleep(0)
    idp.gate.set()
    results = await asyncio.gather(*waiters)
    assert idp.calls == 1
    assert all(result is results[0] for result in results)


async def test_stale_set_is_refreshed_in_the_background():
    clock = FakeClock()
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, clock, refresh_interval=300, min_interval=60)
    await source.refresh()
    clock.advance(299)
    assert not source.is_stale()
    clock.advance(1)
    assert source.is_stale()
    idp.document = jwks(ec_key())
    source.refresh_in_background()
    source.refresh_in_background()  # joins the one in flight
    for _ in range(3):
        await asyncio.sleep(0)
    assert source.keys is not None
    assert source.keys.kids == {"ec-1"}
    assert idp.calls == 2


async def test_removed_kid_fires_the_callback_and_added_kid_does_not():
    clock = FakeClock()
    removed: list[int] = []
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, clock, min_interval=1, on_keys_removed=lambda: removed.append(1))
    await source.refresh()
    idp.document = jwks(rsa_key(), ec_key())
    clock.advance(1)
    await source.refresh()
    assert removed == []
    idp.document = jwks(ec_key())
    clock.advance(1)
    await source.refresh()
    assert removed == [1]


def test_static_source_never_fetches_and_is_never_stale():
    clock = FakeClock()
    source = KeySource(clock=clock, parse=parse, initial=parse(jwks(rsa_key())))
    clock.advance(10_000)
    assert not source.refreshable
    assert not source.may_fetch()
    assert not source.is_stale()


def test_background_refresh_without_a_running_loop_does_nothing():
    idp = FakeIdP(jwks(rsa_key()))
    source = source_for(idp, FakeClock())
    source.refresh_in_background()
    assert idp.calls == 0


async def test_file_fetcher_reads_the_file_and_refuses_oversized_ones(tmp_path: Path):
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(rsa_key()))
    assert await file_fetcher(path, 10_000)() == jwks(rsa_key())
    with pytest.raises(FetchError):
        await file_fetcher(path, 10)()
