# ruff: noqa: S608 - interpolated names are module constants; values are always bound
"""The store's SQL, written once for both backends (SQLite and PostgreSQL run the same statements).

Backends supply three primitives: `_fetch` (one query), `_write` (statements in one
transaction) and `migrate`. Every change writes its audit entry in the same transaction as the
change itself, so the audit log is complete and other nodes can follow it to invalidate caches.
Statements use `?` placeholders; the PostgreSQL backend rewrites them to `%s`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from bastion.store.base import (
    APIKeyRecord,
    AuditEntry,
    ConfigRevision,
    Consumer,
    OAuthClientRecord,
    PasswordRecord,
    SigningKeyRecord,
    StoreConflict,
    StoreNotFound,
    SubjectType,
)

Row = tuple[Any, ...]
Statement = tuple[str, Sequence[object]]

_CONSUMER_COLUMNS: Final = "c.id, c.name, c.groups_json, c.disabled, c.metadata_json, c.created_at"
_KEY_COLUMNS: Final = (
    "k.id, k.consumer_id, k.digest, k.pepper_id, k.created_at, k.expires_at, k.revoked_at, k.label"
)
_CLIENT_COLUMNS: Final = (
    "id, name, secret_digest, scopes_json, grant_types_json, audience, disabled, created_at"
)
_SIGNING_KEY_COLUMNS: Final = (
    "kid, alg, private_pem, encrypted, public_jwk, created_at, retire_at, expires_at"
)
_REVISION_COLUMNS: Final = "id, document, actor, origin, created_at"
# Revision numbers are chosen by the writer (latest + 1) so the audit entry written in the same
# transaction can name its revision; two nodes racing for one number conflict on the primary
# key, and the loser retries with the next number.
_REVISION_ATTEMPTS: Final = 5
_AUDIT_INSERT: Final = (
    "INSERT INTO bastion_audit (at, actor, action, subject_type, subject_id, before_json, "
    "after_json) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _consumer(row: Row) -> Consumer:
    return Consumer(
        id=str(row[0]),
        name=str(row[1]),
        groups=frozenset(json.loads(row[2])),
        disabled=bool(row[3]),
        metadata=json.loads(row[4]),
        created_at=float(row[5]),
    )


def _key(row: Row) -> APIKeyRecord:
    return APIKeyRecord(
        id=str(row[0]),
        consumer_id=str(row[1]),
        digest=str(row[2]),
        pepper_id=str(row[3]),
        created_at=float(row[4]),
        expires_at=None if row[5] is None else float(row[5]),
        revoked_at=None if row[6] is None else float(row[6]),
        label=None if row[7] is None else str(row[7]),
    )


def _client(row: Row) -> OAuthClientRecord:
    return OAuthClientRecord(
        id=str(row[0]),
        name=str(row[1]),
        secret_digest=str(row[2]),
        scopes=frozenset(json.loads(row[3])),
        grant_types=frozenset(json.loads(row[4])),
        audience=None if row[5] is None else str(row[5]),
        disabled=bool(row[6]),
        created_at=float(row[7]),
    )


def _signing_key(row: Row) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=str(row[0]),
        alg=str(row[1]),
        private_pem=str(row[2]),
        encrypted=bool(row[3]),
        public_jwk=str(row[4]),
        created_at=float(row[5]),
        retire_at=float(row[6]),
        expires_at=float(row[7]),
    )


def _json(value: Mapping[str, object] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def new_consumer_id() -> str:
    """A random consumer id: `c_` and 16 hex characters."""
    return f"c_{secrets.token_hex(8)}"


class SQLStore:
    """Store logic over `_fetch`/`_write`; subclasses provide the connection handling."""

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        raise NotImplementedError

    async def _write(self, statements: Sequence[Statement]) -> None:
        """Run `statements` in one transaction.

        Raises:
            StoreConflict: a uniqueness or reference rule failed (nothing was written).
        """
        raise NotImplementedError

    @staticmethod
    def _audit(
        actor: str,
        action: str,
        subject_type: SubjectType,
        subject_id: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
    ) -> Statement:
        params = (time.time(), actor, action, subject_type, subject_id)
        return _AUDIT_INSERT, (*params, _json(before), _json(after))

    # Consumers.

    async def create_consumer(
        self,
        name: str,
        *,
        actor: str,
        groups: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Consumer:
        """Create a consumer with a new id (see `ConsumerStore`)."""
        now = time.time()
        consumer = Consumer(
            id=new_consumer_id(),
            name=name,
            groups=frozenset(groups),
            metadata=dict(metadata or {}),
            created_at=now,
        )
        insert = (
            "INSERT INTO bastion_consumers (id, name, groups_json, metadata_json, disabled, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (
                consumer.id,
                name,
                json.dumps(sorted(consumer.groups)),
                json.dumps(dict(consumer.metadata), sort_keys=True),
                now,
                now,
            ),
        )
        audit = self._audit(
            actor, "consumer.create", "consumer", consumer.id, None, consumer.public()
        )
        await self._write([insert, audit])
        return consumer

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        """The consumer with this id, or None."""
        rows = await self._fetch(
            f"SELECT {_CONSUMER_COLUMNS} FROM bastion_consumers c WHERE c.id = ?", (consumer_id,)
        )
        return _consumer(rows[0]) if rows else None

    async def find_consumer(self, name_or_id: str) -> Consumer | None:
        """The consumer with this id or, failing that, this name."""
        rows = await self._fetch(
            f"SELECT {_CONSUMER_COLUMNS} FROM bastion_consumers c WHERE c.id = ? OR c.name = ? "
            "ORDER BY CASE WHEN c.id = ? THEN 0 ELSE 1 END",
            (name_or_id, name_or_id, name_or_id),
        )
        return _consumer(rows[0]) if rows else None

    async def list_consumers(self) -> list[Consumer]:
        """Every consumer, by name."""
        rows = await self._fetch(
            f"SELECT {_CONSUMER_COLUMNS} FROM bastion_consumers c ORDER BY c.name"
        )
        return [_consumer(row) for row in rows]

    async def set_consumer_disabled(
        self, consumer_id: str, disabled: bool, *, actor: str
    ) -> Consumer:
        """Disable or enable a consumer (see `ConsumerStore`)."""
        before = await self.get_consumer(consumer_id)
        if before is None:
            raise StoreNotFound("no such consumer")
        after = Consumer(
            before.id, before.name, before.groups, disabled, before.metadata, before.created_at
        )
        update = (
            "UPDATE bastion_consumers SET disabled = ?, updated_at = ? WHERE id = ?",
            (int(disabled), time.time(), consumer_id),
        )
        action = "consumer.disable" if disabled else "consumer.enable"
        audit = self._audit(actor, action, "consumer", consumer_id, before.public(), after.public())
        await self._write([update, audit])
        return after

    async def delete_consumer(self, consumer_id: str, *, actor: str) -> None:
        """Delete a consumer with its keys and password (see `ConsumerStore`)."""
        before = await self.get_consumer(consumer_id)
        if before is None:
            raise StoreNotFound("no such consumer")
        keys = await self.list_api_keys(consumer_id)
        statements: list[Statement] = [
            ("DELETE FROM bastion_api_keys WHERE consumer_id = ?", (consumer_id,)),
            ("DELETE FROM bastion_passwords WHERE consumer_id = ?", (consumer_id,)),
            ("DELETE FROM bastion_consumers WHERE id = ?", (consumer_id,)),
        ]
        statements += [
            self._audit(actor, "api_key.delete", "api_key", key.id, key.public(), None)
            for key in keys
        ]
        statements.append(
            self._audit(actor, "consumer.delete", "consumer", consumer_id, before.public(), None)
        )
        await self._write(statements)

    # API keys.

    async def add_api_key(self, record: APIKeyRecord, *, actor: str) -> None:
        """Store a new key record (see `CredentialStore`)."""
        if await self.get_consumer(record.consumer_id) is None:
            raise StoreNotFound("no such consumer")
        insert = (
            "INSERT INTO bastion_api_keys (id, consumer_id, digest, pepper_id, created_at, "
            "expires_at, revoked_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.consumer_id,
                record.digest,
                record.pepper_id,
                record.created_at,
                record.expires_at,
                record.revoked_at,
                record.label,
            ),
        )
        audit = self._audit(actor, "api_key.issue", "api_key", record.id, None, record.public())
        await self._write([insert, audit])

    async def _get_key(self, key_id: str) -> APIKeyRecord | None:
        rows = await self._fetch(
            f"SELECT {_KEY_COLUMNS} FROM bastion_api_keys k WHERE k.id = ?", (key_id,)
        )
        return _key(rows[0]) if rows else None

    async def get_api_key(self, key_id: str) -> tuple[APIKeyRecord, Consumer] | None:
        """The key record and its consumer in one query, or None."""
        rows = await self._fetch(
            f"SELECT {_KEY_COLUMNS}, {_CONSUMER_COLUMNS} FROM bastion_api_keys k "
            "JOIN bastion_consumers c ON c.id = k.consumer_id WHERE k.id = ?",
            (key_id,),
        )
        if not rows:
            return None
        return _key(rows[0][:8]), _consumer(rows[0][8:])

    async def list_api_keys(self, consumer_id: str | None = None) -> list[APIKeyRecord]:
        """Key records (of one consumer, or all), oldest first."""
        if consumer_id is None:
            rows = await self._fetch(
                f"SELECT {_KEY_COLUMNS} FROM bastion_api_keys k ORDER BY k.created_at, k.id"
            )
        else:
            rows = await self._fetch(
                f"SELECT {_KEY_COLUMNS} FROM bastion_api_keys k WHERE k.consumer_id = ? "
                "ORDER BY k.created_at, k.id",
                (consumer_id,),
            )
        return [_key(row) for row in rows]

    async def _update_key(
        self, key_id: str, action: str, actor: str, column: str, value: float | None
    ) -> APIKeyRecord:
        before = await self._get_key(key_id)
        if before is None:
            raise StoreNotFound("no such API key")
        if column == "revoked_at":
            after = dataclasses.replace(before, revoked_at=before.revoked_at or value)
            stored = after.revoked_at
        else:
            after = dataclasses.replace(before, expires_at=value)
            stored = after.expires_at
        update = (f"UPDATE bastion_api_keys SET {column} = ? WHERE id = ?", (stored, key_id))
        audit = self._audit(actor, action, "api_key", key_id, before.public(), after.public())
        await self._write([update, audit])
        return after

    async def revoke_api_key(self, key_id: str, *, at: float, actor: str) -> APIKeyRecord:
        """Mark a key revoked (see `CredentialStore`)."""
        return await self._update_key(key_id, "api_key.revoke", actor, "revoked_at", at)

    async def set_api_key_expiry(
        self, key_id: str, expires_at: float | None, *, actor: str
    ) -> APIKeyRecord:
        """Change a key's expiry (see `CredentialStore`)."""
        return await self._update_key(key_id, "api_key.expire", actor, "expires_at", expires_at)

    # Passwords.

    async def set_password(self, record: PasswordRecord, *, actor: str) -> None:
        """Create or replace the consumer's password hash (see `CredentialStore`)."""
        if await self.get_consumer(record.consumer_id) is None:
            raise StoreNotFound("no such consumer")
        rows = await self._fetch(
            "SELECT consumer_id, username, password_hash, updated_at FROM bastion_passwords "
            "WHERE consumer_id = ?",
            (record.consumer_id,),
        )
        before = PasswordRecord(*rows[0]) if rows else None
        delete = ("DELETE FROM bastion_passwords WHERE consumer_id = ?", (record.consumer_id,))
        insert = (
            "INSERT INTO bastion_passwords (consumer_id, username, password_hash, updated_at) "
            "VALUES (?, ?, ?, ?)",
            (record.consumer_id, record.username, record.password_hash, record.updated_at),
        )
        audit = self._audit(
            actor,
            "password.set",
            "password",
            record.consumer_id,
            before.public() if before else None,
            record.public(),
        )
        await self._write([delete, insert, audit])

    async def get_password(self, username: str) -> tuple[PasswordRecord, Consumer] | None:
        """The password record for a Basic-auth username and its consumer, or None."""
        rows = await self._fetch(
            f"SELECT p.consumer_id, p.username, p.password_hash, p.updated_at, {_CONSUMER_COLUMNS} "
            "FROM bastion_passwords p JOIN bastion_consumers c ON c.id = p.consumer_id "
            "WHERE p.username = ?",
            (username,),
        )
        if not rows:
            return None
        row = rows[0]
        record = PasswordRecord(str(row[0]), str(row[1]), str(row[2]), float(row[3]))
        return record, _consumer(row[4:])

    # Audit log.

    async def audit_log(self, after_id: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with an id above `after_id`, oldest first."""
        rows = await self._fetch(
            "SELECT id, at, actor, action, subject_type, subject_id, before_json, after_json "
            "FROM bastion_audit WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [
            AuditEntry(
                id=int(row[0]),
                at=float(row[1]),
                actor=str(row[2]),
                action=str(row[3]),
                subject_type=cast(SubjectType, row[4]),
                subject_id=str(row[5]),
                before=None if row[6] is None else json.loads(row[6]),
                after=None if row[7] is None else json.loads(row[7]),
            )
            for row in rows
        ]

    async def last_audit_id(self) -> int:
        """The highest audit id so far (0 when empty)."""
        rows = await self._fetch("SELECT COALESCE(MAX(id), 0) FROM bastion_audit")
        return int(rows[0][0])

    async def record_audit(
        self,
        actor: str,
        action: str,
        subject_type: SubjectType,
        subject_id: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
    ) -> None:
        """Append one audit entry (see `CredentialStore.record_audit`)."""
        await self._write([self._audit(actor, action, subject_type, subject_id, before, after)])

    # Config revisions (see ConfigStore).

    async def add_config_revision(
        self,
        document: Mapping[str, object],
        *,
        actor: str,
        origin: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
    ) -> ConfigRevision:
        """Store the next config revision and its audit entry (see `ConfigStore`)."""
        text = json.dumps(document, sort_keys=True)
        for attempt in range(_REVISION_ATTEMPTS):
            number = await self.latest_config_revision_id() + 1
            now = time.time()
            insert = (
                f"INSERT INTO bastion_config_revisions ({_REVISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?)",
                (number, text, actor, origin, now),
            )
            audit = self._audit(actor, "config.update", "config", str(number), before, after)
            try:
                await self._write([insert, audit])
            except StoreConflict:
                if attempt == _REVISION_ATTEMPTS - 1:
                    raise
                continue
            return ConfigRevision(number, json.loads(text), actor, origin, now)
        raise StoreConflict("no free config revision number")  # pragma: no cover - loop returns

    async def latest_config_revision(self) -> ConfigRevision | None:
        """The newest config revision, or None."""
        rows = await self._fetch(
            f"SELECT {_REVISION_COLUMNS} FROM bastion_config_revisions ORDER BY id DESC LIMIT 1"
        )
        if not rows:
            return None
        row = rows[0]
        return ConfigRevision(
            int(row[0]), json.loads(row[1]), str(row[2]), str(row[3]), float(row[4])
        )

    async def latest_config_revision_id(self) -> int:
        """The newest config revision's number (0: none)."""
        rows = await self._fetch("SELECT COALESCE(MAX(id), 0) FROM bastion_config_revisions")
        return int(rows[0][0])

    # OAuth clients, signing keys and revocations (the authorization server, see OAuthStore).

    async def add_oauth_client(self, record: OAuthClientRecord, *, actor: str) -> None:
        """Store a new client (see `OAuthStore`)."""
        now = time.time()
        insert = (
            f"INSERT INTO bastion_oauth_clients ({_CLIENT_COLUMNS}, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                record.secret_digest,
                json.dumps(sorted(record.scopes)),
                json.dumps(sorted(record.grant_types)),
                record.audience,
                int(record.disabled),
                record.created_at or now,
                now,
            ),
        )
        audit = self._audit(
            actor, "oauth_client.create", "oauth_client", record.id, None, record.public()
        )
        await self._write([insert, audit])

    async def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None:
        """The client with this id, or None."""
        rows = await self._fetch(
            f"SELECT {_CLIENT_COLUMNS} FROM bastion_oauth_clients WHERE id = ?", (client_id,)
        )
        return _client(rows[0]) if rows else None

    async def list_oauth_clients(self) -> list[OAuthClientRecord]:
        """Every client, oldest first."""
        rows = await self._fetch(
            f"SELECT {_CLIENT_COLUMNS} FROM bastion_oauth_clients ORDER BY created_at, id"
        )
        return [_client(row) for row in rows]

    async def set_oauth_client_secret(
        self, client_id: str, secret_digest: str, *, actor: str
    ) -> OAuthClientRecord:
        """Replace a client's secret digest (see `OAuthStore`)."""
        before = await self.get_oauth_client(client_id)
        if before is None:
            raise StoreNotFound("no such OAuth client")
        after = dataclasses.replace(before, secret_digest=secret_digest)
        update = (
            "UPDATE bastion_oauth_clients SET secret_digest = ?, updated_at = ? WHERE id = ?",
            (secret_digest, time.time(), client_id),
        )
        audit = self._audit(
            actor, "oauth_client.rotate_secret", "oauth_client", client_id, before.public(), None
        )
        await self._write([update, audit])
        return after

    async def remove_oauth_client(self, client_id: str, *, actor: str) -> None:
        """Delete a client (see `OAuthStore`)."""
        before = await self.get_oauth_client(client_id)
        if before is None:
            raise StoreNotFound("no such OAuth client")
        delete = ("DELETE FROM bastion_oauth_clients WHERE id = ?", (client_id,))
        audit = self._audit(
            actor, "oauth_client.remove", "oauth_client", client_id, before.public(), None
        )
        await self._write([delete, audit])

    async def add_signing_key(self, record: SigningKeyRecord) -> None:
        """Store a new signing key."""
        insert = (
            f"INSERT INTO bastion_oauth_signing_keys ({_SIGNING_KEY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.kid,
                record.alg,
                record.private_pem,
                int(record.encrypted),
                record.public_jwk,
                record.created_at,
                record.retire_at,
                record.expires_at,
            ),
        )
        await self._write([insert])

    async def list_signing_keys(self, published_after: float) -> list[SigningKeyRecord]:
        """Keys still published at `published_after`, oldest first."""
        rows = await self._fetch(
            f"SELECT {_SIGNING_KEY_COLUMNS} FROM bastion_oauth_signing_keys "
            "WHERE expires_at > ? ORDER BY created_at, kid",
            (published_after,),
        )
        return [_signing_key(row) for row in rows]

    async def add_revocation(
        self, jti: str, client_id: str, expires_at: float, revoked_at: float
    ) -> None:
        """Record a revoked access token until it expires (idempotent)."""
        await self._write(
            [
                ("DELETE FROM bastion_oauth_revocations WHERE jti = ?", (jti,)),
                (
                    "INSERT INTO bastion_oauth_revocations (jti, client_id, expires_at, "
                    "revoked_at) VALUES (?, ?, ?, ?)",
                    (jti, client_id, expires_at, revoked_at),
                ),
            ]
        )

    async def list_revocations(self, expires_after: float) -> list[tuple[str, float]]:
        """(jti, expires_at) of revoked tokens still unexpired at `expires_after`."""
        rows = await self._fetch(
            "SELECT jti, expires_at FROM bastion_oauth_revocations WHERE expires_at > ?",
            (expires_after,),
        )
        return [(str(row[0]), float(row[1])) for row in rows]


__all__ = ["Row", "SQLStore", "Statement", "StoreConflict", "new_consumer_id"]
