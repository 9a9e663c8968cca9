"""`bastion verify`: probe the running gateway and prove each configured policy fires."""

from bastion.verify.model import Check, Outcome, VerifyReport
from bastion.verify.runner import VerifyOptions, run_verify

__all__ = ["Check", "Outcome", "VerifyOptions", "VerifyReport", "run_verify"]
