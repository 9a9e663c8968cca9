"""Settings for the basic_auth policy."""

from __future__ import annotations

from pydantic import Field

from bastion.core.policy import PolicyConfig

_REALM = r"^[A-Za-z0-9 _.:/-]{1,64}$"


class BasicAuthConfig(PolicyConfig):
    """Settings for the basic_auth policy."""

    realm: str = Field(
        "bastion", pattern=_REALM, description="Realm named in the WWW-Authenticate challenge."
    )
    cache_ttl: float = Field(
        30.0,
        ge=0,
        le=300,
        description="Seconds a successful verification is remembered (keyed by an HMAC of the "
        "credentials, never the password); 0 verifies every request with argon2id.",
    )
    strip_credential: bool = Field(
        True, description="Remove the Authorization header before forwarding upstream."
    )
