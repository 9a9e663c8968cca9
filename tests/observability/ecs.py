"""The ECS 8.11 field definitions Bastion's log lines use, and a checker for documents.

Types and allowed values are taken from the ECS field reference (ecs.version 8.11): a line
that passes `ecs_errors()` indexes into an ECS index template without mapping conflicts.
Bastion's own fields live under `bastion.*` (custom fields, not checked here).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal

EcsType = Literal["keyword", "long", "ip", "date", "text", "wildcard", "boolean"]

# name -> (type, is an array of that type)
FIELDS: dict[str, tuple[EcsType, bool]] = {
    "@timestamp": ("date", False),
    "message": ("text", False),
    "ecs.version": ("keyword", False),
    "event.kind": ("keyword", False),
    "event.category": ("keyword", True),
    "event.type": ("keyword", True),
    "event.action": ("keyword", False),
    "event.dataset": ("keyword", False),
    "event.outcome": ("keyword", False),
    "event.reason": ("keyword", False),
    "event.duration": ("long", False),
    "rule.name": ("keyword", False),
    "http.version": ("keyword", False),
    "http.request.method": ("keyword", False),
    "http.request.id": ("keyword", False),
    "http.request.body.bytes": ("long", False),
    "http.response.status_code": ("long", False),
    "http.response.body.bytes": ("long", False),
    "url.path": ("wildcard", False),
    "url.query": ("keyword", False),
    "client.ip": ("ip", False),
    "source.ip": ("ip", False),
    "source.port": ("long", False),
    "tls.established": ("boolean", False),
    "error.code": ("keyword", False),
    "service.name": ("keyword", False),
    "trace.id": ("keyword", False),
    "user.id": ("keyword", False),
    "user.name": ("keyword", False),
    "user_agent.original": ("keyword", False),
    "error.message": ("text", False),
}

KINDS = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
OUTCOMES = {"failure", "success", "unknown"}
# event.category -> the event.type values ECS expects with it.
CATEGORY_TYPES: dict[str, set[str]] = {
    "authentication": {"start", "end", "info"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "intrusion_detection": {"allowed", "denied", "info"},
    "network": {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
    "web": {"access", "error", "info"},
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
_LONG_MAX = 2**63 - 1


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects to dotted names (`{"a": {"b": 1}}` -> `{"a.b": 1}`); lists kept."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _type_error(name: str, kind: EcsType, value: Any) -> str | None:
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{name}: boolean expects true or false"
    if kind in ("keyword", "text", "wildcard"):
        return None if isinstance(value, str) else f"{name}: {kind} expects a string"
    if kind == "long":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}: long expects an integer"
        return None if -_LONG_MAX - 1 <= value <= _LONG_MAX else f"{name}: out of long range"
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"{name}: not an IP address: {value!r}"
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        return f"{name}: not an ISO 8601 UTC date: {value!r}"
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # raises on 2024-02-30
    return None


def ecs_errors(doc: dict[str, Any]) -> list[str]:
    """Every way `doc` departs from the ECS definitions above (empty: it conforms)."""
    errors: list[str] = []
    for name, value in flatten(doc).items():
        if name.startswith("bastion."):
            continue
        if name not in FIELDS:
            errors.append(f"{name}: not an ECS field Bastion uses")
            continue
        kind, array = FIELDS[name]
        values = value if array else [value]
        if array and not isinstance(value, list):
            errors.append(f"{name}: expected an array")
            continue
        for item in values:
            error = _type_error(name, kind, item)
            if error:
                errors.append(error)
    event = doc.get("event", {})
    if event.get("kind") not in KINDS:
        errors.append(f"event.kind: {event.get('kind')!r} is not an ECS value")
    if "outcome" in event and event["outcome"] not in OUTCOMES:
        errors.append(f"event.outcome: {event['outcome']!r} is not an ECS value")
    for category in event.get("category", []):
        expected = CATEGORY_TYPES.get(category)
        if expected is None:
            errors.append(f"event.category: {category!r} is not one Bastion uses")
            continue
        for event_type in event.get("type", []):
            if event_type not in expected:
                errors.append(f"event.type: {event_type!r} is not expected with {category}")
    return errors
