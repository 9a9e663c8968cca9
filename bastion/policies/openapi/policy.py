"""The openapi policy: only requests (and responses) the OpenAPI document describes pass.

How response validation works: `access` records the matched operation in the request's
state. `header_filter` looks up the documented response for the upstream's status and checks
its media type; a mismatch is decided at once (in `enforce`, the head is replaced by a 502
problem and the upstream body is dropped). When the body must be judged (a JSON schema to
check or undocumented fields to strip), `body_filter` holds the chunks back, up to
`max_response_bytes`; past that bound it releases them and lets the rest stream unvalidated
(with a log event), so memory stays bounded. At the end the body is checked, stripped, or
replaced by the 502 problem. Replacing the status after the body was seen needs a front door
that sends the head only with the first body bytes (see docs/validation.md).

A compressed body cannot be judged here, so a client must not be able to switch the checks
off by asking for one: `access` sets the forwarded `Accept-Encoding` to `identity`. An
upstream that compresses anyway fails `enforce` (502); otherwise the body is forwarded as
it came, with a `response_not_validated` event, never silently unstripped.
"""

from __future__ import annotations

import logging

from typing_extensions import override

from bastion.core.context import PolicyReport, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import (
    BadGateway,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnprocessableContent,
    UnsupportedMediaType,
)
from bastion.http.headers import Headers
from bastion.http.response import problem_response
from bastion.policies.openapi.compiler import (
    MAX_PROBLEMS,
    MultipartLimits,
    Operation,
    check_body,
    compile_spec,
)
from bastion.policies.openapi.config import OpenAPIConfig
from bastion.policies.openapi.loader import load_spec
from bastion.policies.openapi.responses import ResponseMedia, check_json
from bastion.policies.size_limit.policy import PARSED_JSON

_log = logging.getLogger("bastion.openapi")

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
INVALID_RESPONSE = "The upstream response does not match the API description."
"""Public detail of the 502 that replaces an invalid upstream response (`enforce`)."""
RESPONSE_NOT_VALIDATED = "The upstream response was forwarded without validation."
"""Detail of the log event for a response too large (or encoded) to validate."""
RESPONSE_NOT_STRIPPED = "The upstream response was forwarded without stripping."
"""Detail of the log event for a response whose numbers stripping cannot write back."""

# Report codes of response validation (the client sees `invalid_upstream_response` only).
UNDOCUMENTED_STATUS = "undocumented_response_status"
UNDOCUMENTED_MEDIA = "undocumented_response_media"
UNDOCUMENTED_FIELDS = "undocumented_response_fields"
INVALID_UPSTREAM = "invalid_upstream_response"
NOT_VALIDATED = "response_not_validated"
NOT_STRIPPED = "response_not_stripped"
_IDENTITY = b"identity"
_LOGGED_NAMES = 5
_LOGGED_NAME_CHARS = 8

_NO_BODY_STATUS = frozenset({204, 304})


class OpenAPIPolicy(Policy[OpenAPIConfig]):
    """Validate requests against an OpenAPI 3.0/3.1 document compiled once at load.

    Undocumented paths answer 404 and undocumented methods 405; parameters (path, query,
    header, cookie) are parsed by their style, coerced and checked (400); bodies are checked
    per media type (415 for an undocumented one, 400 when unparsable, 422 when they fail the
    schema). Problems are listed in the `errors` member of the problem document, each with
    `in`, `name` or `path`, and a fixed `message`: the client's values are never echoed.

    With `validate_responses` or `strip_undocumented_response_fields`, upstream responses are
    checked against the operation's documented responses (see the module docstring).
    """

    name = "openapi"
    priority = Priority.VALIDATE
    needs_request_body = True

    def __init__(self, config: OpenAPIConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        document = load_spec(config.spec)
        # Responses are judged only on request: compiling their schemas costs load time.
        self._response_mode = config.validate_responses
        if self.report_only and self._response_mode == "enforce":
            self._response_mode = "report_only"
        self._strip_responses = config.strip_undocumented_response_fields and not self.report_only
        self._responses = self._response_mode != "off" or self._strip_responses
        self._max_response = config.max_response_bytes
        self._multipart = MultipartLimits(
            config.max_multipart_parts, config.max_multipart_part_bytes
        )
        try:
            self.compiled = compile_spec(
                document,
                additional=config.additional,
                responses=config.validate_responses != "off"
                or config.strip_undocumented_response_fields,
            )
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
        if self._responses:
            ctx.state(self)["op"] = op
            # A compressed response could not be checked: the client must not choose one.
            request.headers.set(b"accept-encoding", _IDENTITY)
        body = request.body
        if body is None and request.has_body:
            body = b"\x00"  # not buffered: there is a body, and only its presence can be judged
            if op.has_body:
                self._commit(ctx, new_query, None)
                return None
        parsed = request.extra.get(PARSED_JSON)
        outcome = check_body(
            op,
            request.headers,
            body,
            additional=self._additional,
            reject_duplicates=self._duplicates,
            limits=self._multipart,
            **({"parsed": parsed[1]} if isinstance(parsed, tuple) and parsed[0] is body else {}),
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

    @override
    def overrides(self, phase: str) -> bool:
        # Without response checks, the response phases stay off the chain: a body filter
        # would make the front door drop Content-Length and chunk every response.
        if phase in ("header_filter", "body_filter") and not self._responses:
            return False
        return super().overrides(phase)

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        state = ctx.state(self)
        op = state.get("op")
        if not isinstance(op, Operation) or op.responses is None or ctx.reject is not None:
            return
        status = ctx.status
        spec = op.responses.lookup(status)
        if spec is None:
            self._violation(ctx, UNDOCUMENTED_STATUS, early=True)
            return
        if ctx.request.method == "HEAD" or status in _NO_BODY_STATUS:
            return
        headers = ctx.response_headers
        state["upstream_headers"] = set(headers.items())
        content_type = headers.get(b"content-type")
        if content_type is None:
            state["body"] = "absent"  # only a body actually sent is wrong
            return
        media_type = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        media = spec.media_for(media_type)
        if media is None:
            self._violation(ctx, UNDOCUMENTED_MEDIA, early=True)
            return
        if not media.json or media.validator is None:
            return
        encoding = headers.get(b"content-encoding")
        if encoding is not None and encoding.strip().lower() != _IDENTITY:
            # Encoded although `identity` was asked for: the body cannot be parsed here.
            if self._response_mode == "enforce":
                self._violation(ctx, INVALID_UPSTREAM, early=True)
            else:
                self._not_validated(ctx)
            return
        state["media"] = media
        state["buffer"] = []
        state["size"] = 0
        headers.remove(b"content-length")  # the body may change or be replaced

    @override
    def body_filter(self, ctx: RequestContext, chunk: bytes, end: bool) -> bytes:
        state = ctx.state(self)
        replacement = state.get("replacement")
        if isinstance(replacement, bytes):
            return replacement if end else b""  # the upstream body never reaches the client
        if state.get("body") == "absent":
            if chunk:
                del state["body"]
                replaced = self._violation(ctx, UNDOCUMENTED_MEDIA, early=False)
                if replaced is not None:
                    return replaced if end else b""
            return chunk
        buffer = state.get("buffer")
        if not isinstance(buffer, list):
            return chunk
        size = state["size"]
        assert isinstance(size, int)  # noqa: S101 - set together with the buffer
        size += len(chunk)
        if size > self._max_response:
            # Past the bound: release what was held and stream the rest unchecked.
            del state["buffer"]
            self._not_validated(ctx)
            buffer.append(chunk)
            return b"".join(buffer)
        buffer.append(chunk)
        state["size"] = size
        if not end:
            return b""
        del state["buffer"]
        body = b"".join(buffer)
        media = state["media"]
        assert isinstance(media, ResponseMedia)  # noqa: S101 - set together with the buffer
        try:
            return self._judge(ctx, media, body)
        except Exception:  # noqa: BLE001 - a checking bug must not lose or leak the response
            _log.exception("route %s: response check failed", ctx.route)
            replaced = self._violation(ctx, INVALID_UPSTREAM, early=False)
            return replaced if replaced is not None else body

    def _judge(self, ctx: RequestContext, media: ResponseMedia, body: bytes) -> bytes:
        """The body to send for a complete, buffered JSON response."""
        checked = check_json(media, body, strip=self._strip_responses, limit=MAX_PROBLEMS)
        out = body if checked.new_body is None else checked.new_body
        if checked.new_body is not None:
            ctx.response_headers.set(b"content-length", str(len(out)).encode())
        if checked.unstrippable:
            _log.warning("route %s: upstream response forwarded without stripping", ctx.route)
            ctx.reports.append(PolicyReport(self.name, 0, NOT_STRIPPED, RESPONSE_NOT_STRIPPED))
        if checked.ok or self._response_mode == "off":
            return out
        code = INVALID_UPSTREAM if checked.problems else UNDOCUMENTED_FIELDS
        # Property names can be user data (a map keyed by e-mail address): counts, the
        # validator's keywords and a few clipped names only.
        _log.warning(
            "route %s: upstream response does not match the API description (%s): "
            "%d undocumented properties %s, %d other problems %s",
            ctx.route,
            code,
            len(checked.undocumented),
            _clipped_names(checked.undocumented),
            len(checked.problems),
            sorted({p["message"] for p in checked.problems}),
        )
        replaced = self._violation(ctx, code, early=False)
        return replaced if replaced is not None else out

    def _violation(self, ctx: RequestContext, code: str, *, early: bool) -> bytes | None:
        """Record a mismatch; in `enforce`, replace the response and return its body."""
        if self._response_mode == "report_only":
            ctx.reports.append(PolicyReport(self.name, 502, code, INVALID_RESPONSE))
            return None
        if self._response_mode == "off":
            return None
        reject = BadGateway(INVALID_RESPONSE, code=INVALID_UPSTREAM)
        ctx.reject = reject
        ctx.rejected_by = self.name
        problem = problem_response(reject, ctx.ensure_request_id())
        state = ctx.state(self)
        if early:
            # Before any other policy added its headers: nothing of the upstream's is kept.
            headers = problem.headers
        else:
            # Other policies' headers (security headers, request id, CORS) stay; the
            # upstream's go.
            upstream = state.get("upstream_headers")
            kept = [
                item
                for item in ctx.response_headers.items()
                if not (isinstance(upstream, set) and item in upstream)
            ]
            headers = Headers(kept)
            for name, value in problem.headers.items():
                headers.set(name, value)
        headers.set(b"content-length", str(len(problem.body)).encode())
        ctx.status = reject.status
        ctx.response_headers = headers
        state["replacement"] = problem.body
        state.pop("buffer", None)
        return problem.body

    def _not_validated(self, ctx: RequestContext) -> None:
        _log.warning("route %s: upstream response forwarded without validation", ctx.route)
        ctx.reports.append(PolicyReport(self.name, 0, NOT_VALIDATED, RESPONSE_NOT_VALIDATED))


def _clipped_names(pointers: list[str]) -> list[str]:
    """The last segments of a few JSON pointers, each cut to a few characters."""
    names = []
    for pointer in pointers[:_LOGGED_NAMES]:
        name = pointer.rpartition("/")[2]
        names.append(name if len(name) <= _LOGGED_NAME_CHARS else name[:_LOGGED_NAME_CHARS] + "…")
    return names
