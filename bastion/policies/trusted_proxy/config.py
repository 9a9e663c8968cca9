"""Settings for the trusted_proxy policy."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig
from bastion.http.cidr import CIDRSet


class TrustedProxyConfig(PolicyConfig):
    """Settings for the trusted_proxy policy."""

    proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDRs of the proxies in front of Bastion (load balancers, CDNs)."
            " Only requests from these may set the client address and scheme."
        ),
    )
    header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="Header the proxies append the client address to (RFC 7239 `forwarded`).",
    )
    allow_any: bool = Field(
        False,
        description=(
            "Permit a network covering every address (0.0.0.0/0, ::/0). Only for a gateway that"
            " no client can reach except through the proxies."
        ),
    )

    @field_validator("proxies")
    @classmethod
    def _check_entries(cls, value: list[str]) -> list[str]:
        CIDRSet(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _check_not_everything(self) -> Self:
        if not self.allow_any:
            for network in CIDRSet(self.proxies).networks:
                if network.prefixlen == 0:
                    raise ValueError(
                        f"proxies covers every address ({network}): any client could then set"
                        " its own address in forwarding headers and evade IP filters and rate"
                        " limits; list the proxies' own networks, or set allow_any: true if"
                        " only the proxies can reach Bastion"
                    )
        return self
