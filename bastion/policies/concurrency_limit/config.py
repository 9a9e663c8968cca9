"""Settings for the concurrency_limit policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bastion.core.policy import PolicyConfig
from bastion.policies.rate_limit.config import _normalise_key  # the same key kinds, one parser

MAX_IN_FLIGHT = 1_000_000
MAX_LEASE_SECONDS = 86_400


class ConcurrencyLimitConfig(PolicyConfig):
    """Settings for the concurrency_limit policy: `max` requests in flight per key."""

    max: int = Field(
        gt=0, le=MAX_IN_FLIGHT, description="Requests in flight admitted at once per key."
    )
    key: list[str] = Field(
        default_factory=lambda: ["ip"],
        description="What is counted: ip, consumer, credential, route, header:<name>, or a "
        "list combining them (as rate_limit's key). consumer/credential/header fall back to "
        "the client IP when absent.",
    )
    lease_seconds: int = Field(
        30,
        ge=1,
        le=MAX_LEASE_SECONDS,
        description="With Redis counters: how long the slots of a node that stopped without "
        "releasing them stay taken (live nodes renew their leases, so requests may run longer).",
    )
    on_backend_error: Literal["local", "allow", "deny"] = Field(
        "local",
        description="When Redis is unavailable: `local` counts in process memory, `allow` "
        "admits, `deny` refuses with 503.",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return _normalise_key(value)
