"""Translates between an ASGI HTTP scope and the chain's `Request`, both ways.

Inbound, the scope becomes a `Request` with the canonical path (security invariant #1) and
lower-case header names. Outbound, the wrapped app gets a copy of the scope rebuilt from the
request as the policies left it (path, query, headers, body), without client-sent copies of the
headers Bastion owns, and with the request id, the identity headers and the identity itself in
`scope["state"]`: the same view of the request an upstream gets from the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import MutableMapping
from typing import Any, Final
from urllib.parse import quote, unquote

from bastion.core.context import RequestContext
from bastion.errors import InvalidRequest
from bastion.http.headers import Headers
from bastion.http.path import PathRejected, canonical_path
from bastion.http.request import Request, Scheme

Scope = MutableMapping[str, Any]

IDENTITY_STATE_KEY: Final = "bastion_identity"
"""`scope["state"]` key (`request.state.bastion_identity`) of the caller's `Identity` or None."""
REQUEST_ID_STATE_KEY: Final = "bastion_request_id"
"""`scope["state"]` key of the request id Bastion assigned."""

BAD_PATH: Final = "The request path is ambiguous or malformed."
BAD_LENGTH: Final = "The Content-Length header is invalid."
UNKNOWN_PEER: Final = ""
"""The client address when the server passes none (or a name, as test clients do): in no
CIDR, so an ip_filter `allow` list refuses it (fail closed)."""

_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and '/', minus '%'
_SCHEMES: dict[str, Scheme] = {"http": "http", "https": "https"}
_OWNED_PREFIX: Final = b"x-bastion-"
_BODY_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})
# Response extensions that send a body past `http.response.body`, hence past body filters.
_BODY_BYPASS_EXTENSIONS: Final = ("http.response.pathsend", "http.response.zerocopysend")
# Methods whose HTTP/2 or HTTP/3 requests carry a body even without Content-Length.
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


# Client host → checked address; a server passes few distinct ones between clears.
_PEERS: dict[str, str] = {}
_MAX_PEERS: Final = 4096


def _address(host: str) -> str:
    """`host` if it is an IP address (IPv4-mapped IPv6 as IPv4), else UNKNOWN_PEER."""
    found = _PEERS.get(host)
    if found is not None:
        return found
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        found = UNKNOWN_PEER
    else:
        mapped = address.ipv4_mapped if address.version == 6 else None
        found = str(mapped) if mapped is not None else host
    if len(_PEERS) >= _MAX_PEERS:
        _PEERS.clear()
    _PEERS[host] = found
    return found


def _peer(scope: Scope) -> tuple[str, int]:
    client = scope.get("client")
    if not client:
        return UNKNOWN_PEER, 0
    return _address(str(client[0])), int(client[1] or 0)


def _hostname(headers: Headers, scope: Scope) -> str:
    host = headers.get(b"host")
    if host is None:
        server = scope.get("server")
        return str(server[0]).lower() if server else ""
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.partition(":")[0]


def request_from_scope(scope: Scope) -> Request:
    """The chain's view of an ASGI HTTP request head.

    Raises:
        InvalidRequest: the path is ambiguous (see `bastion.http.path`) or Content-Length is
            not a number.
    """
    raw_path: bytes | None = scope.get("raw_path")
    if not raw_path:
        # `path` is already percent-decoded: encode it again so that a literal '%' is not
        # decoded a second time (a double decoding is exactly the ambiguity refused here).
        raw_path = quote(scope["path"], safe=_PATH_SAFE).encode("ascii")
    try:
        path = canonical_path(raw_path)
    except PathRejected:
        raise InvalidRequest(BAD_PATH, code="bad_path") from None
    headers = Headers([(name.lower(), value) for name, value in scope.get("headers", ())])
    method: str = scope["method"]
    content_length = None
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest(BAD_LENGTH, code="bad_framing")
        content_length = int(length)
    version: str = scope.get("http_version", "1.1")
    chunked = content_length is None and (
        b"transfer-encoding" in headers or (version[0] in "23" and method in _BODY_METHODS)
    )
    peer_ip, peer_port = _peer(scope)
    query: bytes = scope.get("query_string", b"")
    target = raw_path + (b"?" + query if query else b"")
    return Request(
        method,
        path,
        query,
        headers,
        target,
        version,
        _SCHEMES.get(scope.get("scheme", "http"), "http"),
        _hostname(headers, scope),
        peer_ip,
        peer_port,
        peer_ip,
        None,
        content_length,
        chunked,
    )


def _owned(name: bytes) -> bool:
    """Whether `name` is a header Bastion sets for the app, under any spelling."""
    if b"_" in name:
        # CGI-style apps read `X_Bastion_Consumer` as `X-Bastion-Consumer`: a spoofed copy too.
        name = name.replace(b"_", b"-")
    return name.startswith(_OWNED_PREFIX) or name == b"x-request-id"


def app_scope(scope: Scope, ctx: RequestContext, *, body_filtered: bool = False) -> dict[str, Any]:
    """A copy of `scope` for the wrapped app, rebuilt from the request the policies admitted.

    With `body_filtered` (the chain has body filters), the extensions that let the app send a
    body without `http.response.body` messages (pathsend, zerocopysend) are left out, so
    the app falls back to messages the filters see.
    """
    request = ctx.request
    body = request.body
    headers = [
        item
        for item in request.headers.items()
        if not _owned(item[0]) and not (body is not None and item[0] in _BODY_FRAMING)
    ]
    request_id = ctx.ensure_request_id()
    headers.append((b"x-request-id", request_id.encode()))
    identity = ctx.identity
    if identity is not None:
        headers.append((b"x-bastion-consumer", identity.consumer_id.encode()))
        if identity.scopes:
            headers.append((b"x-bastion-scopes", " ".join(sorted(identity.scopes)).encode()))
    if body is not None:
        headers.append((b"content-length", str(len(body)).encode()))
    copied = dict(scope)
    copied["headers"] = headers
    path = request.path
    decoded = unquote(path) if "%" in path else path
    root: str = scope.get("root_path", "")
    if root and not decoded.startswith(root) and scope.get("path", "").startswith(root):
        # Servers such as uvicorn put root_path in `path` but not in `raw_path`: keep it there.
        decoded = root + decoded
    copied["path"] = decoded
    copied["raw_path"] = request.path.encode("ascii")
    copied["query_string"] = request.query
    extensions = scope.get("extensions")
    if body_filtered and extensions and any(name in extensions for name in _BODY_BYPASS_EXTENSIONS):
        copied["extensions"] = {
            name: value for name, value in extensions.items() if name not in _BODY_BYPASS_EXTENSIONS
        }
    state = dict(scope.get("state") or {})
    state[IDENTITY_STATE_KEY] = identity
    state[REQUEST_ID_STATE_KEY] = request_id
    copied["state"] = state
    return copied
