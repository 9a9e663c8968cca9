"""`bastion scan` against the vulnerable and the fixed twin of the fixture bank (in process)."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from bastion.scanner.runner import ScanOptions, ScanResult, run_scan
from tests.scanner.fixtures.bank import make_app, weak_token
from tests.scanner.fixtures.shop import MEMBERS, SHOP_PLANTED, make_shop

pytestmark = pytest.mark.anyio

# Every check that the in-process twins plant (TLS handshake checks run over real sockets in
# test_tls.py; TRANSPORT-001 needs an http:// target, scanned separately below).
PLANTED = frozenset(
    {
        "TRANSPORT-002",
        "TRANSPORT-003",
        "HEADERS-001",
        "HEADERS-002",
        "HEADERS-003",
        "CORS-001",
        "CORS-002",
        "AUTH-001",
        "AUTH-002",
        "AUTH-003",
        "AUTH-004",
        "AUTH-005",
        "AUTH-006",
        "AUTH-007",
        "AUTH-008",
        "AUTH-009",
        "AUTH-010",
        "AUTHZ-001",
        "AUTHZ-002",
        "AUTHZ-003",
        "AUTHZ-004",
        "INJECTION-001",
        "INJECTION-002",
        "INJECTION-003",
        "INJECTION-004",
        "INJECTION-005",
        "INJECTION-006",
        "INJECTION-007",
        "INPUT-001",
        "INPUT-002",
        "INPUT-003",
        "INVENTORY-001",
        "INVENTORY-002",
        "RESOURCE-001",
        "RESOURCE-002",
        "RESOURCE-003",
        "MISCONFIG-001",
        "MISCONFIG-002",
        "MISCONFIG-003",
    }
)


# Seconds per delay unit of the time-based probes: short, so that the suite stays fast, yet far
# above the in-process round trip (well under a millisecond) that the baseline measures.
TIME_UNIT = 0.4


async def scan_twin(*, vulnerable: bool, **overrides: object) -> ScanResult:
    app, bank = make_app(vulnerable=vulnerable)
    if vulnerable:
        alice, bob = weak_token("alice"), weak_token("bob")
    else:
        alice, bob = bank.token("alice"), bank.token("bob")
    options = ScanOptions(
        target="https://bank.test",
        auth=f"Bearer {alice}",
        auth2=f"Bearer {bob}",
        allow_unsafe=True,
        rate=0,
        http_port=80,
        time_unit=TIME_UNIT,
    )
    options = replace(options, **overrides)  # type: ignore[arg-type]  # test-chosen fields
    return await run_scan(options, transport=httpx.ASGITransport(app=app))


def ids(result: ScanResult) -> set[str]:
    return {f.check.id for f in result.findings}


async def test_scan_finds_every_planted_issue_on_the_vulnerable_twin():
    result = await scan_twin(vulnerable=True)
    found = ids(result)
    recall = len(found & PLANTED) / len(PLANTED)
    assert PLANTED - found == set()
    assert recall == 1.0
    assert found - PLANTED == set()  # nothing reported that was not planted


async def test_scan_reports_nothing_on_the_fixed_twin():
    result = await scan_twin(vulnerable=False)
    false_positives = [(f.check.id, f.url) for f in result.findings]
    assert false_positives == []


async def test_scan_reports_plain_http_target_as_missing_tls():
    result = await scan_twin(vulnerable=True, target="http://bank.test", checks=("transport",))
    assert ids(result) == {"TRANSPORT-001"}


def shop_login(email: str) -> str:
    body = json.dumps({"email": email, "password": MEMBERS[email]["password"]})
    return f"POST /api/auth/login {body} token=$.api_key header=X-API-Key"


async def scan_shop(*, vulnerable: bool, **overrides: object) -> ScanResult:
    app, _ = make_shop(vulnerable=vulnerable)
    options = ScanOptions(
        target="https://shop.test",
        openapi="https://shop.test/api/openapi.json",
        login=shop_login("ann@shop.test"),
        login2=shop_login("ben@shop.test"),
        allow_unsafe=True,
        rate=0,
        http_port=80,
        time_unit=TIME_UNIT,
    )
    options = replace(options, **overrides)  # type: ignore[arg-type]  # test-chosen fields
    return await run_scan(options, transport=httpx.ASGITransport(app=app))


async def test_scan_finds_every_planted_issue_on_the_second_fixture_shop():
    # The shop was written after the checks, with other routes, naming and auth (API keys from
    # a login); docs/scanner.md records what the scan found before and after the fixes it led to.
    found = ids(await scan_shop(vulnerable=True))
    assert SHOP_PLANTED - found == set()
    assert found - SHOP_PLANTED == set()


async def test_scan_reports_nothing_on_the_fixed_shop():
    result = await scan_shop(vulnerable=False)
    assert [(f.check.id, f.url) for f in result.findings] == []
