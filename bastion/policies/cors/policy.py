"""The cors policy: answers preflights and labels responses for allowed browser origins."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import Forbidden, Respond
from bastion.http.headers import Headers
from bastion.policies.cors.config import WILDCARD, CORSConfig

ORIGIN_NOT_ALLOWED = "The origin is not allowed to make cross-origin requests."
"""Public detail of the 403 for a preflight from an origin not in allow_origins."""

CORS_PREFLIGHT = "cors_preflight"
"""`ctx.request.extra` key set to True on a CORS preflight (rate limiters skip those)."""

_ALLOW_ORIGIN = b"access-control-allow-origin"
_ALLOW_CREDENTIALS = b"access-control-allow-credentials"
_EXPOSE_HEADERS = b"access-control-expose-headers"
_REQUEST_METHOD = b"access-control-request-method"
# Upstream CORS headers are dropped so that this policy's configuration is the only one in force
# (an upstream that reflects any origin would otherwise undo it).
_UPSTREAM_CORS = frozenset(
    {
        _ALLOW_ORIGIN,
        _ALLOW_CREDENTIALS,
        _EXPOSE_HEADERS,
        b"access-control-allow-methods",
        b"access-control-allow-headers",
        b"access-control-max-age",
    }
)
_ANSWERED = "answered"


def _add_vary_origin(headers: Headers) -> None:
    """Make sure `Vary` lists Origin, keeping what the upstream put there."""
    for value in headers.get_all(b"vary"):
        for item in value.split(b","):
            if item.strip(b" \t").lower() in (b"*", b"origin"):
                return
    headers.add(b"vary", b"Origin")


class CORSPolicy(Policy[CORSConfig]):
    """Apply the CORS protocol of the Fetch standard for the configured origins.

    A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here
    with 204 and never reaches authentication or the upstream; one from an origin not allowed
    gets 403. Other requests pass through, and their responses carry
    `Access-Control-Allow-Origin` only when the origin is allowed, so a browser lets only
    those pages read them. Fetch standard: https://fetch.spec.whatwg.org/#http-cors-protocol
    """

    name = "cors"
    priority = Priority.CORS

    def __init__(self, config: CORSConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._any = config.allow_origins == [WILDCARD]
        self._origins = frozenset(origin.encode("ascii") for origin in config.allow_origins)
        common: list[tuple[bytes, bytes]] = []
        if config.allow_credentials:
            common.append((_ALLOW_CREDENTIALS, b"true"))
        preflight = list(common)
        preflight.append(
            (b"access-control-allow-methods", ", ".join(config.allow_methods).encode())
        )
        if config.allow_headers:
            preflight.append(
                (b"access-control-allow-headers", ", ".join(config.allow_headers).encode())
            )
        preflight.append((b"access-control-max-age", str(config.max_age).encode()))
        if config.expose_headers:
            common.append((_EXPOSE_HEADERS, ", ".join(config.expose_headers).encode()))
        self._preflight_headers = tuple(preflight)
        self._response_headers = tuple(common)

    def _allow_origin(self, origin: bytes | None) -> bytes | None:
        """The Access-Control-Allow-Origin value for `origin`, or None if it is not allowed."""
        if origin is None:
            return None
        if self._any:
            return b"*"
        return origin if origin in self._origins else None

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        request = ctx.request
        if request.method != "OPTIONS":
            return None
        origin = request.headers.get(b"origin")
        if origin is None or _REQUEST_METHOD not in request.headers:
            return None  # a plain OPTIONS request, for the upstream
        request.extra[CORS_PREFLIGHT] = True
        allowed = self._allow_origin(origin)
        if allowed is None:
            raise Forbidden(ORIGIN_NOT_ALLOWED, code="cors_origin_not_allowed")
        headers = [(_ALLOW_ORIGIN, allowed)]
        if not self._any:
            headers.append((b"vary", b"Origin"))
        headers.extend(self._preflight_headers)
        ctx.state(self)[_ANSWERED] = True
        raise Respond(204, headers)

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        if ctx.state(self).get(_ANSWERED):
            return  # our own preflight answer already carries its headers
        headers = ctx.response_headers
        headers.remove_many(_UPSTREAM_CORS)
        if not self._any:
            # The answer depends on Origin even when it is absent or refused: caches must know.
            _add_vary_origin(headers)
        # Read from the request, not from state: access may not have run (an earlier reject).
        allowed = self._allow_origin(ctx.request.headers.get(b"origin"))
        if allowed is None:
            return
        headers.set(_ALLOW_ORIGIN, allowed)
        for name, value in self._response_headers:
            headers.set(name, value)
