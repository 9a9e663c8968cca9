"""Admin API request and response bodies as pydantic models (validation and the OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

# RFC 6749 §3.3 scope-token: https://www.rfc-editor.org/rfc/rfc6749#section-3.3
Scope = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
Group = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
MetaText = Annotated[str, StringConstraints(max_length=512)]

GrantType = Literal["client_credentials"]
MAX_LIFETIME = 10 * 366 * 86_400


def _default_grants() -> list[GrantType]:
    return ["client_credentials"]


class Payload(BaseModel):
    """Base of request bodies: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsumerCreate(Payload):
    """`POST /admin/consumers`."""

    name: Name = Field(description="Unique name; also the Basic-auth username.")
    groups: list[Group] = Field(
        default_factory=list, max_length=64, description="Groups, for acl policies."
    )
    metadata: dict[Annotated[str, StringConstraints(max_length=64)], MetaText] = Field(
        default_factory=dict, max_length=64, description="Free-form string labels."
    )


class KeyIssue(Payload):
    """`POST /admin/consumers/{consumer}/keys`."""

    expires_in: int | None = Field(
        None, ge=60, le=MAX_LIFETIME, description="Lifetime in seconds; none: never expires."
    )
    label: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="A note to recognise the key by."
    )


class PasswordSet(Payload):
    """`PUT /admin/consumers/{consumer}/password` (the consumer's name is the username)."""

    password: SecretStr = Field(
        min_length=1, max_length=1024, description="The new Basic-auth password."
    )


class ClientCreate(Payload):
    """`POST /admin/oauth/clients`."""

    name: Name = Field(description="A name to recognise the client by.")
    scopes: list[Scope] = Field(
        default_factory=list, max_length=256, description="Scopes the client may ask for."
    )
    grant_types: list[GrantType] = Field(
        default_factory=_default_grants,
        min_length=1,
        description="Grant types the client may use.",
    )
    audience: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None, description="`aud` of its tokens; none: the issuer URL."
    )


class BlockCreate(Payload):
    """`POST /admin/blocked-sources`: exactly one of `ip` and `cidr`."""

    ip: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="An IPv4 or IPv6 address to block."
    )
    cidr: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="A network to block, e.g. `203.0.113.0/24` (no host bits set)."
    )
    seconds: int = Field(
        900, ge=1, le=30 * 86_400, description="How long the block lasts (at most 30 days)."
    )
    reason: Annotated[str, StringConstraints(max_length=200)] = Field(
        "", description="A note for the operators (logged in the security event)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BlockCreate:
        if (self.ip is None) == (self.cidr is None):
            raise ValueError("give exactly one of `ip` and `cidr`")
        return self


class BlockOut(BaseModel):
    """A blocked source: refused with 403 `source_blocked` until `until` (Unix seconds)."""

    source: str
    until: float
    reason: str
    by: Literal["anomaly", "admin-api"]
    created: float


class BlockList(BaseModel):
    """The blocks in force, soonest ending first."""

    blocked_sources: list[BlockOut]


class ConsumerOut(BaseModel):
    """A consumer."""

    id: str
    name: str
    groups: list[str]
    disabled: bool
    metadata: dict[str, str]


class ConsumerList(BaseModel):
    """Every consumer, by name."""

    consumers: list[ConsumerOut]


class KeyOut(BaseModel):
    """An API key record (never the key or its digest)."""

    id: str
    consumer_id: str
    pepper_id: str
    label: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class KeyList(BaseModel):
    """API key records, oldest first."""

    keys: list[KeyOut]


class IssuedKey(BaseModel):
    """A new API key: `key` is shown this once and never again."""

    key: str
    record: KeyOut


class PasswordOut(BaseModel):
    """A password record (never the password or its hash)."""

    consumer_id: str
    username: str
    updated_at: float


class ClientOut(BaseModel):
    """An OAuth client (never its secret or digest)."""

    id: str
    name: str
    scopes: list[str]
    grant_types: list[str]
    audience: str | None
    disabled: bool


class ClientList(BaseModel):
    """Every OAuth client, oldest first."""

    clients: list[ClientOut]


class IssuedSecret(BaseModel):
    """A client's new secret: shown this once and never again."""

    client_id: str
    client_secret: str
    client: ClientOut


class ConfigOut(BaseModel):
    """The running config, secrets masked as `********`."""

    revision: int
    config: dict[str, object]


class ConfigChange(BaseModel):
    """One changed setting (values masked).

    `before` or `after` is absent for an added or removed setting.
    """

    path: str
    before: object = None
    after: object = None


class ConfigApplied(BaseModel):
    """The result of `PUT /admin/config`."""

    revision: int
    applied: bool
    changes: list[ConfigChange]


class AuditOut(BaseModel):
    """One audit entry (never a secret)."""

    id: int
    at: float
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, object] | None
    after: dict[str, object] | None


class AuditList(BaseModel):
    """Audit entries, oldest first."""

    entries: list[AuditOut]


class FieldError(BaseModel):
    """One invalid field of a request body or config (dotted path)."""

    path: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `errors` lists invalid fields on 422."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str
    errors: list[FieldError] | None = None
