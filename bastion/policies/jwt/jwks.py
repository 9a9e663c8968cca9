"""Where keys come from at run time: a `KeySource` that refreshes a JWKS at a bounded rate.

How this works: a `KeySource` holds the current `KeySet` and a `fetch` coroutine function (an
HTTPS GET or a file read). It refreshes (1) on first use, (2) in the background once the set is
older than `refresh_interval`, and (3) when a token names an unknown `kid` — but never more
often than once per `min_interval`, whatever the trigger, so a stream of tokens with made-up
`kid`s cannot turn the gateway into a load generator against the IdP. Concurrent refreshes share
one fetch. A failed fetch or an unusable document keeps the last good set (the IdP being down
must not log everyone out); the failure is logged and counted. When a refresh drops a `kid`,
`on_keys_removed` fires so verified-token caches forget tokens signed by the withdrawn key.

The HTTPS fetch uses asyncio streams with the stdlib `ssl` context (certificate and host name
verified) and httptools for the response, under one total deadline and a byte cap. Running
urllib in a thread was the alternative; it was not chosen because its timeout applies per socket
operation (a server dripping a byte a second holds it for ever), a timed-out thread cannot be
cancelled, and it would occupy the shared default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httptools

from bastion.clock import Clock
from bastion.http.collect import ResponseReadError, read_response
from bastion.policies.jwt.keys import KeyLoadError, KeySet

_log = logging.getLogger("bastion.jwt")

Fetch = Callable[[], Awaitable[bytes]]
Parse = Callable[[bytes], KeySet]

_FAILURES = {
    "closed": "the connection closed before the response was complete",
    "head_too_large": "the response head is too large",
    "body_too_large": "the key set is larger than {} bytes",
}


class FetchError(Exception):
    """The key set could not be fetched (status, size, framing); the message is for logs."""


class KeySource:
    """The current key set and the rules for refreshing it; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        parse: Parse,
        fetch: Fetch | None = None,
        initial: KeySet | None = None,
        refresh_interval: float = 300.0,
        min_interval: float = 60.0,
        on_keys_removed: Callable[[], None] | None = None,
    ) -> None:
        self.keys = initial
        self.fetches = 0
        self.failures = 0
        self._clock = clock
        self._parse = parse
        self._fetch = fetch
        self._refresh_interval = refresh_interval
        self._min_interval = min_interval
        self._on_keys_removed = on_keys_removed
        now = clock.monotonic()
        self._loaded_at: float | None = now if initial is not None else None
        self._last_attempt: float | None = now if initial is not None else None
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[KeySet | None]] = set()

    @property
    def refreshable(self) -> bool:
        """Whether this source can fetch keys at all (a static PEM or secret cannot)."""
        return self._fetch is not None

    def may_fetch(self) -> bool:
        """Whether a fetch is allowed now (the minimum interval since the last attempt passed)."""
        if self._fetch is None:
            return False
        if self._task is not None and not self._task.done():
            return True  # joining the fetch in flight costs the IdP nothing
        last = self._last_attempt
        return last is None or self._clock.monotonic() - last >= self._min_interval

    def is_stale(self) -> bool:
        """Whether the set is older than the refresh interval."""
        loaded = self._loaded_at
        return (
            self._fetch is not None
            and loaded is not None
            and self._clock.monotonic() - loaded >= self._refresh_interval
        )

    def refresh_in_background(self) -> None:
        """Start a refresh without waiting for it, if one is allowed and a loop is running."""
        if not self.may_fetch():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def refresh(self) -> KeySet | None:
        """Fetch the key set (or join the fetch in flight) and return the current set.

        Returns the last good set when the fetch fails or is not allowed yet, None when no set
        was ever loaded.
        """
        task = self._task
        if task is None or task.done():
            if not self.may_fetch():
                return self.keys
            self._last_attempt = self._clock.monotonic()
            task = self._task = asyncio.get_running_loop().create_task(self._refresh_once())
        # Shielded: a request that gives up must not cancel the fetch others are waiting on.
        await asyncio.shield(task)
        return self.keys

    async def _refresh_once(self) -> None:
        fetch = self._fetch
        if fetch is None:
            return
        self.fetches += 1
        try:
            document = await fetch()
            keys = self._parse(document)
        except (OSError, TimeoutError, FetchError, KeyLoadError, httptools.HttpParserError) as exc:
            self.failures += 1
            _log.warning(
                "JWKS refresh failed (%s: %s); keeping the last good key set (%d keys)",
                type(exc).__name__,
                exc,
                len(self.keys) if self.keys is not None else 0,
            )
            return
        previous = self.keys
        self.keys = keys
        self._loaded_at = self._clock.monotonic()
        if previous is not None and self._on_keys_removed and not previous.kids <= keys.kids:
            self._on_keys_removed()


def file_fetcher(path: Path, max_bytes: int) -> Fetch:
    """A fetch function that re-reads a local JWKS file (off the event loop)."""

    def read() -> bytes:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FetchError(f"{path} is larger than {max_bytes} bytes")
        return data

    async def fetch() -> bytes:
        return await asyncio.to_thread(read)

    return fetch


class HTTPSFetcher:
    """GET one URL with a total deadline and a byte cap; 200 is the only acceptable answer.

    Redirects are not followed: a JWKS URL is configured, not discovered.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        max_bytes: int,
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError("the JWKS URL has no host")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl_context = ssl_context if parts.scheme == "https" else None
        self.timeout = timeout
        self.max_bytes = max_bytes
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        self._request = (
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n"
            "Accept: application/jwk-set+json, application/json\r\n"
            "User-Agent: bastion-jwt\r\nConnection: close\r\n\r\n"
        ).encode("ascii")

    async def __call__(self) -> bytes:
        """Fetch the document.

        Raises:
            FetchError: not a 200, too large, or cut short.
            OSError: connection or TLS failure (`ssl.SSLError` included).
            TimeoutError: the deadline passed.
        """
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context is not None else None,
            )
            try:
                return await self._exchange(reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        try:
            status, body = await read_response(reader, writer, self._request, self.max_bytes)
        except ResponseReadError as exc:
            raise FetchError(_FAILURES[exc.reason].format(self.max_bytes)) from None
        if status != 200:  # the only acceptable answer; redirects are not followed
            raise FetchError(f"the JWKS endpoint answered {status}")
        return body
