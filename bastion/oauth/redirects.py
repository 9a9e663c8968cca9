"""Which redirect URIs a client may register (exact strings, compared as such at use)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})


def check_redirect_uri(uri: str) -> str:
    """`uri` if it may be registered: absolute https (or http on loopback), no fragment.

    Raises:
        ValueError: the URI is relative, has a fragment or credentials, or uses plain http
            off loopback (RFC 9700 §4.1.3, RFC 8252 §7.3).
    """
    parts = urlsplit(uri)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ValueError("a redirect URI must be an absolute https URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("plain http redirect URIs are allowed on loopback only")
    if parts.fragment or "#" in uri or parts.username or parts.password:
        raise ValueError("a redirect URI must not have a fragment or credentials")
    if any(char in uri for char in " \"'<>;,\\") or any(ord(char) < 0x21 for char in uri):
        raise ValueError("a redirect URI must not contain spaces, quotes or separators")
    return uri
