"""The introspection policy: opaque bearer tokens checked at an RFC 7662 endpoint."""
