"""CORS: a wildcard origin with credentials, and arbitrary origins reflected."""

from __future__ import annotations

from typing import Final

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.runner import ScanContext

WILDCARD_CREDENTIALS: Final = CHECKS.add(
    CheckInfo(
        "CORS-001",
        "CORS allows any origin together with credentials",
        "high",
        "Never combine `Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials: "
        "true`; list the trusted origins explicitly.",
        "API8:2023",
    )
)
REFLECTED_ORIGIN: Final = CHECKS.add(
    CheckInfo(
        "CORS-002",
        "CORS reflects an arbitrary Origin",
        "high",
        "Compare the Origin header against an allowlist of exact origins; do not echo it back.",
        "API8:2023",
    )
)


async def run(ctx: ScanContext) -> None:
    """Send a simple and a preflight request from an untrusted origin to a few endpoints."""
    evil = f"https://scan-{ctx.rng.randrange(16**8):08x}.example"
    paths = [ctx.fill(op) for op in ctx.operations if op.method == "GET" and not op.path_params][:3]
    reported: set[str] = set()
    for path in paths or ["/"]:
        for method, extra in (
            ("GET", {}),
            ("OPTIONS", {"Access-Control-Request-Method": "GET"}),
        ):
            exchange = await ctx.send(
                method, path, identity=ctx.identity1, headers={"Origin": evil, **extra}
            )
            if exchange is None or path in reported:
                continue
            allow = exchange.headers.get("access-control-allow-origin", "")
            credentials = exchange.headers.get("access-control-allow-credentials", "") == "true"
            if allow.strip() == "*" and credentials:
                reported.add(path)
                ctx.report(
                    WILDCARD_CREDENTIALS,
                    exchange.url,
                    method=method,
                    evidence=ctx.client.evidence(exchange),
                )
            elif allow.strip() == evil:
                reported.add(path)
                ctx.report(
                    REFLECTED_ORIGIN,
                    exchange.url,
                    method=method,
                    detail="credentials allowed too" if credentials else "",
                    evidence=ctx.client.evidence(exchange),
                )
