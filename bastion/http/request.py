"""The request as the policy chain sees it: parsed, canonicalised, independent of the front door."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bastion.http.headers import Headers

Scheme = Literal["http", "https"]


@dataclass(slots=True)
class Request:
    """One HTTP request head (and, when a policy asked for it, its buffered body).

    `path` is the canonical path (see `bastion.http.path`): the one routed and the one
    forwarded. `target` keeps the raw request-target for logging only.
    """

    method: str
    path: str
    query: bytes
    headers: Headers
    target: bytes = b""
    http_version: str = "1.1"
    scheme: Scheme = "http"
    host: str = ""
    peer_ip: str = "127.0.0.1"
    peer_port: int = 0
    client_ip: str = ""
    body: bytes | None = None
    content_length: int | None = None
    chunked: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.client_ip:
            self.client_ip = self.peer_ip

    @property
    def has_body(self) -> bool:
        """Whether the request carries a body (a non-zero Content-Length or chunked)."""
        return self.chunked or bool(self.content_length)
