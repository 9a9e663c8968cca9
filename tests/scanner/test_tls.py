"""Transport checks over real TLS handshakes on loopback (stdlib ssl against trustme certs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trustme

from bastion.scanner.runner import ScanOptions, run_scan
from tests.scanner.tls_server import closed_port, https_server

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NOW = dt.datetime.now(dt.UTC)
WEAK = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256"  # CBC-SHA1 first, then a good one
CASES = [
    # (untrusted CA, days left, legacy TLS, cipher list, expected findings)
    pytest.param(
        True,
        365,
        True,
        None,
        {"TRANSPORT-004", "TRANSPORT-005", "TRANSPORT-007"},  # SECLEVEL=0 lets CBC-SHA1 in too
        id="untrusted-cert-and-tls1.1",
    ),
    pytest.param(False, -1, False, None, {"TRANSPORT-005"}, id="expired-cert"),
    pytest.param(False, 10, False, None, {"TRANSPORT-006"}, id="expiring-cert"),
    pytest.param(False, 365, False, WEAK, {"TRANSPORT-007"}, id="weak-cipher"),
    pytest.param(False, 365, False, None, set(), id="fixed"),
]


@pytest.mark.parametrize(("untrusted", "days", "legacy", "ciphers", "expected"), CASES)
async def test_transport_checks_report_exactly_the_planted_tls_weakness(
    tmp_path: Path,
    untrusted: bool,
    days: int,
    legacy: bool,
    ciphers: str | None,
    expected: set[str],
):
    not_after = NOW + dt.timedelta(days=days)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", not_before=NOW - dt.timedelta(days=30), not_after=not_after)
    bundle = tmp_path / "ca.pem"
    (trustme.CA() if untrusted else ca).cert_pem.write_to_path(str(bundle))
    with https_server(cert, legacy_tls=legacy, ciphers=ciphers) as server:
        options = ScanOptions(
            target=server.url,
            verify=str(bundle),
            http_port=closed_port(),
            rate=0,
            timeout=3,
            checks=("transport",),
        )
        result = await run_scan(options)
    assert {f.check.id for f in result.findings} == expected
