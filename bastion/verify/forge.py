"""Credentials the probes send: random API keys and passwords, tokens signed by throwaway keys.

Every value made here is recorded by the caller so the access log can be searched for it.
"""

from __future__ import annotations

import base64
import secrets
import time
import warnings

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from bastion.policies.jwt.config import JWTConfig

_ISSUER_FALLBACK = "https://bastion-verify.invalid"


def random_api_key() -> str:
    """A random 256-bit key no store holds."""
    return secrets.token_urlsafe(32)


def basic_credentials() -> tuple[str, str]:
    """An `Authorization: Basic` value for an unknown user, and the password inside it."""
    user = "bastion-verify-" + secrets.token_hex(4)
    password = secrets.token_urlsafe(18)
    value = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {value}", password


def _throwaway_key(algorithm: str) -> OctKey | RSAKey | ECKey | OKPKey:
    if algorithm.startswith("HS"):
        return OctKey.import_key(secrets.token_bytes(64))
    if algorithm.startswith(("RS", "PS")):
        return RSAKey.generate_key(2048)
    if algorithm in ("EdDSA", "Ed25519"):
        return OKPKey.generate_key("Ed25519")
    curves = {"ES384": "P-384", "ES512": "P-521"}
    return ECKey.generate_key(curves.get(algorithm, "P-256"))


def _claims(config: JWTConfig, *, expires_in: int) -> dict[str, object]:
    now = int(time.time())
    audience = sorted(config.audiences)[0] if config.audiences else "bastion"
    claims: dict[str, object] = {
        "iss": config.issuer if config.issuer != "self" else _ISSUER_FALLBACK,
        "aud": audience,
        "sub": "bastion-verify",
        "iat": now - 10 if expires_in > 0 else now - 3600,
        "exp": now + expires_in,
        "jti": secrets.token_hex(8),
    }
    for name in config.required_claims:
        claims.setdefault(name, "bastion-verify")
    return claims


def throwaway_token(config: JWTConfig, *, expired: bool) -> str:
    """A token with plausible claims signed by a fresh key the gateway has never seen.

    Expired tokens are an hour past `exp` plus the configured leeway, so a gateway that checked
    claims before the signature would refuse it for the wrong reason: both must yield 401.
    """
    algorithm = config.allowed_algorithms[0]
    expires_in = -(3600 + int(config.leeway)) if expired else 300
    claims = _claims(config, expires_in=expires_in)
    header = {"alg": algorithm, "typ": "JWT", "kid": "bastion-verify-" + secrets.token_hex(4)}
    key = _throwaway_key(algorithm)
    with warnings.catch_warnings():
        # joserfc warns on deprecated names (EdDSA); the probe must speak the configured one.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(header, claims, key, algorithms=[algorithm])


def signed_token(
    config: JWTConfig, *, expired: bool, claims: dict[str, object] | None = None
) -> str | None:
    """A token signed with the route's own HMAC secret (None without one).

    Valid when not expired: it lets probes pass authentication to reach later policies. The
    expired one proves the gateway checks `exp` on a correctly signed token. `claims` adds to
    or replaces the plausible defaults (a token without scopes or groups, for authorization).
    """
    if config.secret is None or config.issuer == "self":
        return None
    algorithm = config.allowed_algorithms[0]
    expires_in = -(3600 + int(config.leeway)) if expired else 300
    key = OctKey.import_key(config.secret.get_secret_value().encode())
    header = {"alg": algorithm, "typ": "JWT"}
    payload = {**_claims(config, expires_in=expires_in), **(claims or {})}
    return jwt.encode(header, payload, key, algorithms=[algorithm])
