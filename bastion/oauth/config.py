"""Settings of the built-in OAuth 2.0 authorization server (the top-level `oauth:` block)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.policies.brute_force.config import BruteForceConfig


class OAuthConfig(BaseModel):
    """The authorization server: who it is, how long its tokens live, how it signs them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(
        ...,
        description="The issuer URL (`iss` of every token, RFC 8414 metadata), e.g."
        " https://localhost:8443. https, no query or fragment.",
    )
    access_token_ttl: int = Field(
        900, ge=60, le=86_400, description="Lifetime of access tokens, in seconds."
    )
    refresh_token_ttl: int = Field(
        86_400,
        ge=300,
        le=90 * 86_400,
        description="Absolute lifetime, in seconds, of the refresh tokens of one authorization:"
        " rotation issues new tokens but never extends it.",
    )
    signing_alg: Literal["ES256", "RS256"] = Field(
        "ES256", description="Signature algorithm of access tokens (ES256: P-256 ECDSA)."
    )
    key_rotation_days: float = Field(
        30,
        gt=0,
        le=365,
        description="A new signing key is made after this many days; the previous one stays"
        " published until the tokens it signed have expired.",
    )

    brute_force: BruteForceConfig | Literal[False] | None = Field(
        None,
        description="Lockout of failed client authentications (token, introspection and"
        " revocation endpoints) and failed logins (authorization endpoint), per client address"
        " and per (address, client_id or username). Not set: the global_policies.brute_force"
        " settings when configured, else the brute_force defaults. `false` turns it off.",
    )

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("issuer must be an https URL with a host (RFC 8414 §2)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("issuer must not have a query, fragment or credentials")
        return value.rstrip("/")
