"""The versioning policy: picks the API version, announces deprecation and sunset, retires it.

How this works: `__init__` turns every configured version into a `_Version` holding its
comparison key, its lifecycle instants as Unix seconds and the response header lines
(`Deprecation`, `Sunset`, `Link`) already encoded. `access` reads the version from the path's
first segment, the configured headers and the `Accept` media-type parameter (in the order of
`sources`), refuses disagreeing or unknown versions with 400 and sunset ones with 410, and puts
the version's name in `ctx.request.extra["api_version"]`. `header_filter` adds the lifecycle
headers to every response of a known version, rejections included (a 410 still points at the
successor). `log` counts requests on versions already deprecated, per version and consumer, and
logs the first request of each pair once per process; it also names the version in
`ctx.request.extra["deprecated_api_version"]`, which the metrics read after the log phase to count
`bastion_deprecated_version_requests_total{route,version}` (the consumer stays out of the labels:
one series per consumer would be unbounded; it is in the log line instead).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import Gone, InvalidRequest
from bastion.policies.versioning.config import VersionConfig, VersioningConfig
from bastion.policies.versioning.headers import (
    MAX_VERSION_CHARS,
    deprecation_value,
    link_value,
    media_type_version,
    normalise_version,
    sunset_value,
)

_log = logging.getLogger("bastion.versioning")

API_VERSION: Final = "api_version"
"""`ctx.request.extra` key holding the resolved version's configured name."""
DEPRECATED_API_VERSION: Final = "deprecated_api_version"
"""`ctx.request.extra` key set by `log` when the request used a deprecated version (its name);
read by `bastion.observability.metrics` (which keeps its own copy of the key: observability does
not import policies)."""
VERSION_SUNSET = "This API version has been retired."
"""Public detail of the 410 for a request to a version past its sunset."""
VERSION_UNKNOWN = "The requested API version does not exist."
"""Public detail of the 400 for a version that is not configured."""
VERSION_CONFLICT = "The request names more than one API version."
"""Public detail of the 400 when the path, headers and media type disagree."""
VERSION_REQUIRED = "The request must name an API version."
"""Public detail of the 400 when no version is given and there is no default."""
ANONYMOUS: Final = "_anonymous"
"""Consumer label of unauthenticated requests in `deprecated_requests`."""
OTHER_CONSUMER: Final = "_other"
"""Consumer label once `MAX_TRACKED` (version, consumer) pairs are counted."""
MAX_TRACKED: Final = 10_000

# A first path segment that looks like a version (`v3`, `v2.1`) but is not configured is an
# unknown version, not an unversioned path.
_VERSION_SEGMENT = re.compile(r"^v\d+(?:\.\d+)*$", re.IGNORECASE)
_SELECTED = "version"


@dataclass(frozen=True, slots=True)
class _Version:
    name: str
    deprecated_at: float | None
    sunset_at: float | None
    headers: tuple[tuple[bytes, bytes], ...]


def _compile(name: str, config: VersionConfig) -> _Version:
    headers: list[tuple[bytes, bytes]] = []
    if config.deprecated_at is not None:
        headers.append((b"deprecation", deprecation_value(config.deprecated_at)))
    if config.sunset_at is not None:
        headers.append((b"sunset", sunset_value(config.sunset_at)))
    for target, relation in (
        (config.successor, "successor-version"),
        (config.deprecation_link, "deprecation"),
        (config.sunset_link, "sunset"),
    ):
        if target is not None:
            headers.append((b"link", link_value(target, relation)))
    return _Version(
        name=name,
        deprecated_at=None if config.deprecated_at is None else config.deprecated_at.timestamp(),
        sunset_at=None if config.sunset_at is None else config.sunset_at.timestamp(),
        headers=tuple(headers),
    )


class VersioningPolicy(Policy[VersioningConfig]):
    """Select the API version of each request and apply its lifecycle.

    Responses of a version with a lifecycle carry `Deprecation` (RFC 9745), `Sunset`
    (RFC 8594) and `Link` headers to the successor and documentation; after `sunset_at` the
    version answers 410 Gone. `deprecated_requests` counts calls to deprecated versions by
    (version, consumer) for metrics.
    """

    name = "versioning"
    priority = Priority.TRANSFORM

    def __init__(self, config: VersioningConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._versions = {
            normalise_version(name): _compile(name, version)
            for name, version in config.versions.items()
        }
        self._default = (
            None if config.default is None else self._versions[normalise_version(config.default)]
        )
        self._from_path = "path" in config.sources
        self._headers = (
            tuple(name.encode() for name in config.headers) if "header" in config.sources else ()
        )
        self._parameter = config.media_type_parameter if "media_type" in config.sources else None
        vary = [name.title() for name in config.headers] if self._headers else []
        if self._parameter is not None:
            vary.append("Accept")
        self._vary = ", ".join(vary).encode() if vary else None
        self.deprecated_requests: dict[tuple[str, str], int] = {}
        """Requests to versions past `deprecated_at`, by (version name, consumer id)."""
        self.max_tracked = MAX_TRACKED
        """Most (version, consumer) pairs counted apart; later consumers count as `_other`."""

    def _lookup(self, value: str) -> _Version:
        if len(value) > MAX_VERSION_CHARS:
            raise InvalidRequest(VERSION_UNKNOWN, code="unknown_api_version")
        found = self._versions.get(normalise_version(value))
        if found is None:
            raise InvalidRequest(VERSION_UNKNOWN, code="unknown_api_version")
        return found

    def _requested(self, ctx: RequestContext) -> _Version | None:
        chosen: _Version | None = None
        request = ctx.request
        candidates: list[str] = []
        if self._from_path:
            segment = request.path[1:].partition("/")[0]
            if normalise_version(segment) in self._versions or _VERSION_SEGMENT.match(segment):
                candidates.append(segment)
        for header in self._headers:
            for raw in request.headers.get_all(header):
                candidates.append(raw.decode("latin-1"))
        if self._parameter is not None:
            for accept in request.headers.get_all(b"accept"):
                found = media_type_version(accept, self._parameter)
                if found is not None:
                    candidates.append(found)
        for value in candidates:
            version = self._lookup(value)
            if chosen is not None and version is not chosen:
                raise InvalidRequest(VERSION_CONFLICT, code="conflicting_api_version")
            chosen = version
        return chosen

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        version = self._requested(ctx) or self._default
        if version is None:
            raise InvalidRequest(VERSION_REQUIRED, code="api_version_required")
        ctx.state(self)[_SELECTED] = version
        ctx.request.extra[API_VERSION] = version.name
        if version.sunset_at is not None and self.deps.clock.time() >= version.sunset_at:
            raise Gone(VERSION_SUNSET, code="api_version_sunset")
        return None

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        headers = ctx.response_headers
        if self._vary is not None:
            headers.add(b"vary", self._vary)
        version = ctx.state(self).get(_SELECTED)
        if isinstance(version, _Version):
            for name, value in version.headers:
                if name == b"link":
                    headers.add(name, value)
                else:
                    headers.set(name, value)  # the gateway's lifecycle wins over the upstream's

    @override
    def log(self, ctx: RequestContext) -> None:
        version = ctx.state(self).get(_SELECTED)
        if not isinstance(version, _Version) or version.deprecated_at is None:
            return
        if self.deps.clock.time() < version.deprecated_at:
            return
        ctx.request.extra[DEPRECATED_API_VERSION] = version.name
        identity = ctx.identity
        consumer = identity.consumer_id if identity is not None else ANONYMOUS
        key = (version.name, consumer)
        counts = self.deprecated_requests
        count = counts.get(key)
        if count is None:
            if len(counts) >= self.max_tracked:
                key = (version.name, OTHER_CONSUMER)
                count = counts.get(key, 0)
            else:
                count = 0
                _log.warning(
                    "deprecated API version %s called by %s on route %s",
                    version.name,
                    consumer,
                    ctx.route,
                    extra={
                        "ecs_fields": {
                            "event": {"action": "deprecated_api_version", "kind": "event"},
                            "user": {"id": consumer},
                            "bastion": {"api_version": version.name, "route": ctx.route},
                        }
                    },
                )
        counts[key] = count + 1

    def deprecated_total(self, version: str | None = None) -> int:
        """Requests counted on deprecated versions (all, or of version `version`)."""
        return sum(
            count
            for (name, _), count in self.deprecated_requests.items()
            if version is None or name == version
        )
