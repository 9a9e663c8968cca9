"""Settings for the security_headers policy."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig

# hstspreload.org refuses a max-age below one year for the preload list.
PRELOAD_MIN_MAX_AGE = 31_536_000

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
# A header value: visible ASCII and spaces, no control characters (no CR/LF injection).
_FIELD_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")

ReferrerPolicy = Literal[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
]


class SecurityHeadersConfig(PolicyConfig):
    """Settings for the security_headers policy; `null` (or false) disables a header."""

    hsts: bool = Field(
        True,
        description="Send Strict-Transport-Security on responses to HTTPS requests (never HTTP).",
    )
    max_age: int = Field(
        31_536_000, ge=0, description="HSTS max-age in seconds (0 tells browsers to forget)."
    )
    include_subdomains: bool = Field(True, description="Add `includeSubDomains` to HSTS.")
    preload: bool = Field(
        False,
        description=(
            "Add `preload` to HSTS (needs include_subdomains and a max_age of at least a year)."
        ),
    )
    content_type_options: bool = Field(True, description="Send `X-Content-Type-Options: nosniff`.")
    content_security_policy: str | None = Field(
        "frame-ancestors 'none'",
        description="Content-Security-Policy to send when the upstream did not set one.",
    )
    frame_options: Literal["DENY", "SAMEORIGIN"] | None = Field(
        "DENY", description="X-Frame-Options value (for browsers without CSP frame-ancestors)."
    )
    referrer_policy: ReferrerPolicy | None = Field(
        "no-referrer", description="Referrer-Policy value."
    )
    no_store_errors: bool = Field(
        True, description="Send `Cache-Control: no-store` on responses with status 400 or above."
    )
    no_store_all: bool = Field(
        False, description="Send `Cache-Control: no-store` on every response."
    )
    remove_headers: list[str] = Field(
        default_factory=lambda: ["server", "x-powered-by"],
        description="Response headers to remove (they advertise the upstream's software).",
    )

    @field_validator("content_security_policy")
    @classmethod
    def _check_csp(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_VALUE.fullmatch(value):
            raise ValueError("must be a non-empty header value of printable ASCII characters")
        return value

    @field_validator("remove_headers")
    @classmethod
    def _check_names(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        for name in names:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
        return names

    @model_validator(mode="after")
    def _check_preload(self) -> Self:
        if self.hsts and self.preload:
            if not self.include_subdomains:
                raise ValueError("HSTS preload requires include_subdomains: true")
            if self.max_age < PRELOAD_MIN_MAX_AGE:
                raise ValueError(f"HSTS preload requires max_age >= {PRELOAD_MIN_MAX_AGE}")
        return self
