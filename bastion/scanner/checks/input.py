"""Input handling: values the schema forbids (wrong types, out of range, too long), and ReDoS.

Invalid values are derived from each parameter's or body property's schema (`minimum` - 1,
`maximum` + 1, `maxLength` + 1, `minLength` - 1, a value outside `enum`, a word where a number
belongs, a huge integer, a negative amount). An operation that answers such a value with a 2xx
does not enforce its own schema (INPUT-001); one that answers with a 5xx fails on bad input
(INPUT-002).
Only operations that accept their valid example with a 2xx are probed, so an endpoint that is
simply closed to the scan is not blamed.

ReDoS (INPUT-003) sends strings built to make a backtracking regular expression explode
(a run of a character the field's `pattern` accepts, then one it refuses), longer and longer
until the answer is late, then confirms with one more character, which must take at least 1.5
times as long (exponential backtracking doubles per character; a slow server does not).
These probes share the time budget of the time-based injection probes.
"""

from __future__ import annotations

import json
import re
from typing import Final

from bastion.scanner.checks.auth import login_operation
from bastion.scanner.checks.timing import budget_allows
from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.http import Exchange
from bastion.scanner.runner import FieldSchema, Operation, Parameter, ScanContext

INVALID_ACCEPTED: Final = CHECKS.add(
    CheckInfo(
        "INPUT-001",
        "Invalid input accepted",
        "low",
        "Validate every parameter and body against the operation's schema (types, ranges, "
        "lengths, enums) before any handler runs, and answer 400/422 when it does not conform "
        "(an openapi validation policy at the gateway).",
        "API8:2023",
    )
)
INVALID_CRASHES: Final = CHECKS.add(
    CheckInfo(
        "INPUT-002",
        "Server error on invalid input",
        "medium",
        "Validate input before using it and turn every validation failure into a 4xx; a 5xx on "
        "bad input shows unhandled exceptions (and often a path to denial of service).",
        "API8:2023",
    )
)
REDOS: Final = CHECKS.add(
    CheckInfo(
        "INPUT-003",
        "Regular expression denial of service (ReDoS)",
        "medium",
        "Match input with a linear-time regex engine (RE2, Rust `regex`, jsonschema-rs) or "
        "rewrite the pattern without nested or overlapping repetition; cap input length first.",
        "API4:2023",
    )
)
HUGE: Final = 10**30
_AMOUNT: Final = re.compile(r"(?i)amount|price|quantity|qty|total|balance|value|count|sum")
_MAX_PROBES: Final = 5  # invalid values per parameter
# Marks a value many sound APIs coerce or ignore: a 5xx for it is reported, a 2xx is not.
_LENIENT: Final = "(lenient) "
_MAX_BODY_OPS: Final = 8
_REDOS_LENGTHS: Final = (14, 17, 20, 22, 24, 26, 28)  # small steps: stop soon after "slow"
_REDOS_LATE: Final = 0.5  # in time units: how late an answer must be to count as slow


def invalid_values(schema: FieldSchema, name: str, *, body: bool) -> list[tuple[object, str]]:
    """Values `schema` forbids (or, for amounts, a negative one), each with why it is bad."""
    values: list[tuple[object, str]] = []
    if schema.kind in ("integer", "number"):
        values.append(("bastion", "a word where a number belongs"))
        if schema.minimum is not None:
            values.append((_num(schema.minimum - 1), f"below the minimum {_num(schema.minimum)}"))
        elif _AMOUNT.search(name):
            values.append((-100, "a negative amount"))
        if schema.maximum is not None:
            values.append((_num(schema.maximum + 1), f"above the maximum {_num(schema.maximum)}"))
        if schema.kind == "integer":
            values.append((HUGE, "an integer of 31 digits"))
    elif schema.kind == "boolean":
        values.append(("bastion", "a word where a boolean belongs"))
    elif schema.kind == "string" or (schema.kind is None and (schema.max_length or schema.enum)):
        if schema.max_length is not None and schema.max_length < 100_000:
            values.append(("a" * (schema.max_length + 1), f"longer than {schema.max_length}"))
        if schema.min_length:
            values.append(("a" * (schema.min_length - 1), f"shorter than {schema.min_length}"))
        if schema.enum:
            values.append(("bastion-not-in-enum", "a value outside the enum"))
        if body:
            values.append((["bastion"], _LENIENT + "an array where a string belongs"))
    return values[:_MAX_PROBES]


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _query_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _judge(
    ctx: ScanContext, op: Operation, where: str, why: str, exchange: Exchange | None
) -> None:
    if exchange is None:
        return
    if exchange.status >= 500:
        ctx.report(
            INVALID_CRASHES,
            ctx.client.url(op.path),
            method=op.method,
            detail=f"{where}: {why.removeprefix(_LENIENT)} → {exchange.status}",
            evidence=ctx.client.evidence(exchange),
        )
    elif exchange.ok and not why.startswith(_LENIENT):
        ctx.report(
            INVALID_ACCEPTED,
            ctx.client.url(op.path),
            method=op.method,
            detail=f"{where}: {why} → {exchange.status}",
            evidence=ctx.client.evidence(exchange),
        )


async def _query_params(ctx: ScanContext, op: Operation) -> None:
    baseline = ctx.baseline.get(("GET", op.path))
    if baseline is None or not baseline.ok:
        return
    path = ctx.fill(op)
    for param in op.parameters:
        if param.location != "query":
            continue
        for value, why in invalid_values(param.schema, param.name, body=False):
            exchange = await ctx.send(
                "GET", path, identity=ctx.identity1, params={param.name: _query_value(value)}
            )
            await _judge(ctx, op, f"query parameter '{param.name}'", why, exchange)


async def _bodies(ctx: ScanContext) -> None:
    headers = {"Content-Type": "application/json"}
    probed = 0
    login = login_operation(ctx)
    for op in ctx.operations:
        if op.method not in ("POST", "PUT", "PATCH") or not op.body_fields or op == login:
            continue  # failed logins with a real example user could lock that account
        example = json.loads(op.body_example) if op.body_example else {}
        if not isinstance(example, dict) or probed >= _MAX_BODY_OPS:
            continue
        probes = [
            (name, value, why)
            for name, schema in op.body_fields
            for value, why in invalid_values(schema, name, body=True)
        ]
        if not probes:
            continue
        probed += 1
        path = ctx.fill(op)
        valid = await ctx.send(
            op.method,
            path,
            identity=ctx.identity1,
            headers=headers,
            content=json.dumps(example).encode(),
        )
        if valid is None or not valid.ok:
            continue  # the example itself is refused: nothing to compare against
        for name, value, why in probes[: _MAX_PROBES * 2]:
            body = json.dumps({**example, name: value}).encode()
            exchange = await ctx.send(
                op.method, path, identity=ctx.identity1, headers=headers, content=body
            )
            await _judge(ctx, op, f"body property '{name}'", why, exchange)


def _repeatable(pattern: str | None, example: str | None) -> tuple[str, str]:
    """(a character the field takes in long runs, one that breaks the match).

    The pattern decides when a run of one character matches it; otherwise the example's most
    common kind of character (digits, capitals, small letters) is the best guess.
    """
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        for char in "a0A":
            # 8 characters: short enough that even a catastrophic pattern answers at once here
            if compiled is not None and compiled.fullmatch(char * 8):
                return char, "!"
    if example:
        kinds = {
            "0": sum(c.isdigit() for c in example),
            "A": sum(c.isupper() for c in example),
            "a": sum(c.islower() for c in example),
        }
        best = max(kinds, key=lambda k: kinds[k])
        if kinds[best]:
            return best, "!"
    return "a", "!"


async def _redos_param(ctx: ScanContext, op: Operation, param: Parameter) -> bool:
    unit = ctx.options.time_unit
    name, pattern = param.name, param.schema.pattern
    char, breaker = _repeatable(pattern, param.example)
    path = ctx.fill(op)

    async def probe(value: str) -> Exchange | None:
        exchange = await ctx.send("GET", path, identity=ctx.identity1, params={name: value})
        if exchange is not None:
            ctx.time_spent += exchange.elapsed
        return exchange

    # The same length, but a string the pattern accepts: the time any value of that size takes.
    benign = await probe(char * _REDOS_LENGTHS[-1])
    if benign is None:
        return False
    base = benign.elapsed
    for length in _REDOS_LENGTHS:
        if not budget_allows(ctx, base + 2 * unit):
            return False
        slow = await probe(char * length + breaker)
        if slow is None:
            return False
        if slow.elapsed < base + _REDOS_LATE * unit:
            continue
        if not budget_allows(ctx, 3 * slow.elapsed):
            return False
        # One more character: backtracking that explodes doubles (or worse) per character.
        slower = await probe(char * (length + 1) + breaker)
        if slower is None or slower.elapsed < 1.5 * slow.elapsed:
            return False  # not growing with the length: a slow server, not backtracking
        note = (
            f"{length} x {char!r} + {breaker!r}: {slow.elapsed:.2f}s; {length + 1} x: "
            f"{slower.elapsed:.2f}s; {_REDOS_LENGTHS[-1]} x {char!r} (accepted): {base:.2f}s"
        )
        ctx.report(
            REDOS,
            ctx.client.url(op.path),
            detail=f"query parameter '{name}'" + (f" (pattern {pattern!r})" if pattern else ""),
            evidence=ctx.client.evidence(slower, note=note),
        )
        return True
    return False


async def _redos(ctx: ScanContext) -> None:
    candidates = [
        (op, p)
        for op in ctx.operations
        if op.method == "GET" and ctx.baseline.get(("GET", op.path)) is not None
        for p in op.parameters
        if p.location == "query" and p.schema.kind in ("string", None) and not p.schema.enum
    ]
    candidates.sort(key=lambda item: item[1].schema.pattern is None)  # patterns first
    for op, param in candidates[: ctx.options.time_params]:
        await _redos_param(ctx, op, param)


async def run(ctx: ScanContext) -> None:
    """Send schema-violating values to GET query parameters (and bodies with --allow-unsafe)."""
    for op in ctx.operations:
        if op.method == "GET":
            await _query_params(ctx, op)
    if ctx.options.allow_unsafe:
        await _bodies(ctx)
    if ctx.options.time_budget > 0:
        # ReDoS probes get a time budget of their own: slow injection probes before them
        # must not starve them (a value that backtracks slows those probes down too).
        ctx.time_spent = 0.0
        await _redos(ctx)
