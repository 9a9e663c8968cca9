"""A small HTTPS POST client for the introspection endpoint: one deadline, a byte cap.

Same approach as `bastion.policies.jwt.jwks.HTTPSFetcher` (asyncio streams, the stdlib `ssl`
context with certificate and host name verification, httptools for the response), but a POST
of a form body with client authentication, and the status is returned rather than refused, so
the policy can tell an authentication failure at the endpoint from an outage. One connection
per introspection (`Connection: close`): the answers are cached, so the endpoint sees one call
per token per cache lifetime.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from bastion.http.collect import ResponseReadError, read_response

_FAILURES = {
    "closed": "the connection closed before the answer ended",
    "head_too_large": "the response head is too large",
    "body_too_large": "the answer is larger than {} bytes",
}


class IntrospectionFetchError(Exception):
    """The endpoint's answer could not be read (size, framing); the message is for logs."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Status code and body of the endpoint's answer."""

    status: int
    body: bytes


def basic_credentials(client_id: str, secret: str) -> str:
    """`Authorization: Basic` value per RFC 6749 §2.3.1 (each part form-encoded first)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class IntrospectionClient:
    """POST `token=...` to one URL with client_secret_basic, a total deadline and a byte cap.

    Redirects are not followed: the endpoint is configured, not discovered.
    """

    def __init__(
        self,
        url: str,
        *,
        authorization: str | None,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        max_bytes: int,
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError("the introspection endpoint has no host")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl_context = ssl_context if parts.scheme == "https" else None
        self.timeout = timeout
        self.max_bytes = max_bytes
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Accept: application/json\r\nUser-Agent: bastion-introspection\r\n"
            "Connection: close\r\n"
        )
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        self._head = head

    async def introspect(self, token: str) -> Reply:
        """Ask the endpoint about `token` (RFC 7662 §2.1).

        Raises:
            IntrospectionFetchError: the answer was too large or cut short.
            OSError: connection or TLS failure (`ssl.SSLError` included).
            TimeoutError: the deadline passed.
            httptools.HttpParserError: the answer is not HTTP/1.1.
        """
        body = urlencode({"token": token, "token_type_hint": "access_token"}).encode("ascii")
        request = (self._head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context is not None else None,
            )
            try:
                return await self._exchange(reader, writer, request)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> Reply:
        try:
            status, body = await read_response(reader, writer, request, self.max_bytes)
        except ResponseReadError as exc:
            raise IntrospectionFetchError(_FAILURES[exc.reason].format(self.max_bytes)) from None
        return Reply(status, body)
