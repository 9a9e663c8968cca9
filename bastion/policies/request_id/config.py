"""Settings for the request_id policy."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from bastion.core.policy import PolicyConfig

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
# Fields whose meaning to the proxy or upstream an id must never overwrite.
_RESERVED = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "host",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class RequestIDConfig(PolicyConfig):
    """Settings for the request_id policy."""

    header: str = Field(
        "x-request-id",
        description="Header that carries the id, to the upstream and back to the client.",
    )
    trust_incoming: bool = Field(
        False,
        description=(
            "Keep a well-formed id sent by the client (8-128 of A-Z a-z 0-9 . _ : -) instead of"
            " generating one; enable only when the callers are your own services."
        ),
    )
    echo: bool = Field(True, description="Add the id to the response sent to the client.")

    @field_validator("header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        name = value.strip().lower()
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{value!r} is not a valid header name")
        if name in _RESERVED:
            raise ValueError(f"{name!r} is reserved and cannot carry the request id")
        return name
