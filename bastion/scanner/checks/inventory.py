"""Inventory: undocumented endpoints that answer, and older API versions still served."""

from __future__ import annotations

import re
from typing import Final

from bastion.scanner.findings import CHECKS, CheckInfo, Severity
from bastion.scanner.http import Exchange
from bastion.scanner.runner import ScanContext

UNDOCUMENTED: Final = CHECKS.add(
    CheckInfo(
        "INVENTORY-001",
        "Undocumented endpoint answers",
        "medium",
        "Remove debug and admin endpoints from production, or put them on a separate, "
        "authenticated listener; document every endpoint the API serves.",
        "API9:2023",
    )
)
OLD_VERSION: Final = CHECKS.add(
    CheckInfo(
        "INVENTORY-002",
        "Older API version still served",
        "medium",
        "Retire old versions on a published schedule (Deprecation/Sunset headers, then 410), "
        "or keep them under the same security as the current one.",
        "API9:2023",
    )
)
COMMON_PATHS: Final[dict[str, Severity]] = {
    "/.env": "critical",
    "/debug": "high",
    "/actuator": "high",
    "/actuator/env": "high",
    "/admin": "high",
    "/server-status": "medium",
    "/metrics": "medium",
    "/debug/vars": "medium",
    "/debug/pprof/": "medium",
    "/phpinfo.php": "medium",
    "/info.php": "medium",
    "/console": "high",
    "/h2-console": "high",
    "/__debug__/": "high",
    "/_debug": "high",
    "/actuator/heapdump": "critical",
    "/server-info": "medium",
    "/.git/config": "high",
    "/elmah.axd": "medium",
    "/trace.axd": "medium",
}
_VERSION: Final = re.compile(r"^/v(\d+)(?=/|$)")


def _same_page(a: Exchange, b: Exchange) -> bool:
    return a.status == b.status and a.body == b.body


async def run(ctx: ScanContext) -> None:
    """Request common undocumented paths and lower version prefixes of documented ones."""
    documented = {op.path for op in ctx.operations}
    nonce = f"/bastion-scan-{ctx.rng.randrange(16**8):08x}"
    catch_all = await ctx.send("GET", nonce)  # SPAs and catch-all routes answer 200 everywhere
    for path, severity in COMMON_PATHS.items():
        if path in documented:
            continue
        exchange = await ctx.send("GET", path)
        if exchange is None or not exchange.ok:
            continue
        if catch_all is not None and _same_page(exchange, catch_all):
            continue
        evidence = ctx.client.evidence(exchange)
        ctx.report(UNDOCUMENTED, exchange.url, evidence=evidence, severity=severity)
    versions: dict[int, list[str]] = {}
    for op in ctx.operations:
        match = _VERSION.match(op.path)
        if match and op.method == "GET":
            versions.setdefault(int(match[1]), []).append(op.path)
    if not versions:
        return
    current = max(versions)
    samples = [p for p in versions[current] if "{" not in p][:2] or versions[current][:1]
    for old in range(current - 1, -1, -1):
        for path in samples:
            old_path = _VERSION.sub(f"/v{old}", path, count=1)
            if old_path in documented:
                continue
            exchange = await ctx.send("GET", old_path, identity=ctx.identity1)
            if exchange is None or exchange.status in (404, 410) or exchange.status >= 500:
                continue
            if catch_all is not None and _same_page(exchange, catch_all):
                continue
            ctx.report(
                OLD_VERSION,
                exchange.url,
                detail=f"/v{current} is current; /v{old} answers {exchange.status}",
                evidence=ctx.client.evidence(exchange),
            )
            break
