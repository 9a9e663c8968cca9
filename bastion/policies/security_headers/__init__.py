"""The security_headers policy: hardening headers on every response, errors included."""

from bastion.policies.security_headers.config import SecurityHeadersConfig
from bastion.policies.security_headers.policy import SecurityHeadersPolicy

__all__ = ["SecurityHeadersConfig", "SecurityHeadersPolicy"]
