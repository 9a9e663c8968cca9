"""The rate_limit policy: GCRA or sliding-window limits with standard RateLimit headers."""

from bastion.policies.rate_limit.config import LimitConfig, RateLimitConfig
from bastion.policies.rate_limit.policy import RateLimitPolicy

__all__ = ["LimitConfig", "RateLimitConfig", "RateLimitPolicy"]
