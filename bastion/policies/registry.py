"""The built-in policies by name: the one place that maps config keys to policy classes."""

from __future__ import annotations

from typing import Any

from bastion.core.policy import Policy
from bastion.policies.acl.policy import ACLPolicy
from bastion.policies.api_key.policy import APIKeyPolicy
from bastion.policies.basic_auth.policy import BasicAuthPolicy
from bastion.policies.brute_force.policy import BruteForcePolicy
from bastion.policies.concurrency_limit.policy import ConcurrencyLimitPolicy
from bastion.policies.cors.policy import CORSPolicy
from bastion.policies.injection_guard.policy import InjectionGuardPolicy
from bastion.policies.introspection.policy import IntrospectionPolicy
from bastion.policies.ip_filter.policy import IPFilterPolicy
from bastion.policies.jwt.policy import JWTPolicy
from bastion.policies.openapi.policy import OpenAPIPolicy
from bastion.policies.quota.policy import QuotaPolicy
from bastion.policies.rate_limit.policy import RateLimitPolicy
from bastion.policies.request_id.policy import RequestIDPolicy
from bastion.policies.scopes.policy import ScopesPolicy
from bastion.policies.security_headers.policy import SecurityHeadersPolicy
from bastion.policies.size_limit.policy import SizeLimitPolicy
from bastion.policies.trusted_proxy.policy import TrustedProxyPolicy
from bastion.policies.versioning.policy import VersioningPolicy

BUILTIN_POLICIES: dict[str, type[Policy[Any]]] = {
    cls.name: cls
    for cls in (
        RequestIDPolicy,
        TrustedProxyPolicy,
        SecurityHeadersPolicy,
        CORSPolicy,
        IPFilterPolicy,
        SizeLimitPolicy,
        APIKeyPolicy,
        BasicAuthPolicy,
        JWTPolicy,
        IntrospectionPolicy,
        BruteForcePolicy,
        ScopesPolicy,
        ACLPolicy,
        QuotaPolicy,
        RateLimitPolicy,
        ConcurrencyLimitPolicy,
        InjectionGuardPolicy,
        OpenAPIPolicy,
        VersioningPolicy,
    )
}
