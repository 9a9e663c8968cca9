"""The plain-HTTP listener's only job: a permanent 308 redirect to the HTTPS origin."""

from __future__ import annotations

from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.proxy.downstream import Exchange, http_date


class RedirectApp:
    """Answer every request with 308 to the same path and query over HTTPS.

    308 (RFC 9110 §15.4.9) keeps the method and body, unlike 301/302, so a POST sent to the
    plain port is not silently turned into a GET. No HSTS here: browsers ignore it over HTTP.
    """

    def __init__(self, origin: str | None, https_port: int | None) -> None:
        self._origin = origin.encode() if origin else None
        self._port = b"" if https_port in (None, 443) else b":%d" % https_port

    def handle(self, exchange: Exchange) -> None:
        """Send the redirect."""
        request = exchange.request
        if self._origin is not None:
            origin = self._origin
        else:
            host = request.host.encode() if request.host else b"localhost"
            origin = b"https://" + host + self._port
        location = origin + request.path.encode()
        if request.query:
            location += b"?" + request.query
        headers = Headers(
            [
                (b"location", location),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"date", http_date()),
            ]
        )
        exchange.send_response(Response(308, headers, b"Use HTTPS: " + location + b"\n"))
