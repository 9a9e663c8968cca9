"""Built-in policies, one folder each (config.py + policy.py), registered by name."""
