"""Matches (host, method, canonical path) to a route, compiled once at load.

How this works: every route path is classified at compile time as exact, template (`{name}`
segments) or prefix. Exact paths sit in a dict; templates become anchored regular expressions
with one `[^/]+` group per parameter; prefixes are kept longest first. A lookup tries exact, then
templates, then prefixes, and within each, the first entry whose host and method fit. When the
path matches but no method does, the result names the allowed methods (for 405).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """What a route matches; the gateway builds it from `RouteConfig`."""

    name: str
    paths: tuple[str, ...]
    methods: frozenset[str] | None = None
    hosts: tuple[str, ...] | None = None
    path_match: Literal["prefix", "exact"] = "prefix"


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    """A lookup result: the route's value and its path parameters, or why nothing matched."""

    value: T | None
    params: dict[str, str]
    allowed: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """Whether a route matched."""
        return self.value is not None


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    spec: RouteSpec
    value: T
    prefix: str = ""

    def host_ok(self, host: str) -> bool:
        hosts = self.spec.hosts
        if hosts is None:
            return True
        for wanted in hosts:
            if wanted == host:
                return True
            if wanted.startswith("*.") and host.endswith(wanted[1:]) and len(host) >= len(wanted):
                return True
        return False


def _template_regex(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.split("/")[1:]:
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


class Router(Generic[T]):
    """A compiled routing table."""

    def __init__(self, routes: Sequence[tuple[RouteSpec, T]]) -> None:
        self._exact: dict[str, list[_Entry[T]]] = {}
        self._templates: list[tuple[re.Pattern[str], _Entry[T]]] = []
        prefixes: list[_Entry[T]] = []
        for spec, value in routes:
            for path in spec.paths:
                if "{" in path:
                    self._templates.append((_template_regex(path), _Entry(spec, value)))
                elif spec.path_match == "exact":
                    self._exact.setdefault(path, []).append(_Entry(spec, value))
                else:
                    prefix = path.rstrip("/")
                    prefixes.append(_Entry(spec, value, prefix=prefix))
        # Longest prefix first; a stable sort keeps config order among equals.
        self._prefixes = sorted(prefixes, key=lambda e: len(e.prefix), reverse=True)

    def match(self, host: str, method: str, path: str) -> Match[T]:
        """Find the route for a request; `host` is lower-case without port."""
        allowed: set[str] = set()
        exact = self._exact.get(path)
        if exact:
            found = self._pick(exact, host, method, allowed)
            if found is not None:
                return Match(found.value, {})
        for pattern, entry in self._templates:
            matched = pattern.match(path)
            if matched is not None and entry.host_ok(host):
                if entry.spec.methods is None or method in entry.spec.methods:
                    return Match(entry.value, matched.groupdict())
                allowed.update(entry.spec.methods)
        for entry in self._prefixes:
            prefix = entry.prefix
            if prefix and not (
                path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")
            ):
                continue
            if not entry.host_ok(host):
                continue
            if entry.spec.methods is None or method in entry.spec.methods:
                return Match(entry.value, {})
            allowed.update(entry.spec.methods)
        return Match(None, {}, tuple(sorted(allowed)))

    @staticmethod
    def _pick(
        entries: list[_Entry[T]], host: str, method: str, allowed: set[str]
    ) -> _Entry[T] | None:
        for entry in entries:
            if not entry.host_ok(host):
                continue
            if entry.spec.methods is None or method in entry.spec.methods:
                return entry
            allowed.update(entry.spec.methods)
        return None
