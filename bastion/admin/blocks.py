"""The admin API's blocked-sources operations: list, block and lift (`/admin/blocked-sources`).

Blocks live in the running server's `BlockedSources` (`bastion.observability.blocks`): shared
through Redis when `counters:` is a Redis URL, per process otherwise. Every change is written to
the store's audit log with actor `admin-api` (subject type `blocked_source`) and, like every
admin change, as a security event (`AdminAPI._run`); the block itself writes its own
`source-blocked` / `source-unblocked` event.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from bastion.admin.payloads import BlockCreate
from bastion.admin.store_ops import ADMIN_ACTOR
from bastion.errors import InvalidRequest, NotFound, ServiceUnavailable, StoreUnavailable
from bastion.observability.blocks import Block, BlockedSources, parse_source

if TYPE_CHECKING:
    from bastion.admin.api import AdminAPI, Call, Reply

_log = logging.getLogger("bastion.admin")

NOT_BLOCKED: Final = "This source is not blocked."
BAD_SOURCE: Final = "The source is not an IP address or CIDR (without host bits)."
NO_BLOCKS: Final = "Blocked sources are not available on this server."
TOO_MANY: Final = "Too many sources are blocked already."


def _table(api: AdminAPI) -> BlockedSources:
    found = getattr(api.host, "blocked_sources", None)
    if not isinstance(found, BlockedSources):
        raise ServiceUnavailable(NO_BLOCKS)
    return found


def _reply(status: int, body: object = None) -> Reply:
    from bastion.admin.api import Reply  # the API module imports this one for its table

    return Reply(status, body)


async def _audit(
    api: AdminAPI, action: str, source: str, before: Block | None, after: Block | None
) -> None:
    """Append the audit entry; the block is in force already, so a store outage only logs."""
    try:
        await api._store().record_audit(
            ADMIN_ACTOR,
            action,
            "blocked_source",
            source,
            None if before is None else before.public(),
            None if after is None else after.public(),
        )
    except StoreUnavailable:
        _log.error("blocked source %s changed but its audit entry failed", source)


async def list_blocked(api: AdminAPI, call: Call) -> Reply:
    """`GET /admin/blocked-sources`."""
    blocks = _table(api).blocks()
    return _reply(200, {"blocked_sources": [block.public() for block in blocks]})


async def block_source(api: AdminAPI, call: Call) -> Reply:
    """`POST /admin/blocked-sources`."""
    body = call.payload
    if not isinstance(body, BlockCreate):  # pragma: no cover - the route table pairs them
        raise InvalidRequest(BAD_SOURCE)
    source = body.ip if body.ip is not None else body.cidr
    assert source is not None  # noqa: S101 - the payload validator requires one of them
    table = _table(api)
    try:
        if body.ip is not None and "/" in body.ip:
            raise ValueError("a network in `ip`")
        canonical = parse_source(source)
        before = next((b for b in table.blocks() if b.source == canonical), None)
        block = table.block(canonical, body.seconds, body.reason, "admin-api")
    except ValueError as exc:
        detail = TOO_MANY if "too many" in str(exc) else BAD_SOURCE
        raise InvalidRequest(detail, code="invalid_source") from None
    await _audit(api, "blocked_source.add", block.source, before, block)
    return _reply(201, block.public())


async def unblock_source(api: AdminAPI, call: Call) -> Reply:
    """`DELETE /admin/blocked-sources/{source}` and `.../{source}/{prefix}`."""
    source = "/".join(call.arguments)
    try:
        canonical = parse_source(source)
    except ValueError:
        raise InvalidRequest(BAD_SOURCE, code="invalid_source") from None
    found = _table(api).unblock(canonical)
    if found is None:
        raise NotFound(NOT_BLOCKED)
    await _audit(api, "blocked_source.remove", canonical, found, None)
    return _reply(204)
