"""Bastion: an API security gateway and ASGI middleware that enforces and proves API security."""

__version__ = "0.1.0"

__all__ = ["__version__"]
