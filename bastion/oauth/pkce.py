"""PKCE (RFC 7636) with the S256 method only; `plain` is refused (RFC 9700 §2.1.1).

RFC 7636 §4: https://www.rfc-editor.org/rfc/rfc7636#section-4
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

METHOD: Final = "S256"
"""The one accepted `code_challenge_method`."""
# RFC 7636 §4.1-4.2: 43 to 128 unreserved characters. An S256 challenge is always 43
# (base64url of a SHA-256 digest, unpadded).
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def is_valid_challenge(challenge: str) -> bool:
    """Whether `challenge` has the shape of an S256 code challenge."""
    return _CHALLENGE.fullmatch(challenge) is not None


def is_valid_verifier(verifier: str) -> bool:
    """Whether `verifier` has the shape RFC 7636 §4.1 requires."""
    return _VERIFIER.fullmatch(verifier) is not None


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding: the challenge for `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether `verifier` is well-formed and hashes to `challenge` (constant-time compare)."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
