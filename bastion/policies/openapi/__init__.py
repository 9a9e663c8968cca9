"""The openapi policy: requests must match the operation an OpenAPI document describes."""

from bastion.policies.openapi.config import OpenAPIConfig
from bastion.policies.openapi.policy import OpenAPIPolicy

__all__ = ["OpenAPIConfig", "OpenAPIPolicy"]
