"""Parameter serialisation styles (OpenAPI 3 §4.8.12.4) and string-to-type coercion, sans-IO.

A parameter arrives as text; its schema says what it means. `split_*` functions undo a style
(`form`, `simple`, `label`, `matrix`, `spaceDelimited`, `pipeDelimited`, `deepObject`, with
`explode` on or off) and give a string, a list of strings or a dict of strings; `coerce` then
turns each string into the JSON type the schema expects (`"42"` → 42 for an integer), or leaves
it a string when it is not a valid literal of any expected type, so that the schema check
reports the type error. Literals are strict: no signs on integers, no whitespace, no `_`
digit separators, no `NaN` or `Infinity`, booleans only `true`/`false`.

https://spec.openapis.org/oas/v3.1.0#style-values
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal
from urllib.parse import unquote

Kind = Literal["primitive", "array", "object"]
Raw = str | list[str] | dict[str, str]

_INTEGER = re.compile(r"-?[0-9]{1,40}")
_NUMBER = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?(?:[eE][-+]?[0-9]{1,4})?")


class StyleError(ValueError):
    """The text does not follow the parameter's style (a fixed, public message)."""


def coerce(text: str, types: Sequence[str]) -> object:
    """`text` as the first of `types` it is a valid literal of; else `text` unchanged."""
    for kind in types:
        if kind == "integer":
            if _INTEGER.fullmatch(text):
                return int(text)
        elif kind == "number":
            if _NUMBER.fullmatch(text):
                if "." in text or "e" in text or "E" in text:
                    number = float(text)
                    if number in (float("inf"), float("-inf")):
                        continue
                    return number
                return int(text)
        elif kind == "boolean":
            if text == "true":
                return True
            if text == "false":
                return False
        elif kind == "null":
            if text == "null" and "string" not in types:
                return None
        elif kind == "string":
            return text
    return text


def _pairs(items: list[str], exploded: bool) -> dict[str, str]:
    """`k,v,k,v` (unexploded) or `k=v` items (exploded) as a dict."""
    result: dict[str, str] = {}
    if exploded:
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise StyleError("expected name=value pairs")
            result[key] = value
        return result
    if len(items) % 2:
        raise StyleError("expected name,value pairs")
    for index in range(0, len(items), 2):
        result[items[index]] = items[index + 1]
    return result


def _shape(items: list[str], kind: Kind, exploded: bool) -> Raw:
    if kind == "array":
        return items
    if kind == "object":
        return _pairs(items, exploded)
    return ",".join(items)


def split_path(raw: str, name: str, style: str, explode: bool, kind: Kind) -> Raw:
    """Undo a path parameter style on the matched, still percent-encoded segment text.

    Raises:
        StyleError: the text lacks the style's prefix or pairs are malformed.
    """
    if style == "label":
        if not raw.startswith("."):
            raise StyleError("expected a label-style value starting with '.'")
        body = raw[1:]
        items = body.split("." if explode else ",") if kind != "primitive" else [body]
    elif style == "matrix":
        prefix = ";" + name + "="
        if kind == "object" and explode:
            if not raw.startswith(";"):
                raise StyleError("expected a matrix-style value starting with ';'")
            items = raw[1:].split(";")
        elif kind == "array" and explode:
            if not raw.startswith(prefix):
                raise StyleError("expected a matrix-style value starting with ';name='")
            items = [part[len(name) + 1 :] for part in raw[1:].split(";")]
            if any(not part.startswith(name + "=") for part in raw[1:].split(";")):
                raise StyleError("expected repeated ';name=' items")
        else:
            if raw == ";" + name and kind == "primitive":
                return ""
            if not raw.startswith(prefix):
                raise StyleError("expected a matrix-style value starting with ';name='")
            body = raw[len(prefix) :]
            items = body.split(",") if kind != "primitive" else [body]
    else:  # simple
        items = raw.split(",") if kind != "primitive" else [raw]
    decoded = [_unescape(item) for item in items]
    if kind == "object" and (style == "simple" and explode):
        return _pairs(decoded, True)
    return _shape(decoded, kind, explode)


def split_header(raw: str, explode: bool, kind: Kind) -> Raw:
    """Undo the `simple` style of a header (or cookie) value; no percent-decoding applies."""
    if kind == "primitive":
        return raw
    items = [item.strip() for item in raw.split(",")]
    return _shape(items, kind, explode)


def split_query(
    values: list[str],
    name: str,
    style: str,
    explode: bool,
    kind: Kind,
) -> Raw:
    """Undo a query style, given every decoded value sent under the parameter's name.

    `deepObject` and exploded `form` objects are assembled by `QueryParams` instead, because
    their members are sent under other names.

    Raises:
        StyleError: a primitive is repeated, or pairs are malformed.
    """
    if kind == "primitive":
        if len(values) > 1:
            raise StyleError("must not be repeated")
        return values[0]
    if kind == "array" and explode:
        return values
    if len(values) > 1:
        raise StyleError("must not be repeated")
    text = values[0]
    if style == "spaceDelimited":
        items = text.split(" ")
    elif style == "pipeDelimited":
        items = text.split("|")
    else:
        items = text.split(",")
    if text == "" and kind == "array":
        items = []
    return _shape(items, kind, False)


def parse_query(query: bytes) -> list[tuple[str, str]]:
    """`a=1&b=x+y` as decoded (name, value) pairs in order; `+` is a space (HTML forms).

    Raises:
        StyleError: an escape decodes to invalid UTF-8.
    """
    if not query:
        return []
    try:
        text = query.decode("ascii")
    except UnicodeDecodeError:
        raise StyleError("the query string must be ASCII (percent-encode other bytes)") from None
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name or "%" in name:
            name = _decode(name)
        if "+" in value or "%" in value:
            value = _decode(value)
        pairs.append((name, value))
    return pairs


def _decode(text: str) -> str:
    return _unescape(text.replace("+", " "))


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise StyleError("a percent-escape is not valid UTF-8") from None


def parse_cookies(header: str) -> dict[str, str]:
    """`a=1; b=2` as a dict (the first of repeated names wins, as browsers send it)."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value
    return cookies
