"""Security response headers: nosniff, framing protection, no caching of authenticated data."""

from __future__ import annotations

from typing import Final

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.http import Exchange
from bastion.scanner.runner import ScanContext

NO_NOSNIFF: Final = CHECKS.add(
    CheckInfo(
        "HEADERS-001",
        "Missing X-Content-Type-Options: nosniff",
        "low",
        "Send `X-Content-Type-Options: nosniff` so that browsers never run a JSON response as "
        "script or HTML.",
        "API8:2023",
    )
)
NO_FRAME: Final = CHECKS.add(
    CheckInfo(
        "HEADERS-002",
        "No protection against framing",
        "low",
        "Send `Content-Security-Policy: frame-ancestors 'none'` (or `X-Frame-Options: DENY`).",
        "API8:2023",
    )
)
CACHEABLE: Final = CHECKS.add(
    CheckInfo(
        "HEADERS-003",
        "Authenticated response may be cached",
        "low",
        "Send `Cache-Control: no-store` on responses to authenticated requests so that shared "
        "caches and browsers do not keep private data.",
        "API8:2023",
    )
)


def _framing_protected(exchange: Exchange) -> bool:
    csp = exchange.headers.get("content-security-policy", "").lower()
    return "x-frame-options" in exchange.headers or "frame-ancestors" in csp


async def run(ctx: ScanContext) -> None:
    """Check the security headers of every successful baseline response."""
    answered = [e for e in ctx.baseline.values() if e.ok]
    if not answered:
        exchange = await ctx.send("GET", "/")
        answered = [exchange] if exchange is not None else []
    missing: dict[str, list[Exchange]] = {}
    for exchange in answered:
        nosniff = exchange.headers.get("x-content-type-options", "").lower()
        if nosniff != "nosniff":
            missing.setdefault(NO_NOSNIFF.id, []).append(exchange)
        if not _framing_protected(exchange):
            missing.setdefault(NO_FRAME.id, []).append(exchange)
        authenticated = any(
            name.lower() in ("authorization", "cookie") or name.lower().endswith("key")
            for name in exchange.request_headers
        )
        cache = exchange.headers.get("cache-control", "").lower()
        if authenticated and "no-store" not in cache and "private" not in cache:
            missing.setdefault(CACHEABLE.id, []).append(exchange)
    for check in (NO_NOSNIFF, NO_FRAME, CACHEABLE):
        lacking = missing.get(check.id)
        if lacking:  # one finding per header: the fix is one setting, not one per endpoint
            first = lacking[0]
            detail = f"{len(lacking)} of {len(answered)} successful responses"
            ctx.report(check, first.url, detail=detail, evidence=ctx.client.evidence(first))
