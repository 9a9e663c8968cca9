"""The size_limit policy: bounds on body, URI, query parameters and header count."""

from bastion.policies.size_limit.config import SizeLimitConfig
from bastion.policies.size_limit.policy import SizeLimitPolicy

__all__ = ["SizeLimitConfig", "SizeLimitPolicy"]
