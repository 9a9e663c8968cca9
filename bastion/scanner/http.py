"""The scanner's HTTP client: one origin, a request budget, a rate, safe methods by default.

Every request a check sends goes through `ScanClient.send`, which refuses URLs outside the
target's scope, methods that change state unless the scan allows them, and requests past the
budget; it spaces requests to the configured rate and keeps a count. `evidence()` renders an
exchange as a short text excerpt with credentials masked.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from bastion.clock import Clock, SystemClock
from bastion.observability.logging import REDACTED, redact

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_IDEMPOTENT: Final = SAFE_METHODS | {"PUT", "DELETE"}  # RFC 9110, section 9.2.2
_BODY_EXCERPT: Final = 400
_SHOWN_REQUEST_HEADERS: Final = ("authorization", "origin", "content-type", "x-api-key", "cookie")


class ScanRefused(Exception):
    """A request the scan's rules do not allow (out of scope, unsafe method, budget spent)."""


class BudgetExhausted(ScanRefused):
    """The scan has sent as many requests as its budget allows."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the response it received."""

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float = 0.0  # seconds from sending the request to the end of the response body

    @property
    def text(self) -> str:
        """The response body decoded leniently (checks only search it)."""
        return self.body.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        """Whether the response is a 2xx."""
        return 200 <= self.status < 300


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """Return (scheme, host, port) with the scheme's default port filled in."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


class ScanClient:
    """Sends the scan's requests within its scope, budget and rate."""

    def __init__(
        self,
        target: str,
        *,
        budget: int,
        rate: float,
        allow_unsafe: bool,
        secrets: tuple[str, ...] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        clock: Clock | None = None,
        extra_origins: tuple[str, ...] = (),
    ) -> None:
        self.target = httpx.URL(target)
        self.budget = budget
        self.sent = 0
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._allow_unsafe = allow_unsafe
        self._secrets = tuple(s for s in secrets if len(s) >= 4)
        self._clock = clock or SystemClock()
        self._next_at = 0.0
        self._lock = asyncio.Lock()
        self._origins = {origin_of(self.target)} | {origin_of(httpx.URL(o)) for o in extra_origins}
        if isinstance(verify, str):
            verify_with: bool | ssl.SSLContext = ssl.create_default_context(cafile=verify)
        else:
            verify_with = verify
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=verify_with,
            timeout=timeout,
            follow_redirects=False,
            headers={"user-agent": "bastion-scan"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def url(self, path: str) -> str:
        """Join a path (with its query string, if any) to the target's base URL."""
        base = str(self.target).rstrip("/")
        return base + (path if path.startswith("/") else "/" + path)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        login: bool = False,
    ) -> Exchange:
        """Send one request and return the exchange.

        `login` marks the user's own login recipe: it may POST even in a safe scan, because
        the user wrote that request and logging in is what a scan with credentials needs.

        Raises:
            ScanRefused: the URL is outside the scan's origins or the method is unsafe and
                the scan did not allow unsafe methods.
            BudgetExhausted: the request budget is spent.
            httpx.HTTPError: the request failed at the transport level.
        """
        method = method.upper()
        parsed = httpx.URL(url)
        if params:
            parsed = parsed.copy_merge_params(dict(params))
        if origin_of(parsed) not in self._origins:
            raise ScanRefused(f"out of scope: {parsed.scheme}://{parsed.host}:{parsed.port}")
        if method not in SAFE_METHODS and not self._allow_unsafe and not login:
            raise ScanRefused(f"{method} needs --allow-unsafe")
        await self._pace()
        started = self._clock.monotonic()
        try:
            response = await self._client.request(
                method, parsed, headers=dict(headers or {}), content=content
            )
            body = await response.aread()
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # Servers often close the connection after an error they crashed on (uvicorn
            # does, after a 500 from an exception); the pooled connection can then fail
            # before any answer. An idempotent request is sent once more, on a new one.
            if method not in _IDEMPOTENT:
                raise
            await self._pace()
            started = self._clock.monotonic()
            response = await self._client.request(
                method, parsed, headers=dict(headers or {}), content=content
            )
            body = await response.aread()
        elapsed = self._clock.monotonic() - started
        return Exchange(
            method=method,
            url=str(parsed),
            request_headers=dict(headers or {}),
            request_body=content or b"",
            status=response.status_code,
            headers=response.headers,
            body=body,
            elapsed=elapsed,
        )

    async def _pace(self) -> None:
        """Count one request against the budget and wait for its turn under `--rate`.

        Raises:
            BudgetExhausted: the request budget is spent.
        """
        async with self._lock:
            if self.sent >= self.budget:
                raise BudgetExhausted("request budget spent")
            self.sent += 1
            delay = self._next_at - self._clock.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_at = max(self._next_at, self._clock.monotonic()) + self._interval

    def add_secret(self, secret: str) -> None:
        """Mask `secret` in every later note and evidence (tokens obtained by a login)."""
        if len(secret) >= 4 and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def mask(self, text: str) -> str:
        """Mask the scan's own credentials and anything else that looks like a secret."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact(text)

    def evidence(self, exchange: Exchange, *, note: str = "") -> str:
        """Render `exchange` as a short request/response excerpt with secrets masked."""
        lines = [f"> {exchange.method} {exchange.url}"]
        for name, value in exchange.request_headers.items():
            if name.lower() in _SHOWN_REQUEST_HEADERS or name.lower().startswith("x-"):
                lines.append(f"> {name}: {value}")
        if exchange.request_body:
            size = len(exchange.request_body)
            lines.append(f"> [{size} byte body] {exchange.request_body[:80]!r}")
        lines.append(f"< {exchange.status}")
        lines.extend(f"< {name}: {value}" for name, value in exchange.headers.items())
        excerpt = exchange.text[:_BODY_EXCERPT]
        if excerpt:
            lines.append("< " + excerpt + ("…" if len(exchange.body) > _BODY_EXCERPT else ""))
        if note:
            lines.append(f"# {note}")
        return self.mask("\n".join(lines))
