"""Runs the gateway: listeners on uvloop, worker processes, signals, reload and graceful shutdown.

How this works: `serve()` loads the config, prepares what every worker shares (the development
certificate), then runs one worker in-process, or forks `--workers N` children that each bind
every listener with SO_REUSEPORT so the kernel spreads connections. In a worker, `Server` owns
the event loop's listeners and a `Dispatcher` whose target gateway is swapped atomically on
reload (SIGHUP): requests already in flight finish on the chain they started with. A sweep
every half second applies connection deadlines (header, body and idle timeouts; upstream read
timeouts) and flushes the access log. SIGTERM/SIGINT stop accepting, close idle connections,
let in-flight requests finish for up to `limits.shutdown_timeout` seconds, then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.admin.dashboard import Dashboard, DashboardFeed
from bastion.admin.store_ops import ConfigFollower, StartupConfig, startup_config
from bastion.clock import SystemClock
from bastion.config.loader import load_config
from bastion.config.models import GatewayConfig, ListenerConfig, parse_bind
from bastion.counters.attached import attached_degraded, close_attached
from bastion.errors import ConfigError, Reject
from bastion.gateway.app import Gateway
from bastion.gateway.build import build_gateway, counters_for, uses_rate_limit
from bastion.oauth.setup import close_revocation_buses
from bastion.observability.access_log import AccessLog
from bastion.observability.anomaly import (
    RULE_NAME,
    AnomalyAlert,
    AnomalyDetector,
    AnomalyEvents,
    WithAnomalyDetection,
)
from bastion.observability.blocks import (
    BlockedSources,
    FileBlockSync,
    RedisBlockSync,
    trusted_proxies_of,
)
from bastion.observability.events import SecurityEvents
from bastion.observability.metrics import (
    CONTENT_TYPE as METRICS_CONTENT_TYPE,
    Metrics,
    RequestRecorder,
    WorkerSnapshots,
    new_registry,
    render,
)
from bastion.observability.sinks import FileSink, Sink, open_sink
from bastion.proxy.downstream import App, Exchange, HTTPServerProtocol, ProtocolLimits
from bastion.proxy.tls import (
    HandshakeFailure,
    certificate_expiry,
    ensure_dev_certificate,
    expiry_warning,
    reload_certificate,
    server_context,
    tls_accept_factory,
)
from bastion.proxy.upstream import UpstreamPool
from bastion.server.redirect import RedirectApp
from bastion.store import close_shared_stores, gateway_store
from bastion.store.base import ConfigRevision

if TYPE_CHECKING:
    from bastion.admin.app import AdminApp
    from bastion.counters.base import Counters

_log = logging.getLogger("bastion.server")

SWEEP_INTERVAL = 0.5


@dataclass
class _NodeSettings:
    """What `serve` tells each forked worker about the node (defaults: a single worker)."""

    worker: int = 0
    node_dir: Path | None = None


_NODE = _NodeSettings()


class Dispatcher:
    """Indirection so a reload can swap the gateway without touching open connections.

    It is also where blocked sources are refused, before routing: it outlives reloads, and
    while nothing is blocked the check costs two attribute reads.
    """

    __slots__ = ("blocked", "target")

    def __init__(self, target: Gateway, blocked: BlockedSources | None = None) -> None:
        self.target = target
        self.blocked = blocked

    def handle(self, exchange: Exchange) -> None:
        """Hand the request to the current gateway (unless its source is blocked)."""
        blocked = self.blocked
        if blocked is not None and blocked.any and blocked.refuse(exchange, self.target):
            return
        self.target.handle(exchange)

    def protocol_error(self, reject: Reject, request_id: str, peer_ip: str, scheme: str) -> None:
        """Let the current gateway log a request refused before it could be parsed."""
        self.target.protocol_error(reject, request_id, peer_ip, scheme)


def protocol_limits(config: GatewayConfig) -> ProtocolLimits:
    """The downstream protocol limits from the `limits` block."""
    limits = config.limits
    return ProtocolLimits(
        max_request_line=limits.max_request_line,
        max_header_bytes=limits.max_header_bytes,
        max_headers=limits.max_headers,
        max_body_bytes=limits.max_body_bytes,
        header_timeout=limits.header_timeout,
        body_timeout=limits.body_timeout,
        idle_timeout=limits.idle_timeout,
        keepalive_requests=limits.keepalive_requests,
        max_pipelined=limits.max_pipelined,
    )


def listener_certificate(listener: ListenerConfig, state_dir: Path) -> tuple[Path, Path]:
    """The certificate and key of an HTTPS listener, generating a development pair if none."""
    assert listener.tls is not None  # noqa: S101 - only called for TLS listeners
    if listener.tls.certificate is not None and listener.tls.private_key is not None:
        return listener.tls.certificate, listener.tls.private_key
    return ensure_dev_certificate(state_dir)


def admin_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The admin listener's TLS context; None for plain HTTP.

    With `admin.tls.client_ca`, clients must present a certificate that CA signed (mTLS).

    Raises:
        ConfigError: a certificate, key or CA file is unusable (named by its setting).
    """
    admin = config.admin
    if admin is None or admin.tls is None:
        return None
    tls = admin.tls
    if tls.certificate is not None and tls.private_key is not None:
        certificate, key = tls.certificate, tls.private_key
    else:
        certificate, key = ensure_dev_certificate(config.state_dir)
    try:
        context = server_context(certificate, key, min_version=tls.min_version)
    except ConfigError as exc:
        raise ConfigError("admin.tls", exc.message) from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("admin.tls.client_ca", f"cannot load the CA file: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class _TLSListener:
    context: ssl.SSLContext
    certificate: Path
    private_key: Path
    bind: str = ""


@dataclass
class Server:
    """One worker's listeners and gateway."""

    config: GatewayConfig
    config_path: Path | None = None
    reuse_port: bool = False
    with_admin: bool = True
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    startup: StartupConfig | None = None
    # `--workers N`: this worker's index and the node's private directory (set by `serve` in
    # each forked worker), where the workers share metric snapshots and blocked sources.
    worker: int = field(default_factory=lambda: _NODE.worker)
    node_dir: Path | None = field(default_factory=lambda: _NODE.node_dir)

    def __post_init__(self) -> None:
        self.connections: set[HTTPServerProtocol] = set()
        # Every worker follows config revisions stored through any node's admin API.
        self.follower = ConfigFollower(
            self, lambda: gateway_store(self.config).backend, self.startup
        )
        self._servers: list[asyncio.Server] = []
        self._tls: list[_TLSListener] = []
        self._admin: AdminApp | None = None
        try:
            self._sink = open_sink(self.config.access_log.sink)
        except OSError as exc:
            raise ConfigError("access_log.sink", f"cannot open: {exc.strerror}") from None
        access_log = AccessLog(self._sink, SystemClock()) if self._sink is not None else None
        recorder = self._observability(access_log)
        self.counters = counters_for(self.config)  # kept across reloads (see reload)
        gateway, self._pools = build_gateway(
            self.config, loop=self.loop, access_log=recorder, counters=self.counters
        )
        self._access_log = recorder
        proxies, forwarded = trusted_proxies_of(self.config)
        self.blocked_sources = BlockedSources(
            SystemClock(), events=self._events, trusted_proxies=proxies, forwarded=forwarded
        )
        self._block_sync: RedisBlockSync | FileBlockSync | None = None
        self.dispatcher = Dispatcher(gateway, self.blocked_sources)
        self._retired_pools: list[UpstreamPool] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.revision = 1
        self.ready = False

    async def start(self) -> None:
        """Bind every listener and start the sweep.

        Raises:
            ConfigError: a listener could not bind or its certificate could not be loaded.
        """
        config = self.config
        limits = protocol_limits(config)
        https_port = config.https_port
        for index, listener in enumerate(config.listeners):
            host, port = parse_bind(listener.bind)
            ssl_context: ssl.SSLContext | None = None
            app: App
            if listener.tls is not None:
                certificate, key = listener_certificate(listener, config.state_dir)
                ssl_context = server_context(certificate, key, min_version=listener.tls.min_version)
                self._tls.append(_TLSListener(ssl_context, certificate, key, listener.bind))
                self._warn_expiry(certificate)
                app = self.dispatcher
                scheme = "https"
            elif listener.plaintext:
                app = self.dispatcher
                scheme = "http"
            else:
                app = RedirectApp(listener.redirect_https, https_port)
                scheme = "http"
            await self._listen(f"listeners[{index}]", host, port, app, limits, scheme, ssl_context)
        if self.with_admin and config.admin is not None:
            from bastion.admin.api import AdminAPI
            from bastion.admin.app import AdminApp

            host, port = parse_bind(config.admin.bind)
            token = config.admin.token.get_secret_value() if config.admin.token else None
            admin = AdminApp(
                token=token,
                ready=lambda: self.ready,
                status=self.status,
                degraded=self.degraded_backends,
                metrics=self._render_metrics if self.metrics is not None else None,
                metrics_content_type=METRICS_CONTENT_TYPE.encode(),
                api=AdminAPI(self),
                dashboard=self._dashboard(token),
            )
            self._admin = admin
            context = admin_context(config)
            scheme = "https" if context is not None else "http"
            await self._listen("admin", host, port, admin, limits, scheme, context)
        self._watch_certificates()
        self._sweeper = self.loop.create_task(self._sweep())
        if config.counters != "memory":  # blocks shared by every node and worker
            self._block_sync = RedisBlockSync(self.blocked_sources, config.counters)
        elif self.node_dir is not None:  # the workers of this node share them through a file
            self._block_sync = FileBlockSync(self.blocked_sources, self.node_dir / "blocks.json")
        if self._block_sync is not None:
            self._block_sync.start()
        self.follower.start()
        self.ready = True

    async def _listen(
        self,
        where: str,
        host: str,
        port: int,
        app: App,
        limits: ProtocolLimits,
        scheme: str,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        default_host = f"[{host}]" if ":" in host else host

        def factory() -> HTTPServerProtocol:
            return HTTPServerProtocol(
                app,
                limits,
                scheme="https" if scheme == "https" else "http",
                default_host=default_host,
                connections=self.connections,
            )

        serve: Callable[[], asyncio.BaseProtocol] = factory
        if ssl_context is not None:  # plain accept + our TLS start: failed handshakes reported
            reporting = tls_accept_factory(
                factory,
                ssl_context,
                loop=self.loop,
                listener=f"{default_host}:{port}",
                on_failure=self._tls_failed,
                handshake_timeout=limits.header_timeout,
            )
            if reporting is not None:
                serve, ssl_context = reporting, None
        try:
            server = await self.loop.create_server(
                serve,
                host,
                port,
                ssl=ssl_context,
                reuse_port=self.reuse_port or None,
                backlog=2048,
                ssl_handshake_timeout=limits.header_timeout if ssl_context else None,
            )
        except OSError as exc:
            message = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError(f"{where}.bind", message) from None
        self._servers.append(server)
        _log.info("listening on %s://%s:%d", scheme, default_host, port)

    def _tls_failed(self, failure: HandshakeFailure) -> None:
        if self.metrics is not None:
            self.metrics.tls_handshake_failed(failure.listener, failure.reason)
        if self._events is not None:
            self._events.tls_handshake_failure(failure)

    def admin_event(self, action: str, *, success: bool) -> None:
        """A change made through the admin API, as a security event."""
        if self._events is not None:
            self._events.admin_change(action, success=success)

    def config_stored(self, revision: ConfigRevision) -> None:
        """The running config was stored as `revision` for the other nodes and workers."""
        self.follower.published(revision)

    def degraded_backends(self) -> list[str]:
        """Shared backends that are unavailable right now (serving continues without them)."""
        counters = bool(getattr(self.counters, "degraded", False)) or attached_degraded(
            self.counters
        )
        return [
            name
            for name, down in (("counters", counters), ("store", self.follower.degraded))
            if down
        ]

    def status(self) -> dict[str, object]:
        """Facts for `/status`: config revision and its source, connection counts."""
        return {
            "config_revision": self.revision,
            **self.follower.status(),
            "connections": len(self.connections),
            "in_flight": self.dispatcher.target.in_flight,
            "pid": os.getpid(),
        }

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_deadline(now)
            for pool in self._pools:
                pool.check_deadlines(now)
            for pool in self._retired_pools:
                pool.check_deadlines(now)
            self._retired_pools = [p for p in self._retired_pools if p.connections]
            if self._sink is not None:
                self._sink.flush()
            if self._security_sink is not None:
                self._security_sink.flush()
            if self._snapshots is not None and self.metrics is not None and not self.with_admin:
                self._snapshots.publish(self.metrics)

    def _observability(self, access_log: AccessLog | None) -> RequestRecorder:
        """Security events, metrics (in the worker that serves the admin listener) and the log."""
        clock = SystemClock()
        spec = self.config.access_log.security_log
        self._security_sink: Sink | None = None
        if spec is not None:
            try:
                self._security_sink = open_sink(spec)
            except OSError as exc:
                where = "access_log.security_log"
                raise ConfigError(where, f"cannot open: {exc.strerror}") from None
        events_sink = self._sink if spec is None else self._security_sink
        self._events = SecurityEvents(events_sink, clock) if events_sink is not None else None
        self.metrics: Metrics | None = None
        self.dashboard_feed: DashboardFeed | None = None
        self._snapshots: WorkerSnapshots | None = None
        if self.config.admin is not None and (self.with_admin or self.node_dir is not None):
            metrics = self.metrics = Metrics(clock)
            if self.node_dir is not None:  # several workers: /metrics reports the node
                self._snapshots = WorkerSnapshots(self.node_dir, self.worker)
                if self.with_admin:
                    metrics.peers = self._snapshots.read_peers
            self._registry = new_registry(metrics)
            self._bind_routes()
            metrics.gauge(
                "bastion_connections_active",
                "Open client connections (of every worker), admin listener included.",
                lambda: len(self.connections),
            )
            metrics.gauge(
                "bastion_requests_in_flight",
                "Requests being served right now (by every worker).",
                lambda: self.dispatcher.target.in_flight,
            )
            metrics.labelled_gauge(
                "bastion_backend_degraded",
                "1 while a shared backend is unavailable: counters (Redis; on_backend_error "
                "applies) or store (serving from the last good config and cache), else 0.",
                "backend",
                lambda: {
                    name: int(name in self.degraded_backends()) for name in ("counters", "store")
                },
            )
            sinks = {"access": self._sink, "security": self._security_sink}
            for name, sink in sinks.items():
                if sink is not None:
                    metrics.watch_log(name, _dropped_lines(sink))
            # The dashboard's feed sees refused requests first, then hands them to the events.
            if self.with_admin:
                self.dashboard_feed = DashboardFeed(metrics, clock, forward=self._events)
        events = self.dashboard_feed or self._events
        log_hook = self._anomaly_detection(access_log, events_sink, clock)
        return RequestRecorder(access_log=log_hook, metrics=self.metrics, events=events)

    def _anomaly_detection(
        self, access_log: AccessLog | None, events_sink: Sink | None, clock: SystemClock
    ) -> AccessLog | WithAnomalyDetection | None:
        """Score clients after the access log line; alerts go to the events and the dashboard."""
        settings = self.config.anomaly
        if not settings.enabled:
            return access_log
        writers = [AnomalyEvents(events_sink)] if events_sink is not None else []
        feed = self.dashboard_feed

        block = settings.block

        def alert(found: AnomalyAlert) -> None:
            for write in writers:
                write(found)
            if block.enabled:
                with contextlib.suppress(ValueError):  # table full: the alert still stands
                    self.blocked_sources.block(found.client_ip, block.seconds, RULE_NAME, "anomaly")
            if feed is not None:
                feed.anomaly(found)

        detector = AnomalyDetector(
            clock,
            alert,
            threshold=settings.threshold,
            min_requests=settings.min_requests,
            half_life=settings.half_life,
        )
        return WithAnomalyDetection(access_log, detector)

    def _dashboard(self, token: str | None) -> Dashboard | None:
        if self.dashboard_feed is None:
            return None
        return Dashboard(self.dashboard_feed, token=token, clock=SystemClock())

    def _bind_routes(self) -> None:
        if self.metrics is not None:
            routes = [(r.name, s.name) for s in self.config.services for r in s.routes]
            self.metrics.bind_routes(routes)

    def _render_metrics(self) -> bytes:
        return render(self._registry)

    def _watch_certificates(self) -> None:
        if self.metrics is None:
            return
        for tls in self._tls:
            with contextlib.suppress(ConfigError):  # unreadable: _warn_expiry logged it
                expires = certificate_expiry(tls.certificate).timestamp()
                self.metrics.certificate_expiry(tls.bind, expires)

    def _reloaded(self, success: bool, error: str | None = None) -> None:
        if self.metrics is not None:
            self.metrics.config_reloaded(success)
        if self._events is not None:
            self._events.config_reload(success=success, revision=self.revision, error=error)

    def _warn_expiry(self, certificate: Path) -> None:
        message = expiry_warning(certificate, datetime.now(UTC))
        if message:
            _log.warning("%s", message)

    def reload(self) -> bool:
        """Re-read the config file and certificates; keep the old config if the new one fails."""
        if isinstance(self._sink, FileSink):
            self._sink.reopen()  # SIGHUP after logrotate moved the file away
        if isinstance(self._security_sink, FileSink):
            self._security_sink.reopen()
        if self.config_path is None:
            return False
        try:
            new_config = load_config(self.config_path)
        except ConfigError as exc:
            _log.error("reload refused, still serving the previous config: %s", exc)
            self._reloaded(False, str(exc))
            return False
        try:
            self.apply_config(new_config)
        except ConfigError:
            return False  # apply_config logged and counted it
        self.follower.file_applied()
        return True

    def apply_config(self, new_config: GatewayConfig) -> None:
        """Swap in a validated config atomically (SIGHUP and `PUT /admin/config`).

        Raises:
            ConfigError: the gateway could not be built; the previous config keeps serving.
        """
        try:
            counters = counters_for(new_config, self.counters)
            gateway, pools = build_gateway(
                new_config, loop=self.loop, access_log=self._access_log, counters=counters
            )
        except ConfigError as exc:
            _log.error("reload refused, still serving the previous config: %s", exc)
            self._reloaded(False, str(exc))
            raise
        if counters is not self.counters:  # the counters setting changed
            retired, self.counters = self.counters, counters
            self.loop.create_task(_close_counters(retired))
        self._retired_pools.extend(self._pools)
        for pool in self._pools:
            pool.close_idle()
        self._pools = pools
        self.dispatcher.target = gateway
        self.config = new_config
        self.revision += 1
        for tls in self._tls:
            try:
                reload_certificate(tls.context, tls.certificate, tls.private_key)
                self._warn_expiry(tls.certificate)
            except ConfigError as exc:
                _log.error("certificate reload failed, keeping the old one: %s", exc)
        _log.info("configuration reloaded (revision %d)", self.revision)
        self._bind_routes()
        self._watch_certificates()
        proxies, forwarded = trusted_proxies_of(new_config)
        self.blocked_sources.configure(proxies, forwarded=forwarded)
        self._reloaded(True)

    async def shutdown(self, drain_seconds: float | None = None) -> None:
        """Stop accepting, drain in-flight requests for up to `drain_seconds`, close all."""
        self.ready = False
        limit = self.config.limits.shutdown_timeout if drain_seconds is None else drain_seconds
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.draining = True
            conn.close_if_idle()
        deadline = self.loop.time() + limit
        # Connections close themselves after their last response; poll rather than wire an
        # event through every connection for a once-per-process moment.
        while self.connections and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        pools = [*self._pools, *self._retired_pools]
        for pool in pools:
            pool.close()
        # Closing a (TLS) transport completes on a later loop turn: wait, boundedly, so no
        # transport outlives the loop.
        deadline = self.loop.time() + 1.0
        while any(pool.connections for pool in pools) and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self.follower.stop()
        await close_shared_stores()  # stop the SQLite thread, close PostgreSQL connections
        await close_revocation_buses()  # the Redis pub/sub of OAuth revocations, if any
        await _close_counters(self.counters)
        if self._block_sync is not None:
            await self._block_sync.close()
        if self._snapshots is not None and self.metrics is not None and not self.with_admin:
            # Counters never go back: the last snapshot stays for worker 0 to keep adding.
            self._snapshots.publish(self.metrics)
        if self._sink is not None:
            self._sink.close()
        if self._security_sink is not None:
            self._security_sink.close()
        if self._admin is not None:
            self._admin.close()


async def _close_counters(counters: Counters) -> None:
    """Close the counters and the lease and quota stores attached to them."""
    await counters.close()
    await close_attached(counters)


def _dropped_lines(sink: Sink) -> Callable[[], int]:
    def read() -> int:
        return int(getattr(sink, "dropped", 0))  # MemorySink and others keep no count

    return read


async def _run_worker(
    start: StartupConfig, config_path: Path | None, reuse_port: bool, with_admin: bool
) -> None:
    server = Server(
        start.config, config_path, reuse_port=reuse_port, with_admin=with_admin, startup=start
    )
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    await stop.wait()
    _log.info("shutting down: draining in-flight requests")
    await server.shutdown()


def _run_loop(
    start: StartupConfig, config_path: Path | None, reuse_port: bool, with_admin: bool
) -> None:
    import uvloop

    uvloop.run(_run_worker(start, config_path, reuse_port, with_admin))


def _node_directory() -> Path:
    """A private directory the workers share (metric snapshots, blocks), in memory if possible."""
    shm = Path("/dev/shm")  # noqa: S108 - a private (0700) directory created by mkdtemp
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="bastion-node-", dir=base))


def serve(
    config: GatewayConfig,
    config_path: Path | None,
    workers: int = 1,
    *,
    ignore_stored_config: bool = False,
) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit code.

    The config file is the bootstrap: when the store holds a config applied through the
    admin API, its newest revision serves instead, unless `ignore_stored_config`.

    Raises:
        ConfigError: `--workers` > 1 with in-memory counters and a rate_limit policy: each
            process would count on its own, silently multiplying every limit by the workers.
    """
    start = startup_config(config, config_path, ignore_stored=ignore_stored_config)
    config = start.config
    if workers > 1 and config.counters == "memory" and uses_rate_limit(config):
        raise ConfigError(
            "counters",
            f"rate limits with counters: memory are per process, so --workers {workers} would "
            "multiply every limit; set counters: redis://host:port/db or run one worker",
        )
    # Generate the development certificate once, before forking, so workers share it.
    for listener in config.listeners:
        if listener.tls is not None:
            listener_certificate(listener, config.state_dir)
    if workers <= 1:
        _run_loop(start, config_path, reuse_port=False, with_admin=True)
        return 0
    node_dir = _node_directory()
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            _NODE.worker, _NODE.node_dir = index, node_dir
            try:
                _run_loop(start, config_path, reuse_port=True, with_admin=index == 0)
            except BaseException:  # noqa: BLE001 - a worker must report and exit, never return
                _log.exception("worker %d failed", index)
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        children.append(pid)
    _log.info("started %d workers: %s", workers, children)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        if os.waitstatus_to_exitcode(code) != 0:
            status = 1
    shutil.rmtree(node_dir, ignore_errors=True)
    return status
