"""The size_limit policy: bounds on body, URI, query parameters, header count and JSON shape."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, URITooLong
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.size_limit.json_caps import Cap, InvalidJSON, JSONCaps, parse_capped

PARSED_JSON = "bastion.parsed_json"
"""`Request.extra` key of `(body, document)`: the openapi policy reuses the parse."""

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
_CAP_CODES: dict[Cap, str] = {
    "max_json_depth": "json_too_deep",
    "max_json_array_length": "json_array_too_long",
    "max_json_string_length": "json_string_too_long",
    "max_json_keys": "json_too_many_keys",
}


class SizeLimitPolicy(Policy[SizeLimitConfig]):
    """Refuse requests whose size exceeds the route's limits, before any costly work.

    A declared Content-Length over the limit is refused here; for bodies of unknown length
    (chunked) the limit goes into `ctx.max_body_size`, which the body reader enforces while
    streaming. The tightest limit of all size_limit policies on a route wins. In `report_only`
    mode the limit is reported but not handed to the body reader, which could only enforce it.

    With a `max_json_*` cap set, JSON bodies (`application/json`, `*/*+json`) are buffered,
    parsed once and measured; the parsed document is left in `Request.extra` for the openapi
    policy. A body declared as JSON that does not parse is refused (400 `invalid_json`): an
    upstream parser more lenient than orjson could otherwise read a shape never measured.
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
        declared = request.content_length
        if request.body is not None:
            declared = max(declared or 0, len(request.body))
        if declared is not None and declared > self._max_body:
            raise PayloadTooLarge(BODY_TOO_LARGE)
        if not self.report_only:
            current = ctx.max_body_size
            ctx.max_body_size = self._max_body if current is None else min(current, self._max_body)
        if (
            request.body
            and self.needs_request_body
            and _is_json(request.headers.get(b"content-type"))
        ):
            self._check_json(ctx, request.body)
        return None

    def _check_json(self, ctx: RequestContext, body: bytes) -> None:
        try:
            document, cap = parse_capped(body, self._caps)
        except InvalidJSON:
            raise InvalidRequest(NOT_JSON, code="invalid_json") from None
        if cap is not None:
            code = _CAP_CODES[cap]
            if cap == "max_json_depth":
                raise InvalidRequest(JSON_TOO_DEEP, code=code, extra={"limit": cap})
            raise PayloadTooLarge(JSON_TOO_LARGE, code=code, extra={"limit": cap})
        ctx.request.extra[PARSED_JSON] = (body, document)


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")
