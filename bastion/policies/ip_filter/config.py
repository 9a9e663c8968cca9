"""Settings for the ip_filter policy."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig
from bastion.http.cidr import CIDRSet


class IPFilterConfig(PolicyConfig):
    """Settings for the ip_filter policy."""

    allow: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDRs allowed in; when set, every other client is refused."
            " Empty means everyone not denied."
        ),
    )
    deny: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDRs refused, even when they are also in allow.",
    )

    @field_validator("allow", "deny")
    @classmethod
    def _check_entries(cls, value: list[str]) -> list[str]:
        CIDRSet(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _check_not_empty(self) -> Self:
        if not self.allow and not self.deny:
            raise ValueError("set allow, deny or both: an empty filter lets every client in")
        return self
