"""Settings for the introspection policy."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from bastion.config.paths import ConfigPath
from bastion.core.policy import PolicyConfig
from bastion.http.cidr import is_loopback_host

_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")  # a quoted-string without `"` or `\`


class IntrospectionConfig(PolicyConfig):
    """Settings for the introspection policy: the RFC 7662 endpoint and how answers are kept.

    The client credentials usually come from the environment through interpolation:
    `client_secret: ${INTROSPECTION_SECRET}`.
    """

    introspection_endpoint: str = Field(
        ...,
        description="HTTPS URL of the authorization server's RFC 7662 endpoint. Plain http only"
        " for a loopback host with allow_insecure.",
    )
    client_id: str = Field(
        ...,
        min_length=1,
        max_length=256,
        description="Client id the gateway authenticates with at the endpoint"
        " (client_secret_basic).",
    )
    client_secret: SecretStr = Field(
        ..., description="Client secret for the endpoint; use ${ENV} interpolation."
    )
    allow_insecure: bool = Field(
        False,
        description="Allow an http:// endpoint on a loopback host (development only).",
    )
    ca_file: ConfigPath | None = Field(
        None, description="CA bundle that verifies the endpoint, instead of the system CAs."
    )
    timeout: float = Field(
        3.0, gt=0, le=30, description="Deadline in seconds for one whole introspection call."
    )
    max_response_bytes: int = Field(
        65_536, ge=1024, le=1_048_576, description="Largest answer accepted, in bytes."
    )
    cache_ttl: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Longest an active token's answer is reused, in seconds (never past its"
        " `exp`); also the longest a revoked token may still be accepted. 0 disables caching.",
    )
    inactive_cache_ttl: float = Field(
        10.0,
        ge=0,
        le=600,
        description="Seconds an `active: false` answer is reused, so repeated bad tokens do not"
        " each reach the authorization server. 0 disables it.",
    )
    cache_size: int = Field(10_000, ge=1, description="Token answers kept in memory.")
    max_token_bytes: int = Field(
        4096, ge=16, le=65_536, description="Longest bearer token accepted, before any call."
    )
    audience: str | list[str] | None = Field(
        None,
        description="If set, the answer's `aud` must contain one of these values (RFC 7662 §4).",
    )
    issuer: str | None = Field(
        None, description="If set, the answer's `iss` must equal this value."
    )
    realm: str = Field("bastion", description="Realm named in the WWW-Authenticate challenge.")

    @field_validator("realm")
    @classmethod
    def _check_realm(cls, value: str) -> str:
        if not _REALM.fullmatch(value):
            raise ValueError("realm must be 1-64 printable ASCII characters without quotes or \\")
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("client_id must be printable")
        return value

    @field_validator("audience")
    @classmethod
    def _check_audience(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is None:
            return None
        values = [value] if isinstance(value, str) else value
        if not values or any(not item for item in values):
            raise ValueError("audience must name at least one non-empty audience")
        return value

    @model_validator(mode="after")
    def _check_endpoint(self) -> Self:
        parts = urlsplit(self.introspection_endpoint)
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None:
            raise ValueError(
                "introspection_endpoint must be an absolute URL with a host and no credentials"
            )
        if parts.fragment:
            raise ValueError("introspection_endpoint must not have a fragment")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError("introspection_endpoint has an invalid port") from exc
        if any(char in self.introspection_endpoint for char in " \r\n\t"):
            raise ValueError("introspection_endpoint must not contain whitespace")
        if parts.scheme == "https":
            return self
        if parts.scheme == "http" and self.allow_insecure and is_loopback_host(host):
            return self
        raise ValueError(
            "introspection_endpoint must use https (plain http only for a loopback host with"
            " allow_insecure: true)"
        )

    @property
    def audiences(self) -> frozenset[str]:
        """`audience` as a set (empty: not checked)."""
        if self.audience is None:
            return frozenset()
        return frozenset([self.audience] if isinstance(self.audience, str) else self.audience)
