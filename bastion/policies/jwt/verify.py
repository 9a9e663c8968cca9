"""`verify_access_token()`: the one place a JWT access token is checked, signature and claims.

Sans-IO: it takes the token, a `KeySet`, the rules and a clock, and either returns the verified
token or raises `TokenError` with an internal `reason` (for logs and tests; clients only ever see
RFC 6750 `invalid_token`). Checks, cheapest first: size (before any parsing), compact form,
header (`alg` in the allowlist, no key-carrying or extension headers, `typ`), key by `kid` (a
dictionary lookup, nothing else), the header `alg` equal to the key's pinned algorithm,
signature (joserfc), then the claims, always: `exp` (required), `nbf`, `iat`, `iss`, `aud`,
`sub` and the configured required claims, with leeway.

RFC 7519 §7.2: https://www.rfc-editor.org/rfc/rfc7519#section-7.2
RFC 8725 (JWT best current practices): https://www.rfc-editor.org/rfc/rfc8725
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from bastion.clock import Clock
from bastion.core.context import Identity
from bastion.policies.jwt.keys import KeySet

FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
"""Header parameters that make a token refused outright.

`jku`, `jwk`, `x5u` and `x5c` name or carry a key: keys come only from configuration, and an
access token from a real IdP has no reason to carry them, so their presence marks a forgery
attempt (RFC 8725 §3.10). `crit` and `b64` (RFC 7797) ask for extensions this verifier does not
implement, and RFC 7515 §4.1.11 says to refuse what is critical and not understood.
"""
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
"""`typ` values accepted (case-insensitive) when present; RFC 9068 §2.1 names `at+jwt`."""

_B64URL_TOKEN = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TIMESTAMP = 2**53  # the largest integer a JSON number keeps exactly


class TokenError(Exception):
    """The token is not acceptable; `reason` is internal (logs, tests), never sent to clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKeyError(TokenError):
    """No configured key matches the token's `kid`; a JWKS refetch may find it."""

    def __init__(self, kid: str | None) -> None:
        super().__init__("unknown_key")
        self.kid = kid


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a token must satisfy besides its signature."""

    issuer: str
    audiences: frozenset[str]
    algorithms: frozenset[str]
    leeway: float = 30.0
    required_claims: tuple[str, ...] = ()
    max_token_bytes: int = 8192


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature and claims were checked."""

    claims: Mapping[str, object]
    header: Mapping[str, object]
    subject: str
    expires_at: float
    kid: str | None = None
    token_id: str | None = field(default=None)


def _b64decode(segment: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2); raises ValueError on bad input."""
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError("bad base64url") from exc


def _number(claims: Mapping[str, object], name: str) -> float | int | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass; NaN and infinities would defeat every comparison.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("bad_claims")
    if isinstance(value, float) and not math.isfinite(value):
        raise TokenError("bad_claims")
    if abs(value) > _MAX_TIMESTAMP:  # also keeps int + float arithmetic from overflowing
        raise TokenError("bad_claims")
    return value


def check_claims(claims: Mapping[str, object], rules: TokenRules, now: float) -> str:
    """Check the registered claims and required ones; returns the subject.

    Raises:
        TokenError: a claim is missing, of the wrong type, or out of bounds.
    """
    leeway = rules.leeway
    exp = _number(claims, "exp")
    if exp is None:
        raise TokenError("missing_claim")
    if now > exp + leeway:
        raise TokenError("expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise TokenError("not_yet_valid")
    iat = _number(claims, "iat")
    if iat is not None and iat > now + leeway:
        raise TokenError("issued_in_future")
    if claims.get("iss") != rules.issuer:
        raise TokenError("wrong_issuer")
    aud = claims.get("aud")
    if isinstance(aud, str):
        if aud not in rules.audiences:
            raise TokenError("wrong_audience")
    elif isinstance(aud, list):
        if not any(isinstance(item, str) and item in rules.audiences for item in aud):
            raise TokenError("wrong_audience")
    else:
        raise TokenError("wrong_audience")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("missing_claim")
    if _CONTROL.search(sub):
        # The subject is forwarded upstream in a header: no control characters, ever.
        raise TokenError("bad_claims")
    for name in rules.required_claims:
        if claims.get(name) is None:
            raise TokenError("missing_claim")
    return sub


def verify_access_token(
    token: bytes | str, keys: KeySet, rules: TokenRules, clock: Clock
) -> VerifiedToken:
    """Verify a compact JWS access token: size, form, header, key, signature, claims.

    Args:
        token: the bearer token as received (ASCII).
        keys: the configured keys, each pinned to one algorithm.
        rules: issuer, audiences, allowlist, leeway, required claims, size cap.
        clock: wall-clock time for `exp`, `nbf` and `iat`.

    Returns:
        The verified header and claims.

    Raises:
        UnknownKeyError: no key matches the token's `kid` (a JWKS refetch may help).
        TokenError: anything else is wrong; `reason` says what, for logs only.
    """
    if isinstance(token, str):
        try:
            token = token.encode("ascii")
        except UnicodeEncodeError:
            raise TokenError("malformed") from None
    if len(token) > rules.max_token_bytes:
        raise TokenError("too_large")
    if _B64URL_TOKEN.fullmatch(token) is None:
        raise TokenError("malformed")
    try:
        obj = extract_compact(token)
    except (JoseError, ValueError, TypeError):
        raise TokenError("malformed") from None
    header = obj.protected
    if not isinstance(header, dict):
        raise TokenError("malformed")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("malformed")
    if alg not in rules.algorithms:
        raise TokenError("algorithm_not_allowed")
    if not FORBIDDEN_HEADERS.isdisjoint(header):
        raise TokenError("forbidden_header")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise TokenError("wrong_type")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenError("malformed")
    key = keys.find(kid, alg)
    if key is None:
        raise UnknownKeyError(kid)
    if key.alg != alg:
        raise TokenError("algorithm_mismatch")
    segments = obj.segments
    try:
        signature = _b64decode(segments["signature"])
        valid = key.algorithm.verify(
            segments["header"] + b"." + segments["payload"], signature, key.key
        )
    except (JoseError, ValueError, TypeError):
        raise TokenError("bad_signature") from None
    if not valid:
        raise TokenError("bad_signature")
    try:
        claims = orjson.loads(obj.payload)
    except orjson.JSONDecodeError:
        raise TokenError("malformed") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed")
    subject = check_claims(claims, rules, clock.time())
    exp = claims["exp"]
    jti = claims.get("jti")
    return VerifiedToken(
        claims=claims,
        header=header,
        subject=subject,
        expires_at=float(exp),
        kid=kid,
        token_id=jti if isinstance(jti, str) and not _CONTROL.search(jti) else None,
    )


def _words(value: object) -> list[str]:
    """A space-separated string or a list of strings, as a list of strings."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _claim(claims: Mapping[str, object], name: str) -> object:
    """A claim by exact name, else by dotted path into nested objects (`realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def identity_from(verified: VerifiedToken, groups_claim: str) -> Identity:
    """The caller's identity from a verified token.

    Scopes come from `scope` (space-separated, RFC 8693 §4.2) or `scp` (a list or a string);
    entries that are not RFC 6749 scope-tokens are dropped, since scopes are forwarded upstream
    in a header. Groups come from `groups_claim` (a list or a space-separated string).
    """
    claims = verified.claims
    raw_scopes = claims.get("scope")
    if raw_scopes is None:
        raw_scopes = claims.get("scp")
    scopes = frozenset(s for s in _words(raw_scopes) if _SCOPE_TOKEN.fullmatch(s))
    groups = frozenset(g for g in _words(_claim(claims, groups_claim)) if not _CONTROL.search(g))
    return Identity(
        consumer_id=verified.subject,
        scopes=scopes,
        groups=groups,
        credential_id=verified.token_id,
        method="jwt",
    )
