"""Settings for the brute_force policy."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from bastion.core.policy import PolicyConfig

_FIELD_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"  # an RFC 9110 field name


class BruteForceConfig(PolicyConfig):
    """Settings for the brute_force policy: thresholds, window and cool-down.

    Failures are counted per (client address, identity attempted) and per client address;
    an identity alone is never locked, so nobody can lock a victim out from their own address.
    """

    max_failures: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Failed authentications per (client address, identity attempted) within"
        " `window` after which that pair is locked out.",
    )
    max_ip_failures: int = Field(
        50,
        ge=1,
        le=1_000_000,
        description="Failed authentications per client address, whatever identity, within"
        " `window` after which the address is locked out (at least max_failures).",
    )
    window: int = Field(300, ge=1, le=86_400, description="Counting window, in seconds.")
    lockout: int = Field(
        900, ge=1, le=86_400, description="Seconds a locked source is refused with 429."
    )
    api_key_header: str = Field(
        "x-api-key",
        pattern=_FIELD_NAME,
        description="Header whose API key id names the identity attempted (as the api_key"
        " policy's `header`).",
    )
    on_backend_error: Literal["local", "allow", "deny"] = Field(
        "local",
        description="When Redis counters are unavailable: count in this process (`local`),"
        " skip the check (`allow`), or refuse with 503 (`deny`).",
    )

    @model_validator(mode="after")
    def _check_thresholds(self) -> Self:
        if self.max_ip_failures < self.max_failures:
            raise ValueError(
                "max_ip_failures must be at least max_failures: the address alone is locked"
                " only past a higher threshold than an address and identity pair"
            )
        return self
