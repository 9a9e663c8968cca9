"""The openapi policy: only requests the OpenAPI document describes reach the upstream."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnprocessableContent,
    UnsupportedMediaType,
)
from bastion.policies.openapi.compiler import Operation, check_body, compile_spec
from bastion.policies.openapi.config import OpenAPIConfig
from bastion.policies.openapi.loader import load_spec

UNDOCUMENTED_PATH = "The API description has no such path."
"""Public detail of the 404 for a path the document does not describe."""
UNDOCUMENTED_METHOD = "The API description has no such operation for this path."
"""Public detail of the 405 for a method the document does not describe for the path."""
INVALID_PARAMETERS = "The request parameters do not match the API description."
"""Public detail of the 400 for invalid path, query, header or cookie parameters."""
INVALID_BODY = "The request body cannot be read as the API description requires."
"""Public detail of the 400 for a missing, unparsable or unexpected body."""
UNSUPPORTED_MEDIA = "The request body's media type is not accepted by this operation."
"""Public detail of the 415 for an undocumented Content-Type."""
BODY_INVALID = "The request body does not match the API description."
"""Public detail of the 422 for a body that parses but fails its schema."""


class OpenAPIPolicy(Policy[OpenAPIConfig]):
    """Validate requests against an OpenAPI 3.0/3.1 document compiled once at load.

    Undocumented paths answer 404 and undocumented methods 405; parameters (path, query,
    header, cookie) are parsed by their style, coerced and checked (400); bodies are checked
    per media type (415 for an undocumented one, 400 when unparsable, 422 when they fail the
    schema). Problems are listed in the `errors` member of the problem document, each with
    `in`, `name` or `path`, and a fixed `message`: the client's values are never echoed.
    """

    name = "openapi"
    priority = Priority.VALIDATE
    needs_request_body = True

    def __init__(self, config: OpenAPIConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        document = load_spec(config.spec)
        try:
            self.compiled = compile_spec(document, additional=config.additional)
        except ValueError as exc:
            raise ValueError(f"{config.spec}: {exc}") from None
        self._table = self.compiled.table
        self._additional = config.additional
        self._base = config.base_path
        self._duplicates = config.reject_duplicate_keys
        # Buffer bodies only when some operation has one to check (or to refuse).
        self.needs_request_body = self.compiled.has_bodies or config.additional == "reject"

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The documented operation for `method path`, and its raw path parameter texts.

        Raises:
            NotFound: the document has no matching path.
            MethodNotAllowed: the path exists but not for `method`.
        """
        base = self._base
        if base:
            if path.startswith(base + "/"):
                path = path[len(base) :]
            elif path == base:
                path = "/"
            else:
                raise NotFound(UNDOCUMENTED_PATH, code="undocumented_path")
        found = self._table.match(path)
        if found is None:
            raise NotFound(UNDOCUMENTED_PATH, code="undocumented_path")
        operations, path_values = found
        op = operations.get(method)
        if op is None and method == "HEAD":
            op = operations.get("GET")
        if op is None:
            raise MethodNotAllowed(UNDOCUMENTED_METHOD, allow=sorted(operations))
        return op, path_values

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        op, path_values = self.operation(request.method, request.path)
        problems, new_query = op.check_parameters(
            path_values, request.query, request.headers, self._additional
        )
        if problems:
            raise InvalidRequest(
                INVALID_PARAMETERS, code="invalid_parameters", extra={"errors": problems}
            )
        body = request.body
        if body is None and request.has_body:
            body = b"\x00"  # not buffered: there is a body, and only its presence can be judged
            if op.has_body:
                self._commit(ctx, new_query, None)
                return None
        outcome = check_body(
            op,
            request.headers,
            body,
            additional=self._additional,
            reject_duplicates=self._duplicates,
        )
        if outcome.status == 415:
            raise UnsupportedMediaType(UNSUPPORTED_MEDIA, extra={"errors": outcome.problems})
        if outcome.status == 422:
            raise UnprocessableContent(BODY_INVALID, extra={"errors": outcome.problems})
        if outcome.status:
            raise InvalidRequest(
                INVALID_BODY, code="invalid_body", extra={"errors": outcome.problems}
            )
        self._commit(ctx, new_query, outcome.new_body)
        return None

    def _commit(self, ctx: RequestContext, query: bytes | None, body: bytes | None) -> None:
        """Apply what `strip` removed, unless only reporting."""
        if self.report_only:
            return
        if query is not None:
            ctx.request.query = query
        if body is not None:
            ctx.request.body = body
