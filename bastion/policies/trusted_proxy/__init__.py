"""The trusted_proxy policy: the client address and scheme as reported by trusted proxies."""

from bastion.policies.trusted_proxy.config import TrustedProxyConfig
from bastion.policies.trusted_proxy.policy import TrustedProxyPolicy

__all__ = ["TrustedProxyConfig", "TrustedProxyPolicy"]
