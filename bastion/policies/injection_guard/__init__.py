"""The injection_guard policy: a versioned rule set against injection payloads."""

from bastion.policies.injection_guard.config import InjectionGuardConfig
from bastion.policies.injection_guard.policy import InjectionGuardPolicy

__all__ = ["InjectionGuardConfig", "InjectionGuardPolicy"]
