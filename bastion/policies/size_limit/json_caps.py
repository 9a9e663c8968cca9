"""Measures a parsed JSON document against structural caps (depth, array, string, keys), sans-IO.

How this works: the body is parsed once, refusing duplicate object keys (`json_body.parse_json`):
parsers disagree on which of a repeated key's values counts (orjson keeps the last one, an
upstream may read every one), so `{"a": <a huge value>, "a": 1}` would otherwise be measured
as `{"a": 1}` while the upstream still parses the huge value. Before walking the parsed values
(Python-level work per node), byte counts done in C rule out the caps the body cannot exceed:
nesting is at most the number of `[` and `{` bytes, an array or object has at most one more
item than the body has commas, and a string has at most as many characters as the body has
bytes. Typical bodies are far below typical caps, so the walk usually never runs; when it
does, it checks only the caps still in doubt, one nesting level at a time, and stops at the
first one exceeded. The parser refuses documents nested deeper than the interpreter's
recursion limit allows (some 900 levels) with a RecursionError, which is read as "too deep"
rather than as invalid JSON; `max_depth` is capped at 1024 in the config (orjson's limit,
which openapi's own parse keeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

from bastion.policies.size_limit.json_body import DuplicateKey, parse_json

ORJSON_MAX_DEPTH = 1024
"""orjson's fixed nesting limit: deeper documents fail to parse."""

Cap = Literal["max_json_depth", "max_json_array_length", "max_json_string_length", "max_json_keys"]


@dataclass(frozen=True, slots=True)
class JSONCaps:
    """Structural limits for a JSON document; None lifts one."""

    max_depth: int | None = None
    max_array_length: int | None = None
    max_string_length: int | None = None
    max_keys: int | None = None

    @property
    def active(self) -> bool:
        """Whether any cap is set."""
        return any(
            cap is not None
            for cap in (
                self.max_depth,
                self.max_array_length,
                self.max_string_length,
                self.max_keys,
            )
        )


class InvalidJSON(ValueError):
    """The body is not JSON at all (the caps cannot be measured)."""


class DuplicateJSONKey(InvalidJSON):
    """An object of the body repeats a key (its values cannot all be measured)."""


def parse_capped(body: bytes, caps: JSONCaps) -> tuple[object, Cap | None]:
    """Parse `body` and return the document and the first cap it exceeds (None: within caps).

    Depth counts nested arrays and objects (a scalar document has depth 0, `[]` depth 1);
    string length counts characters, for object keys too; array length counts items; the key
    cap counts the members of each object.

    Raises:
        DuplicateJSONKey: an object repeats a key.
        InvalidJSON: the body is not valid JSON.
    """
    try:
        document = parse_json(body, reject_duplicates=True)
    except DuplicateKey:
        raise DuplicateJSONKey("duplicate key") from None
    except RecursionError:
        return None, "max_json_depth"
    except ValueError:  # also UnicodeDecodeError: not UTF-8
        raise InvalidJSON("not JSON") from None
    doubt = _in_doubt(body, caps)
    return document, exceeded(document, doubt) if doubt.active else None


def _in_doubt(body: bytes, caps: JSONCaps) -> JSONCaps:
    """The caps `body` might exceed, judged from byte counts alone (see the module doc)."""
    depth = caps.max_depth
    if depth is not None and body.count(b"[") + body.count(b"{") <= depth:
        depth = None
    items = caps.max_array_length
    keys = caps.max_keys
    if items is not None or keys is not None:
        most = body.count(b",") + 1
        if items is not None and most <= items:
            items = None
        if keys is not None and most <= keys:
            keys = None
    string = caps.max_string_length
    if string is not None and len(body) <= string:
        string = None
    return JSONCaps(depth, items, string, keys)


def exceeded(document: object, caps: JSONCaps) -> Cap | None:
    """The first cap `document` exceeds, or None.

    Walks one nesting level at a time: each level's containers and strings are measured with
    `map(len, ...)` in C (measured ~1.7x faster than a per-node stack loop).
    """
    max_depth = caps.max_depth if caps.max_depth is not None else ORJSON_MAX_DEPTH + 1
    max_items = caps.max_array_length
    max_string = caps.max_string_length
    max_keys = caps.max_keys
    level: list[Any] = [document]
    depth = 0
    while level:
        # The parser builds exact dict/list/str objects: `type(...) is` suffices and is cheaper.
        lists = [value for value in level if type(value) is list]
        dicts = [value for value in level if type(value) is dict]
        if max_string is not None:
            strings = [value for value in level if type(value) is str]
            if strings and max(map(len, strings)) > max_string:
                return "max_json_string_length"
            if max(map(len, chain.from_iterable(dicts)), default=0) > max_string:
                return "max_json_string_length"
        if not lists and not dicts:
            return None
        depth += 1
        if depth > max_depth:
            return "max_json_depth"
        if lists and max_items is not None and max(map(len, lists)) > max_items:
            return "max_json_array_length"
        if dicts and max_keys is not None and max(map(len, dicts)) > max_keys:
            return "max_json_keys"
        level = [*chain.from_iterable(lists), *chain.from_iterable(d.values() for d in dicts)]
    return None
