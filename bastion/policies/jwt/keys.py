"""Verification keys, each pinned to one algorithm: parsed from a JWKS document, a PEM or a secret.

Sans-IO: these functions take bytes and return an immutable `KeySet`; fetching and files are the
caller's business (see `jwks.py`). A key's algorithm comes from its JWK `alg` member, else from
its type (RSA → RS256, EC P-256 → ES256, P-384 → ES384, P-521 → ES512, OKP Ed25519 → EdDSA), and a
token is verified only with the algorithm its key is pinned to, so one key can never be used with
a second algorithm (the HS256-signed-with-the-RSA-public-key confusion).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from joserfc import jwk
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

_log = logging.getLogger("bastion.jwt")

ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
    }
)
"""Public-key signature algorithms a key may be pinned to."""
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
"""Shared-secret algorithms, usable only with a configured secret."""
SUPPORTED_ALGORITHMS = ASYMMETRIC_ALGORITHMS | HMAC_ALGORITHMS
"""Every algorithm the jwt policy accepts in its allowlist (never `none`)."""

MIN_RSA_BITS = 2048
"""RSA keys shorter than this are skipped: they no longer resist factoring."""
MIN_SECRET_BYTES = 32
"""Shortest HMAC secret accepted: 256 bits, the HS256 output size (RFC 7518 §3.2)."""
MAX_JWKS_KEYS = 100
"""Most keys read from one JWKS document; the rest are ignored (a JWKS is a handful of keys)."""

_RSA_PREFERENCE = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_RSA_FAMILY = frozenset(_RSA_PREFERENCE)
_EC_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_BY_CURVE = {"Ed25519": "EdDSA"}
_OKP_ALGS = {"EdDSA": ("Ed25519", "Ed448"), "Ed25519": ("Ed25519",)}


class KeyLoadError(ValueError):
    """A key document or PEM cannot be used at all (raised at configuration time)."""


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """One verification key and the only algorithm it verifies."""

    alg: str
    key: jwk.Key
    kid: str | None = None
    algorithm: JWSAlgModel = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The joserfc algorithm is resolved, and the key checked against it (type, curve,
        # `use`, `key_ops`, declared `alg`), once here rather than on every verification.
        algorithm = JWSRegistry.algorithms[self.alg]
        algorithm.check_key(self.key)
        object.__setattr__(self, "algorithm", algorithm)


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable set of pinned keys: by `kid`, plus the keys that have none."""

    by_kid: Mapping[str, PinnedKey] = field(default_factory=dict)
    unnamed: tuple[PinnedKey, ...] = ()

    @classmethod
    def of(cls, keys: Iterable[PinnedKey]) -> KeySet:
        """Build a set; a later key with an already-seen `kid` is ignored."""
        by_kid: dict[str, PinnedKey] = {}
        unnamed: list[PinnedKey] = []
        for key in keys:
            if key.kid is None:
                unnamed.append(key)
            elif key.kid not in by_kid:
                by_kid[key.kid] = key
        return cls(by_kid, tuple(unnamed))

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.unnamed)

    @property
    def kids(self) -> frozenset[str]:
        """The key ids in the set."""
        return frozenset(self.by_kid)

    def find(self, kid: str | None, alg: str) -> PinnedKey | None:
        """The key for a token header's `kid` and `alg`, or None.

        `kid` is only ever a dictionary key here. A token without a matching `kid` may use a key
        that has none, but only when exactly one such key is pinned to `alg`: trying several
        would multiply the cost of every forged token.
        """
        if kid is not None:
            found = self.by_kid.get(kid)
            if found is not None:
                return found
        candidates = [key for key in self.unnamed if key.alg == alg]
        return candidates[0] if len(candidates) == 1 else None


def _pin_jwk(data: Mapping[str, object], allowed: frozenset[str]) -> PinnedKey | None:
    """Import one JWK and pin its algorithm; None (logged) when it cannot verify tokens here."""
    kid = data.get("kid")
    if kid is not None and not isinstance(kid, str):
        return _skip(None, "kid is not a string")
    kty = data.get("kty")
    if kty == "oct":
        return _skip(kid, "symmetric keys are never taken from a key set")
    use = data.get("use")
    if use is not None and use != "sig":
        return _skip(kid, "key use is not sig")
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return _skip(kid, "key_ops does not include verify")
    try:
        with warnings.catch_warnings():
            # joserfc warns about short RSA keys; _algorithm_for refuses them itself.
            warnings.simplefilter("ignore")
            key = jwk.import_key(dict(data))  # type: ignore[arg-type]  # joserfc validates members
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        return _skip(kid, f"not a valid JWK ({type(exc).__name__})")
    alg = data.get("alg")
    if alg is not None and not isinstance(alg, str):
        return _skip(kid, "alg is not a string")
    pinned = _algorithm_for(key, alg)
    if pinned is None:
        return _skip(kid, "key type, curve or size cannot verify a supported algorithm")
    if pinned not in allowed:
        return _skip(kid, f"algorithm {pinned} is not in the allowlist")
    return PinnedKey(pinned, key, kid)


def _skip(kid: object, why: str) -> PinnedKey | None:
    _log.warning("JWKS key %r skipped: %s", kid, why)
    return None


def _algorithm_for(key: jwk.Key, alg: str | None) -> str | None:
    """The algorithm `key` is pinned to, checking a declared `alg` against its type."""
    if isinstance(key, jwk.RSAKey):
        if key.public_key.key_size < MIN_RSA_BITS:
            return None
        if alg is None:
            return "RS256"
        return alg if alg in _RSA_FAMILY else None
    if isinstance(key, jwk.ECKey):
        expected = _EC_BY_CURVE.get(key.curve_name)
        return expected if alg in (None, expected) else None
    if isinstance(key, jwk.OKPKey):
        if alg is None:
            return _OKP_BY_CURVE.get(key.curve_name)
        return alg if key.curve_name in _OKP_ALGS.get(alg, ()) else None
    return None


def parse_jwks(document: bytes, allowed: frozenset[str]) -> KeySet:
    """Parse a JWKS document (RFC 7517 §5) into pinned keys.

    Keys that cannot verify an allowed algorithm (symmetric, encryption-only, too short,
    malformed, algorithm not allowed) are skipped and logged, so one odd key at the IdP does not
    take the whole set down.

    Raises:
        KeyLoadError: the document is not a JSON object with a `keys` array, or holds no usable key.
    """
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyLoadError("the key set is not valid JSON") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
        raise KeyLoadError('the key set is not a JSON object with a "keys" array')
    pinned: list[PinnedKey] = []
    for item in parsed["keys"][:MAX_JWKS_KEYS]:
        if not isinstance(item, dict):
            continue
        key = _pin_jwk(item, allowed)
        if key is not None:
            pinned.append(key)
    if not pinned:
        raise KeyLoadError("the key set holds no key usable with the allowed algorithms")
    return KeySet.of(pinned)


def parse_pem(pem: str | bytes, allowed: frozenset[str], kid: str | None = None) -> KeySet:
    """A one-key set from a PEM public key (SubjectPublicKeyInfo or PKCS#1 RSA).

    Raises:
        KeyLoadError: not a public key PEM, or its type cannot verify an allowed algorithm.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in data:
        raise KeyLoadError("public_key_pem holds a private key: configure the public key only")
    key: jwk.Key | None = None
    for key_type in ("RSA", "EC", "OKP"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # short RSA keys: refused below, not warned about
                key = jwk.import_key(data, key_type)
            break
        except (JoseError, ValueError, TypeError):
            continue
    if key is None:
        raise KeyLoadError("public_key_pem is not a PEM public key (RSA, EC or Ed25519)")
    alg = _algorithm_for(key, None)
    if isinstance(key, jwk.RSAKey) and alg is not None:
        # An RSA PEM carries no algorithm: pin the first allowed RSA one.
        alg = next((name for name in _RSA_PREFERENCE if name in allowed), None)
    if alg is None or alg not in allowed:
        raise KeyLoadError("public_key_pem cannot verify any of the allowed algorithms")
    return KeySet.of([PinnedKey(alg, key, kid)])


def secret_key_set(secret: bytes, alg: str) -> KeySet:
    """A one-key set for an HMAC secret pinned to `alg`.

    Raises:
        KeyLoadError: the secret is shorter than `MIN_SECRET_BYTES` or `alg` is not HMAC.
    """
    if alg not in HMAC_ALGORITHMS:
        raise KeyLoadError(f"{alg} is not an HMAC algorithm")
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyLoadError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
    return KeySet.of([PinnedKey(alg, jwk.OctKey.import_key(secret))])
