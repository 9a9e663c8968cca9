"""Settings for the quota policy."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bastion.core.policy import PolicyConfig
from bastion.policies.quota.period import Period
from bastion.policies.rate_limit.config import _normalise_key  # the same key kinds, one parser

MAX_QUOTA = 10**12
IDENTIFIED_KINDS = frozenset({"consumer", "credential"})
"""Key kinds that name an authenticated caller (see `bastion.policies.quota.checks`)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class QuotaConfig(PolicyConfig):
    """Settings for the quota policy: `limit` admitted requests per key per calendar period."""

    limit: int = Field(gt=0, le=MAX_QUOTA, description="Requests admitted per period and key.")
    period: Period = Field(description="`day` or `month`: calendar periods in UTC.")
    key: list[str] = Field(
        default_factory=lambda: ["consumer"],
        description="Whose quota: consumer (the default), credential, ip, route, header:<name>, "
        "or a list of them. Without an authentication policy on the route the key must "
        "include ip and name no consumer or credential.",
    )
    name: str = Field(
        "quota",
        pattern=_NAME.pattern,
        description="Policy name in the RateLimit and RateLimit-Policy headers.",
    )
    headers: bool = Field(True, description="Send RateLimit and RateLimit-Policy headers.")
    on_backend_error: Literal["local", "allow", "deny"] = Field(
        "local",
        description="When Redis is unavailable: `local` counts in process memory, `allow` "
        "admits, `deny` refuses with 503.",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return _normalise_key(value)

    @property
    def needs_identity(self) -> bool:
        """Whether the quota is meaningful only for authenticated callers.

        True when the key names the consumer or credential (anonymous callers would silently
        be counted by address instead), and when it lacks `ip`: `route` alone pools every
        anonymous caller into one quota that any of them can use up, and a header's value is
        whatever the client sends.
        """
        return "ip" not in self.key or any(kind in IDENTIFIED_KINDS for kind in self.key)
