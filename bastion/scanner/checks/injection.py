"""Injection probes: SQL (error, boolean, time), NoSQL operators, OS commands, traversal, XSS.

Each technique is confirmed before it is reported: an error signature must be absent for a
benign control value, a boolean pair must split (true condition = the original answer, false
condition = a different one) twice with different payloads on a stable baseline, a delay must
match two different requested delays against a measured baseline (`timing.py`), a command's
computed output must appear for two different inputs, an operator must widen a result that a
non-operator key of the same shape does not, a file signature must be absent from the
baseline, and a reflected marker must come back unescaped in an HTML response.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Final

from bastion.scanner.checks import timing
from bastion.scanner.checks.auth import credential_fields, login_operation, unknown_user
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
SQL_TIME: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-005",
        "SQL injection (time-based)",
        "critical",
        "Pass every value to the database as a bound parameter (placeholders), never by string "
        "formatting; run the application's database user without access to sleep functions "
        "where the database allows it.",
        "API8:2023",
    )
)
NOSQL: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-006",
        "NoSQL operator injection",
        "critical",
        "Accept only scalars where the API expects scalars: refuse objects and `name[$op]` "
        "keys before they reach a query, or cast values to strings; never pass a request "
        "body or query object to the database as a filter.",
        "API8:2023",
    )
)
COMMAND: Final = CHECKS.add(
    CheckInfo(
        "INJECTION-007",
        "OS command injection",
        "critical",
        "Never build shell command lines from request values: call programs with an argument "
        "list and no shell (`subprocess.run([...], shell=False)`), or use a library instead of "
        "a program; validate values against a strict allowlist.",
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


def _mssql_delay(seconds: float) -> str:
    return f"0:0:{seconds:06.3f}"


# Sleep payloads per database, for a value inside quotes and for a bare number (S608: these
# strings are attack probes sent to the target, not queries this program runs).
_SQL_SLEEPS_QUOTED: Final[tuple[Callable[[str, float], str], ...]] = (
    lambda v, d: f"{v}'||pg_sleep({d:g})||'",  # PostgreSQL
    lambda v, d: f"{v}' AND (SELECT 1 FROM (SELECT SLEEP({d:g}))x)-- -",  # noqa: S608 - probe
    lambda v, d: f"{v}';WAITFOR DELAY '{_mssql_delay(d)}'--",  # SQL Server
)
# A value used as a column name (`ORDER BY {sort}`) is outside any quotes: a second sort key
# that sleeps (PostgreSQL, MySQL) is valid SQL there.
_SQL_SLEEPS_BARE: Final[tuple[Callable[[str, float], str], ...]] = (
    lambda v, d: f"{v},pg_sleep({d:g})",
    lambda v, d: f"{v},SLEEP({d:g})",
)
_SQL_SLEEPS_NUMERIC: Final[tuple[Callable[[str, float], str], ...]] = (
    lambda v, d: f"{v} AND 1=(SELECT 1 FROM pg_sleep({d:g}))",  # noqa: S608 - probe
    lambda v, d: f"{v} AND SLEEP({d:g})",
    lambda v, d: f"{v};WAITFOR DELAY '{_mssql_delay(d)}'--",
)
# Shell separators a value can break out with (POSIX shells).
_SHELL_SLEEPS: Final[tuple[Callable[[str, float], str], ...]] = (
    lambda v, d: f"{v};sleep {d:g}",
    lambda v, d: f"{v}|sleep {d:g}",
    lambda v, d: f"{v}$(sleep {d:g})",
    lambda v, d: f"{v}`sleep {d:g}`",
)
_SHELL_OUTPUTS: Final[tuple[Callable[[str, str], str], ...]] = (
    lambda v, cmd: f"{v};{cmd}",
    lambda v, cmd: f"{v}|{cmd}",
    lambda v, cmd: f"{v}$({cmd})",
)
# Parameter names that usually reach a query or a shell get the (slower) time probes first.
_LIKELY_SQL: Final = re.compile(
    r"(?i)(?:^|_)(?:id|q|query|search|filter|name|code|sort|order|key|user|city|category|type)"
    r"|id$"
)
_SORT_NAME: Final = re.compile(r"(?i)sort|order|column|field")
_LIKELY_SHELL: Final = re.compile(
    r"(?i)host|^ip$|addr|domain|url|cmd|command|exec|file|path|dir|target|server"
)
# Both must widen the result: `$ne` the random value, `$gt` the empty string.
_NOSQL_OPERATORS: Final = (("$ne", "{r}"), ("$gt", ""))


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
    return ctx.observed_value(op, name) or _CONTROL


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


def _reported(ctx: ScanContext, op: Operation, *checks: CheckInfo) -> bool:
    url = ctx.client.url(op.path)
    ids = {c.id for c in checks}
    return any(f.check.id in ids and f.url == url for f in ctx.findings)


def _sender(
    ctx: ScanContext, op: Operation, name: str, location: str
) -> Callable[[str], Awaitable[Exchange | None]]:
    async def send(value: str) -> Exchange | None:
        return await _send(ctx, op, name, location, value)

    return send


async def _sql_time(ctx: ScanContext, op: Operation, name: str, location: str) -> None:
    original = _original(ctx, op, name, location)
    sleeps = _SQL_SLEEPS_QUOTED + (_SQL_SLEEPS_NUMERIC if original.isdigit() else ())
    if _SORT_NAME.search(name):
        sleeps = _SQL_SLEEPS_BARE + sleeps
    templates = tuple(_bind(sleep, original) for sleep in sleeps)
    hit = await timing.confirm_delay(ctx, _sender(ctx, op, name, location), original, templates)
    if hit is None:
        return
    template, delayed = hit
    ctx.report(
        SQL_TIME,
        ctx.client.url(op.path),
        detail=f"{location} parameter '{name}' with value {template(delayed.delays[0])!r}",
        evidence=ctx.client.evidence(delayed.second, note=delayed.note()),
    )


def _bind(make: Callable[[str, float], str], original: str) -> timing.Template:
    return lambda delay: make(original, delay)


async def _command_output(ctx: ScanContext, op: Operation, name: str, location: str) -> bool:
    """`expr A + B` after a shell separator: the sum (never in the request) must come back."""
    original = _original(ctx, op, name, location)
    baseline = ctx.baseline.get(("GET", op.path))
    # `$(...)` works unquoted and inside double quotes; the other separators are tried only
    # on parameters whose names suggest they reach a command line (it keeps the scan small).
    shapes = _SHELL_OUTPUTS if _LIKELY_SHELL.search(name) else _SHELL_OUTPUTS[2:]
    for shape in shapes:
        proofs: list[tuple[Exchange, str]] = []
        for _ in range(2):  # two different sums: a constant in the page cannot match both
            a, b = ctx.rng.randrange(10**5, 9 * 10**5), ctx.rng.randrange(10**5, 9 * 10**5)
            total = str(a + b)
            exchange = await _send(ctx, op, name, location, shape(original, f"expr {a} + {b}"))
            if exchange is None or total not in exchange.text:
                break
            if baseline is not None and total in baseline.text:
                break
            proofs.append((exchange, total))
        if len(proofs) == 2:
            exchange, total = proofs[1]
            ctx.report(
                COMMAND,
                ctx.client.url(op.path),
                detail=f"{location} parameter '{name}' ran `expr` (output-based)",
                evidence=ctx.client.evidence(
                    exchange, note=f"the sum {total} came back; it is not in the request"
                ),
            )
            return True
    return False


async def _command_time(ctx: ScanContext, op: Operation, name: str, location: str) -> None:
    original = _original(ctx, op, name, location)
    templates = tuple(_bind(sleep, original) for sleep in _SHELL_SLEEPS)
    hit = await timing.confirm_delay(ctx, _sender(ctx, op, name, location), original, templates)
    if hit is None:
        return
    template, delayed = hit
    ctx.report(
        COMMAND,
        ctx.client.url(op.path),
        detail=f"{location} parameter '{name}' with value {template(delayed.delays[0])!r} "
        "(time-based)",
        evidence=ctx.client.evidence(delayed.second, note=delayed.note()),
    )


def _items(exchange: Exchange | None) -> int | None:
    """How many records a JSON answer holds (a list, or the one list in an object)."""
    if exchange is None or not exchange.ok:
        return None
    try:
        document = json.loads(exchange.body)
    except ValueError:
        return None
    if isinstance(document, dict):
        lists = [v for v in document.values() if isinstance(v, list)]
        document = lists[0] if len(lists) == 1 else None
    return len(document) if isinstance(document, list) else None


async def _nosql_query(ctx: ScanContext, op: Operation, name: str) -> None:
    """`name[$ne]=nonsense` and `name[$gt]=` must widen what `name=nonsense` narrows."""
    nonsense = f"bsx{ctx.rng.randrange(16**8):08x}"
    path = ctx.fill(op)

    async def query(key: str, value: str) -> Exchange | None:
        params = {key: value}
        return await ctx.send("GET", path, identity=ctx.identity1, params=params)

    plain = _items(await query(name, nonsense))
    if plain is None:
        return
    widened: list[Exchange] = []
    for operator, value in _NOSQL_OPERATORS:
        exchange = await query(f"{name}[{operator}]", value.format(r=nonsense))
        count = _items(exchange)
        if exchange is None or count is None or count <= plain:
            return  # the first operator that does not widen ends it (both must)
        widened.append(exchange)
    shaped = await query(f"{name}[bastion]", nonsense)  # brackets a parser may simply drop
    if shaped is not None and shaped.ok and shaped.body == widened[0].body:
        return  # any bracketed key gives this answer: the parameter is ignored, not injected
    note = (
        f"{name}={nonsense} matched {plain} records; operators matched "
        f"{_items(widened[0])} and {_items(widened[1])}; {name}[bastion]= did not"
    )
    ctx.report(
        NOSQL,
        ctx.client.url(op.path),
        detail=f"query parameter '{name}' takes MongoDB-style operators",
        evidence=ctx.client.evidence(widened[0], note=note),
    )


async def _nosql_login(ctx: ScanContext) -> None:
    """Operator objects in place of the user name and password must not log anyone in."""
    op = login_operation(ctx)
    fields = credential_fields(op) if op is not None else None
    if op is None or fields is None:
        return
    body, user_key, password_key = fields
    headers = {"Content-Type": "application/json"}

    async def login(user: object, password: object) -> Exchange | None:
        payload = {**body, user_key: user, password_key: password}
        return await ctx.send(
            op.method, op.path, headers=headers, content=json.dumps(payload).encode()
        )

    wrong = await login(unknown_user(ctx, user_key), "bastion-scan-wrong")
    control = await login({"bastion": ""}, {"bastion": ""})
    if wrong is None or wrong.ok or control is None or control.ok:
        return
    first = await login({"$ne": None}, {"$ne": None})
    if first is None or not first.ok:
        return
    second = await login({"$gt": ""}, {"$gt": ""})
    if second is not None and second.ok:
        note = (
            f'{{"$ne": null}} and {{"$gt": ""}} as credentials: {first.status}, {second.status}; '
            f"a wrong password: {wrong.status}; a non-operator object: {control.status}"
        )
        ctx.report(
            NOSQL,
            ctx.client.url(op.path),
            method=op.method,
            detail=f"login fields '{user_key}' and '{password_key}' take MongoDB operators",
            evidence=ctx.client.evidence(first, note=note),
        )


def _time_candidates(
    ctx: ScanContext, likely: re.Pattern[str], *found_by: CheckInfo
) -> list[tuple[Operation, str, str]]:
    """Parameters for time-based probes: not already proven, likely names first, a few only."""
    found = [
        (op, name, location)
        for op in ctx.operations
        if op.method == "GET" and not _reported(ctx, op, *found_by)
        for name, location in _targets(op)
    ]
    found.sort(key=lambda item: likely.search(item[1]) is None)  # stable: spec order otherwise
    return found[: ctx.options.time_params]


async def run(ctx: ScanContext) -> None:
    """Probe each GET operation's query and path parameters (at most four per operation)."""
    for op in ctx.operations:
        if op.method != "GET":
            continue
        for name, location in _targets(op):
            if not await _error_based(ctx, op, name, location):
                await _boolean_based(ctx, op, name, location)
            await _command_output(ctx, op, name, location)
            if location == "query":
                await _nosql_query(ctx, op, name)
                await _traversal(ctx, op, name)
                await _reflection(ctx, op, name)
    if ctx.options.allow_unsafe:
        await _nosql_login(ctx)
    if ctx.options.time_budget <= 0:
        return
    for op, name, location in _time_candidates(ctx, _LIKELY_SQL, SQL_ERROR, SQL_BOOLEAN):
        if not _reported(ctx, op, SQL_TIME):
            await _sql_time(ctx, op, name, location)
    for op, name, location in _time_candidates(ctx, _LIKELY_SHELL, COMMAND):
        if not _reported(ctx, op, COMMAND):
            await _command_time(ctx, op, name, location)
