"""The versioning policy: picks the API version, announces deprecation and sunset, retires it."""

from bastion.policies.versioning.config import VersionConfig, VersioningConfig
from bastion.policies.versioning.policy import VersioningPolicy

__all__ = ["VersionConfig", "VersioningConfig", "VersioningPolicy"]
