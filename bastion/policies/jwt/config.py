"""Settings for the jwt policy."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bastion.config.paths import ConfigPath
from bastion.core.policy import PolicyConfig
from bastion.http.cidr import is_loopback_host
from bastion.policies.jwt.keys import (
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    MIN_SECRET_BYTES,
    SUPPORTED_ALGORITHMS,
    parse_pem,
)

DEFAULT_ALGORITHMS = ("RS256", "ES256")
"""The allowlist when `algorithms` is not set and no secret is configured."""
SELF_ISSUER = "self"
"""`issuer: self`: tokens of the gateway's own authorization server (the `oauth:` block)."""
LOCAL_ISSUER_EXTRA = "oauth"
"""Key of the gateway's authorization server in `PolicyDeps.extras`."""

_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")  # a quoted-string without `"` or `\`
_CLAIM = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


class JWTConfig(PolicyConfig):
    """Settings for the jwt policy: who issues tokens, for whom, and where the keys are.

    Exactly one key source: `jwks_uri`, `jwks_file`, `public_key_pem` or `secret`.
    """

    issuer: str = Field(
        ...,
        min_length=1,
        description="Required `iss` claim, compared exactly; `self` accepts the tokens of the"
        " gateway's own OAuth server (`oauth:` block) with its keys, no key source needed.",
    )
    audience: str | list[str] | None = Field(
        None,
        description="Accepted `aud` value(s): the token's `aud` must contain at least one of them."
        " Required, except with `issuer: self` (default: the OAuth issuer URL).",
    )
    algorithms: list[str] | None = Field(
        None,
        description=(
            "Allowed signature algorithms. Default [RS256, ES256], or [HS256] with a secret."
            " `none` is never accepted; HMAC and public-key algorithms never mix."
        ),
    )
    jwks_uri: str | None = Field(
        None,
        description=(
            "HTTPS URL of the issuer's JSON Web Key Set. Plain http only for a loopback host"
            " with allow_insecure_jwks."
        ),
    )
    jwks_file: ConfigPath | None = Field(
        None, description="Local JWKS file; re-read when a token names an unknown `kid`."
    )
    public_key_pem: str | None = Field(
        None, description="One PEM public key (RSA, EC or Ed25519) verifying every token."
    )
    secret: SecretStr | None = Field(
        None,
        description=f"HMAC secret (at least {MIN_SECRET_BYTES} bytes) for HS256/384/512 tokens.",
    )
    allow_insecure_jwks: bool = Field(
        False, description="Allow an http:// jwks_uri on a loopback host (development only)."
    )
    jwks_ca_file: ConfigPath | None = Field(
        None, description="CA bundle that verifies the JWKS server, instead of the system CAs."
    )
    jwks_timeout: float = Field(
        5.0, gt=0, le=60, description="Deadline in seconds for one whole JWKS fetch."
    )
    jwks_max_bytes: int = Field(
        262_144, gt=0, le=4_194_304, description="Largest JWKS document accepted, in bytes."
    )
    jwks_refresh_interval: float = Field(
        300.0, gt=0, description="Seconds after which the key set is refreshed in the background."
    )
    jwks_min_refetch_interval: float = Field(
        60.0,
        ge=0.1,
        description=(
            "Least seconds between two JWKS fetches, whatever triggers them (unknown `kid`,"
            " refresh): bounds the load forged tokens can put on the IdP."
        ),
    )
    leeway: float = Field(
        30.0, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat, in seconds."
    )
    required_claims: list[str] = Field(
        default_factory=list,
        description="Claims that must be present besides exp, iss, aud and sub (always required).",
    )
    max_token_bytes: int = Field(
        8192, ge=256, le=65536, description="Longest token accepted, checked before any parsing."
    )
    cache_size: int = Field(
        10_000, ge=0, description="Verified tokens kept in memory (0 turns the cache off)."
    )
    cache_ttl: float = Field(
        60.0,
        ge=0,
        description="Longest a verified token stays cached, in seconds (never past exp).",
    )
    groups_claim: str = Field(
        "groups",
        description="Claim holding the caller's groups (a list or space-separated string); a"
        " dotted path such as realm_access.roles reaches into nested objects.",
    )
    realm: str = Field("bastion", description="Realm named in the WWW-Authenticate challenge.")

    @field_validator("audience")
    @classmethod
    def _check_audience(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is None:
            return None
        values = [value] if isinstance(value, str) else value
        if not values or any(not item for item in values):
            raise ValueError("audience must name at least one non-empty audience")
        return value

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("algorithms must list at least one algorithm")
        for name in value:
            if name.lower() == "none":
                raise ValueError('the "none" algorithm is never accepted: tokens must be signed')
            if name not in SUPPORTED_ALGORITHMS:
                supported = ", ".join(sorted(SUPPORTED_ALGORITHMS))
                raise ValueError(f"unsupported algorithm {name!r} (supported: {supported})")
        return list(dict.fromkeys(value))

    @field_validator("realm")
    @classmethod
    def _check_realm(cls, value: str) -> str:
        if not _REALM.fullmatch(value):
            raise ValueError("realm must be 1-64 printable ASCII characters without quotes or \\")
        return value

    @field_validator("required_claims")
    @classmethod
    def _check_claims(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _CLAIM.fullmatch(name):
                raise ValueError(f"{name!r} is not a claim name")
        return value

    @field_validator("groups_claim")
    @classmethod
    def _check_groups_claim(cls, value: str) -> str:
        if not _CLAIM.fullmatch(value):
            raise ValueError(f"{value!r} is not a claim name")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> Self:
        sources = [
            name
            for name in ("jwks_uri", "jwks_file", "public_key_pem", "secret")
            if getattr(self, name) is not None
        ]
        if self.issuer == SELF_ISSUER:
            if sources or self.jwks_ca_file is not None:
                raise ValueError(
                    "issuer: self takes its keys from the gateway's OAuth server: remove "
                    + ", ".join(sources or ["jwks_ca_file"])
                )
            if not set(self.allowed_algorithms) <= {"ES256", "RS256"}:
                raise ValueError("issuer: self tokens are signed with ES256 or RS256 only")
            return self
        if self.audience is None:
            raise ValueError("Field required: audience (only issuer: self may omit it)")
        if len(sources) != 1:
            raise ValueError(
                "set exactly one key source: jwks_uri, jwks_file, public_key_pem or secret"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        algorithms = set(self.allowed_algorithms)
        if self.secret is not None:
            if not algorithms <= HMAC_ALGORITHMS:
                raise ValueError(
                    "a secret verifies only HS256/HS384/HS512: public-key algorithms never mix"
                    " with a shared secret (algorithm confusion)"
                )
            if len(algorithms) != 1:
                raise ValueError("a secret is pinned to exactly one HMAC algorithm")
            if len(self.secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
        elif not algorithms <= ASYMMETRIC_ALGORITHMS:
            raise ValueError("HMAC algorithms (HS*) need a secret and cannot use public keys")
        if self.jwks_uri is not None:
            self._check_jwks_uri(self.jwks_uri)
        elif self.jwks_ca_file is not None:
            raise ValueError("jwks_ca_file applies only to jwks_uri")
        if self.public_key_pem is not None:
            parse_pem(self.public_key_pem, frozenset(algorithms))  # raises ValueError
        return self

    def _check_jwks_uri(self, uri: str) -> None:
        parts = urlsplit(uri)
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None:
            raise ValueError("jwks_uri must be an absolute URL with a host and no credentials")
        if parts.fragment:
            raise ValueError("jwks_uri must not have a fragment")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError("jwks_uri has an invalid port") from exc
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.allow_insecure_jwks and is_loopback_host(host):
            return
        raise ValueError(
            "jwks_uri must use https (plain http only for a loopback host with"
            " allow_insecure_jwks: true)"
        )

    @property
    def allowed_algorithms(self) -> tuple[str, ...]:
        """The effective allowlist: `algorithms`, or the default for the key source."""
        if self.algorithms is not None:
            return tuple(self.algorithms)
        return ("HS256",) if self.secret is not None else DEFAULT_ALGORITHMS

    @property
    def audiences(self) -> frozenset[str]:
        """`audience` as a set."""
        if self.audience is None:
            return frozenset()
        return frozenset([self.audience] if isinstance(self.audience, str) else self.audience)
