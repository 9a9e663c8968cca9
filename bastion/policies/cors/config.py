"""Settings for the cors policy."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig

WILDCARD = "*"
MAX_MAX_AGE = 86_400

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# An origin as browsers serialise it: scheme://host[:port], lower-case, no path or trailing slash.
_ORIGIN = re.compile(
    r"https?://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
)


def _tokens(values: list[str], *, what: str, upper: bool) -> list[str]:
    result: list[str] = []
    for raw in values:
        value = raw.strip()
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"{raw!r} is not a valid {what}")
        value = value.upper() if upper else value.lower()
        if value not in result:
            result.append(value)
    return result


class CORSConfig(PolicyConfig):
    """Settings for the cors policy (Fetch standard CORS protocol)."""

    allow_origins: list[str] = Field(
        ...,
        min_length=1,
        description=(
            'Origins allowed to call the API from a browser, exactly as "https://app.example"'
            ' (scheme, host, optional port), or ["*"] for any origin without credentials.'
        ),
    )
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "POST"],
        description="Methods a preflight permits (Access-Control-Allow-Methods).",
    )
    allow_headers: list[str] = Field(
        default_factory=list,
        description="Request headers a preflight permits (Access-Control-Allow-Headers).",
    )
    expose_headers: list[str] = Field(
        default_factory=list,
        description="Response headers browser scripts may read (Access-Control-Expose-Headers).",
    )
    allow_credentials: bool = Field(
        False,
        description="Let browsers send cookies and HTTP auth (Access-Control-Allow-Credentials).",
    )
    max_age: int = Field(
        600,
        ge=0,
        le=MAX_MAX_AGE,
        description="Seconds a browser may cache a preflight answer (Access-Control-Max-Age).",
    )

    @field_validator("allow_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        origins: list[str] = []
        for raw in value:
            origin = raw.strip().lower()
            if origin == WILDCARD:
                if len(value) > 1:
                    raise ValueError('"*" cannot be combined with other origins')
            elif origin == "null":
                raise ValueError(
                    '"null" is refused: sandboxed documents and local files all share it,'
                    " so allowing it allows any page"
                )
            elif not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{raw!r} is not an origin: expected scheme://host[:port] with http or"
                    " https and no path"
                )
            if origin not in origins:
                origins.append(origin)
        return origins

    @field_validator("allow_methods")
    @classmethod
    def _check_methods(cls, value: list[str]) -> list[str]:
        return _tokens(value, what="method", upper=True)

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _check_headers(cls, value: list[str]) -> list[str]:
        return _tokens(value, what="header name", upper=False)

    @model_validator(mode="after")
    def _check_credentials(self) -> Self:
        if self.allow_credentials and WILDCARD in self.allow_origins:
            raise ValueError(
                'allow_origins "*" cannot be used with allow_credentials: any site could then'
                " make authenticated requests with its visitors' cookies; list the origins"
            )
        return self
