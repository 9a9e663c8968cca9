"""Security events: one ECS JSON line per policy rejection, report_only decision or config reload.

Each event is a document of its own (`event.dataset: bastion.security`), next to the access log
line of the same request (joined by `trace.id`), so a SIEM can alert on events without parsing
access logs. Classification (ECS categorisation fields):

- authentication policy (api_key, basic_auth, jwt, introspection) or any 401: kind `event`,
  category `authentication`, type `info`;
- intrusion-like policy (injection_guard, brute_force, ip_filter) or code (`INTRUSION_CODES`):
  kind `alert`, category `intrusion_detection`, type `denied` (`allowed` in report_only);
- anything else (rate limit, size, validation, scopes, CORS, no route): kind `event`,
  category `web`, type `info`;
- a config reload: kind `event`, category `configuration`, type `change`;
- a failed TLS handshake: kind `event`, category `network`, type `connection` + `denied` (or
  `end` when the client went away or timed out), `tls.established: false`;
- a source blocked or unblocked (anomaly auto-block, admin API): kind `alert` (`event` when
  lifted), category `intrusion_detection`, type `denied` (`info` when lifted).

`event.action` is the error code (`rate_limited`), `rule.name` is `<policy>.<code>`,
`event.outcome` is `failure` (the check failed; `bastion.mode` tells whether the request was
refused, `enforce`, or let through, `report_only`) and `event.reason` is the public detail
message of the rejection (a fixed string, never request data).
"""

from __future__ import annotations

import time
from typing import Final, Literal

import orjson

from bastion.clock import Clock
from bastion.core.context import RequestContext
from bastion.observability.logging import ECS_VERSION, redact
from bastion.observability.sinks import Sink
from bastion.proxy.tls import HANDSHAKE_REASONS, HandshakeFailure

DATASET: Final = "bastion.security"
AUTHENTICATION_POLICIES: Final = frozenset({"api_key", "basic_auth", "jwt", "introspection"})
INTRUSION_POLICIES: Final = frozenset({"injection_guard", "brute_force", "ip_filter"})
# Codes that are intrusion-like whichever policy raised them.
INTRUSION_CODES: Final = frozenset(
    {
        "injection_detected",
        "locked_out",
        "ip_denied",
        "path_traversal",
        "scanner_detected",
        # Refused by the HTTP layer: smuggling-shaped framing and ambiguous paths.
        "bad_framing",
        "bad_path",
        # Refused before routing because the client address is blocked.
        "source_blocked",
    }
)
_OPT: Final = orjson.OPT_APPEND_NEWLINE

Category = Literal["authentication", "intrusion_detection", "web"]
Mode = Literal["enforce", "report_only"]


def classify(policy: str, code: str, status: int) -> tuple[Literal["alert", "event"], Category]:
    """The ECS `event.kind` and `event.category` of a decision by `policy` with `code`."""
    if policy in INTRUSION_POLICIES or code in INTRUSION_CODES:
        return "alert", "intrusion_detection"
    if policy in AUTHENTICATION_POLICIES or status == 401:
        return "event", "authentication"
    return "event", "web"


class SecurityEvents:
    """Writes security event lines to a sink; `record(ctx)` runs in every request's log phase.

    Args:
        sink: Destination of the lines (the access log's sink, or one of their own).
        clock: Source of `@timestamp`.
        service_name: ECS `service.name` of this gateway.
    """

    __slots__ = ("_clock", "_ecs", "_second", "_second_text", "_service", "_sink", "failed")

    def __init__(self, sink: Sink, clock: Clock, *, service_name: str = "bastion") -> None:
        self._sink = sink
        self._clock = clock
        self._ecs = {"version": ECS_VERSION}
        self._service = {"name": service_name}
        self._second = -1
        self._second_text = ""
        self.failed = 0

    def _timestamp(self) -> str:
        whole, micros = divmod(round(self._clock.time() * 1_000_000), 1_000_000)
        if whole != self._second:
            self._second = whole
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return f"{self._second_text}.{micros // 1000:03d}Z"

    def record(self, ctx: RequestContext) -> None:
        """Write one event per rejection and per report_only decision of `ctx`; never raises."""
        reject = ctx.reject
        if ctx.rejected_by is not None and reject is not None:
            self._decision(
                ctx, ctx.rejected_by, reject.error_code, reject.status, reject.detail, "enforce"
            )
        for report in ctx.reports:
            self._decision(
                ctx, report.policy, report.code, report.status, report.detail, "report_only"
            )

    def _decision(
        self, ctx: RequestContext, policy: str, code: str, status: int, detail: str, mode: Mode
    ) -> None:
        kind, category = classify(policy, code, status)
        if category == "intrusion_detection":
            event_type = "denied" if mode == "enforce" else "allowed"
        else:
            event_type = "info"
        request = ctx.request
        verb = "refused" if mode == "enforce" else "would refuse"
        bastion: dict[str, object] = {"policy": policy, "mode": mode, "status": status}
        if ctx.route is not None:
            bastion["route"] = ctx.route
        if ctx.service is not None:
            bastion["service"] = ctx.service
        http: dict[str, object] = {"request": {"method": request.method}}
        if ctx.status:
            http["response"] = {"status_code": ctx.status}
        doc: dict[str, object] = {
            "@timestamp": self._timestamp(),
            "ecs": self._ecs,
            "message": f"{policy} {verb} the request: {code}",
            "event": {
                "kind": kind,
                "category": [category],
                "type": [event_type],
                "action": code,
                "dataset": DATASET,
                "outcome": "failure",
                "reason": redact(detail),
            },
            "rule": {"name": f"{policy}.{code}"},
            "http": http,
            "url": {"path": request.path},
            "client": {"ip": request.client_ip},
            "source": {"ip": request.peer_ip},
            "service": self._service,
            "bastion": bastion,
        }
        if ctx.request_id:
            doc["trace"] = {"id": ctx.request_id}
        if ctx.identity is not None:
            doc["user"] = {"id": ctx.identity.consumer_id}
        self._write(doc)

    def config_reload(self, *, success: bool, revision: int, error: str | None = None) -> None:
        """Write the event of a configuration reload attempt (`error`: why it was refused)."""
        doc: dict[str, object] = {
            "@timestamp": self._timestamp(),
            "ecs": self._ecs,
            "message": f"configuration reloaded (revision {revision})"
            if success
            else "configuration reload refused, the previous one is still in use",
            "event": {
                "kind": "event",
                "category": ["configuration"],
                "type": ["change"],
                "action": "config-reload",
                "dataset": DATASET,
                "outcome": "success" if success else "failure",
            },
            "service": self._service,
            "bastion": {"config_revision": revision},
        }
        if error is not None:
            doc["error"] = {"message": redact(error)}
        self._write(doc)

    def admin_change(self, action: str, *, success: bool) -> None:
        """Write the event of a change attempted through the admin API (never its values)."""
        doc: dict[str, object] = {
            "@timestamp": self._timestamp(),
            "ecs": self._ecs,
            "message": f"admin API: {action}" + ("" if success else " (refused)"),
            "event": {
                "kind": "event",
                "category": ["configuration", "iam"],
                "type": ["change"],
                "action": f"admin-{action}",
                "dataset": DATASET,
                "outcome": "success" if success else "failure",
            },
            "service": self._service,
            "user": {"name": "admin-api"},
        }
        self._write(doc)

    def tls_handshake_failure(self, failure: HandshakeFailure) -> None:
        """Write the event of a TLS handshake that failed (`reason`: why, as far as TLS says)."""
        text = HANDSHAKE_REASONS[failure.reason]
        gone = failure.reason in ("closed", "timeout")
        source: dict[str, object] = {"ip": failure.peer_ip, "port": failure.peer_port}
        doc: dict[str, object] = {
            "@timestamp": self._timestamp(),
            "ecs": self._ecs,
            "message": f"TLS handshake failed: {text}",
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": ["connection", "end" if gone else "denied"],
                "action": "tls-handshake-failed",
                "dataset": DATASET,
                "outcome": "failure",
                "reason": text,
            },
            "tls": {"established": False},
            "error": {"code": failure.detail},
            "source": source,
            "client": {"ip": failure.peer_ip},
            "service": self._service,
            "bastion": {"listener": failure.listener, "tls_failure": failure.reason},
        }
        if not failure.peer_ip:  # a Unix socket or a peer already gone: no address known
            del doc["client"]
            doc["source"] = {}
        self._write(doc)

    def source_blocked(
        self, source: str, *, blocked: bool, reason: str, until: float | None, by: str
    ) -> None:
        """Write the event of a source (address or CIDR) blocked or unblocked.

        Args:
            source: The address or CIDR.
            blocked: True for a new block, False when one is lifted.
            reason: Why (`anomaly.error_ratio` or the admin's note, redacted).
            until: When the block ends (Unix seconds), for new blocks.
            by: `anomaly` or `admin-api`.
        """
        action = "source-blocked" if blocked else "source-unblocked"
        bastion: dict[str, object] = {"blocked_source": source, "blocked_by": by}
        if until is not None:
            bastion["blocked_until"] = round(until, 3)
        doc: dict[str, object] = {
            "@timestamp": self._timestamp(),
            "ecs": self._ecs,
            "message": f"{source} {'blocked' if blocked else 'unblocked'} by {by}",
            "event": {
                "kind": "alert" if blocked else "event",
                "category": ["intrusion_detection"],
                "type": ["denied" if blocked else "info"],
                "action": action,
                "dataset": DATASET,
                "outcome": "success",
                "reason": redact(reason),
            },
            "rule": {"name": f"blocked_sources.{action}"},
            "service": self._service,
            "bastion": bastion,
        }
        if "/" not in source:
            doc["source"] = {"ip": source}
        self._write(doc)

    def _write(self, doc: dict[str, object]) -> None:
        try:
            line = orjson.dumps(doc, option=_OPT)
        except TypeError:  # orjson.JSONEncodeError: a field held something unserialisable
            self.failed += 1
            return
        self._sink.write(line)
