"""The cors policy: answers preflights and labels responses for allowed browser origins."""

from bastion.policies.cors.config import CORSConfig
from bastion.policies.cors.policy import CORSPolicy

__all__ = ["CORSConfig", "CORSPolicy"]
