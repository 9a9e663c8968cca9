"""Settings for the acl policy."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig

_GROUP = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


class ACLConfig(PolicyConfig):
    """Settings for the acl policy: consumer groups allowed or denied on a route."""

    allow: list[str] = Field(
        default_factory=list,
        description=(
            "Groups admitted: when set, the caller must belong to at least one of them."
            " Empty means every authenticated caller not denied."
        ),
    )
    deny: list[str] = Field(
        default_factory=list,
        description="Groups refused, even when the caller also belongs to an allowed group.",
    )

    @field_validator("allow", "deny")
    @classmethod
    def _check_groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not _GROUP.fullmatch(group):
                raise ValueError(f"{group!r} is not a group name")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_not_empty(self) -> Self:
        if not self.allow and not self.deny:
            raise ValueError("set allow, deny or both: an empty ACL admits every caller")
        return self
