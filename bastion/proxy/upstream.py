"""Upstream connections: an HTTP/1.1 client protocol on httptools and keep-alive pools per target.

How this works: a `UpstreamPool` owns the targets of one service. `pick()` chooses a healthy
target round-robin and returns an idle keep-alive connection to it when one is pooled, so a
warm request costs no await; otherwise the caller awaits `connect()`. A connection carries one
request at a time (no upstream pipelining) and reports the response to its `sink` through
plain callbacks. Passive health: consecutive connect failures or timeouts eject a target for
`fail_timeout` seconds. Read timeouts are deadlines checked by the listener's sweep. This
module knows nothing about policies.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

from bastion.errors import BadGateway, GatewayTimeout, Reject, ServiceUnavailable

_log = logging.getLogger("bastion.upstream")

CONNECT_FAILED = "The upstream service could not be reached."
UPSTREAM_TIMEOUT = "The upstream service did not answer in time."
UPSTREAM_INVALID = "The upstream service sent an invalid response."
UPSTREAM_CLOSED = "The upstream service closed the connection."
NO_HEALTHY_TARGET = "No upstream target is available."


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """One upstream origin (compared by identity: each pool owns its targets)."""

    scheme: str
    host: str
    port: int
    authority: bytes
    url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", f"{self.scheme}://{self.authority.decode()}")

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse `http://host:port` (validated by the config model)."""
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        shown = f"[{host}]" if ":" in host else host
        authority = shown if default and parts.port is None else f"{shown}:{port}"
        return cls(scheme, host, port, authority.encode())

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Timeouts, pool size and health settings of one pool (from `UpstreamConfig`)."""

    connect_timeout: float = 2.0
    read_timeout: float = 30.0
    idle_timeout: float = 4.0
    max_idle: int = 64
    max_fails: int = 3
    fail_timeout: float = 10.0


class Corker(Protocol):
    """Holds writes back and sends them in one go (the client connection)."""

    def cork(self) -> None:
        """Start holding writes."""
        ...

    def uncork(self) -> None:
        """Send what was held."""
        ...


class ResponseSink(Protocol):
    """Receives one upstream response (implemented by the gateway's forwarding)."""

    def on_response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None:
        """The status line and raw headers (names lower-cased) arrived."""
        ...

    def on_response_body(self, chunk: bytes) -> None:
        """A piece of the response body (de-chunked) arrived."""
        ...

    def on_response_end(self) -> None:
        """The response is complete."""
        ...

    def on_upstream_error(self, error: Reject, retryable: bool) -> None:
        """The exchange failed; `retryable` when nothing was received on a reused connection."""
        ...

    def on_upstream_pause(self) -> None:
        """The upstream's socket buffer is full: stop feeding it the request body."""
        ...

    def on_upstream_resume(self) -> None:
        """The upstream can take more request body."""
        ...

    @property
    def corker(self) -> Corker:
        """What to cork while one upstream read is processed (the client connection)."""
        ...


class UpstreamConnection(asyncio.Protocol):
    """A client connection to one target, reused across requests."""

    def __init__(self, pool: UpstreamPool, target: Target) -> None:
        self.pool = pool
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._got_bytes = False
        self._head_done = False
        self._complete = False
        self._no_body = False
        self._status = 0
        self._response_headers: list[tuple[bytes, bytes]] = []
        self.reused = False
        self.closed = False
        self.deadline = 0.0
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.closed = True
        self.pool._forget(self)
        if exc is None and not self._complete and self.sink is not None and self._until_close():
            # Fix: a body delimited by the connection's end (no Content-Length, not chunked:
            # RFC 9112 §6.3) is complete when the upstream closes cleanly. llhttp is never told
            # about EOF here, so such responses used to reach the client truncated (chunked
            # without its last chunk) and counted as upstream failures.
            self._finish_response(reusable=False)
            return
        sink, self.sink = self.sink, None
        if sink is not None and not self._complete:
            retryable = self.reused and not self._got_bytes
            sink.on_upstream_error(BadGateway(UPSTREAM_CLOSED, code="upstream_closed"), retryable)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self.sink is None:
            # Bytes on an idle connection: the upstream broke the protocol; drop it.
            self.close()
            return
        self._got_bytes = True
        self.deadline = self.pool.loop.time() + self.pool.settings.read_timeout
        # A read usually holds the whole response head and body: what it produces for the
        # client leaves in one write instead of one per part.
        corker = self.sink.corker
        corker.cork()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            _log.error("response handling failed", exc_info=exc.__context__)
            self._fail(BadGateway(UPSTREAM_INVALID, code="upstream_invalid"))
        except httptools.HttpParserError:
            self._fail(BadGateway(UPSTREAM_INVALID, code="upstream_invalid"))
        finally:
            corker.uncork()

    def pause_writing(self) -> None:  # noqa: D102
        if self.sink is not None:
            self.sink.on_upstream_pause()

    def resume_writing(self) -> None:  # noqa: D102
        if self.sink is not None:
            self.sink.on_upstream_resume()

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:  # noqa: D102
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:  # noqa: D102
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # Interim responses (100 Continue, 103) are not forwarded; 101 is never asked for.
            self._headers = []
            if status == 101:
                raise ValueError("unexpected protocol switch")
            return
        self._head_done = True
        headers, self._headers = self._headers, []
        # Remembered for `connection_lost`, which decides whether the body was close-delimited
        # only if the connection actually closes mid-response (rare, so not computed here).
        self._status = status
        self._response_headers = headers
        sink = self.sink
        if sink is not None:
            sink.on_response_head(status, headers, self._parser.should_keep_alive())
        if self._no_body and not self._complete:
            # A response to HEAD has no body whatever its Content-Length says; llhttp cannot be
            # told so, so the exchange completes here and the parser is replaced.
            keep_alive = self._parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)
            self._finish_response(reusable=keep_alive)

    def _until_close(self) -> bool:
        """Whether the current response's body is delimited by the connection's end."""
        return (
            self._head_done
            and not self._no_body
            and self._status not in (204, 304)
            and not any(
                name == b"content-length"
                or (name == b"transfer-encoding" and value.rstrip().lower().endswith(b"chunked"))
                for name, value in self._response_headers
            )
        )

    def on_body(self, body: bytes) -> None:  # noqa: D102
        if self.sink is not None and not self._no_body:
            self.sink.on_response_body(body)

    def on_message_complete(self) -> None:  # noqa: D102
        if not self._head_done:
            return  # end of an interim response
        if self._no_body and self._complete:
            return
        self._finish_response(reusable=self._parser.should_keep_alive())

    # -- requests --------------------------------------------------------------------------------

    def begin(self, sink: ResponseSink, head: bytes, *, no_body_expected: bool) -> None:
        """Start a request: attach `sink` and write the request head."""
        self.sink = sink
        self._headers = []
        self._got_bytes = False
        self._head_done = False
        self._complete = False
        self._no_body = no_body_expected
        self._status = 0
        self.deadline = self.pool.loop.time() + self.pool.settings.read_timeout
        self.write(head)

    def write(self, data: bytes) -> None:
        """Write request bytes."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self) -> None:
        """Stop reading the response (the client is slower than the upstream)."""
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading the response."""
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close the connection; it will not be reused."""
        self.closed = True
        self.sink = None
        if self.transport is not None:
            self.transport.close()

    def _finish_response(self, *, reusable: bool) -> None:
        self._complete = True
        self.deadline = 0.0
        sink, self.sink = self.sink, None
        self.reused = True
        if reusable:
            self.pool.release(self)
        else:
            self.close()
        if sink is not None:
            sink.on_response_end()

    def _fail(self, error: Reject) -> None:
        sink, self.sink = self.sink, None
        self._complete = True
        self.close()
        if sink is not None:
            sink.on_upstream_error(error, False)

    def check_deadline(self, now: float) -> None:
        """Fail the request in flight if the upstream has been silent too long."""
        if self.deadline and now > self.deadline and self.sink is not None:
            self._fail(GatewayTimeout(UPSTREAM_TIMEOUT, code="upstream_timeout"))
        elif (
            self.sink is None
            and not self.closed
            and self.idle_since
            and now - self.idle_since > self.pool.settings.idle_timeout
        ):
            self.close()


class _TargetHealth:
    __slots__ = ("ejected_until", "fails")

    def __init__(self) -> None:
        self.fails = 0
        self.ejected_until = 0.0


class UpstreamPool:
    """Keep-alive connections and passive health for the targets of one service."""

    def __init__(
        self,
        targets: list[Target],
        settings: UpstreamSettings,
        *,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not targets:
            raise ValueError("an upstream pool needs at least one target")
        self.targets = targets
        self.settings = settings
        self.loop = loop
        self._ssl = ssl_context
        self._next = 0
        self._idle: dict[Target, deque[UpstreamConnection]] = {t: deque() for t in targets}
        self._health = {t: _TargetHealth() for t in targets}
        self.connections: set[UpstreamConnection] = set()

    def pick(self) -> tuple[Target, UpstreamConnection | None]:
        """Choose a target round-robin, skipping ejected ones, and a pooled connection to it.

        Raises:
            ServiceUnavailable: every target is ejected.
        """
        targets = self.targets
        now = self.loop.time()
        if len(targets) == 1:  # the common case: no rotation
            target = targets[0]
            if self._health[target].ejected_until <= now:
                return target, self._take_idle(target)
        else:
            count = len(targets)
            for _ in range(count):
                target = targets[self._next % count]
                self._next += 1
                if self._health[target].ejected_until <= now:
                    return target, self._take_idle(target)
        raise ServiceUnavailable(NO_HEALTHY_TARGET, code="no_healthy_upstream")

    def _take_idle(self, target: Target) -> UpstreamConnection | None:
        idle = self._idle[target]
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.idle_since = 0.0
                return conn
        return None

    async def connect(self, target: Target) -> UpstreamConnection:
        """Open a new connection to `target`.

        Raises:
            BadGateway: the connection was refused or failed.
            GatewayTimeout: it did not complete within `connect_timeout`.
        """
        use_tls = target.scheme == "https"
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: UpstreamConnection(self, target),
                    target.host,
                    target.port,
                    ssl=self._ssl if use_tls else None,
                    server_hostname=target.host if use_tls else None,
                )
        except TimeoutError:
            self.report_failure(target)
            raise GatewayTimeout(UPSTREAM_TIMEOUT, code="upstream_connect_timeout") from None
        except (OSError, ssl.SSLError) as exc:
            self.report_failure(target)
            _log.warning("upstream %s unreachable: %s", target, exc)
            raise BadGateway(CONNECT_FAILED, code="upstream_unreachable") from None
        self.report_success(target)
        self.connections.add(protocol)
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose response completed cleanly to the idle pool."""
        idle = self._idle.get(conn.target)
        if idle is None or conn.closed or len(idle) >= self.settings.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)

    def _forget(self, conn: UpstreamConnection) -> None:
        self.connections.discard(conn)
        idle = self._idle.get(conn.target)
        if idle is not None and conn in idle:
            idle.remove(conn)

    def report_failure(self, target: Target) -> None:
        """Count a failure; eject the target after `max_fails` in a row."""
        health = self._health[target]
        health.fails += 1
        if health.fails >= self.settings.max_fails:
            health.ejected_until = self.loop.time() + self.settings.fail_timeout
            health.fails = 0
            _log.warning("upstream %s ejected for %.0f s", target, self.settings.fail_timeout)

    def report_success(self, target: Target) -> None:
        """Reset the failure count of `target`."""
        self._health[target].fails = 0

    def check_deadlines(self, now: float) -> None:
        """Apply read and idle timeouts (called by the listener's sweep)."""
        for conn in list(self.connections):
            conn.check_deadline(now)

    def close_idle(self) -> None:
        """Close the idle connections; busy ones close when their response ends."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self.settings = replace(self.settings, max_idle=0)

    def close(self) -> None:
        """Close every connection (on shutdown or when a reload retires this pool)."""
        for conn in list(self.connections):
            conn.close()
