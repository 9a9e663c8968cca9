"""Parsing of the `counters:` Redis URL (kept apart so config validation needs no Redis driver)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

DEFAULT_TIMEOUT = 0.05
DEFAULT_PREFIX = "bastion:rl:"

_KNOWN_OPTIONS = frozenset({"prefix", "timeout_ms"})


def parse_redis_url(url: str) -> tuple[str, str, float]:
    """Split a `counters:` Redis URL into the client URL, the key prefix and the timeout.

    `redis://host:port/db` (or `rediss://`), with optional `?prefix=...&timeout_ms=...`.

    Raises:
        ValueError: not a Redis URL, a database that is not a number, an unknown option or
            a timeout outside 1-1000 ms.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("must be memory or redis://host:port/db")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError("the Redis database must be a number, as in redis://host:6379/0")
    prefix = DEFAULT_PREFIX
    timeout = DEFAULT_TIMEOUT
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _KNOWN_OPTIONS:
            raise ValueError(f"unknown option {name!r} (known: prefix, timeout_ms)")
        if name == "prefix":
            prefix = value
        else:
            if not value.isdigit() or not 1 <= int(value) <= 1000:
                raise ValueError("timeout_ms must be a whole number from 1 to 1000")
            timeout = int(value) / 1000
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return client_url, prefix, timeout
