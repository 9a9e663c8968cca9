"""Finds the first injection pattern in a request's path, query, headers and body, sans-IO."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from bastion.http.request import Request
from bastion.policies.injection_guard.rules import Matcher, Rule
from bastion.policies.openapi.params import StyleError, parse_query
from bastion.policies.size_limit.json_body import PARSED_JSON, json_media


@dataclass(frozen=True, slots=True)
class Finding:
    """Where a rule matched: `location` (path, query, header, body) and the field's name."""

    location: str
    name: str
    rule: Rule


def _media_type(request: Request) -> bytes:
    value = request.headers.get(b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower()


def scan_json(matcher: Matcher, document: object, excluded: frozenset[str]) -> Finding | None:
    """The first match among the keys and string values of a parsed JSON document."""
    stack: list[tuple[str, object]] = [("", document)]
    while stack:
        name, node = stack.pop()
        if isinstance(node, str):
            rule = matcher.find(node, body=True)
            if rule is not None:
                return Finding("body", name, rule)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in excluded:
                    continue
                rule = matcher.find(key, body=True)
                if rule is not None:
                    return Finding("body", key, rule)
                stack.append((key, value))
        elif isinstance(node, list):
            stack.extend((name, item) for item in node)
    return None


def _scan_pairs(
    matcher: Matcher, pairs: list[tuple[str, str]], excluded: frozenset[str], location: str
) -> Finding | None:
    body = location == "body"
    for name, value in pairs:
        rule = matcher.find(name, body=body)
        if rule is None and name not in excluded:
            rule = matcher.find(value, body=body)
        if rule is not None:
            return Finding(location, name, rule)
    return None


def scan_request(
    matcher: Matcher,
    request: Request,
    *,
    headers: tuple[bytes, ...],
    excluded: frozenset[str],
    inspect_path: bool,
    inspect_body: bool,
) -> Finding | None:
    """The first rule matching anywhere inspected in `request`, or None."""
    if inspect_path:
        rule = matcher.find(request.path, body=False)
        if rule is not None:
            return Finding("path", "", rule)
    if request.query:
        try:
            pairs = parse_query(request.query)
        except StyleError:
            pairs = [("", request.query.decode("latin-1"))]
        found = _scan_pairs(matcher, pairs, excluded, "query")
        if found is not None:
            return found
    for header in headers:
        for value in request.headers.get_all(header):
            rule = matcher.find(value.decode("latin-1"), body=False)
            if rule is not None:
                return Finding("header", header.decode("latin-1"), rule)
    body = request.body
    if not inspect_body or not body:
        return None
    media = _media_type(request)
    if media == b"application/x-www-form-urlencoded":
        try:
            return _scan_pairs(matcher, parse_query(body), excluded, "body")
        except StyleError:
            pass
    elif json_media(media.decode("latin-1")):
        parsed = request.extra.get(PARSED_JSON)
        if isinstance(parsed, tuple) and parsed[0] is body:
            # size_limit already parsed this very body: scan its document.
            return scan_json(matcher, parsed[1], excluded)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            return scan_json(matcher, document, excluded)
    rule = matcher.find(body.decode("utf-8", "replace"), body=True)
    return Finding("body", "", rule) if rule is not None else None
