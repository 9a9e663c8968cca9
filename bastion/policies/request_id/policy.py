"""The request_id policy: one id per request, sent upstream and echoed to the client."""

from __future__ import annotations

import re

from typing_extensions import override

from bastion.core.context import RequestContext, new_request_id
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.policies.request_id.config import RequestIDConfig

# Incoming ids are logged and forwarded, so only a short, plain alphabet is accepted.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


class RequestIDPolicy(Policy[RequestIDConfig]):
    """Give every request an id: logged, sent to the upstream and returned to the client.

    A client-sent id is kept only with `trust_incoming` and when it is well formed, so an
    untrusted caller cannot choose ids to collide with or forge another request's log lines.
    """

    name = "request_id"
    priority = Priority.OBSERVE + 10

    def __init__(self, config: RequestIDConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._header = config.header.encode("ascii")
        self._trust = config.trust_incoming

    @override
    def rewrite(self, ctx: RequestContext) -> PhaseResult:
        headers = ctx.request.headers
        request_id = None
        if self._trust:
            incoming = headers.get_all(self._header)
            # Several copies are ambiguous (which one would the upstream log?): replace them.
            if len(incoming) == 1 and _VALID_ID.fullmatch(incoming[0]):
                request_id = incoming[0].decode("ascii")
        if request_id is None:
            request_id = new_request_id()
        ctx.request_id = request_id
        headers.set(self._header, request_id.encode("ascii"))
        return None

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        if self.config.echo:
            # The id may be missing if the request was refused before rewrite ran.
            ctx.response_headers.set(self._header, ctx.ensure_request_id().encode("ascii"))
