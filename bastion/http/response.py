"""Locally generated responses, above all RFC 9457 problem+json errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

from bastion.errors import Reject
from bastion.http.headers import Headers

PROBLEM_TYPE_BASE = "https://bastion.dev/problems/"
PROBLEM_CONTENT_TYPE = b"application/problem+json"


@dataclass(slots=True)
class Response:
    """A response head plus a complete body, produced by Bastion rather than an upstream."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for `status`, or an empty one for unknown codes."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str,
    extra: dict[str, object] | None = None,
) -> bytes:
    """Serialise an RFC 9457 problem document with Bastion's `code` and `request_id` members.

    RFC 9457 §3: https://www.rfc-editor.org/rfc/rfc9457#section-3
    """
    doc: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        for key, value in extra.items():
            doc.setdefault(key, value)
    return orjson.dumps(doc)


def problem_response(reject: Reject, request_id: str) -> Response:
    """Render a `Reject` as a problem+json response that is never cached."""
    body = problem_body(
        reject.status, reject.error_code, reject.title, reject.detail, request_id, reject.extra
    )
    headers = Headers(
        [
            (b"content-type", PROBLEM_CONTENT_TYPE),
            (b"cache-control", b"no-store"),
            *reject.headers,
        ]
    )
    return Response(reject.status, headers, body)
