"""Per-client anomaly scores from error ratios, and an ECS alert when a client crosses the line.

How this works: for each client address the detector keeps two exponentially decaying sums,
all responses and "suspicious" ones (400, 401, 403, 404, 429, each with a weight: refused
credentials and permissions count fully, 404s, typical of a scanner walking paths but also of
a broken link, count half), decayed with a half-life of `half_life` seconds. The score is their
ratio, from 0 (nothing suspicious) to 1 (everything refused). A client whose score reaches
`threshold` with at least `min_requests` (decayed) responses triggers one alert, then no other
for `realert_after` seconds.

Cost: an address is tracked from its first suspicious response only, so a request from an
untracked address that succeeds costs one dict miss. The table holds at most `max_clients`
addresses; past that, the least recently seen one is forgotten (dicts keep insertion order
and an update re-inserts the key). Pure and clock-driven: no I/O, no threads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import orjson

from bastion.clock import Clock
from bastion.core.context import RequestContext
from bastion.observability.events import DATASET
from bastion.observability.logging import ECS_VERSION
from bastion.observability.sinks import Sink

SUSPICIOUS_WEIGHTS: Final = {400: 0.75, 401: 1.0, 403: 1.0, 404: 0.5, 429: 1.0}
HALF_LIFE: Final = 60.0
THRESHOLD: Final = 0.5
MIN_REQUESTS: Final = 20.0
REALERT_AFTER: Final = 300.0
MAX_CLIENTS: Final = 10_000
RULE_NAME: Final = "anomaly.error_ratio"
_OPT: Final = orjson.OPT_APPEND_NEWLINE


@dataclass(frozen=True, slots=True)
class AnomalyAlert:
    """A client whose error ratio crossed the threshold."""

    client_ip: str
    score: float
    requests: float
    suspicious: float
    at: float


class _Client:
    __slots__ = ("alerted_at", "last", "suspicious", "total")

    def __init__(self, now: float) -> None:
        self.total = 0.0
        self.suspicious = 0.0
        self.last = now
        self.alerted_at = -math.inf


class AnomalyDetector:
    """Scores clients by their share of suspicious responses; `observe()` per finished request.

    Args:
        clock: Time source (monotonic for decay, wall time for alert timestamps).
        on_alert: Called with each alert (write an event, block the client, ...).
        half_life: Seconds after which a response counts half as much.
        threshold: Score (0-1) at which a client is reported.
        min_requests: Decayed responses a client needs before it can be reported.
        realert_after: Seconds before the same client can be reported again.
        max_clients: Addresses tracked at most (the least recently seen goes first).

    Raises:
        ValueError: A setting is out of range.
    """

    def __init__(
        self,
        clock: Clock,
        on_alert: Callable[[AnomalyAlert], None],
        *,
        half_life: float = HALF_LIFE,
        threshold: float = THRESHOLD,
        min_requests: float = MIN_REQUESTS,
        realert_after: float = REALERT_AFTER,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if half_life <= 0 or not 0 < threshold <= 1 or min_requests < 1 or max_clients < 1:
            raise ValueError(
                "half_life > 0, 0 < threshold <= 1, min_requests >= 1 and max_clients >= 1"
            )
        self._clock = clock
        self._on_alert = on_alert
        self._rate = math.log(2) / half_life
        self._threshold = threshold
        self._min = min_requests
        self._realert = realert_after
        self._max = max_clients
        self._clients: dict[str, _Client] = {}
        self.alerts = 0

    def __len__(self) -> int:
        return len(self._clients)

    def score(self, client_ip: str) -> float:
        """The current score of `client_ip` (0 when untracked)."""
        client = self._clients.get(client_ip)
        if client is None or client.total <= 0:
            return 0.0
        return client.suspicious / client.total

    def record(self, ctx: RequestContext) -> None:
        """Log-phase hook: observe the finished request's client address and status."""
        self.observe(ctx.request.client_ip, ctx.status)

    def observe(self, client_ip: str, status: int) -> AnomalyAlert | None:
        """Count one response to `client_ip`; returns the alert it triggered, if any."""
        weight = SUSPICIOUS_WEIGHTS.get(status, 0.0)
        clients = self._clients
        client = clients.pop(client_ip, None)  # re-inserted below: most recent last
        if client is None:
            if not weight:
                return None  # an untracked client doing fine stays untracked
            now = self._clock.monotonic()
            client = _Client(now)
            if len(clients) >= self._max:
                del clients[next(iter(clients))]  # the least recently seen
        else:
            now = self._clock.monotonic()
            elapsed = now - client.last
            if elapsed > 0:
                decay = math.exp(-self._rate * elapsed)
                client.total *= decay
                client.suspicious *= decay
                client.last = now
        client.total += 1.0
        client.suspicious += weight
        clients[client_ip] = client
        if (
            weight
            and client.total >= self._min
            and client.suspicious >= self._threshold * client.total
            and now - client.alerted_at >= self._realert
        ):
            client.alerted_at = now
            self.alerts += 1
            alert = AnomalyAlert(
                client_ip,
                round(client.suspicious / client.total, 3),
                round(client.total, 1),
                round(client.suspicious, 1),
                self._clock.time(),
            )
            self._on_alert(alert)
            return alert
        return None


class AnomalyEvents:
    """Writes each `AnomalyAlert` as an ECS alert line (`event.dataset: bastion.security`).

    Args:
        sink: Destination (the security events' sink).
        service_name: ECS `service.name` of this gateway.
    """

    def __init__(self, sink: Sink, *, service_name: str = "bastion") -> None:
        self._sink = sink
        self._service = {"name": service_name}

    def __call__(self, alert: AnomalyAlert) -> None:
        """Write the alert line."""
        whole, micros = divmod(round(alert.at * 1_000_000), 1_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        doc = {
            "@timestamp": f"{stamp}.{micros // 1000:03d}Z",
            "ecs": {"version": ECS_VERSION},
            "message": f"client {alert.client_ip} has an anomaly score of {alert.score}",
            "event": {
                "kind": "alert",
                "category": ["intrusion_detection"],
                "type": ["info"],
                "action": "anomaly-detected",
                "dataset": DATASET,
                "outcome": "unknown",
            },
            "rule": {"name": RULE_NAME},
            "client": {"ip": alert.client_ip},
            "service": self._service,
            "bastion": {
                "anomaly": {
                    "score": alert.score,
                    "requests": alert.requests,
                    "suspicious": alert.suspicious,
                }
            },
        }
        self._sink.write(orjson.dumps(doc, option=_OPT))


class _Recorder(Protocol):
    def record(self, ctx: RequestContext) -> None: ...


class WithAnomalyDetection:
    """A log-phase hook that runs `inner` (the access log) and then the detector."""

    __slots__ = ("_detector", "_inner")

    def __init__(self, inner: _Recorder | None, detector: AnomalyDetector) -> None:
        self._inner = inner
        self._detector = detector

    def record(self, ctx: RequestContext) -> None:
        """Record the finished request with the inner hook, then score its client."""
        if self._inner is not None:
            self._inner.record(ctx)
        self._detector.observe(ctx.request.client_ip, ctx.status)
