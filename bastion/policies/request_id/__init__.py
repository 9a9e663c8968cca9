"""The request_id policy: one id per request, sent upstream and echoed to the client."""

from bastion.policies.request_id.config import RequestIDConfig
from bastion.policies.request_id.policy import RequestIDPolicy

__all__ = ["RequestIDConfig", "RequestIDPolicy"]
