"""The `policies:` block: one optional field per built-in policy, keyed by the policy's name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bastion.policies.acl.config import ACLConfig
from bastion.policies.api_key.config import APIKeyConfig
from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.concurrency_limit.config import ConcurrencyLimitConfig
from bastion.policies.cors.config import CORSConfig
from bastion.policies.injection_guard.config import InjectionGuardConfig
from bastion.policies.introspection.config import IntrospectionConfig
from bastion.policies.ip_filter.config import IPFilterConfig
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.openapi.config import OpenAPIConfig
from bastion.policies.quota.config import QuotaConfig
from bastion.policies.rate_limit.config import RateLimitConfig
from bastion.policies.request_id.config import RequestIDConfig
from bastion.policies.scopes.config import ScopesConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.trusted_proxy.config import TrustedProxyConfig
from bastion.policies.versioning.config import VersioningConfig


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
    jwt: JWTConfig | None = Field(
        None, description="Bearer JWT access tokens verified against JWKS, PEM or secret keys."
    )
    api_key: APIKeyConfig | None = Field(None, description="API keys held in the store.")
    basic_auth: BasicAuthConfig | None = Field(
        None, description="HTTP Basic credentials checked against argon2id hashes in the store."
    )
    introspection: IntrospectionConfig | None = Field(
        None, description="Opaque bearer tokens checked at an RFC 7662 introspection endpoint."
    )
    brute_force: BruteForceConfig | None = Field(
        None, description="Lock out sources of repeated failed authentications (429)."
    )
    scopes: ScopesConfig | None = Field(None, description="OAuth scopes required per method.")
    acl: ACLConfig | None = Field(None, description="Allow or deny consumer groups.")
    quota: QuotaConfig | None = Field(
        None, description="Requests per consumer per calendar day or month (UTC)."
    )
    rate_limit: RateLimitConfig | None = Field(
        None, description="Requests per window per client, consumer, route or header."
    )
    concurrency_limit: ConcurrencyLimitConfig | None = Field(
        None, description="Requests in flight at once per client, consumer, route or header."
    )
    openapi: OpenAPIConfig | None = Field(
        None, description="Validate requests against an OpenAPI 3.0/3.1 document."
    )
    injection_guard: InjectionGuardConfig | None = Field(
        None, description="Refuse SQLi, XSS, traversal, command and other injection payloads."
    )
    versioning: VersioningConfig | None = Field(
        None, description="API version selection, Deprecation/Sunset headers, 410 after sunset."
    )

    def configured(self) -> dict[str, BaseModel]:
        """The policies that are set, by name."""
        return {
            name: value
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }
