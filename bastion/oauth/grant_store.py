# ruff: noqa: S608 - interpolated names are module constants; values are always bound
"""Authorization codes, refresh-token families and redirect URIs, in the SQL store.

Codes and refresh tokens are 256 random bits made here; the store keeps only their SHA-256
digests (a fast digest is enough for values nobody can enumerate, see `clients.py`). Using a
code or a refresh token is one conditional `UPDATE ... RETURNING`, so two concurrent uses, in
one process or in two, cannot both succeed. A second use of either revokes the whole family:
every refresh token descended from the same authorization (RFC 9700 §4.14.2, RFC 6749 §4.1.2).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Final, Literal

from bastion.errors import StoreUnavailable
from bastion.oauth.redirects import check_redirect_uri
from bastion.store.base import Consumer, PasswordRecord
from bastion.store.sql import SQLStore

CODE_TTL: Final = 60.0
"""Seconds an authorization code stays usable (RFC 6749 §4.1.2 recommends at most 10 minutes)."""
_PURGE_AFTER: Final = 86_400.0
"""Expired codes and refresh tokens are deleted this long after they expire."""
_CODE_COLUMNS: Final = "client_id, subject, redirect_uri, scope, code_challenge, family_id"
_REFRESH_COLUMNS: Final = "family_id, client_id, subject, scope, expires_at"

Use = Literal["ok", "reused", "invalid"]


def new_secret_value() -> str:
    """A new code or refresh token: 256 random bits, unpadded base64url."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def digest(value: str) -> str:
    """SHA-256 of a code or refresh token in hex (what the store keeps)."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What an authorization code stands for."""

    client_id: str
    subject: str
    redirect_uri: str
    scope: str
    code_challenge: str
    family_id: str


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for; `expires_at` bounds the whole family."""

    family_id: str
    client_id: str
    subject: str
    scope: str
    expires_at: float


class GrantStore:
    """Codes, refresh tokens and redirect URIs of the authorization server."""

    def __init__(self, backend: SQLStore | None) -> None:
        self._backend = backend

    @property
    def available(self) -> bool:
        """Whether the backend can hold codes and refresh tokens (an SQL store)."""
        return self._backend is not None

    @property
    def _sql(self) -> SQLStore:
        if self._backend is None:
            raise StoreUnavailable("the store cannot hold authorization codes")
        return self._backend

    # Redirect URIs (exact strings, compared as such: RFC 9700 §4.1.3).

    async def set_redirect_uris(self, client_id: str, uris: list[str]) -> None:
        """Replace the client's registered redirect URIs.

        Raises:
            ValueError: a URI may not be registered (see `check_redirect_uri`).
        """
        uris = [check_redirect_uri(uri) for uri in uris]
        statements: list[tuple[str, tuple[object, ...]]] = [
            ("DELETE FROM bastion_oauth_redirect_uris WHERE client_id = ?", (client_id,))
        ]
        statements += [
            (
                "INSERT INTO bastion_oauth_redirect_uris (client_id, redirect_uri) VALUES (?, ?)",
                (client_id, uri),
            )
            for uri in dict.fromkeys(uris)
        ]
        await self._sql._write(statements)

    async def redirect_uris(self, client_id: str) -> frozenset[str]:
        """The client's registered redirect URIs."""
        rows = await self._sql._fetch(
            "SELECT redirect_uri FROM bastion_oauth_redirect_uris WHERE client_id = ?",
            (client_id,),
        )
        return frozenset(str(row[0]) for row in rows)

    # Authorization codes.

    async def add_code(self, code: str, grant: CodeGrant, now: float) -> None:
        """Store a new code (by digest) valid for `CODE_TTL` seconds."""
        insert = (
            f"INSERT INTO bastion_oauth_codes (code_digest, {_CODE_COLUMNS}, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                digest(code),
                grant.client_id,
                grant.subject,
                grant.redirect_uri,
                grant.scope,
                grant.code_challenge,
                grant.family_id,
                now + CODE_TTL,
            ),
        )
        purge = ("DELETE FROM bastion_oauth_codes WHERE expires_at < ?", (now - _PURGE_AFTER,))
        await self._sql._write([purge, insert])

    async def use_code(self, code: str, now: float) -> tuple[Use, CodeGrant | None]:
        """Mark the code used and return its grant; ("reused", None) for a second use.

        A reused code revokes the refresh tokens issued for its first use.
        """
        code_digest = digest(code)
        rows = await self._sql._fetch(
            "UPDATE bastion_oauth_codes SET used_at = ? WHERE code_digest = ? "
            f"AND used_at IS NULL AND expires_at > ? RETURNING {_CODE_COLUMNS}",
            (now, code_digest, now),
        )
        if rows:
            row = rows[0]
            return "ok", CodeGrant(*(str(value) for value in row))
        used = await self._sql._fetch(
            "SELECT family_id FROM bastion_oauth_codes WHERE code_digest = ? "
            "AND used_at IS NOT NULL",
            (code_digest,),
        )
        if used:
            await self.revoke_family(str(used[0][0]), now)
            return "reused", None
        return "invalid", None

    async def record_code_token(self, code: str, jti: str, expires_at: float) -> None:
        """Remember the access token a code bought, to revoke it if the code is replayed."""
        await self._sql._write(
            [
                (
                    "UPDATE bastion_oauth_codes SET access_jti = ?, access_expires_at = ? "
                    "WHERE code_digest = ?",
                    (jti, expires_at, digest(code)),
                )
            ]
        )

    async def code_access_token(self, code: str) -> tuple[str, str, float] | None:
        """(client id, jti, expiry) of the access token a used code bought, or None."""
        rows = await self._sql._fetch(
            "SELECT client_id, access_jti, access_expires_at FROM bastion_oauth_codes "
            "WHERE code_digest = ? AND access_jti IS NOT NULL",
            (digest(code),),
        )
        if not rows:
            return None
        return str(rows[0][0]), str(rows[0][1]), float(rows[0][2])

    # Refresh tokens.

    async def add_refresh_token(self, token: str, grant: RefreshGrant, now: float) -> None:
        """Store a new refresh token (by digest) in `grant.family_id`."""
        insert = (
            f"INSERT INTO bastion_oauth_refresh_tokens (token_digest, {_REFRESH_COLUMNS}, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                digest(token),
                grant.family_id,
                grant.client_id,
                grant.subject,
                grant.scope,
                grant.expires_at,
                now,
            ),
        )
        purge = (
            "DELETE FROM bastion_oauth_refresh_tokens WHERE expires_at < ?",
            (now - _PURGE_AFTER,),
        )
        await self._sql._write([purge, insert])

    async def use_refresh_token(self, token: str, now: float) -> tuple[Use, RefreshGrant | None]:
        """Mark the token used (rotation) and return its grant.

        A token used a second time while its family is live is a theft signal: the whole
        family is revoked and ("reused", None) returned.
        """
        token_digest = digest(token)
        rows = await self._sql._fetch(
            "UPDATE bastion_oauth_refresh_tokens SET used_at = ? WHERE token_digest = ? "
            "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? "
            f"RETURNING {_REFRESH_COLUMNS}",
            (now, token_digest, now),
        )
        if rows:
            row = rows[0]
            return "ok", RefreshGrant(
                str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4])
            )
        used = await self._sql._fetch(
            "SELECT family_id FROM bastion_oauth_refresh_tokens WHERE token_digest = ? "
            "AND used_at IS NOT NULL",
            (token_digest,),
        )
        if used:
            await self.revoke_family(str(used[0][0]), now)
            return "reused", None
        return "invalid", None

    async def refresh_token_family(self, token: str, client_id: str) -> str | None:
        """The family of one of `client_id`'s refresh tokens, or None (for revocation)."""
        rows = await self._sql._fetch(
            "SELECT family_id FROM bastion_oauth_refresh_tokens WHERE token_digest = ? "
            "AND client_id = ?",
            (digest(token), client_id),
        )
        return str(rows[0][0]) if rows else None

    async def revoke_family(self, family_id: str, now: float) -> None:
        """Revoke every refresh token of a family."""
        await self._sql._write(
            [
                (
                    "UPDATE bastion_oauth_refresh_tokens SET revoked_at = ? "
                    "WHERE family_id = ? AND revoked_at IS NULL",
                    (now, family_id),
                )
            ]
        )

    async def family_is_revoked(self, family_id: str) -> bool:
        """Whether any token of the family was revoked (for tests and the admin view)."""
        rows = await self._sql._fetch(
            "SELECT 1 FROM bastion_oauth_refresh_tokens WHERE family_id = ? "
            "AND revoked_at IS NOT NULL",
            (family_id,),
        )
        return bool(rows)

    # Resource owners (the login page).

    async def password_of(self, username: str) -> tuple[PasswordRecord, Consumer] | None:
        """The password record and consumer for a login name, or None."""
        return await self._sql.get_password(username)
