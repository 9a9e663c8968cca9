"""The `policies:` block: one optional field per built-in policy, keyed by the policy's name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bastion.policies.cors.config import CORSConfig
from bastion.policies.ip_filter.config import IPFilterConfig
from bastion.policies.request_id.config import RequestIDConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.trusted_proxy.config import TrustedProxyConfig


class PoliciesConfig(BaseModel):
    """Policies by name; an omitted policy is not applied (an empty `{}` applies its defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: RequestIDConfig | None = Field(None, description="Request id header.")
    trusted_proxy: TrustedProxyConfig | None = Field(
        None, description="Client address from trusted proxies' forwarding headers."
    )
    security_headers: SecurityHeadersConfig | None = Field(
        None, description="HSTS and hardening response headers."
    )
    cors: CORSConfig | None = Field(None, description="Cross-origin resource sharing.")
    ip_filter: IPFilterConfig | None = Field(None, description="Allow or deny client networks.")
    size_limit: SizeLimitConfig | None = Field(None, description="Body, URI and header limits.")

    def configured(self) -> dict[str, BaseModel]:
        """The policies that are set, by name."""
        return {
            name: value
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }
