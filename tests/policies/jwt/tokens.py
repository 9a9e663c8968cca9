"""Test keys, JWKS documents and token minting for the jwt policy's tests (unit and integration)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from functools import cache
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

ISSUER = "https://idp.example.test"
AUDIENCE = "bank-api"
NOW = 1_700_000_000  # FakeClock's default wall time


@cache
def rsa_key(kid: str = "rsa-1", bits: int = 2048) -> RSAKey:
    """An RSA key pair, generated once per test session and kid (short ones on purpose too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns about keys under 2048 bits
        return RSAKey.generate_key(bits, parameters={"kid": kid})


@cache
def ec_key(kid: str = "ec-1", curve: str = "P-256") -> ECKey:
    """An EC key pair, generated once per test session and kid."""
    return ECKey.generate_key(curve, parameters={"kid": kid})


@cache
def okp_key(kid: str = "ed-1") -> OKPKey:
    """An Ed25519 key pair, generated once per test session and kid."""
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})


def jwks(*keys: RSAKey | ECKey | OKPKey, extra: dict[str, Any] | None = None) -> bytes:
    """A JWKS document with the public halves of `keys`."""
    docs = [{**key.as_dict(private=False), **(extra or {})} for key in keys]
    return json.dumps({"keys": docs}).encode()


def claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    """Claims that pass the default rules at `now`; `None` overrides drop a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": int(now) + 300,
        "iat": int(now) - 10,
        "jti": "token-1",
        "scope": "accounts:read transfers:write",
        "groups": ["customers"],
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(
    payload: dict[str, Any],
    key: RSAKey | ECKey | OKPKey | OctKey | None = None,
    *,
    alg: str = "RS256",
    header: dict[str, Any] | None = None,
    kid: str | None = "default",
) -> str:
    """A compact JWS of `payload`; `kid="default"` uses the key's own kid."""
    key = key if key is not None else rsa_key()
    head: dict[str, Any] = {"alg": alg}
    if kid == "default":
        if key.kid is not None:
            head["kid"] = key.kid
    elif kid is not None:
        head["kid"] = kid
    head.update(header or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EdDSA and HS* with short keys warn; tests want them
        return jwt.encode(head, payload, key, algorithms=[alg])


def b64(data: bytes | dict[str, Any]) -> str:
    """Base64url without padding, of bytes or of a JSON object."""
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An `alg: none` token with an empty signature."""
    return f"{b64(header or {'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def hs256_with_public_key(payload: dict[str, Any], key: RSAKey) -> str:
    """The alg-confusion forgery: HS256 keyed with the RSA public key's PEM."""
    secret = key.as_pem(private=False)
    head = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    return _hmac_token(head, payload, secret)


def _hmac_token(head: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(head)}.{b64(payload)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(signature)}"


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed and the original signature kept."""
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{b64(payload)}.{sig}"


def sign_raw(
    header: dict[str, Any], payload: bytes | dict[str, Any], key: RSAKey | None = None
) -> str:
    """An RS256 signature over any header and payload, even ones joserfc would not produce."""
    key = key if key is not None else rsa_key()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(header)}.{b64(body)}".encode()
    signature = JWSRegistry.algorithms["RS256"].sign(signing_input, key)
    return f"{signing_input.decode()}.{b64(signature)}"
