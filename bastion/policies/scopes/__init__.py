"""The scopes policy: OAuth scopes required per route and method."""

from bastion.policies.scopes.config import ScopeRule, ScopesConfig
from bastion.policies.scopes.policy import ScopesPolicy

__all__ = ["ScopeRule", "ScopesConfig", "ScopesPolicy"]
