"""The basic_auth policy: HTTP Basic authentication against argon2id hashes in the store."""

from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.policies.basic_auth.policy import BasicAuthPolicy

__all__ = ["BasicAuthConfig", "BasicAuthPolicy"]
