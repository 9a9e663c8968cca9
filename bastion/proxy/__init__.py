"""The standalone data plane: listeners, TLS, downstream and upstream HTTP/1.1 protocols."""
