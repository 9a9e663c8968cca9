"""Compiles an operation's documented responses and checks upstream responses, sans-IO.

How this works: each operation's `responses` become a table from status key (`200`, `2XX`,
`default`) to the documented media types, each JSON one with a jsonschema-rs validator of its
*response view* (see `schema.py`: objects closed unless they say otherwise, `writeOnly`
properties undocumented). `Responses.lookup` finds the entry for a status as OpenAPI says
(exact code, then range, then `default`); `check_json` judges a buffered body and, when asked,
removes the properties the document does not describe (recursively, per schema) and
re-serialises the body. Problems name JSON pointers and fixed messages, never values.

Stripping never turns an invalid body into a valid one: when the first validation found
problems besides undocumented properties (with `anyOf`, cutting properties can make another
branch match), they stay the verdict. orjson reads integers beyond the 64-bit range as
floats and would write them back changed (18446744073709551616 as 1.8446744073709552e+19):
a body holding one is left as it is (`ResponseCheck.unstrippable`) and the caller reports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from bastion.policies.openapi.schema import RequestView, follow_refs, json_pointer

Problem = dict[str, str]
MAX_STRIP_ERRORS = 10_000
"""Most schema errors looked at when stripping one response (bounds the work per response)."""
BAD_JSON = "is not valid JSON"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
# An integer literal of 19 digits or more: a whole digit run (not a fraction or exponent).
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_INTEGER_RANGE = range(-(2**63), 2**64)


@dataclass(frozen=True, slots=True)
class ResponseMedia:
    """A documented response media type; `validator` is None without a (JSON) schema."""

    json: bool
    validator: jsonschema_rs.Validator | None


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """One documented response; `media` empty: no body is documented."""

    media: dict[str, ResponseMedia]

    def media_for(self, media_type: str) -> ResponseMedia | None:
        """The documented media type matching `media_type` (exact, `type/*`, `*/*`)."""
        found = self.media.get(media_type)
        if found is None:
            found = self.media.get(media_type.partition("/")[0] + "/*") or self.media.get("*/*")
        return found


@dataclass(frozen=True, slots=True)
class Responses:
    """The documented responses of one operation, by status key."""

    by_key: dict[str, ResponseSpec]

    def lookup(self, status: int) -> ResponseSpec | None:
        """The response documented for `status`: exact code, `NXX` range, then `default`."""
        table = self.by_key
        found = table.get(str(status))
        if found is None:
            found = table.get(f"{status // 100}XX")
        if found is None:
            found = table.get("default")
        return found


@dataclass(slots=True)
class ResponseCheck:
    """Verdict on a response body.

    `undocumented` lists pointers of properties the document does not describe; `problems`
    every other mismatch; `new_body` is the stripped body when stripping changed it;
    `unstrippable` is set when stripping was asked for but the body could not be rewritten
    faithfully (it is then left unchanged).
    """

    undocumented: list[str]
    problems: list[Problem]
    new_body: bytes | None = None
    unstrippable: bool = False

    @property
    def ok(self) -> bool:
        """Whether the (possibly stripped) body matches the document."""
        return not self.undocumented and not self.problems


def compile_responses(
    raw: Any,
    view: RequestView,
    where: str,
    make_validator: Callable[[Any], jsonschema_rs.Validator],
) -> Responses | None:
    """The `Responses` of an operation's `responses` object (None when it has none).

    Raises:
        ValueError: a response schema cannot be compiled; the message names where.
    """
    if not isinstance(raw, dict):
        return None
    table: dict[str, ResponseSpec] = {}
    for key, response_raw in raw.items():
        response = follow_refs(response_raw, view.resolve)
        if not isinstance(response, dict):
            continue
        media: dict[str, ResponseMedia] = {}
        for media_type, media_object in (response.get("content") or {}).items():
            name = str(media_type).split(";")[0].strip().lower()
            schema = (media_object or {}).get("schema")
            is_json = name == "application/json" or name.endswith("+json")
            validator = None
            if is_json and schema is not None:
                try:
                    validator = make_validator(view.root(schema))
                except ValueError as exc:
                    raise ValueError(
                        f"{where}/{key}/{media_type}: schema cannot be compiled ({exc})"
                    ) from None
            media[name] = ResponseMedia(is_json, validator)
        table[str(key).upper() if str(key) != "default" else "default"] = ResponseSpec(media)
    return Responses(table)


def check_json(media: ResponseMedia, body: bytes, *, strip: bool, limit: int) -> ResponseCheck:
    """Judge a JSON response body; with `strip`, cut out undocumented properties.

    `limit` caps the problems listed (stripping still removes every undocumented property it
    finds among the first `MAX_STRIP_ERRORS` errors).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ResponseCheck([], [{"in": "response", "path": "", "message": BAD_JSON}])
    validator = media.validator
    if validator is None or validator.is_valid(document):
        return ResponseCheck([], [])
    undocumented: list[tuple[list[str | int], str]] = []
    problems: list[Problem] = []
    for count, error in enumerate(validator.iter_errors(document)):
        if count >= MAX_STRIP_ERRORS:
            break
        kind = error.kind
        if kind.name in ("additionalProperties", "unevaluatedProperties"):
            base = list(error.instance_path)
            undocumented.extend((base, prop) for prop in getattr(kind, "unexpected", ()))
        elif len(problems) < limit:
            path = list(error.instance_path)
            problems.append({"in": "response", "path": json_pointer(path), "message": kind.name})
    pointers = [json_pointer([*base, prop]) for base, prop in undocumented[:limit]]
    if not strip or not undocumented:
        return ResponseCheck(pointers, problems)
    if _has_wide_integers(body):
        return ResponseCheck(pointers, problems, unstrippable=True)
    for base, prop in undocumented:
        target: Any = document
        for part in base:
            target = target[part]
        if isinstance(target, dict):
            target.pop(prop, None)
    stripped = orjson.dumps(document)
    if problems:
        # Invalid before stripping: cutting properties must not make it pass.
        return ResponseCheck([], problems, stripped)
    if validator.is_valid(document):
        return ResponseCheck([], [], stripped)
    # Something besides undocumented properties is wrong: report what remains.
    remaining = ResponseCheck([], [], stripped)
    for error in validator.iter_errors(document):
        if len(remaining.problems) + len(remaining.undocumented) >= limit:
            break
        kind = error.kind
        path = list(error.instance_path)
        if kind.name in ("additionalProperties", "unevaluatedProperties"):
            remaining.undocumented.extend(
                json_pointer([*path, prop]) for prop in getattr(kind, "unexpected", ())
            )
        else:
            remaining.problems.append(
                {"in": "response", "path": json_pointer(path), "message": kind.name}
            )
    return remaining


def _has_wide_integers(body: bytes) -> bool:
    """Whether `body` (valid JSON) holds an integer outside orjson's 64-bit range."""
    if _LONG_INTEGER.search(body) is None:
        return False  # the common case: no long digit run at all, one pass in C
    numbers = _STRING.sub(b'""', body)  # digits inside strings are not numbers
    for match in _LONG_INTEGER.finditer(numbers):
        text = match.group()
        # Over 21 characters is out of range anyway (JSON has no leading zeros), and int()
        # refuses very long digit strings.
        if len(text) > 21 or int(text) not in _INTEGER_RANGE:
            return True
    return False
