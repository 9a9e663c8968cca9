"""Configuration: pydantic models of the YAML file, the policy union, and the loader."""
