"""The built-in policies by name: the one place that maps config keys to policy classes."""

from __future__ import annotations

from typing import Any

from bastion.core.policy import Policy
from bastion.policies.cors.policy import CORSPolicy
from bastion.policies.ip_filter.policy import IPFilterPolicy
from bastion.policies.request_id.policy import RequestIDPolicy
from bastion.policies.security_headers.policy import SecurityHeadersPolicy
from bastion.policies.size_limit.policy import SizeLimitPolicy
from bastion.policies.trusted_proxy.policy import TrustedProxyPolicy

BUILTIN_POLICIES: dict[str, type[Policy[Any]]] = {
    cls.name: cls
    for cls in (
        RequestIDPolicy,
        TrustedProxyPolicy,
        SecurityHeadersPolicy,
        CORSPolicy,
        IPFilterPolicy,
        SizeLimitPolicy,
    )
}
