"""The gateway: compiled routes and chains, request handling, forwarding to upstreams."""
