"""A small banking API: the reference upstream Bastion protects in its demo and end-to-end tests."""

from examples.bank.app import create_app
from examples.bank.seed import seed

__all__ = ["create_app", "seed"]
