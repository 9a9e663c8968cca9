"""Store writes the admin API needs that the store Protocols do not offer yet.

Deleting a consumer and recording a configuration change are written here over the SQL
store's own transaction and audit primitives, so each change and its audit entry still land
in one transaction. They belong in `bastion/store/sql.py` (and the Protocols) once the store's
owner adopts them.
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.store.base import Store, StoreNotFound
from bastion.store.sql import SQLStore, Statement

ADMIN_ACTOR = "admin-api"


def _sql(store: Store) -> SQLStore:
    if not isinstance(store, SQLStore):  # pragma: no cover - every shipped backend is SQL
        raise TypeError("the admin API needs an SQL store")
    return store


async def delete_consumer(store: Store, consumer_id: str, *, actor: str = ADMIN_ACTOR) -> None:
    """Delete a consumer with its API keys and password, in one audited transaction.

    Raises:
        StoreNotFound: no such consumer.
        StoreUnavailable: the database could not answer.
    """
    sql = _sql(store)
    before = await sql.get_consumer(consumer_id)
    if before is None:
        raise StoreNotFound("no such consumer")
    keys = await sql.list_api_keys(consumer_id)
    statements: list[Statement] = [
        ("DELETE FROM bastion_api_keys WHERE consumer_id = ?", (consumer_id,)),
        ("DELETE FROM bastion_passwords WHERE consumer_id = ?", (consumer_id,)),
        ("DELETE FROM bastion_consumers WHERE id = ?", (consumer_id,)),
    ]
    # One entry per key too, so every node's cache drops the keys by id (see CachedStore).
    statements += [
        sql._audit(actor, "api_key.delete", "api_key", key.id, key.public(), None) for key in keys
    ]
    statements.append(
        sql._audit(actor, "consumer.delete", "consumer", consumer_id, before.public(), None)
    )
    await sql._write(statements)


async def record_config_change(
    store: Store,
    *,
    revision: int,
    before: Mapping[str, object],
    after: Mapping[str, object],
    actor: str = ADMIN_ACTOR,
) -> None:
    """Append a `config.update` entry (values already masked by the caller).

    Raises:
        StoreUnavailable: the database could not answer.
    """
    sql = _sql(store)
    entry = sql._audit(actor, "config.update", "config", str(revision), before, after)  # type: ignore[arg-type]  # "config" is not in SubjectType yet
    await sql._write([entry])
