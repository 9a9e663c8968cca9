"""A strict, bounded `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1), sans-IO.

How this works: the body must start with the first delimiter (`--boundary`); each part runs
to the next CRLF + delimiter and holds header lines, an empty line and the content; the close
delimiter (`--boundary--`) ends the body and may only be followed by line breaks. Every part
needs `Content-Disposition: form-data; name="..."`. Counts and sizes are checked while
splitting, so an oversized body costs at most one pass over it. Anything else is refused
with `MultipartError` (the caller answers 400); the client's bytes never appear in a message.

Parser differentials: the upstream's multipart parser must see the same fields as this one,
or a field never checked here reaches it. What parsers read differently is refused:
- the delimiter anywhere inside a part (RFC 2046 §5.1.1: it must not appear in the
  encapsulated content), such as after a bare LF, where lenient parsers split the part;
- a bare CR or LF in a part's header block (lenient parsers end a header line there);
- `*` parameters (`filename*`, `name*`: RFC 5987 extended values). RFC 7578 §4.2 says they
  must not be used in multipart/form-data; parsers that honour them would see a file where
  this parser sees a plain field, or another name;
- a `Content-Transfer-Encoding` other than 7bit, 8bit or binary (RFC 7578 §4.7 deprecates
  it; a parser that decodes base64 or quoted-printable reads other content than was checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PART_HEADER_BYTES = 8192
"""Largest header block of one part."""

# RFC 2046 §5.1.1: 1-70 characters from a safe set, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_IDENTITY_ENCODINGS = frozenset({b"7bit", b"8bit", b"binary"})
_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_PARAMETER = re.compile(
    rb"[ \t]*;[ \t]*(" + _TCHARS + rb")[ \t]*=[ \t]*(" + _QUOTED + rb"|" + _TCHARS + rb")"
)


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data or exceeds a bound."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part: field name, file name (None for a plain field), media type, content.

    `start`/`end` delimit the whole part (headers and content) in the body, to rebuild it.
    """

    name: str
    filename: str | None
    content_type: str | None
    data: bytes
    start: int
    end: int


def boundary_of(content_type: bytes) -> bytes:
    """The boundary parameter of a `multipart/form-data` Content-Type value.

    Raises:
        MultipartError: no boundary, or one RFC 2046 does not allow.
    """
    _, params = _split_value(content_type)
    value = params.get("boundary")
    if value is None or _BOUNDARY.fullmatch(value) is None:
        raise MultipartError("missing or invalid boundary")
    return value.encode("ascii")


def parse_multipart(
    body: bytes, boundary: bytes, *, max_parts: int, max_part_bytes: int
) -> list[Part]:
    """Split a multipart/form-data body into its parts.

    Raises:
        MultipartError: malformed framing or headers, more than `max_parts` parts, or a part
            whose content is longer than `max_part_bytes`.
    """
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        raise MultipartError("the body does not start with the boundary")
    separator = b"\r\n" + delimiter
    parts: list[Part] = []
    position = len(delimiter)
    while True:
        marker = body[position : position + 2]
        if marker == b"--":
            if body[position + 2 :].strip(b"\r\n"):
                raise MultipartError("data after the close delimiter")
            return parts
        if marker != b"\r\n":
            raise MultipartError("a delimiter is not followed by a line break")
        start = position + 2
        end = body.find(separator, start)
        if end < 0:
            raise MultipartError("a part is not terminated")
        if body.find(delimiter, start, end) >= 0:
            raise MultipartError("a part contains the boundary delimiter")
        if len(parts) >= max_parts:
            raise MultipartError("too many parts")
        parts.append(_part(body, start, end, max_part_bytes))
        position = end + len(separator)


def _part(body: bytes, start: int, end: int, max_part_bytes: int) -> Part:
    split = body.find(b"\r\n\r\n", start, end)
    if split < 0:
        # A part with no header lines at all is still refused below (no Content-Disposition).
        if body.startswith(b"\r\n", start):
            split = start - 2
        else:
            raise MultipartError("a part has no header block")
    if split - start > MAX_PART_HEADER_BYTES:
        raise MultipartError("a part's headers are too large")
    content_start = split + 4
    if end - content_start > max_part_bytes:
        raise MultipartError("a part is too large")
    disposition: bytes | None = None
    content_type: bytes | None = None
    for line in body[start:split].split(b"\r\n") if split > start else ():
        if b"\r" in line or b"\n" in line:
            raise MultipartError("a part header line has a bare line break")
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise MultipartError("a part header is malformed")
        lowered = name.lower()
        if lowered == b"content-disposition":
            if disposition is not None:
                raise MultipartError("a repeated Content-Disposition")
            disposition = value.strip()
        elif lowered == b"content-type":
            content_type = value.strip()
        elif (
            lowered == b"content-transfer-encoding"
            and value.strip().lower() not in _IDENTITY_ENCODINGS
        ):
            raise MultipartError("a part has a content transfer encoding")
    if disposition is None:
        raise MultipartError("a part has no Content-Disposition")
    kind, params = _split_value(disposition)
    field = params.get("name")
    if kind != "form-data" or not field:
        raise MultipartError("a part is not a named form-data field")
    media = None
    if content_type is not None:
        media, _ = _split_value(content_type)
    return Part(field, params.get("filename"), media, body[content_start:end], start, end)


def _split_value(value: bytes) -> tuple[str, dict[str, str]]:
    """`type; a=b; c="d"` → (lower-cased type, {a: b, c: d}); utf-8 names are allowed.

    Raises:
        MultipartError: the value does not follow the grammar.
    """
    head = _TOKEN.match(value.strip())
    stripped = value.strip()
    if head is None:
        raise MultipartError("a header value is malformed")
    kind = head.group().decode("ascii").lower()
    if stripped[head.end() : head.end() + 1] == b"/":
        sub = _TOKEN.match(stripped, head.end() + 1)
        if sub is None:
            raise MultipartError("a media type is malformed")
        kind = stripped[: sub.end()].decode("ascii").lower()
        position = sub.end()
    else:
        position = head.end()
    params: dict[str, str] = {}
    while position < len(stripped):
        match = _PARAMETER.match(stripped, position)
        if match is None:
            raise MultipartError("a header parameter is malformed")
        key = match.group(1).decode("ascii").lower()
        if key.endswith("*"):
            raise MultipartError("an extended (RFC 5987) header parameter")
        raw = match.group(2)
        if raw.startswith(b'"'):
            raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
        if key in params:
            raise MultipartError("a repeated header parameter")
        try:
            params[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MultipartError("a header parameter is not UTF-8") from None
        position = match.end()
    return kind, params
