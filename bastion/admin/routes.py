"""The admin API's route table: one entry per operation, shared by the dispatcher and OpenAPI."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel

from bastion.admin.payloads import (
    AuditList,
    BlockCreate,
    BlockList,
    BlockOut,
    ClientCreate,
    ClientList,
    ConfigApplied,
    ConfigOut,
    ConsumerCreate,
    ConsumerList,
    ConsumerOut,
    IssuedKey,
    IssuedSecret,
    KeyIssue,
    KeyList,
    KeyOut,
    PasswordOut,
    PasswordSet,
)

Method = Literal["GET", "POST", "PUT", "DELETE"]
BodyKind = Literal["none", "json", "config"]

MAX_JSON_BODY: Final = 64 * 1024
"""Largest JSON body of a credential operation."""
MAX_CONFIG_BODY: Final = 1024 * 1024
"""Largest config document accepted by `PUT /admin/config`."""

_SEGMENT = "[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"
# Path parameters with their own shape: an address (IPv6 has colons) and a CIDR prefix length.
_SEGMENTS: Final = {"source": "[0-9A-Fa-f.:]{2,45}", "prefix": "[0-9]{1,3}"}


@dataclass(frozen=True, slots=True)
class Operation:
    """One admin operation: method, path template, bodies and documentation."""

    operation_id: str
    method: Method
    template: str
    summary: str
    status: int = 200
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    body: BodyKind = "none"
    query: tuple[str, ...] = ()

    @property
    def pattern(self) -> re.Pattern[str]:
        """The template as an anchored regex, one group per `{parameter}`."""
        regex = re.sub(
            r"\{([a-z_]+)\}",
            lambda found: f"({_SEGMENTS.get(found.group(1), _SEGMENT)})",
            re.escape(self.template).replace(r"\{", "{").replace(r"\}", "}"),
        )
        return re.compile(f"^{regex}$")

    @property
    def parameters(self) -> list[str]:
        """The path parameter names, in order."""
        return re.findall(r"\{([a-z_]+)\}", self.template)


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation("listConsumers", "GET", "/admin/consumers", "List consumers.", response=ConsumerList),
    Operation(
        "createConsumer",
        "POST",
        "/admin/consumers",
        "Create a consumer.",
        status=201,
        request=ConsumerCreate,
        response=ConsumerOut,
        body="json",
    ),
    Operation(
        "getConsumer",
        "GET",
        "/admin/consumers/{consumer}",
        "A consumer by id or name.",
        response=ConsumerOut,
    ),
    Operation(
        "disableConsumer",
        "POST",
        "/admin/consumers/{consumer}/disable",
        "Disable a consumer: every credential of it is refused from then on.",
        response=ConsumerOut,
    ),
    Operation(
        "enableConsumer",
        "POST",
        "/admin/consumers/{consumer}/enable",
        "Enable a disabled consumer again.",
        response=ConsumerOut,
    ),
    Operation(
        "deleteConsumer",
        "DELETE",
        "/admin/consumers/{consumer}",
        "Delete a consumer with its API keys and password.",
        status=204,
    ),
    Operation(
        "issueKey",
        "POST",
        "/admin/consumers/{consumer}/keys",
        "Issue an API key; the key is in this response only.",
        status=201,
        request=KeyIssue,
        response=IssuedKey,
        body="json",
    ),
    Operation(
        "listKeys",
        "GET",
        "/admin/keys",
        "List API key records (of `?consumer=`, or all).",
        response=KeyList,
        query=("consumer",),
    ),
    Operation(
        "revokeKey",
        "POST",
        "/admin/keys/{key_id}/revoke",
        "Revoke an API key (revoking twice keeps the first time).",
        response=KeyOut,
    ),
    Operation(
        "setPassword",
        "PUT",
        "/admin/consumers/{consumer}/password",
        "Set the consumer's Basic-auth password (its name is the username).",
        request=PasswordSet,
        response=PasswordOut,
        body="json",
    ),
    Operation(
        "listClients", "GET", "/admin/oauth/clients", "List OAuth clients.", response=ClientList
    ),
    Operation(
        "createClient",
        "POST",
        "/admin/oauth/clients",
        "Register an OAuth client; its secret is in this response only.",
        status=201,
        request=ClientCreate,
        response=IssuedSecret,
        body="json",
    ),
    Operation(
        "rotateClientSecret",
        "POST",
        "/admin/oauth/clients/{client_id}/rotate-secret",
        "Give a client a new secret (in this response only); the old one stops working.",
        response=IssuedSecret,
    ),
    Operation(
        "deleteClient",
        "DELETE",
        "/admin/oauth/clients/{client_id}",
        "Delete an OAuth client.",
        status=204,
    ),
    Operation(
        "getConfig",
        "GET",
        "/admin/config",
        "The running config, secrets masked.",
        response=ConfigOut,
    ),
    Operation(
        "putConfig",
        "PUT",
        "/admin/config",
        "Validate, diff and apply a new config atomically (`?dry_run=true`: validate and diff).",
        response=ConfigApplied,
        body="config",
        query=("dry_run",),
    ),
    Operation(
        "listAudit",
        "GET",
        "/admin/audit",
        "Audit entries after `?after=` (an entry id), oldest first, at most 500.",
        response=AuditList,
        query=("after",),
    ),
    Operation(
        "listBlockedSources",
        "GET",
        "/admin/blocked-sources",
        "Sources (addresses, CIDRs) refused with 403 `source_blocked`, soonest ending first.",
        response=BlockList,
    ),
    Operation(
        "blockSource",
        "POST",
        "/admin/blocked-sources",
        "Block an address or CIDR for `seconds` (replaces a block of the same source).",
        status=201,
        request=BlockCreate,
        response=BlockOut,
        body="json",
    ),
    Operation(
        "unblockSource",
        "DELETE",
        "/admin/blocked-sources/{source}",
        "Lift the block of an address (404 if it is not blocked).",
        status=204,
    ),
    Operation(
        "unblockNetwork",
        "DELETE",
        "/admin/blocked-sources/{source}/{prefix}",
        "Lift the block of a CIDR, written as in the block: `/admin/blocked-sources/10.0.0.0/8`.",
        status=204,
    ),
    Operation("openapi", "GET", "/admin/openapi.json", "This document."),
)


def match(method: str, path: str) -> tuple[Operation, tuple[str, ...]] | list[Method] | None:
    """The operation for `method` and `path` with its path arguments.

    Returns:
        (operation, arguments); or the allowed methods when only the method differs; or None.
    """
    allowed: list[Method] = []
    for operation, pattern in _COMPILED:
        found = pattern.match(path)
        if found is None:
            continue
        if operation.method == method:
            return operation, found.groups()
        allowed.append(operation.method)
    return allowed or None


_COMPILED: Final = tuple((operation, operation.pattern) for operation in OPERATIONS)
