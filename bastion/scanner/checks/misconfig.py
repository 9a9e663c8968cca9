"""Misconfiguration seen in responses: stack traces and verbose errors, server banners."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Final

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.runner import ScanContext

VERBOSE_ERROR: Final = CHECKS.add(
    CheckInfo(
        "MISCONFIG-001",
        "Verbose error or stack trace in a response",
        "medium",
        "Return generic problem+json errors (RFC 9457) and log the details server-side; turn off "
        "debug mode in production.",
        "API8:2023",
    )
)
BANNER: Final = CHECKS.add(
    CheckInfo(
        "MISCONFIG-002",
        "Server or framework version disclosed",
        "low",
        "Remove `X-Powered-By` and version numbers from `Server` (and similar) headers.",
        "API8:2023",
    )
)
SENSITIVE_DATA: Final = CHECKS.add(
    CheckInfo(
        "MISCONFIG-003",
        "Sensitive field in a response",
        "high",
        "Return only the fields the client needs (an explicit response schema); never send "
        "password hashes, secrets, full card numbers or national ids.",
        "API3:2023",
    )
)
TRACE_SIGNATURES: Final = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]{1,200}\", line \d+"
    r"|\bat [\w$.]{1,200}\([\w$]{1,80}\.java:\d+\)|Exception in thread \""
    r"|System\.[A-Za-z]{1,60}Exception|at Object\.<anonymous>|\(node:internal/"
    r"|Stack trace:\s*#0|Werkzeug Debugger|You're seeing this error because you have DEBUG = True"
)
_VERSIONED: Final = re.compile(r"[A-Za-z][\w.-]{0,40}/v?\d")
_BANNER_HEADERS: Final = ("x-powered-by", "x-aspnet-version", "x-aspnetmvc-version")
_SENSITIVE_KEY: Final = re.compile(
    r"(?i)(?:^|[_-])(?:password|passwd|pwd|password_?hash|hashed_?password|pin|pin_?hash|secret"
    r"|client_?secret|private_?key|ssn|social_security_number|card_?number|cvv|cvc)$"
)
_PROSE: Final = re.compile(r"\S+\s+\S+\s+\S+")  # three words or more
_ODD_VALUE: Final = "bastion-scan-x"  # not a number, not an id: handlers that parse it may crash


def _sensitive_keys(value: object, found: set[str], depth: int = 0) -> None:
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and item and _SENSITIVE_KEY.search(str(key)):
                # A bare `secret` holding words is content its owner wrote (a note, a
                # recovery hint), not a credential; `client_secret` and friends always count.
                if str(key).lower() != "secret" or not _PROSE.search(item):
                    found.add(str(key))
            else:
                _sensitive_keys(item, found, depth + 1)
    elif isinstance(value, list):
        for item in value[:50]:
            _sensitive_keys(item, found, depth + 1)


async def _provoke_errors(ctx: ScanContext) -> None:
    """Send a value of the wrong type to each path parameter once (stack traces show up here)."""
    for op in ctx.operations:
        if op.method != "GET" or not op.path_params:
            continue
        path = op.path
        for name in op.path_params:
            path = path.replace("{" + name + "}", _ODD_VALUE)
        await ctx.send("GET", path, identity=ctx.identity1)


async def run(ctx: ScanContext) -> None:
    """Provoke errors once per operation, then look through every response of the scan."""
    await _provoke_errors(ctx)
    for exchange in ctx.exchanges:
        if exchange.ok and "json" in exchange.headers.get("content-type", ""):
            keys: set[str] = set()
            with contextlib.suppress(ValueError):
                _sensitive_keys(json.loads(exchange.body), keys)
            if keys:
                ctx.report(
                    SENSITIVE_DATA,
                    ctx.operation_url(exchange.url),
                    method=exchange.method,
                    detail="fields: " + ", ".join(sorted(keys)),
                    evidence=ctx.client.evidence(exchange),
                )
        match = TRACE_SIGNATURES.search(exchange.text)
        if match:
            ctx.report(
                VERBOSE_ERROR,
                ctx.operation_url(exchange.url),
                method=exchange.method,
                detail=f"matched {match[0][:60]!r}",
                evidence=ctx.client.evidence(exchange),
            )
        server = exchange.headers.get("server", "")
        disclosed = [f"server: {server}"] if _VERSIONED.search(server) else []
        disclosed += [
            f"{h}: {exchange.headers[h]}" for h in _BANNER_HEADERS if h in exchange.headers
        ]
        if disclosed:
            ctx.report(BANNER, ctx.client.url("/"), detail="; ".join(disclosed))
