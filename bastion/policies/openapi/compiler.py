"""Compiles an OpenAPI document into per-operation validators and checks requests, sans-IO.

How this works: `compile_spec` walks `paths` once. Each path becomes an entry of a `PathTable`
(concrete paths in a dict, templated ones as one anchored alternation, concrete segments
ordered first as OpenAPI requires). Each operation becomes an `Operation` holding its
parameters (path-level ones merged, operation-level ones winning), each with its style, the
JSON types used to coerce its text and a jsonschema-rs validator of its request-view schema
(see `schema.py`), and its request body per media type. `Operation.check` then runs on every
request and returns the problems found; it never raises for client data. Client values never
appear in problems: only parameter names, JSON pointers and fixed messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema_rs
import orjson

from bastion.http.headers import Headers
from bastion.policies.openapi.multipart import MultipartError, Part, boundary_of, parse_multipart
from bastion.policies.openapi.params import (
    Kind,
    Raw,
    StyleError,
    coerce,
    parse_cookies,
    parse_query,
    split_header,
    split_path,
    split_query,
)
from bastion.policies.openapi.responses import Responses, compile_responses
from bastion.policies.openapi.schema import (
    READ_ONLY_KEYWORD,
    RequestView,
    follow_refs,
    json_pointer,
    property_schemas,
    schema_types,
)
from bastion.policies.size_limit.json_body import (
    DUPLICATE_KEY,
    DuplicateKey,
    json_media,
    parse_json,
)

Additional = Literal["reject", "strip", "allow"]
Problem = dict[str, str]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_PROBLEMS = 20
"""At most this many problems are listed in one error response."""
_MAX_NAME = 64
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}

# Fixed public messages: the problems list carries these, never a client value.
REQUIRED = "is required"
NOT_ALLOWED = "is not allowed"
READ_ONLY = "is read-only and cannot be sent"
BAD_STYLE = "is not serialised as the parameter's style requires"
BAD_JSON = "is not valid JSON"
NO_BODY = "this operation takes no request body"
BAD_MULTIPART = "is not well-formed multipart/form-data within the part limits"
BAD_PART_TYPE = "has a media type the field does not accept"
NOT_UTF8 = "is not valid UTF-8 text"
_NOT_PARSED = object()


class _ReadOnly:
    """The `x-bastion-read-only` keyword: any value present at its place is refused."""

    def __init__(self, parent_schema: dict[str, Any], value: Any, schema_path: list[Any]) -> None:
        self.value = value

    def validate(self, instance: object) -> None:
        raise ValueError(READ_ONLY)


def _validator(schema: Any) -> jsonschema_rs.Validator:
    # The custom keyword costs a little on every call: register it only where it is used.
    uses_read_only = READ_ONLY_KEYWORD.encode() in orjson.dumps(schema)
    return jsonschema_rs.Draft202012Validator(
        schema,
        offline=True,  # never fetch a remote reference
        mask="***",  # never put the client's value in a message
        validate_formats=True,
        pattern_options=jsonschema_rs.RegexOptions(),  # the linear-time engine
        keywords={READ_ONLY_KEYWORD: _ReadOnly} if uses_read_only else None,
    )


def _clip(name: str) -> str:
    return name if len(name) <= _MAX_NAME else name[:_MAX_NAME] + "..."


def _message(error: jsonschema_rs.ValidationError) -> str:
    kind = error.kind
    name = kind.name
    value = getattr(kind, "limit", None)
    simple = {
        "type": "has the wrong type",
        "pattern": "does not match the required pattern",
        "enum": "is not one of the allowed values",
        "const": "is not the allowed value",
        "falseSchema": NOT_ALLOWED,
        "format": "is not in the required format",
        "oneOf": "does not match exactly one allowed schema",
        "anyOf": "does not match any allowed schema",
        "oneOfNotValid": "does not match exactly one allowed schema",
        "oneOfMultipleValid": "matches more than one allowed schema",
        "not": "matches a schema it must not match",
        "uniqueItems": "has duplicate items",
        "multipleOf": "is not a multiple of the required step",
        "contains": "lacks a required item",
        "propertyNames": "has a property name that is not allowed",
        READ_ONLY_KEYWORD: READ_ONLY,
    }
    if name in simple:
        return simple[name]
    bounded = {
        "minLength": "is shorter than {} characters",
        "maxLength": "is longer than {} characters",
        "minimum": "is less than {}",
        "maximum": "is greater than {}",
        "exclusiveMinimum": "must be greater than {}",
        "exclusiveMaximum": "must be less than {}",
        "minItems": "has fewer than {} items",
        "maxItems": "has more than {} items",
        "minProperties": "has fewer than {} properties",
        "maxProperties": "has more than {} properties",
    }
    if name in bounded and value is not None:
        return bounded[name].format(value)
    return f"fails the {name} constraint"


def schema_problems(
    validator: jsonschema_rs.Validator, instance: object, where: str, name: str | None
) -> tuple[list[Problem], list[tuple[list[str | int], str]]]:
    """Problems of an invalid instance, and the undeclared properties found (for `strip`)."""
    problems: list[Problem] = []
    extra: list[tuple[list[str | int], str]] = []
    for error in validator.iter_errors(instance):
        kind = error.kind
        base = list(error.instance_path)
        if kind.name in ("additionalProperties", "unevaluatedProperties"):
            for prop in getattr(kind, "unexpected", ()):
                extra.append((base, prop))
                problems.append(_problem(where, name, [*base, _clip(prop)], NOT_ALLOWED))
        elif kind.name == "required":
            prop = getattr(kind, "property", "")
            problems.append(_problem(where, name, [*base, prop], REQUIRED))
        else:
            problems.append(_problem(where, name, base, _message(error)))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems, extra


def _problem(where: str, name: str | None, path: list[str | int], message: str) -> Problem:
    problem: Problem = {"in": where}
    if name is not None:
        problem["name"] = name
    if path or name is None:
        problem["path"] = json_pointer(path)
    problem["message"] = message
    return problem


@dataclass(slots=True)
class Parameter:
    """One compiled parameter of an operation."""

    name: str
    location: str
    style: str
    explode: bool
    required: bool
    kind: Kind
    types: tuple[str, ...]
    item_types: tuple[str, ...]
    prop_types: dict[str, tuple[str, ...]]
    json_content: bool
    validator: jsonschema_rs.Validator | None
    header_key: bytes = b""

    def coerce(self, raw: Raw) -> object:
        """Typed value of the style-split text."""
        if isinstance(raw, list):
            return [coerce(item, self.item_types) for item in raw]
        if isinstance(raw, dict):
            return {k: coerce(v, self.prop_types.get(k, ("string",))) for k, v in raw.items()}
        return coerce(raw, self.types)


@dataclass(slots=True)
class MediaType:
    """A request body media type of an operation.

    `form_types` maps a form field to its coercion types and whether it is an array. For
    `multipart/form-data`, `binary` names the fields kept as raw bytes (a latin-1 string, so
    `maxLength` counts bytes), `json_fields` those whose parts hold JSON, and `encodings` the
    media types a field's part may declare (the `encoding` object's `contentType`).
    """

    kind: Literal["json", "form", "multipart", "other"]
    validator: jsonschema_rs.Validator | None
    form_types: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    binary: frozenset[str] = frozenset()
    json_fields: frozenset[str] = frozenset()
    encodings: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MultipartLimits:
    """Bounds on a multipart/form-data body."""

    max_parts: int = 100
    max_part_bytes: int = 1024 * 1024


@dataclass(slots=True)
class Operation:
    """One compiled operation: parameters by location and the request body's media types."""

    method: str
    template: str
    path_params: list[Parameter]
    query_params: list[Parameter]
    header_params: list[Parameter]
    cookie_params: list[Parameter]
    body_required: bool
    media: dict[str, MediaType] | None
    responses: Responses | None = None

    @property
    def has_body(self) -> bool:
        """Whether the operation documents a request body."""
        return self.media is not None

    def media_for(self, content_type: str) -> MediaType | None:
        """The documented media type matching `content_type` (exact, `type/*`, `*/*`)."""
        media = self.media or {}
        found = media.get(content_type)
        if found is None:
            found = media.get(content_type.partition("/")[0] + "/*") or media.get("*/*")
        return found

    def check_parameters(
        self,
        path_values: dict[str, str],
        query: bytes,
        headers: Headers,
        additional: Additional,
    ) -> tuple[list[Problem], bytes | None]:
        """Problems of the parameters, and the query to forward when `strip` removed some."""
        problems: list[Problem] = []
        for param in self.path_params:
            raw_text = path_values.get(param.name)
            if raw_text is None:
                problems.append({"in": "path", "name": param.name, "message": REQUIRED})
                continue
            try:
                raw: Raw = split_path(raw_text, param.name, param.style, param.explode, param.kind)
            except StyleError:
                problems.append({"in": "path", "name": param.name, "message": BAD_STYLE})
                continue
            _check_value(param, raw, problems)
        new_query = None
        if query or self.query_params:
            new_query = self._check_query(query, additional, problems)
        for param in self.header_params:
            value = headers.get(param.header_key)
            if value is None:
                if param.required:
                    problems.append({"in": "header", "name": param.name, "message": REQUIRED})
                continue
            text = value.decode("latin-1")
            _check_value(param, split_header(text, param.explode, param.kind), problems)
        if self.cookie_params:
            cookie_header = b"; ".join(headers.get_all(b"cookie")).decode("latin-1")
            cookies = parse_cookies(cookie_header)
            for param in self.cookie_params:
                found = cookies.get(param.name)
                if found is None:
                    if param.required:
                        problems.append({"in": "cookie", "name": param.name, "message": REQUIRED})
                    continue
                _check_value(param, split_header(found, False, param.kind), problems)
        return problems, new_query

    def _check_query(
        self, query: bytes, additional: Additional, problems: list[Problem]
    ) -> bytes | None:
        try:
            pairs = parse_query(query)
        except StyleError:
            problems.append({"in": "query", "name": "", "message": BAD_STYLE})
            return None
        grouped: dict[str, list[str]] = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        consumed: set[str] = set()
        for param in self.query_params:
            raw: Raw | None
            try:
                raw = self._query_value(param, grouped, consumed)
            except StyleError:
                problems.append({"in": "query", "name": param.name, "message": BAD_STYLE})
                continue
            if raw is None:
                if param.required:
                    problems.append({"in": "query", "name": param.name, "message": REQUIRED})
                continue
            _check_value(param, raw, problems)
        undeclared = [name for name in grouped if name not in consumed]
        if not undeclared or additional == "allow":
            return None
        if additional == "reject":
            for name in undeclared[:MAX_PROBLEMS]:
                problems.append({"in": "query", "name": _clip(name), "message": NOT_ALLOWED})
            return None
        drop = set(undeclared)
        kept = [part for part in query.split(b"&") if part and _decoded_name(part) not in drop]
        return b"&".join(kept)

    @staticmethod
    def _query_value(
        param: Parameter, grouped: dict[str, list[str]], consumed: set[str]
    ) -> Raw | None:
        if param.style == "deepObject":
            prefix = param.name + "["
            members: dict[str, str] = {}
            for name, values in grouped.items():
                if name.startswith(prefix) and name.endswith("]"):
                    consumed.add(name)
                    if len(values) > 1:
                        raise StyleError("must not be repeated")
                    members[name[len(prefix) : -1]] = values[0]
            return members if members else None
        if param.kind == "object" and param.explode and not param.json_content:
            members = {}
            for name in param.prop_types or [n for n in grouped if n not in consumed]:
                found = grouped.get(name)
                if found is not None:
                    consumed.add(name)
                    if len(found) > 1:
                        raise StyleError("must not be repeated")
                    members[name] = found[0]
            return members if members else None
        sent = grouped.get(param.name)
        if sent is None:
            return None
        consumed.add(param.name)
        if param.json_content:
            if len(sent) > 1:
                raise StyleError("must not be repeated")
            return sent[0]
        return split_query(sent, param.name, param.style, param.explode, param.kind)


def _decoded_name(part: bytes) -> str:
    name = part.partition(b"=")[0].decode("ascii", "replace")
    try:
        return parse_query(name.encode() + b"=")[0][0]
    except (StyleError, IndexError):
        return name


def _check_value(param: Parameter, raw: Raw, problems: list[Problem]) -> None:
    if param.json_content:
        try:
            value: object = orjson.loads(raw if isinstance(raw, str) else "")
        except orjson.JSONDecodeError:
            problems.append({"in": param.location, "name": param.name, "message": BAD_JSON})
            return
    else:
        value = param.coerce(raw)
    validator = param.validator
    if validator is None or validator.is_valid(value):
        return
    found, _ = schema_problems(validator, value, param.location, param.name)
    problems.extend(found)


class PathTable:
    """Finds the path item of a request path: concrete paths first, then templates."""

    def __init__(self, items: list[tuple[str, dict[str, Operation]]]) -> None:
        self._exact: dict[str, dict[str, Operation]] = {}
        templated: list[tuple[str, dict[str, Operation]]] = []
        for template, operations in items:
            if "{" in template:
                templated.append((template, operations))
            else:
                self._exact[template] = operations
        # Concrete segments before templated ones, position by position.
        templated.sort(key=lambda item: [("{" in s) for s in item[0].split("/")])
        alternatives: list[str] = []
        self._groups: list[tuple[dict[str, Operation], list[tuple[str, str]]]] = []
        for index, (template, operations) in enumerate(templated):
            names: list[tuple[str, str]] = []
            segments = [
                _segment_regex(segment, index, names) for segment in template.split("/")[1:]
            ]
            alternatives.append(f"(?P<a{index}>/" + "/".join(segments) + ")")
            self._groups.append((operations, names))
        self._regex = re.compile("(?:" + "|".join(alternatives) + ")\\Z") if templated else None

    def match(self, path: str) -> tuple[dict[str, Operation], dict[str, str]] | None:
        """The operations of the path item matching `path`, and the raw parameter texts."""
        found = self._exact.get(path)
        if found is not None:
            return found, {}
        if self._regex is None:
            return None
        match = self._regex.match(path)
        if match is None:
            return None
        group = match.lastgroup
        if group is None:  # pragma: no cover - every alternative is a named group
            return None
        operations, names = self._groups[int(group[1:])]
        return operations, {name: match.group(key) for key, name in names}


_TEMPLATE_PART = re.compile(r"\{([^{}/]+)\}")


def _segment_regex(segment: str, index: int, names: list[tuple[str, str]]) -> str:
    parts: list[str] = []
    pieces = _TEMPLATE_PART.split(segment)
    # pieces alternate literal, name, literal, name, ..., literal
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            parts.append(re.escape(piece))
            continue
        key = f"a{index}p{len(names)}"
        names.append((key, piece))
        following = pieces[position + 1] if position + 1 < len(pieces) else ""
        # Excluding the next literal's first character keeps the match linear-time.
        stop = re.escape(following[0]) if following else ""
        parts.append(f"(?P<{key}>[^/{stop}]+)")
    return "".join(parts)


@dataclass(slots=True)
class CompiledSpec:
    """Every operation of a document, ready to check requests."""

    table: PathTable
    operations: list[Operation]

    @property
    def has_bodies(self) -> bool:
        """Whether any operation documents a request body."""
        return any(op.has_body for op in self.operations)


def _kind(types: tuple[str, ...]) -> Kind:
    if "array" in types:
        return "array"
    if "object" in types:
        return "object"
    return "primitive"


def _compile_parameter(raw: dict[str, Any], view: RequestView, where: str) -> Parameter | None:
    name = raw.get("name")
    location = raw.get("in")
    if not isinstance(name, str) or location not in _DEFAULT_STYLE:
        raise ValueError(f"{where}: a parameter needs a name and a valid `in`")
    if location == "header" and name.lower() in _IGNORED_HEADERS:
        return None  # OpenAPI: these header parameters are ignored
    style = str(raw.get("style") or _DEFAULT_STYLE[location])
    explode = bool(raw.get("explode", style == "form"))
    schema = raw.get("schema")
    json_content = False
    content = raw.get("content")
    if schema is None and isinstance(content, dict) and content:
        media, media_object = next(iter(content.items()))
        json_content = json_media(str(media))
        schema = (media_object or {}).get("schema")
    resolve = view.resolve
    types = schema_types(schema, resolve)
    kind = _kind(types) if not json_content else "primitive"
    resolved = follow_refs(schema, resolve) or {}
    item_types = schema_types(resolved.get("items"), resolve) if kind == "array" else ()
    prop_types: dict[str, tuple[str, ...]] = {}
    if kind == "object":
        prop_types = {
            key: schema_types(value, resolve)
            for key, value in property_schemas(schema, resolve).items()
        }
    try:
        validator = _validator(view.root(schema)) if schema is not None else None
    except ValueError as exc:
        raise ValueError(f"{where}: schema cannot be compiled ({exc})") from None
    return Parameter(
        name=name,
        location=location,
        style=style,
        explode=explode,
        required=bool(raw.get("required", location == "path")),
        kind=kind,
        types=types or ("string",),
        item_types=item_types or ("string",),
        prop_types=prop_types,
        json_content=json_content,
        validator=validator,
        header_key=name.lower().encode("latin-1") if location == "header" else b"",
    )


def _compile_body(
    raw: Any, view: RequestView, where: str
) -> tuple[bool, dict[str, MediaType] | None]:
    body = follow_refs(raw, view.resolve)
    if not isinstance(body, dict):
        return False, None
    media: dict[str, MediaType] = {}
    for media_type, media_object in (body.get("content") or {}).items():
        key = str(media_type).split(";")[0].strip().lower()
        schema = (media_object or {}).get("schema")
        validator = None
        if schema is not None:
            try:
                validator = _validator(view.root(schema))
            except ValueError as exc:
                raise ValueError(
                    f"{where}/{media_type}: schema cannot be compiled ({exc})"
                ) from None
        if json_media(key):
            media[key] = MediaType("json", validator)
        elif key == "application/x-www-form-urlencoded":
            media[key] = MediaType("form", validator, _form_types(schema, view))
        elif key == "multipart/form-data":
            media[key] = _multipart_media(schema, media_object or {}, validator, view)
        else:
            media[key] = MediaType("other", None)
    return bool(body.get("required", False)), media


def _form_types(schema: Any, view: RequestView) -> dict[str, tuple[tuple[str, ...], bool]]:
    form_types = {}
    for prop, prop_schema in property_schemas(schema, view.resolve).items():
        types = schema_types(prop_schema, view.resolve)
        if "array" in types:
            items = follow_refs(prop_schema, view.resolve) or {}
            item_types = schema_types(items.get("items"), view.resolve)
            form_types[prop] = (item_types or ("string",), True)
        else:
            form_types[prop] = (types or ("string",), False)
    return form_types


def _is_binary(schema: Any, view: RequestView) -> bool:
    """A file field: `format: binary` (3.0) or `contentMediaType` / `contentEncoding` (3.1)."""
    resolved = follow_refs(schema, view.resolve)
    if not isinstance(resolved, dict):
        return False
    if resolved.get("format") == "binary" or "contentMediaType" in resolved:
        return True
    items = resolved.get("items")
    return isinstance(items, dict) and _is_binary(items, view)


def _multipart_media(
    schema: Any,
    media_object: dict[str, Any],
    validator: jsonschema_rs.Validator | None,
    view: RequestView,
) -> MediaType:
    properties = property_schemas(schema, view.resolve)
    encodings: dict[str, tuple[str, ...]] = {}
    for name, encoding in (media_object.get("encoding") or {}).items():
        declared = encoding.get("contentType") if isinstance(encoding, dict) else None
        if isinstance(declared, str):
            encodings[str(name)] = tuple(
                item.split(";")[0].strip().lower() for item in declared.split(",") if item.strip()
            )
    json_fields = set()
    for name, prop_schema in properties.items():
        declared_types = encodings.get(name)
        if declared_types is not None:
            if any(json_media(item) for item in declared_types):
                json_fields.add(name)
        elif "object" in schema_types(prop_schema, view.resolve):
            json_fields.add(name)  # OpenAPI: an object property defaults to application/json
    return MediaType(
        "multipart",
        validator,
        _form_types(schema, view),
        binary=frozenset(n for n, s in properties.items() if _is_binary(s, view)),
        json_fields=frozenset(json_fields),
        encodings=encodings,
    )


def compile_spec(
    document: dict[str, Any], *, additional: Additional, responses: bool = False
) -> CompiledSpec:
    """Compile every operation of a bundled, checked document.

    With `responses`, each operation's documented responses are compiled too (response view).

    Raises:
        ValueError: a schema cannot be compiled (an invalid regular expression, for example);
            the message names the location in the document.
    """
    view = RequestView(document, close_objects=additional != "allow")
    response_view = RequestView(document, close_objects=True, response=True) if responses else None
    resolve = view.resolve
    items: list[tuple[str, dict[str, Operation]]] = []
    operations: list[Operation] = []
    for template, path_item_raw in (document.get("paths") or {}).items():
        path_item = follow_refs(path_item_raw, resolve) or {}
        shared = path_item.get("parameters") or []
        by_method: dict[str, Operation] = {}
        for method in METHODS:
            op = path_item.get(method)
            if not isinstance(op, dict):
                continue
            where = f"#/paths/{template.replace('/', '~1')}/{method}"
            merged: dict[tuple[str, str], dict[str, Any]] = {}
            for raw in [*shared, *(op.get("parameters") or [])]:
                param = follow_refs(raw, resolve)
                if isinstance(param, dict):
                    merged[(str(param.get("name")), str(param.get("in")))] = param
            compiled = [
                p
                for p in (
                    _compile_parameter(raw, view, f"{where}/parameters/{name}")
                    for (name, _), raw in merged.items()
                )
                if p is not None
            ]
            required, media = _compile_body(op.get("requestBody"), view, f"{where}/requestBody")
            operation = Operation(
                method=method.upper(),
                template=template,
                path_params=[p for p in compiled if p.location == "path"],
                query_params=[p for p in compiled if p.location == "query"],
                header_params=[p for p in compiled if p.location == "header"],
                cookie_params=[p for p in compiled if p.location == "cookie"],
                body_required=required,
                media=media,
                responses=compile_responses(
                    op.get("responses"), response_view, f"{where}/responses", _validator
                )
                if response_view is not None
                else None,
            )
            by_method[operation.method] = operation
            operations.append(operation)
        items.append((template, by_method))
    return CompiledSpec(PathTable(items), operations)


@dataclass(slots=True)
class BodyOutcome:
    """The verdict on a request body.

    `status` is the HTTP status to refuse with (0: accepted); `new_body` is the body to
    forward instead when `strip` removed undeclared properties.
    """

    status: int = 0
    problems: list[Problem] = field(default_factory=list)
    new_body: bytes | None = None


def _media_type(headers: Headers) -> str | None:
    value = headers.get(b"content-type")
    if value is None:
        return None
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def check_body(
    op: Operation,
    headers: Headers,
    body: bytes | None,
    *,
    additional: Additional,
    reject_duplicates: bool,
    limits: MultipartLimits | None = None,
    parsed: object = _NOT_PARSED,
) -> BodyOutcome:
    """Check the (buffered) body of a request against the operation's request body.

    `parsed` is the body already parsed as JSON, duplicate keys refused (by size_limit, see
    `PARSED_JSON`): reused as it is; `limits` bounds multipart bodies.
    """
    if not body:
        if op.body_required:
            return BodyOutcome(400, [{"in": "body", "path": "", "message": REQUIRED}])
        return BodyOutcome()
    if op.media is None:
        if additional == "reject":
            return BodyOutcome(400, [{"in": "body", "path": "", "message": NO_BODY}])
        return BodyOutcome()
    content_type = _media_type(headers)
    media = op.media_for(content_type) if content_type else None
    if media is None:
        return BodyOutcome(
            415, [{"in": "header", "name": "content-type", "message": "is not accepted here"}]
        )
    if media.kind == "other" or (media.validator is None and media.kind != "multipart"):
        return BodyOutcome()
    parts: list[Part] = []
    document: Any
    if media.kind == "json" and parsed is not _NOT_PARSED:
        document = parsed
    elif media.kind == "json":
        try:
            document = parse_json(body, reject_duplicates=reject_duplicates)
        except DuplicateKey:
            return BodyOutcome(400, [{"in": "body", "path": "", "message": DUPLICATE_KEY}])
        except (ValueError, RecursionError):
            return BodyOutcome(400, [{"in": "body", "path": "", "message": BAD_JSON}])
    elif media.kind == "multipart":
        limits = limits or MultipartLimits()
        try:
            boundary = boundary_of(headers.get(b"content-type") or b"")
            parts = parse_multipart(
                body, boundary, max_parts=limits.max_parts, max_part_bytes=limits.max_part_bytes
            )
        except MultipartError:
            return BodyOutcome(400, [{"in": "body", "path": "", "message": BAD_MULTIPART}])
        document, status, part_problems = _multipart_document(parts, media)
        if status:
            return BodyOutcome(status, part_problems)
        if media.validator is None:
            return BodyOutcome()
    else:
        try:
            pairs = parse_query(body)
        except StyleError:
            return BodyOutcome(400, [{"in": "body", "path": "", "message": BAD_STYLE}])
        document = _form_document(pairs, media)
    validator = media.validator
    if validator is None or validator.is_valid(document):
        return BodyOutcome()
    problems, extra = schema_problems(validator, document, "body", None)
    if additional != "strip" or not extra or len(extra) != len(problems):
        return BodyOutcome(422, problems)
    if media.kind == "multipart" and any(base for base, _ in extra):
        return BodyOutcome(422, problems)  # only whole fields can be cut out of a multipart body
    # Only undeclared properties are wrong: drop them and forward the rest.
    for base, prop in extra:
        target: Any = document
        for part in base:
            target = target[part]
        if isinstance(target, dict):
            target.pop(prop, None)
    if not validator.is_valid(document):
        problems, _ = schema_problems(validator, document, "body", None)
        return BodyOutcome(422, problems)
    if media.kind == "json":
        return BodyOutcome(new_body=orjson.dumps(document))
    if media.kind == "multipart":
        return BodyOutcome(new_body=_rebuild_multipart(body, parts, document))
    kept = [
        part
        for part in body.split(b"&")
        if part and isinstance(document, dict) and _decoded_name(part) in document
    ]
    return BodyOutcome(new_body=b"&".join(kept))


def _form_document(pairs: list[tuple[str, str]], media: MediaType) -> dict[str, object]:
    document: dict[str, object] = {}
    for name, value in pairs:
        types, is_array = media.form_types.get(name, (("string",), False))
        item = coerce(value, types)
        if is_array:
            existing = document.setdefault(name, [])
            if isinstance(existing, list):
                existing.append(item)
        elif name in document:
            document[name] = [document[name], item]  # a repeated scalar fails the schema
        else:
            document[name] = item
    return document


def _media_allowed(media: str, allowed: tuple[str, ...]) -> bool:
    return media in allowed or media.partition("/")[0] + "/*" in allowed or "*/*" in allowed


def _multipart_document(
    parts: list[Part], media: MediaType
) -> tuple[dict[str, object], int, list[Problem]]:
    """The form document of multipart parts, or a status (400/422) and the problems found."""
    document: dict[str, object] = {}
    for part in parts:
        name = part.name
        where = json_pointer([_clip(name)])
        allowed = media.encodings.get(name)
        if (
            allowed
            and part.content_type is not None
            and not _media_allowed(part.content_type, allowed)
        ):
            return {}, 422, [{"in": "body", "path": where, "message": BAD_PART_TYPE}]
        types, is_array = media.form_types.get(name, (("string",), False))
        item: object
        if name in media.json_fields:
            try:
                item = orjson.loads(part.data)
            except orjson.JSONDecodeError:
                return {}, 400, [{"in": "body", "path": where, "message": BAD_JSON}]
        elif name in media.binary or part.filename is not None:
            item = part.data.decode("latin-1")  # one character per byte: maxLength counts bytes
        else:
            try:
                text = part.data.decode("utf-8")
            except UnicodeDecodeError:
                return {}, 400, [{"in": "body", "path": where, "message": NOT_UTF8}]
            item = coerce(text, types)
        if is_array:
            existing = document.setdefault(name, [])
            if isinstance(existing, list):
                existing.append(item)
        elif name in document:
            document[name] = [document[name], item]  # a repeated scalar fails the schema
        else:
            document[name] = item
    return document, 0, []


def _rebuild_multipart(body: bytes, parts: list[Part], document: dict[str, object]) -> bytes:
    """The body with the parts of fields no longer in `document` cut out."""
    first_line = body.find(b"\r\n")
    delimiter = body[:first_line]
    kept = [body[part.start : part.end] for part in parts if part.name in document]
    out = [delimiter]
    for raw in kept:
        out += (b"\r\n", raw, b"\r\n", delimiter)
    out.append(b"--\r\n")
    return b"".join(out)
