"""JSON request bodies as the validating policies share them: media type, strict parse, cache.

size_limit (JSON caps), openapi (schemas) and injection_guard (string scan) all read JSON
bodies. They agree here on what counts as JSON (`json_media`), on the duplicate-refusing parse
used wherever a parser differential matters (`parse_json`), and on where a parsed body is left
for the policies after (`PARSED_JSON`), so a body is parsed once per request.
"""

from __future__ import annotations

import json
import math

import orjson

PARSED_JSON = "bastion.parsed_json"
"""`Request.extra` key of `(body, document)`: later policies reuse the parse of `body`.

Only a parse that refused duplicate keys (`parse_json(..., reject_duplicates=True)`) may be
left here: openapi's `reject_duplicate_keys` relies on it.
"""
DUPLICATE_KEY = "has a duplicate object key"
"""Message of the `DuplicateKey` error (fixed: the key itself is client data)."""


class DuplicateKey(KeyError):
    """An object of the document repeats a key."""


def json_media(media: str) -> bool:
    """Whether a (lower-case, parameter-free) media type is JSON: `application/json`, `*+json`."""
    return media == "application/json" or media.endswith("+json")


def json_content_type(content_type: bytes | None) -> bool:
    """Whether a raw Content-Type header value names a JSON media type."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return json_media(media.decode("latin-1"))


def parse_json(body: bytes, *, reject_duplicates: bool) -> object:
    """Parse a JSON body strictly (UTF-8, no NaN/Infinity); optionally refuse duplicate keys.

    Both ways refuse the same documents otherwise: a number too large for a double (`1e400`)
    is an error, not infinity, as in orjson.

    Parsers disagree on a repeated key (orjson and most keep the last value, some the first,
    some every one): a document with one cannot be judged for every reader of it. Detecting
    them needs the standard-library parser (about 6x slower than orjson), hence the option.

    Raises:
        DuplicateKey: `reject_duplicates` is set and an object repeats a key.
        ValueError: the body is not valid JSON (orjson.JSONDecodeError is a ValueError).
        RecursionError: `reject_duplicates` is set and the document nests deeper than the
            interpreter's recursion limit (callers read it as "too deep").
    """
    if not reject_duplicates:
        return orjson.loads(body)

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        result = dict(items)
        if len(result) != len(items):
            raise DuplicateKey(DUPLICATE_KEY)
        return result

    def constant(text: str) -> object:
        raise ValueError(text)

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("number out of range")
        return value

    # Decoded here, strictly: given bytes, `json` would also accept UTF-16/32 and lone
    # surrogates, which orjson (and the upstream, most likely) refuse.
    text = body.decode("utf-8")
    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=finite)
