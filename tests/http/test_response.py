"""Problem+json responses (RFC 9457) and the statuses, codes and headers of each rejection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.errors import (
    BadGateway,
    Forbidden,
    GatewayTimeout,
    Gone,
    HeadersTooLarge,
    InsufficientScope,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Reject,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
    URITooLong,
)
from bastion.http.response import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    Response,
    problem_body,
    problem_response,
    reason_phrase,
)

REQUEST_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def body_of(response: Response) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(response.body)
    return document


def test_problem_body_has_the_rfc_9457_members_plus_code_and_request_id():
    document = orjson.loads(problem_body(403, "forbidden", "Forbidden", "Not allowed.", REQUEST_ID))
    assert document == {
        "type": "https://bastion.dev/problems/forbidden",
        "title": "Forbidden",
        "status": 403,
        "detail": "Not allowed.",
        "code": "forbidden",
        "request_id": REQUEST_ID,
    }


def test_problem_response_is_problem_json_and_never_cached():
    response = problem_response(InvalidRequest("The body is not valid JSON."), REQUEST_ID)
    assert response.status == 400
    assert response.headers.get_all(b"content-type") == [PROBLEM_CONTENT_TYPE]
    assert PROBLEM_CONTENT_TYPE == b"application/problem+json"
    assert response.headers.get_all(b"cache-control") == [b"no-store"]
    assert body_of(response) == {
        "type": PROBLEM_TYPE_BASE + "invalid_request",
        "title": "Bad Request",
        "status": 400,
        "detail": "The body is not valid JSON.",
        "code": "invalid_request",
        "request_id": REQUEST_ID,
    }


def test_status_member_matches_the_response_status():
    response = problem_response(RateLimited("Slow down.", retry_after=3), REQUEST_ID)
    assert body_of(response)["status"] == response.status == 429


def test_a_specific_code_changes_code_and_type_but_not_status_or_title():
    reject = Unauthenticated("The token has expired.", challenge="Bearer", code="token_expired")
    document = body_of(problem_response(reject, REQUEST_ID))
    assert document["code"] == "token_expired"
    assert document["type"] == PROBLEM_TYPE_BASE + "token_expired"
    assert document["status"] == 401
    assert document["title"] == "Unauthorized"


def test_extension_members_are_added():
    reject = InvalidRequest(
        "The body does not match the schema.",
        extra={"errors": [{"pointer": "/amount", "detail": "must be positive"}]},
    )
    document = body_of(problem_response(reject, REQUEST_ID))
    assert document["errors"] == [{"pointer": "/amount", "detail": "must be positive"}]


def test_extension_members_cannot_override_the_standard_ones():
    reject = Forbidden(
        "Not allowed.",
        extra={"status": 200, "type": "about:blank", "request_id": "forged", "code": "ok"},
    )
    document = body_of(problem_response(reject, REQUEST_ID))
    assert document["status"] == 403
    assert document["type"] == PROBLEM_TYPE_BASE + "forbidden"
    assert document["request_id"] == REQUEST_ID
    assert document["code"] == "forbidden"


def test_reject_headers_follow_the_problem_headers():
    reject = Reject("Bad.", headers=[(b"x-extra", b"1")])
    response = problem_response(reject, REQUEST_ID)
    assert response.headers.items() == [
        (b"content-type", PROBLEM_CONTENT_TYPE),
        (b"cache-control", b"no-store"),
        (b"x-extra", b"1"),
    ]


@pytest.mark.parametrize(
    ("reject", "status", "code", "title"),
    [
        (Reject("x"), 400, "invalid_request", "Bad Request"),
        (InvalidRequest("x"), 400, "invalid_request", "Bad Request"),
        (Unauthenticated("x", challenge="Bearer"), 401, "unauthenticated", "Unauthorized"),
        (Forbidden("x"), 403, "forbidden", "Forbidden"),
        (InsufficientScope("x"), 403, "insufficient_scope", "Forbidden"),
        (NotFound("x"), 404, "not_found", "Not Found"),
        (MethodNotAllowed("x", allow=["GET"]), 405, "method_not_allowed", "Method Not Allowed"),
        (Gone("x"), 410, "gone", "Gone"),
        (PayloadTooLarge("x"), 413, "payload_too_large", "Content Too Large"),
        (URITooLong("x"), 414, "uri_too_long", "URI Too Long"),
        (UnsupportedMediaType("x"), 415, "unsupported_media_type", "Unsupported Media Type"),
        (RateLimited("x", retry_after=1), 429, "rate_limited", "Too Many Requests"),
        (HeadersTooLarge("x"), 431, "headers_too_large", "Request Header Fields Too Large"),
        (InternalError("x"), 500, "internal_error", "Internal Server Error"),
        (BadGateway("x"), 502, "bad_gateway", "Bad Gateway"),
        (ServiceUnavailable("x"), 503, "service_unavailable", "Service Unavailable"),
        (GatewayTimeout("x"), 504, "gateway_timeout", "Gateway Timeout"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Reject) else None,
)
def test_each_rejection_has_its_status_code_and_title(reject, status, code, title):
    response = problem_response(reject, REQUEST_ID)
    document = body_of(response)
    assert response.status == status
    assert (document["status"], document["code"], document["title"]) == (status, code, title)
    assert document["detail"] == "x"


def test_unauthenticated_carries_the_www_authenticate_challenge():
    reject = Unauthenticated("Missing credentials.", challenge='Bearer realm="bastion"')
    response = problem_response(reject, REQUEST_ID)
    assert response.headers.get_all(b"www-authenticate") == [b'Bearer realm="bastion"']


def test_method_not_allowed_carries_allow():
    response = problem_response(MethodNotAllowed("x", allow=["GET", "HEAD", "POST"]), REQUEST_ID)
    assert response.headers.get_all(b"allow") == [b"GET, HEAD, POST"]


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(30, b"30"), (0, b"0"), (-5, b"0")],
    ids=["seconds", "zero", "negative_clamped"],
)
def test_rate_limited_carries_retry_after_in_whole_seconds(retry_after, header):
    reject = RateLimited("Slow down.", retry_after=retry_after)
    response = problem_response(reject, REQUEST_ID)
    assert response.headers.get_all(b"retry-after") == [header]
    assert reject.retry_after == retry_after


def test_rate_limited_keeps_extra_headers_after_retry_after():
    reject = RateLimited(
        "Slow down.", retry_after=5, headers=[(b"ratelimit", b'"default";r=0;t=5')]
    )
    assert reject.headers == [(b"retry-after", b"5"), (b"ratelimit", b'"default";r=0;t=5')]


def test_other_rejections_carry_no_extra_headers():
    response = problem_response(Forbidden("x"), REQUEST_ID)
    assert [name for name, _ in response.headers] == [b"content-type", b"cache-control"]


def test_insufficient_scope_is_a_forbidden():
    assert issubclass(InsufficientScope, Forbidden)


def test_detail_is_exactly_the_public_message():
    reject = InternalError("Internal error.")
    document = body_of(problem_response(reject, REQUEST_ID))
    assert document["detail"] == "Internal error."
    assert str(reject) == "Internal error."


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(200, b"OK"), (308, b"Permanent Redirect"), (429, b"Too Many Requests"), (599, b"")],
    ids=["ok", "redirect", "rate_limited", "unknown"],
)
def test_reason_phrase(status, phrase):
    assert reason_phrase(status) == phrase
