"""The store's records and Protocols: consumers, API keys, passwords, config revisions, audit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bastion.errors import BastionError

SubjectType = Literal["consumer", "api_key", "password", "oauth_client", "config", "blocked_source"]


class StoreConflict(BastionError):
    """A write would break a uniqueness rule (a consumer name or key id already exists)."""


class StoreNotFound(BastionError):
    """The consumer or credential named by a write does not exist."""


@dataclass(frozen=True, slots=True)
class Consumer:
    """A caller of the APIs: an application, a partner or a person."""

    id: str
    name: str
    groups: frozenset[str] = frozenset()
    disabled: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    def public(self) -> dict[str, object]:
        """The consumer as a JSON-ready dict (for the audit log and the CLI)."""
        return {
            "id": self.id,
            "name": self.name,
            "groups": sorted(self.groups),
            "disabled": self.disabled,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class APIKeyRecord:
    """A stored API key: never the key itself, only HMAC-SHA256(pepper, key) in hex."""

    id: str
    consumer_id: str
    digest: str
    pepper_id: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    label: str | None = None

    def public(self) -> dict[str, object]:
        """The record without its digest: what the audit log and the CLI may show."""
        return {
            "id": self.id,
            "consumer_id": self.consumer_id,
            "pepper_id": self.pepper_id,
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class PasswordRecord:
    """A consumer's Basic-auth password as an argon2id hash; `username` is unique."""

    consumer_id: str
    username: str
    password_hash: str
    updated_at: float

    def public(self) -> dict[str, object]:
        """The record without its hash."""
        return {
            "consumer_id": self.consumer_id,
            "username": self.username,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who made it, what it touched, and the record before and after (no secrets)."""

    id: int
    at: float
    actor: str
    action: str
    subject_type: SubjectType
    subject_id: str
    before: Mapping[str, object] | None
    after: Mapping[str, object] | None


@dataclass(frozen=True, slots=True)
class OAuthClientRecord:
    """An OAuth 2.0 client of the built-in authorization server; the secret only as a digest."""

    id: str
    name: str
    secret_digest: str
    scopes: frozenset[str] = frozenset()
    grant_types: frozenset[str] = frozenset({"client_credentials"})
    audience: str | None = None
    disabled: bool = False
    created_at: float = 0.0

    def public(self) -> dict[str, object]:
        """The client without its secret digest (audit log, CLI)."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "grant_types": sorted(self.grant_types),
            "audience": self.audience,
            "disabled": self.disabled,
        }


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A token signing key: signs until `retire_at`, published until `expires_at`."""

    kid: str
    alg: str
    private_pem: str
    encrypted: bool
    public_jwk: str
    created_at: float
    retire_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class ConfigRevision:
    """A config applied through the admin API, kept so every node and worker applies it too.

    `document` is the JSON document as submitted: masked secrets (`********`) are restored by
    each node from its own running config. It may still hold a secret the operator typed, so
    it is never logged and never shown by the admin API.
    """

    id: int
    document: Mapping[str, object]
    actor: str
    origin: str
    """The process that applied it first (it does not apply its own revision twice)."""
    created_at: float


class ConsumerStore(Protocol):
    """Consumers: create, look up, list, disable."""

    async def create_consumer(
        self,
        name: str,
        *,
        actor: str,
        groups: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Consumer:
        """Create a consumer with a new id.

        Raises:
            StoreConflict: the name is taken.
            StoreUnavailable: the database could not answer.
        """
        ...

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        """The consumer with this id, or None."""
        ...

    async def find_consumer(self, name_or_id: str) -> Consumer | None:
        """The consumer with this id or, failing that, this name."""
        ...

    async def list_consumers(self) -> list[Consumer]:
        """Every consumer, by name."""
        ...

    async def set_consumer_disabled(
        self, consumer_id: str, disabled: bool, *, actor: str
    ) -> Consumer:
        """Disable (or enable) a consumer: every credential of a disabled one is refused.

        Raises:
            StoreNotFound: no such consumer.
        """
        ...

    async def delete_consumer(self, consumer_id: str, *, actor: str) -> None:
        """Delete a consumer with its API keys and password, in one audited transaction.

        Each deleted key gets its own audit entry, so every node's cache drops it by id.

        Raises:
            StoreNotFound: no such consumer.
            StoreUnavailable: the database could not answer.
        """
        ...


class CredentialStore(Protocol):
    """API keys, passwords and the audit log of every change."""

    async def add_api_key(self, record: APIKeyRecord, *, actor: str) -> None:
        """Store a new key record.

        Raises:
            StoreConflict: the key id exists.
            StoreNotFound: the consumer does not exist.
        """
        ...

    async def get_api_key(self, key_id: str) -> tuple[APIKeyRecord, Consumer] | None:
        """The key record and its consumer, or None (the hot path's cache-miss query)."""
        ...

    async def list_api_keys(self, consumer_id: str | None = None) -> list[APIKeyRecord]:
        """Key records (of one consumer, or all), oldest first."""
        ...

    async def revoke_api_key(self, key_id: str, *, at: float, actor: str) -> APIKeyRecord:
        """Mark a key revoked from `at` (epoch seconds); revoking twice keeps the first time.

        Raises:
            StoreNotFound: no such key.
        """
        ...

    async def set_api_key_expiry(
        self, key_id: str, expires_at: float | None, *, actor: str
    ) -> APIKeyRecord:
        """Change a key's expiry (rotation's overlap window).

        Raises:
            StoreNotFound: no such key.
        """
        ...

    async def set_password(self, record: PasswordRecord, *, actor: str) -> None:
        """Create or replace the consumer's password hash.

        Raises:
            StoreConflict: the username belongs to another consumer.
            StoreNotFound: the consumer does not exist.
        """
        ...

    async def get_password(self, username: str) -> tuple[PasswordRecord, Consumer] | None:
        """The password record for a Basic-auth username and its consumer, or None."""
        ...

    async def audit_log(self, after_id: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with an id above `after_id`, oldest first."""
        ...

    async def last_audit_id(self) -> int:
        """The highest audit id so far (0 when empty)."""
        ...

    async def record_audit(
        self,
        actor: str,
        action: str,
        subject_type: SubjectType,
        subject_id: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
    ) -> None:
        """Append an audit entry for a change kept outside the store (e.g. a blocked source).

        `before`/`after` must hold no secret: they are stored as given.

        Raises:
            StoreUnavailable: the store could not be written.
        """
        ...


class OAuthStore(Protocol):
    """OAuth clients, token signing keys and revoked access tokens (the authorization server)."""

    async def add_oauth_client(self, record: OAuthClientRecord, *, actor: str) -> None:
        """Store a new client.

        Raises:
            StoreConflict: the client id exists.
        """
        ...

    async def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None:
        """The client with this id, or None."""
        ...

    async def list_oauth_clients(self) -> list[OAuthClientRecord]:
        """Every client, oldest first."""
        ...

    async def set_oauth_client_secret(
        self, client_id: str, secret_digest: str, *, actor: str
    ) -> OAuthClientRecord:
        """Replace a client's secret digest (the old secret stops working at once).

        Raises:
            StoreNotFound: no such client.
        """
        ...

    async def remove_oauth_client(self, client_id: str, *, actor: str) -> None:
        """Delete a client (its tokens stay valid until they expire unless revoked).

        Raises:
            StoreNotFound: no such client.
        """
        ...

    async def add_signing_key(self, record: SigningKeyRecord) -> None:
        """Store a new signing key."""
        ...

    async def list_signing_keys(self, published_after: float) -> list[SigningKeyRecord]:
        """Keys still published at `published_after` (epoch seconds), oldest first."""
        ...

    async def add_revocation(
        self, jti: str, client_id: str, expires_at: float, revoked_at: float
    ) -> None:
        """Record a revoked access token until it expires (revoking twice is not an error)."""
        ...

    async def list_revocations(self, expires_after: float) -> list[tuple[str, float]]:
        """(jti, expires_at) of revoked tokens that have not expired at `expires_after`."""
        ...


class ConfigStore(Protocol):
    """Configs applied through the admin API, numbered from 1 across the whole cluster."""

    async def add_config_revision(
        self,
        document: Mapping[str, object],
        *,
        actor: str,
        origin: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
    ) -> ConfigRevision:
        """Store the next revision with its `config.update` audit entry, in one transaction.

        `before` and `after` are what the audit log shows (the changed settings, secrets
        already masked by the caller); `document` is kept apart and never audited.

        Raises:
            StoreUnavailable: the database could not answer.
        """
        ...

    async def latest_config_revision(self) -> ConfigRevision | None:
        """The newest revision, or None when no config was ever applied through the API."""
        ...

    async def latest_config_revision_id(self) -> int:
        """The newest revision's number (0: none); a cheap query nodes poll every second.

        Raises:
            StoreUnavailable: the database could not answer.
        """
        ...


class Store(ConsumerStore, CredentialStore, ConfigStore, OAuthStore, Protocol):
    """A complete backend: SQLite or PostgreSQL."""

    url_redacted: str
    """The store URL without a password, for messages."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied."""
        ...

    async def wait_for_change(self, max_wait: float) -> None:
        """Return after `max_wait` seconds, or earlier when another node announced a change."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store can be opened again by the next call."""
        ...
