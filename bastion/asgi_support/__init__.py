"""Helpers of `bastion.asgi`: config loading for middleware mode and ASGI scope translation."""
