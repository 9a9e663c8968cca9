"""Turns OpenAPI schema objects into the JSON Schema 2020-12 that request validation runs on.

How this works: OpenAPI 3.1 schemas already are JSON Schema 2020-12; OpenAPI 3.0 schemas are
rewritten (`nullable: true` adds `"null"` to `type` and `enum`; boolean `exclusiveMinimum` /
`exclusiveMaximum` become the numeric 2020-12 keywords). On top of that, the *request view*
applies Bastion's rules:

- a `readOnly` property may not be sent (mass assignment): its schema becomes the
  `x-bastion-read-only` keyword, which always fails, and it leaves `required`;
- integers without explicit bounds are bounded by their format (`int32`, `int64`) or else by
  2^53 - 1, so values that lose precision in common JSON parsers are refused;
- with `additional: reject | strip`, every schema in a *value position* (a body, a property,
  an array item) that declares properties gets `unevaluatedProperties: false` unless it says
  what to do with other properties itself. Using `unevaluatedProperties` at the use site rather
  than `additionalProperties` in every definition keeps `allOf` compositions working.

The *response view* (`response=True`) checks what an upstream sends back: every object schema
in a value position that declares properties is closed unless it says otherwise (fields the
document does not describe are excessive data exposure), and a `writeOnly` property (a
password, say) counts as undocumented. `readOnly` and integer bounds do not apply.

Only pure data transformations live here; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
_FORMAT_BOUNDS = {"int32": 2**31 - 1, "int64": 2**63 - 1}
READ_ONLY_KEYWORD = "x-bastion-read-only"

# Keywords whose value is one subschema in a value position / not in a value position.
_VALUE_SCHEMA = ("items", "additionalProperties", "unevaluatedProperties", "contains")
_OTHER_SCHEMA = ("not", "if", "then", "else", "propertyNames", "unevaluatedItems")
_VALUE_SCHEMA_MAPS = ("properties", "patternProperties")
_OTHER_SCHEMA_MAPS = ("$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE = ("$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "if", "dependentSchemas")

Resolver = Callable[[str], Any]
MAX_REF_HOPS = 16
"""Most `$ref`s followed in a row (a reference cycle stops there)."""


def json_pointer(parts: Iterable[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def follow_refs(node: Any, resolve: Resolver) -> Any:
    """`node` with `$ref`s followed (at most MAX_REF_HOPS of them)."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < MAX_REF_HOPS:
        node = resolve(node["$ref"])
        seen += 1
    return node


def schema_types(schema: Any, resolve: Resolver, depth: int = 0) -> tuple[str, ...]:
    """The JSON types a schema admits, following `$ref` and `*Of` (empty: any type).

    Used to coerce parameter strings: a value is tried as each type in turn.
    """
    if not isinstance(schema, dict) or depth > 16:
        return ()
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return schema_types(resolve(ref), resolve, depth + 1)
    declared = schema.get("type")
    if isinstance(declared, str):
        found: tuple[str, ...] = (declared,)
        if schema.get("nullable") is True:
            found += ("null",)
        return found
    if isinstance(declared, list):
        return tuple(item for item in declared if isinstance(item, str))
    result: list[str] = []
    for keyword in _SCHEMA_LISTS:
        for member in schema.get(keyword) or ():
            for kind in schema_types(member, resolve, depth + 1):
                if kind not in result:
                    result.append(kind)
    if not result and ("properties" in schema or "additionalProperties" in schema):
        return ("object",)
    return tuple(result)


def property_schemas(schema: Any, resolve: Resolver, depth: int = 0) -> dict[str, Any]:
    """The declared properties of an object schema, through `$ref` and `allOf`."""
    if not isinstance(schema, dict) or depth > 16:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return property_schemas(resolve(ref), resolve, depth + 1)
    found: dict[str, Any] = {}
    for member in schema.get("allOf") or ():
        found.update(property_schemas(member, resolve, depth + 1))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        found.update(properties)
    return found


class RequestView:
    """Rewrites schemas of one OpenAPI document into the request view described above."""

    def __init__(
        self, document: dict[str, Any], *, close_objects: bool, response: bool = False
    ) -> None:
        self.document = document
        self.openapi30 = str(document.get("openapi", "")).startswith("3.0.")
        self.close_objects = close_objects
        self.response = response
        components = document.get("components")
        schemas = components.get("schemas") if isinstance(components, dict) else None
        converted = {}
        if isinstance(schemas, dict):
            converted = {name: self.convert(s, value=False) for name, s in schemas.items()}
        # Validators resolve `#/components/schemas/...` inside this embedded copy.
        self.components: dict[str, Any] = {"schemas": converted}

    def resolve(self, ref: str) -> Any:
        """The target of a local reference in the original document (None if absent)."""
        if not ref.startswith("#/"):
            return None
        node: Any = self.document
        for raw in ref[2:].split("/"):
            token = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or token not in node:
                return None
            node = node[token]
        return node

    def root(self, schema: Any) -> Any:
        """A complete schema for a body or parameter: converted, closed, with components."""
        converted = self.convert(schema, value=True)
        if not isinstance(converted, dict):
            return converted
        return {**converted, "components": self.components}

    def _flagged(self, schema: Any, flag: str, depth: int = 0) -> bool:
        """Whether `schema` (through `$ref`) sets `flag` (`readOnly`, `writeOnly`) to true."""
        if not isinstance(schema, dict) or depth > 16:
            return False
        if schema.get(flag) is True:
            return True
        ref = schema.get("$ref")
        return isinstance(ref, str) and self._flagged(self.resolve(ref), flag, depth + 1)

    def _closable(self, schema: dict[str, Any], depth: int = 0) -> bool:
        """Whether the schema declares properties, so that undeclared ones are 'additional'."""
        if depth > 16 or "additionalProperties" in schema or "unevaluatedProperties" in schema:
            return False
        if "properties" in schema or "patternProperties" in schema:
            return True
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.resolve(ref)
            return isinstance(target, dict) and self._closable(target, depth + 1)
        return any(
            isinstance(member, dict) and self._closable(member, depth + 1)
            for keyword in _SCHEMA_LISTS
            for member in schema.get(keyword) or ()
        )

    def convert(self, schema: Any, *, value: bool) -> Any:
        """The request view of one schema; `value` marks a value position (see module doc)."""
        if not isinstance(schema, dict):
            return schema
        out: dict[str, Any] = {}
        for key, item in schema.items():
            if key in _VALUE_SCHEMA:
                out[key] = self.convert(item, value=True)
            elif key in _OTHER_SCHEMA:
                out[key] = self.convert(item, value=False)
            elif key in _VALUE_SCHEMA_MAPS and isinstance(item, dict):
                out[key] = {name: self.convert(s, value=True) for name, s in item.items()}
            elif key in _OTHER_SCHEMA_MAPS and isinstance(item, dict):
                out[key] = {name: self.convert(s, value=False) for name, s in item.items()}
            elif key in _SCHEMA_LISTS and isinstance(item, list):
                out[key] = [self.convert(s, value=False) for s in item]
            elif key == "prefixItems" and isinstance(item, list):
                out[key] = [self.convert(s, value=True) for s in item]
            else:
                out[key] = item
        if self.openapi30:
            self._from_30(out)
        if self.response:
            self._write_only_properties(out, schema)
        else:
            self._read_only_properties(out, schema)
            self._bound_integers(out)
        if value and self.close_objects and self._closable(schema):
            if any(key in schema for key in _IN_PLACE):
                out["unevaluatedProperties"] = False
            else:
                # Same meaning without in-place applicators, and cheaper to evaluate.
                out["additionalProperties"] = False
        return out

    @staticmethod
    def _from_30(out: dict[str, Any]) -> None:
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            enum = out.get("enum")
            if isinstance(enum, list) and None not in enum:
                out["enum"] = [*enum, None]
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(exclusive)
            if isinstance(flag, bool):
                del out[exclusive]
                if flag and bound in out:
                    out[exclusive] = out.pop(bound)

    def _read_only_properties(self, out: dict[str, Any], original: dict[str, Any]) -> None:
        properties = original.get("properties")
        if not isinstance(properties, dict):
            return
        hidden = [name for name, s in properties.items() if self._flagged(s, "readOnly")]
        if not hidden:
            return
        for name in hidden:
            out["properties"][name] = {READ_ONLY_KEYWORD: True}
        required = out.get("required")
        if isinstance(required, list):
            out["required"] = [name for name in required if name not in hidden]

    def _write_only_properties(self, out: dict[str, Any], original: dict[str, Any]) -> None:
        """A response must not carry a `writeOnly` property: drop it from the declared ones."""
        properties = original.get("properties")
        if not isinstance(properties, dict):
            return
        hidden = [name for name, s in properties.items() if self._flagged(s, "writeOnly")]
        for name in hidden:
            del out["properties"][name]
        required = out.get("required")
        if hidden and isinstance(required, list):
            out["required"] = [name for name in required if name not in hidden]

    @staticmethod
    def _bound_integers(out: dict[str, Any]) -> None:
        kind = out.get("type")
        if not (kind == "integer" or (isinstance(kind, list) and "integer" in kind)):
            return
        limit = _FORMAT_BOUNDS.get(str(out.get("format")), MAX_SAFE_INTEGER)
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = limit
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -limit
