"""The ip_filter policy: allow and deny lists of client networks."""

from bastion.policies.ip_filter.config import IPFilterConfig
from bastion.policies.ip_filter.policy import IPFilterPolicy

__all__ = ["IPFilterConfig", "IPFilterPolicy"]
