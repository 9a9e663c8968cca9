"""The rate_limit policy: GCRA, sliding-window or sliding-log limits with RateLimit headers."""

from bastion.policies.rate_limit.config import LimitConfig, RateLimitConfig
from bastion.policies.rate_limit.policy import RateLimitPolicy

__all__ = ["LimitConfig", "RateLimitConfig", "RateLimitPolicy"]
