"""OAuth client credentials: id and secret format, secret digests, client authentication.

Secrets are 256 random bits generated here, never chosen by people, so a fast digest is as
strong as a slow one: nobody can enumerate 2^256 candidates, and a slow hash (argon2id, ~20 ms)
would only hand attackers a cheap way to burn the gateway's CPU through the token endpoint. The
store keeps SHA-256(secret) and compares digests in constant time.

RFC 6749 §2.3.1 (client_secret_basic and client_secret_post):
https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import unquote_plus

from bastion.http.headers import Headers
from bastion.oauth.errors import CLIENT_AUTH_FAILED, TWO_CLIENT_AUTH_METHODS, OAuthError
from bastion.store.base import OAuthClientRecord, OAuthStore

CLIENT_ID_PREFIX: Final = "cl_"
CLIENT_ID_PATTERN: Final = re.compile(r"cl_[0-9a-f]{16}")
_CLIENT_ID: Final = CLIENT_ID_PATTERN
MAX_CREDENTIAL_LENGTH: Final = 256
# Digest compared when the client id is unknown, so both failures do the same work.
_DUMMY_DIGEST: Final = hashlib.sha256(b"bastion: no such client").hexdigest()

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


def new_client_id() -> str:
    """A random client id: `cl_` and 16 hex characters."""
    return f"{CLIENT_ID_PREFIX}{secrets.token_hex(8)}"


def new_client_secret() -> str:
    """A new secret of 256 random bits (unpadded base64url); show it once, store its digest."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def secret_digest(secret: str) -> str:
    """SHA-256 of the secret in hex (what the store keeps)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What the client presented and how."""

    client_id: str
    secret: str = field(repr=False)  # never in a log line or traceback
    method: AuthMethod = "client_secret_basic"


def presented_credentials(headers: Headers, params: Mapping[str, str]) -> ClientCredentials:
    """The client's id and secret from `Authorization: Basic` or the form body (not both).

    Raises:
        OAuthError: `invalid_request` for two methods at once, `invalid_client` (401) when
            none was used or the Basic header is malformed.
    """
    authorization = headers.get_all(b"authorization")
    in_body = "client_secret" in params
    if authorization:
        if in_body or len(authorization) > 1:
            raise OAuthError("invalid_request", TWO_CLIENT_AUTH_METHODS)
        return _basic(authorization[0])
    if in_body:
        client_id = params.get("client_id", "")
        secret = params["client_secret"]
        if not client_id or len(client_id) > MAX_CREDENTIAL_LENGTH:
            raise _failed()
        return ClientCredentials(client_id, secret, "client_secret_post")
    raise _failed()


def client_auth_failed() -> OAuthError:
    """The one `invalid_client` error for every client authentication failure."""
    return _failed()


def _failed() -> OAuthError:
    # Always 401 with a Basic challenge: a 401 must carry one (RFC 9110 §11.6.1), and RFC 6749
    # §5.2 requires it when the client tried Basic.
    return OAuthError("invalid_client", CLIENT_AUTH_FAILED, status=401, basic_challenge=True)


def _basic(value: bytes) -> ClientCredentials:
    scheme, _, encoded = value.partition(b" ")
    if scheme.lower() != b"basic" or len(encoded) > 4 * MAX_CREDENTIAL_LENGTH:
        raise _failed()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _failed() from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon:
        raise _failed()
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if not client_id or not secret:
        raise _failed()
    return ClientCredentials(client_id, secret, "client_secret_basic")


async def authenticate_client(
    store: OAuthStore, credentials: ClientCredentials
) -> OAuthClientRecord:
    """The client whose id and secret were presented.

    Raises:
        OAuthError: `invalid_client` (401) for an unknown, disabled or wrong client; the
            description is the same for every cause.
        StoreUnavailable: the store could not answer.
    """
    record = None
    if _CLIENT_ID.fullmatch(credentials.client_id):
        record = await store.get_oauth_client(credentials.client_id)
    expected = record.secret_digest if record is not None else _DUMMY_DIGEST
    matches = hmac.compare_digest(secret_digest(credentials.secret), expected)
    if record is None or not matches or record.disabled:
        raise _failed()
    return record
