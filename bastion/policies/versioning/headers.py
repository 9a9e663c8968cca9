"""Pure helpers of the versioning policy: version names, `Accept` parameters, lifecycle headers.

Deprecation: RFC 9745 §2 (https://www.rfc-editor.org/rfc/rfc9745#section-2), a Structured Field
Date (RFC 9651 §3.3.7): `@` and whole seconds since the Unix epoch.
Sunset: RFC 8594 §3 (https://www.rfc-editor.org/rfc/rfc8594#section-3), an HTTP-date
(IMF-fixdate, RFC 9110 §5.6.7).
Links: RFC 8288 (`<uri>; rel="..."`), relations `deprecation` (RFC 9745 §3), `sunset`
(RFC 8594 §6) and `successor-version` (RFC 5829).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

MAX_VERSION_CHARS = 32
"""Longest version value taken from a request; longer ones never match a configured version."""


def normalise_version(value: str) -> str:
    """The comparison form of a version name: lower case, without a leading `v` before a digit."""
    lowered = value.strip().lower()
    if len(lowered) > 1 and lowered[0] == "v" and lowered[1].isdigit():
        return lowered[1:]
    return lowered


def deprecation_value(when: datetime) -> bytes:
    """The `Deprecation` field value for `when` (aware): `@` and Unix seconds, RFC 9745 §2.1."""
    return b"@%d" % math.floor(when.timestamp())


def sunset_value(when: datetime) -> bytes:
    """The `Sunset` field value for `when` (aware): an IMF-fixdate in GMT, RFC 8594 §3."""
    whole = when.astimezone(UTC).replace(microsecond=0)
    return format_datetime(whole, usegmt=True).encode("ascii")


def link_value(target: str, relation: str) -> bytes:
    """One `Link` field value: `<target>; rel="relation"` (RFC 8288 §3)."""
    return f'<{target}>; rel="{relation}"'.encode("ascii")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def media_type_version(accept: bytes, parameter: str) -> str | None:
    """The value of media-type parameter `parameter` (lower case) in an `Accept` field.

    The first media range that carries the parameter wins (RFC 9110 §12.5.1 syntax:
    `type/subtype; name=value; name="quoted value"`). Returns None when no range has it or
    the field is not text.
    """
    try:
        text = accept.decode("ascii")
    except UnicodeDecodeError:
        return None
    for media_range in _split_outside_quotes(text, ","):
        for item in _split_outside_quotes(media_range, ";")[1:]:
            name, sep, value = item.partition("=")
            if sep and name.strip().lower() == parameter:
                return _unquote(value.strip())
    return None
