"""The built-in OAuth 2.0 authorization server: clients, signing keys, token endpoints."""
