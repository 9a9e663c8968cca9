"""The concurrency_limit policy: at most `max` requests in flight per key."""

from bastion.policies.concurrency_limit.config import ConcurrencyLimitConfig
from bastion.policies.concurrency_limit.policy import ConcurrencyLimitPolicy

__all__ = ["ConcurrencyLimitConfig", "ConcurrencyLimitPolicy"]
