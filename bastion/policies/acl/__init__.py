"""The acl policy: allow and deny lists of consumer groups."""

from bastion.policies.acl.config import ACLConfig
from bastion.policies.acl.policy import ACLPolicy

__all__ = ["ACLConfig", "ACLPolicy"]
