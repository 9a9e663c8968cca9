"""Pushes access-token revocations to every gateway process through Redis pub/sub.

How this works: with `counters: redis://...`, each process keeps one `RevocationBus` per Redis
URL. Revoking a token publishes `{"jti": ..., "exp": ...}` on the channel
`<prefix>oauth:revoked` (the counters' key prefix, so two deployments sharing one Redis stay
apart); a listener task in every process adds the `jti` to each subscribed `Revocations` set
at once, so the jwt policy refuses the token on its next request, verified-token cache hits
included. Pub/sub is at-most-once: each (re)subscription triggers a full reload from the store,
and the store is still polled every `REVOCATION_SYNC_INTERVAL`, so a lost message only falls
back to the polling bound. Publishing is bounded by a short timeout and never fails a revocation
(the store write is what counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from typing import Final, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.counters.url import parse_redis_url

_log = logging.getLogger("bastion.oauth")

CHANNEL_SUFFIX: Final = "oauth:revoked"
PUBLISH_TIMEOUT: Final = 0.5
"""Seconds a revocation waits for Redis to accept the message."""
RECONNECT_DELAY: Final = 1.0
"""Seconds between two subscription attempts while Redis is unreachable."""
MAX_MESSAGE: Final = 512
"""Largest message accepted (a `jti` and an expiry need far less)."""
_MAX_JTI: Final = 256


class RevocationSink(Protocol):
    """What receives pushed revocations (`bastion.oauth.server.Revocations`)."""

    def receive(self, jti: str, expires_at: float) -> None:
        """Refuse `jti` from now on in this process."""
        ...

    def resync(self) -> None:
        """Reload the whole revoked set from the store (messages may have been missed)."""
        ...


def decode(data: object) -> tuple[str, float] | None:
    """The (jti, expiry) of a channel message; None for anything malformed."""
    if not isinstance(data, bytes | str) or len(data) > MAX_MESSAGE:
        return None
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    jti, expires_at = document.get("jti"), document.get("exp")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
        return None
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        return None
    return jti, float(expires_at)


class RevocationBus:
    """One Redis channel of revocations, shared by every `Revocations` of this process."""

    def __init__(self, spec: str) -> None:
        client_url, prefix, _ = parse_redis_url(spec)
        self.channel = f"{prefix}{CHANNEL_SUFFIX}"
        # No read timeout on the subscriber: it waits for messages; a dead connection shows
        # as an error on the next read or on the periodic ping of `get_message`.
        self._subscriber = aioredis.Redis.from_url(
            client_url, socket_connect_timeout=PUBLISH_TIMEOUT, health_check_interval=30
        )
        self._publisher = aioredis.Redis.from_url(
            client_url,
            socket_timeout=PUBLISH_TIMEOUT,
            socket_connect_timeout=PUBLISH_TIMEOUT,
        )
        self._sinks: weakref.WeakSet[RevocationSink] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        """Set while the listener holds a live subscription (tests wait for it)."""
        self.received = 0
        """Messages delivered since start."""

    def subscribe(self, sink: RevocationSink) -> None:
        """Deliver pushed revocations to `sink` (held weakly: a reload drops old servers)."""
        self._sinks.add(sink)
        self.ensure_listening()

    def ensure_listening(self) -> None:
        """Start the listener task if it is not running (needs a running event loop)."""
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # built outside the loop: `Revocations` calls again from the request path
        self._task = loop.create_task(self._listen())

    async def publish(self, jti: str, expires_at: float) -> None:
        """Tell every process that `jti` is revoked; failures are logged, never raised."""
        self.ensure_listening()
        message = orjson.dumps({"jti": jti, "exp": expires_at})
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._publisher.publish(self.channel, message)
        except (RedisError, OSError, TimeoutError) as exc:
            _log.warning("revocation not pushed (other processes poll the store): %s", exc)

    async def _listen(self) -> None:
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                _log.warning("revocation channel unavailable, retrying: %s", exc)
            await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self) -> None:
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.subscribed.set()
            for sink in list(self._sinks):
                sink.resync()  # catch up on what was missed while unsubscribed
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None or message.get("type") != "message":
                    continue
                found = decode(message.get("data"))
                if found is None:
                    continue
                self.received += 1
                for sink in list(self._sinks):
                    sink.receive(*found)
        finally:
            self.subscribed.clear()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated

    async def close(self) -> None:
        """Stop listening and close both connections."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._subscriber.aclose()
        await self._publisher.aclose()


_buses: dict[str, RevocationBus] = {}
# A forked worker must not use its parent's connections or tasks.
os.register_at_fork(after_in_child=_buses.clear)


def revocation_bus(spec: str) -> RevocationBus:
    """The process's bus for the `counters:` Redis URL `spec` (one per URL, kept on reload)."""
    found = _buses.get(spec)
    if found is None:
        found = _buses[spec] = RevocationBus(spec)
    return found


async def close_revocation_buses() -> None:
    """Close every bus of this process (at shutdown)."""
    buses = list(_buses.values())
    _buses.clear()
    for bus in buses:
        await bus.close()
