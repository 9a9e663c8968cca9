"""The api_key policy: authenticate callers by a Bastion API key held in the store."""

from bastion.policies.api_key.config import APIKeyConfig
from bastion.policies.api_key.policy import APIKeyPolicy

__all__ = ["APIKeyConfig", "APIKeyPolicy"]
