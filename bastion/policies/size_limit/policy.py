"""The size_limit policy: bounds on body, URI, query parameters, header count and JSON shape."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, URITooLong
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.size_limit.json_body import PARSED_JSON, json_content_type
from bastion.policies.size_limit.json_caps import (
    Cap,
    DuplicateJSONKey,
    InvalidJSON,
    JSONCaps,
    parse_capped,
)

__all__ = ["PARSED_JSON", "SizeLimitPolicy"]

BODY_TOO_LARGE = "The request body is larger than this endpoint accepts."
"""Public detail of the 413 for a body over max_body_bytes."""
URI_TOO_LONG = "The request target is longer than this endpoint accepts."
"""Public detail of the 414 for a target over max_uri_bytes."""
TOO_MANY_QUERY_PARAMS = "The request has more query parameters than this endpoint accepts."
"""Public detail of the 400 for a query over max_query_params."""
TOO_MANY_HEADERS = "The request has more header fields than this endpoint accepts."
"""Public detail of the 431 for a request over max_header_count."""
JSON_TOO_DEEP = "The JSON body is nested deeper than this endpoint accepts."
"""Public detail of the 400 for a body over max_json_depth."""
JSON_TOO_LARGE = "The JSON body has a part larger than this endpoint accepts."
"""Public detail of the 413 for a body over max_json_array_length, _string_length or _keys."""
NOT_JSON = "The request body is not valid JSON."
"""Public detail of the 400 for a JSON body whose caps cannot be measured."""
DUPLICATE_KEY = "The JSON body repeats an object key."
"""Public detail of the 400 for a JSON body with a repeated key (JSON caps set)."""
_CAP_CODES: dict[Cap, str] = {
    "max_json_depth": "json_too_deep",
    "max_json_array_length": "json_array_too_long",
    "max_json_string_length": "json_string_too_long",
    "max_json_keys": "json_too_many_keys",
}


class SizeLimitPolicy(Policy[SizeLimitConfig]):
    """Refuse requests whose size exceeds the route's limits, before any costly work.

    The body limit is applied in `rewrite`, before any policy has the body buffered: a
    declared Content-Length over the limit is refused there, and for bodies of unknown length
    (chunked) the limit goes into `ctx.max_body_size`, which the body reader enforces while
    buffering or streaming. The tightest limit of all size_limit policies on a route wins. In
    `report_only` mode the limit is reported but not handed to the body reader, which could
    only enforce it. The other limits are checked in `access`.

    With a `max_json_*` cap set, JSON bodies (`application/json`, `*/*+json`) are buffered,
    parsed once and measured; the parsed document is left in `Request.extra` for the openapi
    and injection_guard policies. A body declared as JSON that does not parse is refused (400
    `invalid_json`), and so is one repeating an object key (400 `duplicate_json_key`): an
    upstream parser more lenient than this one, or one reading another of a repeated key's
    values, could otherwise read a shape never measured.
    """

    name = "size_limit"
    priority = Priority.HARDEN + 40

    def __init__(self, config: SizeLimitConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._max_body = config.max_body_bytes
        self._max_uri = config.max_uri_bytes
        self._max_params = config.max_query_params
        self._max_headers = config.max_header_count
        self._caps = JSONCaps(
            config.max_json_depth,
            config.max_json_array_length,
            config.max_json_string_length,
            config.max_json_keys,
        )
        self.needs_request_body = self._caps.active

    @override
    def rewrite(self, ctx: RequestContext) -> PhaseResult:
        # The front doors buffer the body between rewrite and access: arm the limit first.
        declared = ctx.request.content_length
        if declared is not None and declared > self._max_body:
            raise PayloadTooLarge(BODY_TOO_LARGE)
        if not self.report_only:
            current = ctx.max_body_size
            ctx.max_body_size = self._max_body if current is None else min(current, self._max_body)
        return None

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        if self._max_uri is not None:
            length = len(request.target) or (
                len(request.path) + (len(request.query) + 1 if request.query else 0)
            )
            if length > self._max_uri:
                raise URITooLong(URI_TOO_LONG)
        if self._max_params is not None and request.query:
            query = request.query
            # Counting separators first keeps the common case free of a split.
            if query.count(b"&") >= self._max_params and (
                sum(1 for part in query.split(b"&") if part) > self._max_params
            ):
                raise InvalidRequest(TOO_MANY_QUERY_PARAMS, code="too_many_query_params")
        if self._max_headers is not None and len(request.headers) > self._max_headers:
            raise HeadersTooLarge(TOO_MANY_HEADERS)
        body = request.body
        declared = request.content_length
        if (
            body is not None
            and len(body) > self._max_body
            and (declared is None or declared <= self._max_body)  # else rewrite refused it
        ):
            # A body buffered past the limit: only when reporting (see rewrite).
            raise PayloadTooLarge(BODY_TOO_LARGE)
        if (
            body
            and self.needs_request_body
            and json_content_type(request.headers.get(b"content-type"))
        ):
            self._check_json(ctx, body)
        return None

    def _check_json(self, ctx: RequestContext, body: bytes) -> None:
        try:
            document, cap = parse_capped(body, self._caps)
        except DuplicateJSONKey:
            raise InvalidRequest(DUPLICATE_KEY, code="duplicate_json_key") from None
        except InvalidJSON:
            raise InvalidRequest(NOT_JSON, code="invalid_json") from None
        if cap is not None:
            code = _CAP_CODES[cap]
            if cap == "max_json_depth":
                raise InvalidRequest(JSON_TOO_DEEP, code=code, extra={"limit": cap})
            raise PayloadTooLarge(JSON_TOO_LARGE, code=code, extra={"limit": cap})
        ctx.request.extra[PARSED_JSON] = (body, document)
