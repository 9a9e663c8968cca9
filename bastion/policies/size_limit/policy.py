"""The size_limit policy: bounds on body, URI, query parameters and header count."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, URITooLong
from bastion.policies.size_limit.config import SizeLimitConfig

BODY_TOO_LARGE = "The request body is larger than this endpoint accepts."
"""Public detail of the 413 for a body over max_body_bytes."""
URI_TOO_LONG = "The request target is longer than this endpoint accepts."
"""Public detail of the 414 for a target over max_uri_bytes."""
TOO_MANY_QUERY_PARAMS = "The request has more query parameters than this endpoint accepts."
"""Public detail of the 400 for a query over max_query_params."""
TOO_MANY_HEADERS = "The request has more header fields than this endpoint accepts."
"""Public detail of the 431 for a request over max_header_count."""


class SizeLimitPolicy(Policy[SizeLimitConfig]):
    """Refuse requests whose size exceeds the route's limits, before any costly work.

    A declared Content-Length over the limit is refused here; for bodies of unknown length
    (chunked) the limit goes into `ctx.max_body_size`, which the body reader enforces while
    streaming. The tightest limit of all size_limit policies on a route wins. In `report_only`
    mode the limit is reported but not handed to the body reader, which could only enforce it.
    """

    name = "size_limit"
    priority = Priority.HARDEN + 40

    def __init__(self, config: SizeLimitConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._max_body = config.max_body_bytes
        self._max_uri = config.max_uri_bytes
        self._max_params = config.max_query_params
        self._max_headers = config.max_header_count

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
        return None
