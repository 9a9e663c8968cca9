"""OAuth error responses (RFC 6749 §5.2): the `error` code, a fixed description, no-store.

RFC 6749 §5.2: https://www.rfc-editor.org/rfc/rfc6749#section-5.2
"""

from __future__ import annotations

from typing import Final, Literal

import orjson

from bastion.http.headers import Headers
from bastion.http.response import Response

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "slow_down",
]

NO_STORE_HEADERS: Final = (
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
)

# Public descriptions: fixed strings that never echo input or say which check failed.
BAD_FORM: Final = "The request body must be a valid application/x-www-form-urlencoded form."
TOO_LARGE: Final = "The request body is too large."
DUPLICATE_PARAMETER: Final = "A parameter was sent more than once."
MISSING_GRANT_TYPE: Final = "The grant_type parameter is required."
MISSING_TOKEN: Final = "The token parameter is required."  # noqa: S105 - a message
UNSUPPORTED_GRANT: Final = "The grant type is not supported."
CLIENT_AUTH_FAILED: Final = "Client authentication failed."
TWO_CLIENT_AUTH_METHODS: Final = "Use exactly one client authentication method."
GRANT_NOT_ALLOWED: Final = "The client may not use this grant type."
SCOPE_NOT_ALLOWED: Final = "The requested scope is invalid or not allowed for this client."
METHOD_NOT_ALLOWED: Final = "Use POST."
HTTPS_REQUIRED: Final = "The authorization server is only available over HTTPS."
WRONG_CONTENT_TYPE: Final = "The content type must be application/x-www-form-urlencoded."
MISSING_CODE_PARAMETERS: Final = "The code, redirect_uri and code_verifier parameters are required."
BAD_CODE: Final = (
    "The authorization code is invalid, expired, used or was issued to another client."
)
MISSING_REFRESH_TOKEN: Final = "The refresh_token parameter is required."  # noqa: S105 - a message
BAD_REFRESH_TOKEN: Final = "The refresh token is invalid, expired or revoked."  # noqa: S105 - a message
SERVER_UNAVAILABLE: Final = "The authorization server is temporarily unavailable."
TOO_MANY_FAILURES: Final = (
    "Too many failed client authentications; retry after the time given in Retry-After."
)


class OAuthError(Exception):
    """A refused OAuth request, rendered as the RFC 6749 §5.2 JSON error body."""

    def __init__(
        self,
        error: ErrorCode | Literal["temporarily_unavailable"],
        description: str,
        *,
        status: int = 400,
        basic_challenge: bool = False,
        allow: bytes | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = basic_challenge
        self.allow = allow
        self.retry_after = retry_after

    def response(self) -> Response:
        """The error as a complete response: JSON body, `Cache-Control: no-store`.

        A client that tried HTTP Basic gets 401 with `WWW-Authenticate: Basic` (RFC 6749 §5.2).
        """
        headers = Headers(NO_STORE_HEADERS)
        if self.basic_challenge:
            headers.add(b"www-authenticate", b'Basic realm="bastion-oauth", charset="UTF-8"')
        if self.allow is not None:
            headers.add(b"allow", self.allow)
        if self.retry_after is not None:
            headers.add(b"retry-after", b"%d" % self.retry_after)
        body = orjson.dumps({"error": self.error, "error_description": self.description})
        return Response(self.status, headers, body)


def json_response(document: object, *, status: int = 200, cache: bool = False) -> Response:
    """A JSON response; `no-store` unless `cache` (metadata and key sets may be cached)."""
    if cache:
        headers = Headers(
            [(b"content-type", b"application/json"), (b"cache-control", b"max-age=300")]
        )
    else:
        headers = Headers(NO_STORE_HEADERS)
    return Response(status, headers, orjson.dumps(document))
