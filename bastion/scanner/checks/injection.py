"""Injection probes on parameters: SQL (error- and boolean-based), path traversal, reflected XSS.

Each technique is confirmed before it is reported: an error signature must be absent for a
benign control value, a boolean pair must split (true condition = the original answer, false
condition = a different one) twice with different payloads on a stable baseline, a file
signature must be absent from the baseline, and a reflected marker must come back unescaped in
an HTML response.
"""

from __future__ import annotations

import re
from typing import Final

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.http import Exchange
from bastion.scanner.runner import Operation, ScanContext

SQL_ERROR: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-001",
        "SQL injection (error-based)",
        "critical",
        "Pass every value to the database as a bound parameter (placeholders), never by string "
        "formatting; validate parameters against the schema; return generic errors.",
        "API8:2023",
    )
)
SQL_BOOLEAN: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-002",
        "SQL injection (boolean-based)",
        "critical",
        "Pass every value to the database as a bound parameter (placeholders), never by string "
        "formatting; validate parameters against the schema.",
        "API8:2023",
    )
)
TRAVERSAL: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-003",
        "Path traversal",
        "critical",
        "Never build file paths from request values; map identifiers to files through an "
        "allowlist, or resolve the path and refuse anything outside the intended directory.",
        "API8:2023",
    )
)
XSS: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-004",
        "Parameter reflected unescaped in HTML",
        "high",
        "Serve API data as JSON (`application/json`, `nosniff`); when rendering HTML, escape "
        "every value for its context.",
        "API8:2023",
    )
)
SQL_SIGNATURES: Final = re.compile(
    r"(?i)you have an error in your sql syntax|sql syntax.{0,40}mysql|syntax error at or near"
    r"|unterminated quoted string|quoted string not properly terminated|sqlite3?\.operationalerror"
    r"|sqlite_error|unrecognized token:|near \"[^\"]{0,40}\": syntax error|\bora-\d{5}\b"
    r"|microsoft ole db provider|odbc sql server driver|pg::syntaxerror|psycopg2?\.errors"
    r"|sqlstate\[|org\.hibernate\.|java\.sql\.sqlexception"
)
FILE_SIGNATURES: Final = re.compile(r"root:[x*!]?:0:0:|\[boot loader\]|\[fonts\]")
_SQL_PROBES: Final = ("'", '"', "1'")
_CONTROL: Final = "1"
# (true condition, false condition) suffixes for a quoted string and for a number.
_BOOLEAN_PAIRS: Final = (
    (("' AND 'b'='b", "' AND 'b'='c"), ("' AND 7=7 AND 'a'='a", "' AND 7=8 AND 'a'='a")),
    ((" AND 1=1", " AND 1=2"), (" AND 7=7", " AND 7=8")),
)
_TRAVERSALS: Final = ("../../../../../../../../etc/passwd", "....//....//....//....//etc/passwd")
_MAX_PARAMS: Final = 4


def _targets(op: Operation) -> list[tuple[str, str]]:
    found = [(p.name, p.location) for p in op.parameters if p.location in ("query", "path")]
    for name in op.path_params:
        if (name, "path") not in found:
            found.append((name, "path"))
    return found[:_MAX_PARAMS]


def _original(ctx: ScanContext, op: Operation, name: str, location: str) -> str:
    if location == "path":
        return ctx.value_for(op, name)
    for param in op.parameters:
        if param.name == name and param.example is not None:
            return param.example
    return _CONTROL


async def _send(
    ctx: ScanContext, op: Operation, name: str, location: str, value: str
) -> Exchange | None:
    if location == "path":
        path = op.path.replace("{" + name + "}", value)
        for other in op.path_params:
            path = path.replace("{" + other + "}", ctx.value_for(op, other))
        query = ctx.fill(op).partition("?")[2]
        return await ctx.send(
            op.method, path + ("?" + query if query else ""), identity=ctx.identity1
        )
    path = ctx.fill(op)
    return await ctx.send(op.method, path, identity=ctx.identity1, params={name: value})


def _same(a: Exchange | None, b: Exchange | None) -> bool:
    return a is not None and b is not None and (a.status, a.body) == (b.status, b.body)


async def _error_based(ctx: ScanContext, op: Operation, name: str, location: str) -> bool:
    for probe in _SQL_PROBES:
        exchange = await _send(ctx, op, name, location, probe)
        match = SQL_SIGNATURES.search(exchange.text) if exchange is not None else None
        if exchange is None or match is None:
            continue
        control = await _send(ctx, op, name, location, _CONTROL)
        if control is None or SQL_SIGNATURES.search(control.text):
            return False  # the error shows for benign input too: not caused by the quote
        note = f"database error signature {match[0]!r}; none for the control value {_CONTROL!r}"
        ctx.report(
            SQL_ERROR,
            ctx.client.url(op.path),
            detail=f"{location} parameter '{name}' with value {probe!r}",
            evidence=ctx.client.evidence(exchange, note=note),
        )
        return True
    return False


async def _boolean_based(ctx: ScanContext, op: Operation, name: str, location: str) -> None:
    original = _original(ctx, op, name, location)
    base = await _send(ctx, op, name, location, original)
    again = await _send(ctx, op, name, location, original)
    if base is None or not base.ok or not _same(base, again):
        return  # an unstable page cannot be compared
    # A number may sit in the SQL unquoted or quoted; a string only quoted.
    contexts = _BOOLEAN_PAIRS[::-1] if original.isdigit() else _BOOLEAN_PAIRS[:1]
    for pairs in contexts:
        split: Exchange | None = None
        for true_suffix, false_suffix in pairs:
            true = await _send(ctx, op, name, location, original + true_suffix)
            false = await _send(ctx, op, name, location, original + false_suffix)
            if not _same(true, base) or false is None or _same(false, base):
                split = None
                break
            split = false
        if split is not None:
            true_value, false_value = (original + suffix for suffix in pairs[0])
            note = (
                f"{true_value!r} answers like {original!r}; "
                f"{false_value!r} answers {split.status} with a different body"
            )
            ctx.report(
                SQL_BOOLEAN,
                ctx.client.url(op.path),
                detail=f"{location} parameter '{name}'",
                evidence=ctx.client.evidence(split, note=note),
            )
            return


async def _traversal(ctx: ScanContext, op: Operation, name: str) -> None:
    baseline = ctx.baseline.get(("GET", op.path))
    if baseline is not None and FILE_SIGNATURES.search(baseline.text):
        return
    for probe in _TRAVERSALS:
        exchange = await _send(ctx, op, name, "query", probe)
        if exchange is None:
            continue
        match = FILE_SIGNATURES.search(exchange.text)
        if match:
            ctx.report(
                TRAVERSAL,
                ctx.client.url(op.path),
                detail=f"query parameter '{name}' with value {probe!r}",
                evidence=ctx.client.evidence(exchange, note=f"file content {match[0]!r}"),
            )
            return


async def _reflection(ctx: ScanContext, op: Operation, name: str) -> None:
    marker = f"<bsx{ctx.rng.randrange(16**6):06x}>"
    exchange = await _send(ctx, op, name, "query", f"x{marker}x")
    if exchange is None or "html" not in exchange.headers.get("content-type", ""):
        return
    if marker in exchange.text:
        ctx.report(
            XSS,
            ctx.client.url(op.path),
            detail=f"query parameter '{name}' came back as markup",
            evidence=ctx.client.evidence(exchange, note=f"marker {marker} unescaped"),
        )


async def run(ctx: ScanContext) -> None:
    """Probe each GET operation's query and path parameters (at most four per operation)."""
    for op in ctx.operations:
        if op.method != "GET":
            continue
        for name, location in _targets(op):
            if not await _error_based(ctx, op, name, location):
                await _boolean_based(ctx, op, name, location)
            if location == "query":
                await _traversal(ctx, op, name)
                await _reflection(ctx, op, name)
