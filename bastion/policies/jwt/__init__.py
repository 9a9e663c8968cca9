"""The jwt policy: bearer JWT access tokens verified against pinned keys."""

from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.policy import JWTPolicy
from bastion.policies.jwt.verify import TokenError, TokenRules, VerifiedToken, verify_access_token

__all__ = [
    "JWTConfig",
    "JWTPolicy",
    "TokenError",
    "TokenRules",
    "VerifiedToken",
    "verify_access_token",
]
