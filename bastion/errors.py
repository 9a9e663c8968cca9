"""The exception hierarchy: configuration errors and request rejections."""

from __future__ import annotations

from typing import ClassVar


class BastionError(Exception):
    """Root of every error Bastion raises on purpose."""


class ConfigError(BastionError):
    """A configuration value is invalid; `path` is the dotted location of the setting."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class StoreUnavailable(BastionError):
    """A backing store (database, Redis) could not answer."""

    def __init__(self, backend: str) -> None:
        super().__init__(f"{backend} unavailable")
        self.backend = backend


class Reject(BastionError):
    """A policy or the data plane refuses the request; rendered as problem+json.

    Subclasses set `status`, `code` and `title`. The `detail` must be a fixed public message:
    never a secret, an internal error or a hint about which credential part was wrong.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_request"
    title: ClassVar[str] = "Bad Request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_code = code or self.code
        self.headers: list[tuple[bytes, bytes]] = headers or []
        self.extra = extra or {}


class InvalidRequest(Reject):
    """400: the request is malformed or fails validation."""


class Unauthenticated(Reject):
    """401: no valid credential; carries a `WWW-Authenticate` challenge."""

    status = 401
    code = "unauthenticated"
    title = "Unauthorized"

    def __init__(self, detail: str, *, challenge: str, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers=[(b"www-authenticate", challenge.encode())])


class Forbidden(Reject):
    """403: the caller is known but not allowed."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class InsufficientScope(Forbidden):
    """403 with the RFC 6750 `insufficient_scope` error."""

    code = "insufficient_scope"


class NotFound(Reject):
    """404: no route matches."""

    status = 404
    code = "not_found"
    title = "Not Found"


class MethodNotAllowed(Reject):
    """405: the path exists but not for this method; carries `Allow`."""

    status = 405
    code = "method_not_allowed"
    title = "Method Not Allowed"

    def __init__(self, detail: str, *, allow: list[str]) -> None:
        super().__init__(detail, headers=[(b"allow", ", ".join(allow).encode())])


class Gone(Reject):
    """410: the resource (for example a sunset API version) no longer exists."""

    status = 410
    code = "gone"
    title = "Gone"


class UnprocessableContent(Reject):
    """422: the body is well-formed but does not match its schema (RFC 9110 §15.5.21)."""

    status = 422
    code = "unprocessable_content"
    title = "Unprocessable Content"


class PayloadTooLarge(Reject):
    """413: the request body exceeds the limit."""

    status = 413
    code = "payload_too_large"
    title = "Content Too Large"


class URITooLong(Reject):
    """414: the request target exceeds the limit."""

    status = 414
    code = "uri_too_long"
    title = "URI Too Long"


class UnsupportedMediaType(Reject):
    """415: the request body's media type is not accepted."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"


class RateLimited(Reject):
    """429: too many requests; carries `Retry-After` in whole seconds."""

    status = 429
    code = "rate_limited"
    title = "Too Many Requests"

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = [(b"retry-after", str(max(retry_after, 0)).encode()), *(headers or [])]
        super().__init__(detail, code=code, headers=all_headers)
        self.retry_after = retry_after


class HeadersTooLarge(Reject):
    """431: too many or too large request header fields."""

    status = 431
    code = "headers_too_large"
    title = "Request Header Fields Too Large"


class InternalError(Reject):
    """500: an unexpected failure; the detail is fixed and the cause is only logged."""

    status = 500
    code = "internal_error"
    title = "Internal Server Error"


class BadGateway(Reject):
    """502: the upstream failed or answered with an invalid response."""

    status = 502
    code = "bad_gateway"
    title = "Bad Gateway"


class ServiceUnavailable(Reject):
    """503: no healthy upstream or a required store is unavailable."""

    status = 503
    code = "service_unavailable"
    title = "Service Unavailable"


class GatewayTimeout(Reject):
    """504: the upstream did not answer in time."""

    status = 504
    code = "gateway_timeout"
    title = "Gateway Timeout"


class Respond(BastionError):
    """Not an error: a policy answers the request itself (a CORS preflight, for example).

    Raised from `rewrite`/`access`; the gateway sends the response and skips the upstream.
    Response phases and `log` still run.
    """

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        super().__init__(f"local response {status}")
        self.status = status
        self.headers = headers
        self.body = body
