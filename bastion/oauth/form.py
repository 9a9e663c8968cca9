"""Strict parsing of `application/x-www-form-urlencoded` request bodies (sans-IO).

RFC 6749 §3.1-3.2: parameters sent without a value are treated as omitted, and a parameter
must not be sent more than once; a body that is not a well-formed UTF-8 form is refused.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl

from bastion.oauth.errors import BAD_FORM, DUPLICATE_PARAMETER, OAuthError

MAX_FIELDS: Final = 32
"""Most parameters accepted in one form; OAuth requests need fewer than ten."""
# A `%` not followed by two hex digits: unquote would keep it as is, hiding a broken client.
_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def parse_form(body: bytes) -> dict[str, str]:
    """The parameters of a form body, by name; empty values dropped.

    Raises:
        OAuthError: `invalid_request` for a malformed form, bad UTF-8, control characters,
            too many fields or a repeated parameter.
    """
    if not body:
        return {}
    if _BAD_ESCAPE.search(body):
        raise OAuthError("invalid_request", BAD_FORM)
    try:
        text = body.decode("ascii")  # the urlencoded form is ASCII; UTF-8 comes percent-encoded
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", BAD_FORM) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name + value):
            raise OAuthError("invalid_request", BAD_FORM)
        if name in params:
            raise OAuthError("invalid_request", DUPLICATE_PARAMETER)
        params[name] = value
    return {name: value for name, value in params.items() if value}
