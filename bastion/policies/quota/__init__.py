"""The quota policy: requests per consumer per calendar day or month (UTC)."""

from bastion.policies.quota.config import QuotaConfig
from bastion.policies.quota.policy import QuotaPolicy

__all__ = ["QuotaConfig", "QuotaPolicy"]
