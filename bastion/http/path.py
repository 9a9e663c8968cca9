r"""The path canonicaliser: one unambiguous form of a request path (security invariant #1).

How this works: the router matches, and the upstream receives, the same canonical string, so a
path cannot mean one thing to Bastion and another to the application behind it. Bastion refuses
every form that servers are known to read differently rather than guessing which reading the
upstream will pick:

1. Bytes check: printable ASCII only; no space, ``#``, ``?`` or backslash (some servers treat a
   backslash as a separator).
2. Percent-decoding, once: encoded unreserved characters (RFC 3986 §2.3) are decoded, since
   every reader agrees they equal the plain character; other escapes stay, upper-cased (RFC 3986
   §6.2.2.1). Encoded ``/``, ``\`` and control characters are refused, as is ``%25`` followed by
   two hex digits (a double encoding that a second decoder would turn into something else).
3. Segments: runs of slashes are merged, because upstream frameworks disagree on ``//`` (some merge
   it, some keep an empty segment, some read ``//host`` as an authority) and a router seeing one
   form while the application sees another is a bypass. ``.``/``..`` are removed as in RFC 3986
   §5.2.4; a ``..`` above the root is refused instead of clamped, because only a client probing for
   traversal sends one. Segments starting ``.;`` or ``..;`` are refused: servlet containers strip
   the ``;`` parameter and then treat the rest as a dot segment.

RFC 3986 §5.2.4: https://www.rfc-editor.org/rfc/rfc3986#section-5.2.4
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_PATH_LENGTH", "PathRejected", "canonical_path"]

MAX_PATH_LENGTH: Final = 8192
"""Longest raw path accepted, in bytes."""

# Public reasons: fixed strings, safe to send back to the client.
TOO_LONG: Final = "path too long"
NOT_ABSOLUTE: Final = "path must start with '/'"
BAD_CHARACTER: Final = "path contains a character that is not allowed"
BACKSLASH: Final = "path contains a backslash"
BAD_ESCAPE: Final = "malformed percent-encoding in path"
ENCODED_SEPARATOR: Final = "encoded '/' or '\\' in path"
ENCODED_CONTROL: Final = "encoded control character in path"
DOUBLE_ENCODING: Final = "double percent-encoding in path"
PATH_PARAMETER_TRICK: Final = "dot segment with a path parameter"
ABOVE_ROOT: Final = "path climbs above the root"


class PathRejected(ValueError):
    """Raised for an ambiguous or malformed path; .reason is a short fixed public string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX: Final = "0123456789abcdefABCDEF"

# Every byte allowed as-is: printable ASCII minus '#' (fragment), '?' (the caller already split
# the query off, so one here means a caller bug) and '\' (a separator for some servers).
_ALLOWED_BYTES: Final = bytes(
    b for b in range(0x21, 0x7F) if b not in (ord("#"), ord("?"), ord("\\"))
)


def _escape_tables() -> tuple[dict[str, str], dict[str, str]]:
    """Map every two-hex-digit escape to its replacement, or to the reason it is refused."""
    keep: dict[str, str] = {}
    refuse: dict[str, str] = {}
    for high in _HEX:
        for low in _HEX:
            digits = high + low
            code = int(digits, 16)
            char = chr(code)
            if char in _UNRESERVED:
                keep[digits] = char
            elif char in "/\\":
                refuse[digits] = ENCODED_SEPARATOR
            elif code < 0x20 or code == 0x7F:
                refuse[digits] = ENCODED_CONTROL
            else:
                keep[digits] = "%" + digits.upper()
    return keep, refuse


_KEEP_ESCAPE, _REFUSE_ESCAPE = _escape_tables()

# After decoding, every '%' starts an upper-case escape, so "%25" plus two hex digits (literal
# or just decoded) is exactly a double encoding.
_DOUBLE_ENCODED: Final = re.compile(r"%25[0-9A-Fa-f]{2}")

# A segment a servlet container would read as "." or ".." once it strips the ';' parameter.
# The encoded form is refused too, for servers that decode before stripping.
_DOT_PARAMETER_PREFIXES: Final = (".;", "..;", ".%3B", "..%3B")


def canonical_path(raw: bytes) -> str:
    """Return the one canonical form of a request path, or refuse an ambiguous one.

    Args:
        raw: The path of an origin-form request-target as received, without the query string.

    Returns:
        An ASCII string starting with '/': unreserved characters decoded, other escapes in
        upper-case hex, dot segments removed, slash runs merged, a trailing slash kept.

    Raises:
        PathRejected: The path is too long, not absolute, contains a byte or escape that is not
            allowed, is double-encoded, uses a dot segment with a ';' parameter, or climbs above
            the root.
    """
    if len(raw) > MAX_PATH_LENGTH:
        raise PathRejected(TOO_LONG)
    if raw[:1] != b"/":
        raise PathRejected(NOT_ABSOLUTE)
    if raw.translate(None, _ALLOWED_BYTES):
        raise PathRejected(BACKSLASH if b"\\" in raw else BAD_CHARACTER)
    # Substring tests run on str: on bytes they cost several times more (buffer protocol).
    path = raw.decode("ascii")
    # Fast path: every dot segment (with or without ';') follows a "/", so without '%', "/." and
    # "//" there is nothing to rewrite. "/v1/file.json" stays on this path.
    if "%" not in path and "/." not in path and "//" not in path:
        return path
    return _canonical_slow(path)


def _canonical_slow(path: str) -> str:
    """Decode unreserved escapes, then merge slashes and remove dot segments."""
    if "%" in path:
        path = _decode_unreserved(path)
    segments = path.split("/")
    kept: list[str] = []
    # The path ends in a directory when its last segment is empty ("/a/"), "." or "..".
    trailing_slash = False
    for segment in segments[1:]:  # segments[0] is the empty string before the leading '/'
        trailing_slash = segment in ("", ".", "..")
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                raise PathRejected(ABOVE_ROOT)
            kept.pop()
            continue
        if segment.startswith(_DOT_PARAMETER_PREFIXES):
            raise PathRejected(PATH_PARAMETER_TRICK)
        kept.append(segment)
    if not kept:
        return "/"
    joined = "/" + "/".join(kept)
    return joined + "/" if trailing_slash else joined


def _decode_unreserved(path: str) -> str:
    """Decode escaped unreserved characters once; normalise or refuse every other escape."""
    pieces = path.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        digits = piece[:2]
        replacement = _KEEP_ESCAPE.get(digits)
        if replacement is None:
            raise PathRejected(_REFUSE_ESCAPE.get(digits, BAD_ESCAPE))
        out.append(replacement)
        out.append(piece[2:])
    decoded = "".join(out)
    if _DOUBLE_ENCODED.search(decoded):
        raise PathRejected(DOUBLE_ENCODING)
    return decoded
