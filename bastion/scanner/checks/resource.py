"""Resource consumption: no rate limit on a bounded burst, no limit on request body size."""

from __future__ import annotations

import json
from typing import Final

from bastion.scanner.checks.auth import (
    credential_fields,
    fresh_body,
    login_operation,
    unknown_user,
)
from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.http import Exchange
from bastion.scanner.runner import ScanContext

NO_RATE_LIMIT: Final = CHECKS.add(
    CheckInfo(
        "RESOURCE-001",
        "No rate limit",
        "medium",
        "Limit requests per client and per credential (429 with Retry-After and RateLimit "
        "headers); tighter limits on login and other expensive endpoints.",
        "API4:2023",
    )
)
NO_BODY_LIMIT: Final = CHECKS.add(
    CheckInfo(
        "RESOURCE-002",
        "No request body size limit",
        "medium",
        "Refuse bodies larger than the API needs with 413 before reading them "
        "(a size_limit policy at the gateway).",
        "API4:2023",
    )
)
NO_LOGIN_LIMIT: Final = CHECKS.add(
    CheckInfo(
        "RESOURCE-003",
        "No rate limit on login",
        "high",
        "Limit failed logins per account and per client (429 with Retry-After, growing delays); "
        "a login without a limit lets anyone guess passwords at full speed.",
        "API4:2023",
    )
)
MAX_BURST: Final = 60
LARGE_BODY: Final = 1024 * 1024
_THROTTLED: Final = frozenset({429, 503})


async def _burst(ctx: ScanContext) -> None:
    ops = [op for op in ctx.operations if op.method == "GET" and not op.path_params]
    target = next((op for op in ops if ctx.baseline.get(("GET", op.path), None) is not None), None)
    if target is None:
        return
    size = min(ctx.options.burst, MAX_BURST)
    if ctx.client.budget - ctx.client.sent < size:
        ctx.note("rate-limit burst skipped: not enough request budget left")
        return
    path = ctx.fill(target)
    last: Exchange | None = None
    for _ in range(size):
        exchange = await ctx.send("GET", path, identity=ctx.identity1)
        if exchange is None:
            return
        if exchange.status in _THROTTLED:
            return
        last = exchange
    if last is not None:
        ctx.report(
            NO_RATE_LIMIT,
            last.url,
            detail=f"{size} requests in a burst, none answered 429",
            evidence=ctx.client.evidence(last),
        )


async def _large_body(ctx: ScanContext) -> None:
    """One 1 MiB body: the operation's own example, padded (so only its size is wrong)."""
    if not ctx.options.allow_unsafe:
        return
    login = login_operation(ctx)
    for op in ctx.operations:
        if op.method not in ("POST", "PUT", "PATCH") or not op.has_body or op is login:
            continue
        example = fresh_body(ctx, op)
        body = json.dumps({**example, "bastion_padding": ""}).encode()
        body = body.replace(
            b'"bastion_padding": ""',
            b'"bastion_padding": "' + b"A" * (LARGE_BODY - len(body)) + b'"',
        )
        headers = {"Content-Type": "application/json"}
        exchange = await ctx.send(
            op.method, ctx.fill(op), identity=ctx.identity1, headers=headers, content=body
        )
        if exchange is not None and exchange.ok:
            ctx.report(
                NO_BODY_LIMIT,
                ctx.client.url(op.path),
                method=op.method,
                detail=f"a {len(body)} byte body was accepted",
                evidence=ctx.client.evidence(exchange),
            )
        return  # one bounded large body per scan


async def _login_burst(ctx: ScanContext) -> None:
    """Failed logins for one user name that does not exist (no real account gets locked)."""
    op = login_operation(ctx)
    fields = credential_fields(op) if op is not None else None
    if op is None or fields is None or not ctx.options.allow_unsafe:
        return
    size = min(ctx.options.burst, MAX_BURST)
    if ctx.client.budget - ctx.client.sent < size:
        ctx.note("login burst skipped: not enough request budget left")
        return
    body, user_key, password_key = fields
    payload = json.dumps({**body, user_key: unknown_user(ctx, user_key), password_key: "x"})
    headers = {"Content-Type": "application/json"}
    last: Exchange | None = None
    for _ in range(size):
        exchange = await ctx.send("POST", op.path, headers=headers, content=payload.encode())
        if exchange is None or exchange.status in _THROTTLED:
            return
        last = exchange
    if last is not None:
        ctx.report(
            NO_LOGIN_LIMIT,
            ctx.client.url(op.path),
            method="POST",
            detail=f"{size} failed logins in a burst, none answered 429",
            evidence=ctx.client.evidence(last),
        )


async def run(ctx: ScanContext) -> None:
    """Send bounded bursts (any endpoint; login with --allow-unsafe) and one 1 MiB body."""
    await _large_body(ctx)
    await _login_burst(ctx)
    await _burst(ctx)
