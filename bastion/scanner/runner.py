"""Runs a scan: finds the API's operations, harvests object ids, then runs each check in turn.

How this works: the runner first runs the `--login` recipes (each yields an identity's token),
then loads an OpenAPI document (given, or found at a common path on the target), turns it
into `Operation`s, and sends one baseline GET per readable operation as
identity 1, collecting object ids from the JSON it gets back (BOLA and path parameters need
them). Then each check module's `run(ctx)` probes the target through the shared `ScanClient`
and records findings on the context. Checks run one after another, in a fixed order, with a
seeded random source, so two scans of the same target send the same requests (time-based
probes aside: what they send next depends on the delays they measure).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, cast
from urllib.parse import parse_qsl, urlencode

import httpx
import yaml

from bastion.scanner.findings import CHECKS, CheckInfo, Finding, Severity
from bastion.scanner.http import BudgetExhausted, Exchange, ScanClient, ScanRefused

MAX_NOTES: Final = 50
SPEC_PATHS: Final = ("/openapi.json", "/openapi.yaml", "/swagger.json", "/v3/api-docs")
_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options")
_HEADER_NAME: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PARAM: Final = re.compile(r"\{([^}/]+)\}")
_ID_KEY: Final = re.compile(r"(?i)^(?:id|uuid|.*_id|.*Id)$")

# Keys whose values name accounts (for login probes: a known user versus an unknown one).
USER_KEYS: Final = frozenset({"username", "user", "owner", "email", "login"})

Progress = Callable[[str, int, int], None]


class ScanError(Exception):
    """The scan cannot start (bad spec, unreachable target); the message says why."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Everything a scan is told on the command line."""

    target: str
    openapi: str | None = None
    auth: str | None = None
    auth2: str | None = None
    allow_unsafe: bool = False
    budget: int = 1000
    rate: float = 50.0  # requests per second; 0 means unlimited
    seed: int = 0
    burst: int = 60
    timeout: float = 10.0
    verify: bool | str = True  # CA bundle path, or False to skip verification of the target
    http_port: int | None = None  # where to look for a plain-HTTP listener on an HTTPS target
    probe_tls: bool = True  # open raw TLS connections (needs a real socket target)
    checks: tuple[str, ...] = ()  # modules to run; empty means all
    login: str | None = None  # login recipe for identity 1 (see `parse_login`)
    login2: str | None = None  # login recipe for identity 2
    time_budget: float = 20.0  # seconds for time-based injection probes, and again for ReDoS
    time_unit: float = 1.0  # seconds: time-based probes ask for 1, then 3 units of delay
    time_params: int = 6  # parameters per technique that get time-based (and ReDoS) probes


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """The constraints of one parameter or body property that invalid-input probes break."""

    kind: str | None = None  # integer | number | string | boolean | array | object
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Parameter:
    """One operation parameter the scanner can fill in."""

    name: str
    location: str  # path | query | header | cookie
    required: bool
    example: str | None
    schema: FieldSchema = FieldSchema()


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented (method, path) pair."""

    method: str
    path: str
    parameters: tuple[Parameter, ...] = ()
    secured: bool = False
    has_body: bool = False
    body_example: str | None = None  # a JSON object built from the request body's example or schema
    body_fields: tuple[tuple[str, FieldSchema], ...] = ()  # top-level properties of the body

    @property
    def path_params(self) -> list[str]:
        """Names of the `{...}` segments in the path, in order."""
        return _PARAM.findall(self.path)


@dataclass(frozen=True, slots=True)
class Identity:
    """The headers one identity sends, and its raw credential value."""

    name: str
    headers: dict[str, str]
    credential: str
    names: tuple[str, ...] = ()  # the account's own user name / e-mail, from its login recipe


@dataclass(slots=True)
class ScanContext:
    """What checks share: options, client, operations, harvested ids, findings."""

    options: ScanOptions
    client: ScanClient
    operations: list[Operation]
    identity1: Identity | None
    identity2: Identity | None
    rng: random.Random
    spec_found: bool = False
    baseline: dict[tuple[str, str], Exchange] = field(default_factory=dict)  # (method, url)
    ids: dict[str, list[str]] = field(default_factory=dict)  # collection path or key -> ids
    exchanges: list[Exchange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logins: list[LoginRecipe] = field(default_factory=list)  # the recipes that worked
    time_spent: float = 0.0  # seconds spent by the current group of time-based probes

    def time_left(self) -> float:
        """Seconds the time-based probes may still spend."""
        return self.options.time_budget - self.time_spent

    def report(
        self,
        check: CheckInfo,
        url: str,
        *,
        method: str = "GET",
        detail: str = "",
        evidence: str = "",
        severity: Severity | None = None,
    ) -> None:
        """Record a finding, once per (check, method, url)."""
        for existing in self.findings:
            if (existing.check.id, existing.method, existing.url) == (check.id, method, url):
                return
        self.findings.append(
            Finding(check, url, method, detail=detail, evidence=evidence, severity=severity)
        )

    async def send(
        self,
        method: str,
        path_or_url: str,
        *,
        identity: Identity | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> Exchange | None:
        """Send a request as `identity` (None: anonymous); None when refused or failed.

        Raises:
            BudgetExhausted: the request budget is spent (the runner stops the scan).
        """
        url = path_or_url if "://" in path_or_url else self.client.url(path_or_url)
        merged = self.required_headers(method, url)
        merged.update(identity.headers if identity else {})
        merged.update(headers or {})
        try:
            exchange = await self.client.send(
                method, url, headers=merged, params=params, content=content
            )
        except BudgetExhausted:
            raise
        except ScanRefused as exc:
            self.note(f"refused {method} {url}: {exc}")
            return None
        except httpx.HTTPError as exc:
            self.note(f"{method} {url}: {type(exc).__name__}")
            return None
        self.exchanges.append(exchange)
        return exchange

    def required_headers(self, method: str, url: str) -> dict[str, str]:
        """Values for the required header parameters of the operation `url` belongs to.

        Without them (`Idempotency-Key`, `X-Tenant`…) every probe would get the same 400. Keys
        that must be unique per request get a fresh random value each time.
        """
        path = httpx.URL(url).path
        for op in self.operations:
            wanted = [p for p in op.parameters if p.location == "header" and p.required]
            if not wanted or op.method != method.upper() or not _template(op).fullmatch(path):
                continue
            values = {}
            for param in wanted:
                if param.example is not None and not _UNIQUE_HEADER.search(param.name):
                    values[param.name] = param.example
                else:
                    values[param.name] = f"bastion-scan-{self.rng.randrange(16**16):016x}"
            return values
        return {}

    def note(self, text: str) -> None:
        """Add a line to the report's notes (masked, deduplicated, at most `MAX_NOTES`)."""
        text = self.client.mask(text)
        if text not in self.notes and len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def fill(self, op: Operation, *, pick: int = 0) -> str:
        """Return the operation's path with path parameters and required query filled in."""
        path = op.path
        for name in op.path_params:
            path = path.replace("{" + name + "}", self.value_for(op, name, pick=pick), 1)
        query = [
            f"{p.name}={p.example or '1'}"
            for p in op.parameters
            if p.location == "query" and p.required
        ]
        return path + ("?" + "&".join(query) if query else "")

    def value_for(self, op: Operation, name: str, *, pick: int = 0) -> str:
        """A value for path parameter `name`: a harvested id, the spec's example, or "1"."""
        candidates = self.candidate_ids(op, name)
        if candidates:
            return candidates[min(pick, len(candidates) - 1)]
        for param in op.parameters:
            if param.name == name and param.example is not None:
                return param.example
        return "1"

    def candidate_ids(self, op: Operation, name: str) -> list[str]:
        """Ids harvested for parameter `name`: from the parent collection, then by key."""
        prefix = op.path.split("{" + name + "}", 1)[0].rstrip("/")
        return self.ids.get(prefix) or self.ids.get(name) or []

    def observed_value(self, op: Operation, name: str) -> str | None:
        """A value of query parameter `name` seen in the operation's own baseline answer.

        Filters usually name a field of the items they filter (`?title=` over items with a
        `title` or `book_title`); a value that exists makes true and false conditions differ.
        """
        exchange = self.baseline.get((op.method, op.path))
        if exchange is None or not exchange.ok:
            return None
        try:
            document = json.loads(exchange.body)
        except ValueError:
            return None
        wanted = re.compile(
            rf"(?i)^(?:.*[_-])?{re.escape(name)}$|^[a-z]+{re.escape(name.title())}$"
        )
        stack: list[tuple[object, int]] = [(document, 0)]
        while stack:
            item, depth = stack.pop(0)
            if isinstance(item, dict) and depth <= 6:
                for key, child in item.items():
                    if isinstance(child, str) and child and wanted.match(str(key)):
                        return child
                    stack.append((child, depth + 1))
            elif isinstance(item, list) and depth <= 6:
                stack.extend((child, depth + 1) for child in item[:50])
        return None

    def operation_url(self, url: str) -> str:
        """The documented path template that `url` matches (as a URL), else `url` sans query."""
        path = httpx.URL(url).path
        for op in self.operations:
            if _template(op).fullmatch(path):
                return self.client.url(op.path)
        return url.split("?", 1)[0]

    def secured_gets(self) -> Iterator[Operation]:
        """GET operations the spec says need credentials."""
        return (op for op in self.operations if op.method == "GET" and op.secured)


Check = Callable[[ScanContext], Awaitable[None]]
_UNIQUE_HEADER: Final = re.compile(r"(?i)idempot|nonce|request-?id|correlation")


@functools.lru_cache(maxsize=512)
def _template(op: Operation) -> re.Pattern[str]:
    """A regex matching the concrete paths of `op.path` (`{param}` → one segment)."""
    parts = _PARAM.split(op.path)  # literal, name, literal, name, ..., literal
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "[^/]+" for i, p in enumerate(parts)))


_LOGIN: Final = re.compile(
    r"^\s*(?P<method>POST|PUT|GET)\s+(?P<path>/\S*)\s+(?:(?P<body>\{.*\})|form:(?P<form>\S+))"
    r"\s+token=(?P<token>\$(?:\.[A-Za-z0-9_-]+|\[\d+\])*)"
    r"(?:\s+header=(?P<header>[A-Za-z0-9-]+))?\s*$",
    re.DOTALL,
)
_JSON_PATH_STEP: Final = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class LoginRecipe:
    """How to log in: `METHOD /path {json body}|form:a=1&b=2 token=$.json.path [header=Name]`."""

    method: str
    path: str
    body: dict[str, object]
    token_path: str
    header: str | None = None  # None: `Authorization: Bearer <token>`
    form: bool = False  # send the body as application/x-www-form-urlencoded (OAuth 2.0 style)

    def encoded(self) -> tuple[str, bytes]:
        """(content type, bytes) of the login request's body."""
        if self.form:
            return "application/x-www-form-urlencoded", urlencode(self.body).encode()
        return "application/json", json.dumps(self.body).encode()

    def secrets(self) -> list[str]:
        """The body's string values that look like passwords (masked in every report)."""
        return [
            str(value)
            for key, value in self.body.items()
            if isinstance(value, str) and re.search(r"(?i)pass|secret|pwd|pin|key", key)
        ]


def parse_login(value: str) -> LoginRecipe:
    """Parse a `--login` recipe.

    Raises:
        ScanError: the recipe does not follow `METHOD /path {json} token=$.path [header=Name]`.
    """
    match = _LOGIN.match(value)
    if match is None:
        raise ScanError(
            '--login must look like \'POST /login {"username": "u", "password": "p"} '
            "token=$.access_token' or 'POST /token form:username=u&password=p "
            "token=$.access_token' (optionally followed by header=X-Name)"
        )
    method, path, token, header = match["method"], match["path"], match["token"], match["header"]
    if match["form"] is not None:
        form: dict[str, object] = dict(parse_qsl(match["form"], keep_blank_values=True))
        return LoginRecipe(method, path, form, token, header, form=True)
    try:
        body = json.loads(match["body"])
    except ValueError as exc:
        raise ScanError(f"--login body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ScanError("--login body must be a JSON object")
    return LoginRecipe(method, path, body, token, header)


def extract(document: object, path: str) -> str | None:
    """The string or number at a `$.a.b[0]` path in a JSON document, else None."""
    node = document
    for key, index in _JSON_PATH_STEP.findall(path):
        if key and isinstance(node, dict):
            node = node.get(key)
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return None
    if isinstance(node, str | int) and not isinstance(node, bool):
        return str(node)
    return None


async def log_in(ctx: ScanContext, name: str, recipe: LoginRecipe) -> Identity:
    """Run a login recipe and return the identity that carries the token it yields.

    Raises:
        ScanError: the login was refused, failed, or its answer has no token at the path.
    """
    for secret in recipe.secrets():
        ctx.client.add_secret(secret)
    content_type, content = recipe.encoded()
    try:
        exchange = await ctx.client.send(
            recipe.method,
            ctx.client.url(recipe.path),
            headers={"Content-Type": content_type},
            content=content,
            login=True,
        )
    except (ScanRefused, httpx.HTTPError) as exc:
        raise ScanError(f"login for {name} failed: {type(exc).__name__}: {exc}") from exc
    token = None
    if exchange.ok:
        with contextlib.suppress(ValueError):
            token = extract(json.loads(exchange.body), recipe.token_path)
    if token is None:
        raise ScanError(
            f"login for {name} answered {exchange.status} without a token at {recipe.token_path}"
        )
    ctx.client.add_secret(token)
    ctx.logins.append(recipe)
    names = tuple(
        str(value)
        for key, value in recipe.body.items()
        if key in USER_KEYS | {"name"} and isinstance(value, str) and value
    )
    if recipe.header:
        return Identity(name, {recipe.header: token}, token, names)
    return Identity(name, {"Authorization": f"Bearer {token}"}, token, names)


def parse_identity(name: str, value: str | None) -> Identity | None:
    """Turn `--auth` into headers: `Name: value` sets that header, anything else Authorization."""
    if not value:
        return None
    head, sep, rest = value.partition(":")
    if sep and _HEADER_NAME.match(head) and rest.strip():
        return Identity(name, {head.strip(): rest.strip()}, rest.strip())
    scheme, _, credential = value.partition(" ")
    return Identity(name, {"Authorization": value}, credential or scheme)


def _example(param: dict[str, object]) -> str | None:
    schema = param.get("schema")
    for holder in (param, schema if isinstance(schema, dict) else {}):
        for key in ("example", "default"):
            value = holder.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return str(value)
        enum = holder.get("enum")
        if isinstance(enum, list) and enum:
            return str(enum[0])
    return None


def _resolve(spec: dict[str, object], node: object, depth: int = 0) -> object:
    """Follow a local `$ref` (`#/components/schemas/X`); other refs resolve to nothing."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 8:
        target: object = spec
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        node, depth = target, depth + 1
    return node


def _from_schema(spec: dict[str, object], schema: object, depth: int = 0) -> object:
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict) or depth > 4:
        return None
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {str(k): _from_schema(spec, v, depth + 1) for k, v in props.items()}
    if kind == "array":
        item = _from_schema(spec, schema.get("items"), depth + 1)
        return [item] if item is not None else []
    samples: dict[object, object] = {
        "string": "bastion",
        "integer": 1,
        "number": 1,
        "boolean": False,
    }
    return samples.get(kind)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def field_schema(spec: dict[str, object], schema: object) -> FieldSchema:
    """The constraints a (possibly `$ref`) schema puts on a scalar value."""
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict):
        return FieldSchema()
    kind = schema.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["integer", "null"]
        kind = next((k for k in kind if k != "null"), None)
    pattern = schema.get("pattern")
    enum = schema.get("enum")
    return FieldSchema(
        kind=kind if isinstance(kind, str) else None,
        minimum=_number(schema.get("minimum", schema.get("exclusiveMinimum"))),
        maximum=_number(schema.get("maximum", schema.get("exclusiveMaximum"))),
        min_length=_count(schema.get("minLength")),
        max_length=_count(schema.get("maxLength")),
        pattern=pattern if isinstance(pattern, str) else None,
        enum=tuple(str(v) for v in enum[:20]) if isinstance(enum, list) else (),
    )


def _json_media(spec: dict[str, object], body: object) -> dict[str, object] | None:
    body = _resolve(spec, body)
    content = body.get("content") if isinstance(body, dict) else None
    media = content.get("application/json") if isinstance(content, dict) else None
    return media if isinstance(media, dict) else None


def _body_fields(spec: dict[str, object], body: object) -> tuple[tuple[str, FieldSchema], ...]:
    media = _json_media(spec, body)
    schema = _resolve(spec, media.get("schema")) if media is not None else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return ()
    return tuple((str(name), field_schema(spec, value)) for name, value in props.items())[:20]


def _body_example(spec: dict[str, object], body: object) -> str | None:
    media = _json_media(spec, body)
    if media is None:
        return None
    value = media.get("example")
    if value is None:
        value = _from_schema(spec, media.get("schema"))
    return json.dumps(value) if isinstance(value, dict) else None


def operations_from_spec(spec: dict[str, object]) -> list[Operation]:
    """Return the spec's operations in a stable order (path, then method).

    Raises:
        ScanError: the document has no `paths` object.
    """
    paths = spec.get("paths")
    if not isinstance(paths, dict):
        raise ScanError("the OpenAPI document has no 'paths' object")
    base = str(spec.get("basePath") or "").rstrip("/")  # Swagger 2.0
    servers = spec.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        try:
            base = httpx.URL(str(servers[0].get("url", ""))).path.rstrip("/")
        except httpx.InvalidURL as exc:
            raise ScanError(f"the OpenAPI document's servers[0].url is not a URL: {exc}") from exc
    global_security = spec.get("security")
    operations = []
    for path in sorted(paths):
        item = paths[path]
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") if isinstance(item.get("parameters"), list) else []
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            raw = [
                _resolve(spec, p)  # `$ref: "#/components/parameters/Limit"` is common
                for p in (
                    *cast(list[object], shared),
                    *cast(list[object], op.get("parameters") or []),
                )
            ]
            params = tuple(
                Parameter(
                    name=str(p.get("name")),
                    location=str(p.get("in")),
                    required=bool(p.get("required", p.get("in") == "path")),
                    example=_example(p),
                    schema=field_schema(spec, p.get("schema", p)),
                )
                for p in raw
                if isinstance(p, dict) and "name" in p
            )
            security = op.get("security", global_security)
            secured = isinstance(security, list) and bool(security) and {} not in security
            operations.append(
                Operation(
                    method=method.upper(),
                    path=base + str(path),
                    parameters=params,
                    secured=secured,
                    has_body="requestBody" in op,
                    body_example=_body_example(spec, op.get("requestBody")),
                    body_fields=_body_fields(spec, op.get("requestBody")),
                )
            )
    return operations


def _parse_document(text: str) -> dict[str, object]:
    try:
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ScanError(f"the OpenAPI document does not parse: {exc}") from exc
    if not isinstance(document, dict):
        raise ScanError("the OpenAPI document is not an object")
    return document


async def _load_spec(ctx: ScanContext) -> dict[str, object] | None:
    source = ctx.options.openapi
    if source and "://" not in source:
        try:
            text = await asyncio.to_thread(Path(source).read_text, encoding="utf-8")
        except OSError as exc:
            raise ScanError(f"cannot read {source}: {exc.strerror}") from exc
        return _parse_document(text)
    candidates = (source,) if source else SPEC_PATHS
    for candidate in candidates:
        exchange = await ctx.send("GET", candidate)
        if exchange is not None and exchange.ok:
            try:
                document = _parse_document(exchange.text)
            except ScanError:
                if source:
                    raise
                continue
            if source or "paths" in document:
                return document
    if source:
        raise ScanError(f"cannot fetch the OpenAPI document at {source}")
    return None


def harvest_ids(value: object, into: set[str], depth: int = 0) -> None:
    """Collect values of `id`-like keys anywhere in a JSON document (bounded depth)."""
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str | int) and not isinstance(item, bool) and _ID_KEY.match(key):
                into.add(str(item))
            else:
                harvest_ids(item, into, depth + 1)
    elif isinstance(value, list):
        for item in value[:50]:
            harvest_ids(item, into, depth + 1)


def harvest_keys(value: object, names: frozenset[str], into: dict[str, list[str]]) -> None:
    """Collect scalar values of keys named like a path parameter (`username`, `account_id`)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > 6:
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if key in names and isinstance(child, str | int) and not isinstance(child, bool):
                    values = into.setdefault(key, [])
                    if str(child) not in values:
                        values.append(str(child))
                else:
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in reversed(item[:50]))


def _top_level_ids(document: object) -> list[str]:
    items = document
    if isinstance(document, dict):
        lists = [v for v in document.values() if isinstance(v, list)]
        items = lists[0] if len(lists) == 1 else [document]
    found: list[str] = []
    if isinstance(items, list):
        for item in items[:50]:
            if isinstance(item, dict):
                for key in ("id", "uuid"):
                    if isinstance(item.get(key), str | int):
                        found.append(str(item[key]))
                        break
    return found


async def _baseline(ctx: ScanContext) -> None:
    """GET every readable operation as identity 1, harvesting ids from collections first."""
    gets = [op for op in ctx.operations if op.method == "GET"]
    names = frozenset(name for op in ctx.operations for name in op.path_params) | USER_KEYS
    for op in sorted(gets, key=lambda o: (len(o.path_params), o.path)):
        exchange = await ctx.send("GET", ctx.fill(op), identity=ctx.identity1)
        if exchange is None:
            continue
        ctx.baseline[("GET", op.path)] = exchange
        if not exchange.ok or "json" not in exchange.headers.get("content-type", ""):
            continue
        try:
            document = json.loads(exchange.body)
        except ValueError:
            continue
        if not op.path_params:
            top = _top_level_ids(document)
            if top:
                ctx.ids.setdefault(op.path.rstrip("/"), top)
        harvest_keys(document, names, ctx.ids)
        found: set[str] = set()
        harvest_ids(document, found)
        for value in sorted(found):
            ctx.ids.setdefault("id", []).append(value)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The outcome of a scan."""

    target: str
    findings: list[Finding]
    checks: list[CheckInfo]
    requests: int
    operations: int
    spec_found: bool
    notes: list[str]


def _modules() -> list[tuple[str, Check]]:
    from bastion.scanner.checks import (
        auth,
        cors,
        headers,
        injection,
        input as input_checks,
        inventory,
        misconfig,
        resource,
        transport,
    )

    return [
        ("transport", transport.run),
        ("headers", headers.run),
        ("cors", cors.run),
        ("auth", auth.run),
        ("injection", injection.run),
        ("input", input_checks.run),
        ("inventory", inventory.run),
        ("resource", resource.run),
        ("misconfig", misconfig.run),
    ]


async def run_scan(
    options: ScanOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan `options.target` and return its findings, most severe first.

    Args:
        options: what to scan and how.
        transport: an httpx transport to send requests through instead of the network
            (tests pass an ASGI transport; raw TLS probes are then skipped).
        progress: called with (step, done, total) as each check module finishes.

    Raises:
        ScanError: a `--login` recipe is malformed or its login fails, or the spec cannot be
            loaded or parsed.
    """
    pairs = (("identity 1", options.login), ("identity 2", options.login2))
    recipes = [(name, parse_login(value)) for name, value in pairs if value]
    identity1 = parse_identity("identity 1", options.auth)
    identity2 = parse_identity("identity 2", options.auth2)
    secrets = tuple(i.credential for i in (identity1, identity2) if i is not None)
    target = httpx.URL(options.target)
    extra: tuple[str, ...] = ()
    if target.scheme == "https":
        port = options.http_port or 80
        extra = (f"http://{target.host}:{port}",)
    client = ScanClient(
        options.target,
        budget=options.budget,
        rate=options.rate,
        allow_unsafe=options.allow_unsafe,
        secrets=secrets,
        transport=transport,
        verify=options.verify,
        timeout=options.timeout,
        extra_origins=extra,
    )
    if transport is not None:
        options = replace(options, probe_tls=False)
    ctx = ScanContext(
        options=options,
        client=client,
        operations=[],
        identity1=identity1,
        identity2=identity2,
        rng=random.Random(options.seed),  # noqa: S311 - probe values, not secrets
    )
    modules = [(n, c) for n, c in _modules() if not options.checks or n in options.checks]
    total = len(modules) + 1
    ran = tuple(name for name, _ in modules)
    try:
        try:
            for name, recipe in recipes:
                identity = await log_in(ctx, name, recipe)
                if name == "identity 1":
                    ctx.identity1 = identity
                else:
                    ctx.identity2 = identity
            spec = await _load_spec(ctx)
            if spec is not None:
                ctx.operations = operations_from_spec(spec)
                ctx.spec_found = True
            else:
                ctx.operations = [Operation("GET", "/")]
                ctx.note("no OpenAPI document found: scanning / and common paths only")
            await _baseline(ctx)
            if progress:
                progress("discovery", 1, total)
            for done, (name, check) in enumerate(modules, start=2):
                await check(ctx)
                if progress:
                    progress(name, done, total)
        except BudgetExhausted:
            ctx.notes.insert(0, f"request budget of {options.budget} spent: the scan stopped early")
    finally:
        await client.aclose()
    return ScanResult(
        target=options.target,
        findings=sorted(ctx.findings, key=Finding.sort_key),
        checks=sorted(
            # Check ids start with their module's name (AUTHZ-… belongs to auth).
            (c for c in CHECKS.checks.values() if c.id.lower().startswith(ran)),
            key=lambda c: c.id,
        ),
        requests=client.sent,
        operations=len(ctx.operations),
        spec_found=ctx.spec_found,
        notes=ctx.notes,
    )
