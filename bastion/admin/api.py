"""The admin API under `/admin/`: consumers, credentials, OAuth clients and the running config.

How this works: `AdminApp` authenticates the bearer token and hands every `/admin/...` request
to `AdminAPI.handle`, which matches the route table (`routes.py`), reads a bounded body if the
operation takes one, then runs the operation as a task on the event loop. Store calls are
async; argon2 hashing and config validation run in worker threads, so no handler blocks the
loop that also serves the admin listener's probes. Failures are problem+json (RFC 9457) and
never echo a submitted value. Every change is written to the store's audit log with actor
`admin-api` (the store writes credential entries itself). An applied config is also stored as
the next cluster-wide revision (`store_ops.publish_config`), which every other node and worker
process then applies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, TypeVar
from urllib.parse import parse_qs

import orjson
import yaml
from pydantic import BaseModel, ValidationError

from bastion.admin import blocks, store_ops
from bastion.admin.config_view import JSON, ConfigView, diff
from bastion.admin.openapi import openapi_bytes
from bastion.admin.payloads import ClientCreate, ConsumerCreate, KeyIssue, PasswordSet
from bastion.admin.routes import MAX_CONFIG_BODY, MAX_JSON_BODY, Operation, match
from bastion.admin.store_ops import ADMIN_ACTOR
from bastion.config.loader import ConfigErrors, dotted, parse_config
from bastion.config.models import GatewayConfig
from bastion.errors import (
    ConfigError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Reject,
    ServiceUnavailable,
    StoreUnavailable,
    UnprocessableContent,
    UnsupportedMediaType,
)
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.proxy.downstream import Exchange, http_date
from bastion.store import (
    APIKeyRecord,
    Consumer,
    PasswordRecord,
    Store,
    StoreConflict,
    StoreNotFound,
    gateway_store,
    peppers_from_config,
)
from bastion.store.base import ConfigRevision, OAuthClientRecord
from bastion.store.secrets import hash_password, new_api_key
from bastion.store.sql import SQLStore

_log = logging.getLogger("bastion.admin")

NO_SUCH_ENDPOINT: Final = "No such admin endpoint."
NO_SUCH_RESOURCE: Final = "No such resource."
METHOD_NOT_ALLOWED: Final = "This method is not allowed on this admin endpoint."
NOT_JSON: Final = "The body must be a JSON object."
NOT_YAML: Final = "The body must be a YAML or JSON mapping."
WRONG_TYPE: Final = "The body must be application/json (or application/yaml for a config)."
TOO_LARGE: Final = "The body is larger than this endpoint accepts."
INVALID_BODY: Final = "The body is invalid; see `errors`."
INVALID_CONFIG: Final = "The config is invalid and was not applied; see `errors`."
INVALID_QUERY: Final = "A query parameter is invalid."
NO_CONSUMER: Final = "No such consumer."
NO_KEY: Final = "No such API key."
NO_CLIENT: Final = "No such OAuth client."
TAKEN: Final = "The name or id is taken."
NO_PEPPER: Final = "The config sets no `pepper`: API keys cannot be issued."
STORE_DOWN: Final = "The credential store is unavailable."
FAILED: Final = "The admin operation failed."

_JSON_TYPES: Final = (b"application/json",)
_YAML_TYPES: Final = (b"application/yaml", b"application/x-yaml", b"text/yaml")
_YAML_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_AUDIT_PAGE: Final = 500


class Conflict(Reject):
    """409: the write would break a uniqueness rule."""

    status = 409
    code = "conflict"
    title = "Conflict"


class ConfigHost(Protocol):
    """What the admin API needs from the running server (`bastion.server.run.Server`)."""

    @property
    def config(self) -> GatewayConfig:
        """The config now serving."""
        ...

    @property
    def revision(self) -> int:
        """Counts applied configs from 1."""
        ...

    @property
    def config_path(self) -> Path | None:
        """The config file (relative paths in a PUT config are relative to its folder)."""
        ...

    def admin_event(self, action: str, *, success: bool) -> None:
        """Record a security event for a change made through the admin API."""
        ...

    def apply_config(self, config: GatewayConfig) -> None:
        """Swap in `config` atomically, as SIGHUP does.

        Raises:
            ConfigError: the config validated but could not be built; the old one keeps serving.
        """
        ...

    def config_stored(self, revision: ConfigRevision) -> None:
        """The running config was stored as `revision` (so this process does not re-apply it)."""
        ...


@dataclass(slots=True)
class Call:
    """One admin request, parsed."""

    operation: Operation
    arguments: tuple[str, ...]
    query: dict[str, str]
    body: bytes = b""
    content_type: bytes = b""
    payload: BaseModel | None = None


@dataclass(slots=True)
class Reply:
    """A successful answer: status and JSON body (None: no body)."""

    status: int
    body: object = None
    raw: bytes | None = None


Handler = Callable[["AdminAPI", Call], Awaitable[Reply]]


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    # Only locations and messages: a submitted value (a password) is never echoed.
    return [
        {"path": dotted(tuple(error["loc"])) or "(body)", "message": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _config_errors(lines: list[str]) -> list[dict[str, str]]:
    errors = []
    for line in lines:
        path, sep, message = line.partition(": ")
        errors.append({"path": path, "message": message} if sep else {"path": "", "message": line})
    return errors


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise InvalidRequest(NOT_JSON) from None
    if not isinstance(value, dict):
        raise InvalidRequest(NOT_JSON)
    return value


P = TypeVar("P", bound=BaseModel)


def _payload(call: Call, model: type[P]) -> P:
    if not isinstance(call.payload, model):  # pragma: no cover - the route table pairs them
        raise InternalError(FAILED)
    return call.payload


def _client_out(record: OAuthClientRecord) -> dict[str, object]:
    return record.public()


@dataclass
class AdminAPI:
    """Dispatches `/admin/...` requests (already authenticated) to their operations."""

    host: ConfigHost
    store: Callable[[], Store] | None = None
    complete: Callable[[Mapping[str, object]], dict[str, object]] | None = None
    """Fills what a submitted config may leave out (middleware mode: listeners, upstreams)."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _config_lock: asyncio.Lock | None = field(default=None, init=False, repr=False)

    def _store(self) -> Store:
        if self.store is not None:
            return self.store()
        return gateway_store(self.host.config).backend

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        """Answer one authenticated `/admin/...` request."""
        request = exchange.request
        found = match(request.method, request.path)
        if found is None:
            exchange.reject(NotFound(NO_SUCH_ENDPOINT))
            return
        if isinstance(found, list):
            exchange.reject(MethodNotAllowed(METHOD_NOT_ALLOWED, allow=list(found)))
            return
        operation, arguments = found
        try:
            query = self._query(request.query, operation)
        except Reject as reject:
            exchange.reject(reject)
            return
        call = Call(operation, arguments, query)
        if operation.body == "none":
            self._spawn(exchange, call)
            return
        limit = MAX_CONFIG_BODY if operation.body == "config" else MAX_JSON_BODY
        content_type = (request.headers.get(b"content-type") or b"").split(b";")[0].strip()
        call.content_type = content_type.lower()
        allowed = _JSON_TYPES + (_YAML_TYPES if operation.body == "config" else ())
        if call.content_type not in allowed:
            exchange.close_after = True  # the unread body must not be parsed as a request
            exchange.reject(UnsupportedMediaType(WRONG_TYPE))
            return
        if request.content_length is not None and request.content_length > limit:
            exchange.close_after = True
            exchange.reject(PayloadTooLarge(TOO_LARGE))
            return
        exchange.max_body = min(exchange.max_body, limit)
        parts: list[bytes] = []

        def on_end() -> None:
            call.body = b"".join(parts)
            self._spawn(exchange, call)

        exchange.consume_body(parts.append, on_end)

    @staticmethod
    def _query(raw: bytes, operation: Operation) -> dict[str, str]:
        if not raw:
            return {}
        try:
            parsed = parse_qs(raw.decode("ascii"), strict_parsing=True, max_num_fields=8)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(INVALID_QUERY) from None
        query = {}
        for name, values in parsed.items():
            if name not in operation.query or len(values) != 1 or len(values[0]) > 256:
                raise InvalidRequest(INVALID_QUERY)
            query[name] = values[0]
        return query

    def _spawn(self, exchange: Exchange, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self._run(exchange, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, exchange: Exchange, call: Call) -> None:
        changes = call.operation.method != "GET"
        success = False
        try:
            success = await self._answer(exchange, call)
        finally:
            if changes:  # every attempted change is a security event, refused ones too
                self.host.admin_event(call.operation.operation_id, success=success)

    async def _answer(self, exchange: Exchange, call: Call) -> bool:
        """Run one operation and answer; True when it succeeded."""
        try:
            if call.operation.request is not None:
                data = _json_object(call.body)
                try:
                    call.payload = call.operation.request.model_validate(data)
                except ValidationError as exc:
                    raise UnprocessableContent(
                        INVALID_BODY, extra={"errors": _field_errors(exc)}
                    ) from None
            reply = await _HANDLERS[call.operation.operation_id](self, call)
        except Reject as reject:
            if not exchange.finished:
                exchange.reject(reject)
            return False
        except StoreNotFound:
            if not exchange.finished:
                exchange.reject(NotFound(NO_SUCH_RESOURCE))
            return False
        except StoreConflict:
            if not exchange.finished:
                exchange.reject(Conflict(TAKEN))
            return False
        except StoreUnavailable:
            if not exchange.finished:
                exchange.reject(ServiceUnavailable(STORE_DOWN))
            return False
        except Exception:  # noqa: BLE001 - an admin bug answers 500 with a fixed message
            _log.exception("admin operation %s failed", call.operation.operation_id)
            if not exchange.finished:
                exchange.reject(InternalError(FAILED))
            return False
        if not exchange.finished:
            exchange.send_response(_response(reply))
        return True

    # -- consumers ---------------------------------------------------------------------------

    async def _consumer(self, name_or_id: str) -> Consumer:
        found = await self._store().find_consumer(name_or_id)
        if found is None:
            raise NotFound(NO_CONSUMER)
        return found

    async def list_consumers(self, call: Call) -> Reply:
        """`GET /admin/consumers`."""
        consumers = await self._store().list_consumers()
        return Reply(200, {"consumers": [consumer.public() for consumer in consumers]})

    async def create_consumer(self, call: Call) -> Reply:
        """`POST /admin/consumers`."""
        body = _payload(call, ConsumerCreate)
        consumer = await self._store().create_consumer(
            body.name, actor=ADMIN_ACTOR, groups=body.groups, metadata=body.metadata
        )
        return Reply(201, consumer.public())

    async def get_consumer(self, call: Call) -> Reply:
        """`GET /admin/consumers/{consumer}`."""
        return Reply(200, (await self._consumer(call.arguments[0])).public())

    async def disable_consumer(self, call: Call) -> Reply:
        """`POST /admin/consumers/{consumer}/disable`."""
        return await self._set_disabled(call.arguments[0], disabled=True)

    async def enable_consumer(self, call: Call) -> Reply:
        """`POST /admin/consumers/{consumer}/enable`."""
        return await self._set_disabled(call.arguments[0], disabled=False)

    async def _set_disabled(self, name_or_id: str, *, disabled: bool) -> Reply:
        consumer = await self._consumer(name_or_id)
        store = self._store()
        changed = await store.set_consumer_disabled(consumer.id, disabled, actor=ADMIN_ACTOR)
        return Reply(200, changed.public())

    async def delete_consumer(self, call: Call) -> Reply:
        """`DELETE /admin/consumers/{consumer}`."""
        consumer = await self._consumer(call.arguments[0])
        await self._store().delete_consumer(consumer.id, actor=ADMIN_ACTOR)
        return Reply(204)

    # -- credentials -------------------------------------------------------------------------

    async def issue_key(self, call: Call) -> Reply:
        """`POST /admin/consumers/{consumer}/keys`: the key is in this response only."""
        body = _payload(call, KeyIssue)
        peppers = peppers_from_config(self.host.config)
        if peppers is None:
            raise Conflict(NO_PEPPER)
        consumer = await self._consumer(call.arguments[0])
        store = self._store()
        now = time.time()
        expires_at = now + body.expires_in if body.expires_in is not None else None
        for _ in range(5):  # key ids are random: retry the rare collision
            key_id, key = new_api_key()
            digest = peppers.digest(key)
            if digest is None:  # pragma: no cover - the current pepper is always known
                raise InternalError(FAILED)
            record = APIKeyRecord(
                id=key_id,
                consumer_id=consumer.id,
                digest=digest,
                pepper_id=peppers.current.id,
                created_at=now,
                expires_at=expires_at,
                label=body.label,
            )
            try:
                await store.add_api_key(record, actor=ADMIN_ACTOR)
            except StoreConflict:
                continue
            return Reply(201, {"key": key, "record": record.public()})
        raise Conflict(TAKEN)

    async def list_keys(self, call: Call) -> Reply:
        """`GET /admin/keys[?consumer=]`."""
        consumer_id = None
        if "consumer" in call.query:
            consumer_id = (await self._consumer(call.query["consumer"])).id
        records = await self._store().list_api_keys(consumer_id)
        return Reply(200, {"keys": [record.public() for record in records]})

    async def revoke_key(self, call: Call) -> Reply:
        """`POST /admin/keys/{key_id}/revoke`."""
        try:
            record = await self._store().revoke_api_key(
                call.arguments[0], at=time.time(), actor=ADMIN_ACTOR
            )
        except StoreNotFound:
            raise NotFound(NO_KEY) from None
        return Reply(200, record.public())

    async def set_password(self, call: Call) -> Reply:
        """`PUT /admin/consumers/{consumer}/password`: hashed with argon2id in a thread."""
        body = _payload(call, PasswordSet)
        consumer = await self._consumer(call.arguments[0])
        try:
            password_hash = await asyncio.to_thread(hash_password, body.password.get_secret_value())
        except ValueError:
            errors = [{"path": "password", "message": "must be 1 to 1024 bytes long"}]
            raise UnprocessableContent(INVALID_BODY, extra={"errors": errors}) from None
        record = PasswordRecord(consumer.id, consumer.name, password_hash, time.time())
        await self._store().set_password(record, actor=ADMIN_ACTOR)
        return Reply(200, record.public())

    # -- OAuth clients -----------------------------------------------------------------------

    def _oauth(self) -> SQLStore:
        store = self._store()
        if not isinstance(store, SQLStore):  # pragma: no cover - every shipped backend is SQL
            raise InternalError(FAILED)
        return store

    async def list_clients(self, call: Call) -> Reply:
        """`GET /admin/oauth/clients`."""
        clients = await self._oauth().list_oauth_clients()
        return Reply(200, {"clients": [_client_out(client) for client in clients]})

    async def create_client(self, call: Call) -> Reply:
        """`POST /admin/oauth/clients`: the secret is in this response only."""
        body = _payload(call, ClientCreate)
        secret = new_client_secret()
        record = OAuthClientRecord(
            id=new_client_id(),
            name=body.name,
            secret_digest=secret_digest(secret),
            scopes=frozenset(body.scopes),
            grant_types=frozenset(body.grant_types),
            audience=body.audience,
            created_at=time.time(),
        )
        await self._oauth().add_oauth_client(record, actor=ADMIN_ACTOR)
        out = {"client_id": record.id, "client_secret": secret, "client": _client_out(record)}
        return Reply(201, out)

    async def rotate_client_secret(self, call: Call) -> Reply:
        """`POST /admin/oauth/clients/{client_id}/rotate-secret`."""
        secret = new_client_secret()
        try:
            record = await self._oauth().set_oauth_client_secret(
                call.arguments[0], secret_digest(secret), actor=ADMIN_ACTOR
            )
        except StoreNotFound:
            raise NotFound(NO_CLIENT) from None
        out = {"client_id": record.id, "client_secret": secret, "client": _client_out(record)}
        return Reply(200, out)

    async def delete_client(self, call: Call) -> Reply:
        """`DELETE /admin/oauth/clients/{client_id}`."""
        try:
            await self._oauth().remove_oauth_client(call.arguments[0], actor=ADMIN_ACTOR)
        except StoreNotFound:
            raise NotFound(NO_CLIENT) from None
        return Reply(204)

    # -- config and audit --------------------------------------------------------------------

    async def get_config(self, call: Call) -> Reply:
        """`GET /admin/config`: secrets masked."""
        revision = self.host.revision
        view = await asyncio.to_thread(ConfigView, self.host.config)
        return Reply(200, {"revision": revision, "config": view.masked})

    async def put_config(self, call: Call) -> Reply:
        """`PUT /admin/config`: validate (in a thread), diff, apply atomically, audit."""
        dry_run = call.query.get("dry_run", "false")
        if dry_run not in ("true", "false"):
            raise InvalidRequest(INVALID_QUERY)
        document = _config_document(call.body, call.content_type)
        if self._config_lock is None:
            self._config_lock = asyncio.Lock()
        async with self._config_lock:  # one change at a time: each diffs against the last
            current = self.host.config
            path = self.host.config_path
            base_dir = path.parent if path is not None else Path.cwd()
            old_view, new_config = await asyncio.to_thread(
                _validate, current, document, base_dir, self.complete
            )
            new_view = await asyncio.to_thread(ConfigView, new_config)
            changes = diff(old_view.masked, new_view.masked)
            if dry_run == "true" or not changes:
                return Reply(
                    200, {"revision": self.host.revision, "applied": False, "changes": changes}
                )
            try:
                self.host.apply_config(new_config)
            except ConfigErrors as exc:
                errors = _config_errors(exc.lines)
                raise UnprocessableContent(INVALID_CONFIG, extra={"errors": errors}) from None
            except ConfigError as exc:
                errors = [{"path": exc.path, "message": exc.message}]
                raise UnprocessableContent(INVALID_CONFIG, extra={"errors": errors}) from None
            revision = self.host.revision
            # Still under the lock: revisions are stored in the order they were applied.
            await self._publish_config(revision, changes, document)
        return Reply(200, {"revision": revision, "applied": True, "changes": changes})

    async def _publish_config(
        self, revision: int, changes: list[dict[str, JSON]], document: JSON
    ) -> None:
        old = {str(c["path"]): c["before"] for c in changes if "before" in c}
        new = {str(c["path"]): c["after"] for c in changes if "after" in c}
        before = {"revision": revision - 1, "values": old}
        after = {"revision": revision, "values": new}
        try:
            stored = await store_ops.publish_config(
                self._store(),
                document if isinstance(document, dict) else {},
                before=before,
                after=after,
            )
        except (StoreUnavailable, StoreConflict):
            # The config is live already; refusing now would misreport what is serving.
            _log.error(
                "config revision %d applied on this process only: storing it failed, so "
                "other nodes and workers keep their config",
                revision,
            )
            return
        self.host.config_stored(stored)

    async def list_audit(self, call: Call) -> Reply:
        """`GET /admin/audit[?after=ID]`."""
        after = call.query.get("after", "0")
        if not after.isdigit() or len(after) > 18:
            raise InvalidRequest(INVALID_QUERY)
        entries = await self._store().audit_log(int(after), limit=MAX_AUDIT_PAGE)
        out = [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject_type": e.subject_type,
                "subject_id": e.subject_id,
                "before": e.before,
                "after": e.after,
            }
            for e in entries
        ]
        return Reply(200, {"entries": out})

    async def openapi(self, call: Call) -> Reply:
        """`GET /admin/openapi.json`."""
        return Reply(200, raw=openapi_bytes())


def _config_document(body: bytes, content_type: bytes) -> JSON:
    if content_type in _JSON_TYPES:
        return _json_object(body)  # type: ignore[return-value]  # JSON values are objects
    try:
        value = yaml.load(body, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        raise InvalidRequest(NOT_YAML) from None
    if not isinstance(value, dict):
        raise InvalidRequest(NOT_YAML)
    return value


def _validate(
    current: GatewayConfig,
    document: JSON,
    base_dir: Path,
    complete: Callable[[Mapping[str, object]], dict[str, object]] | None = None,
) -> tuple[ConfigView, GatewayConfig]:
    """Restore masked secrets and validate with the loader (runs in a worker thread).

    `${ENV}` interpolation is off for documents sent over the API (an empty environment):
    otherwise a token holder could copy any environment variable into a visible setting.

    Raises:
        UnprocessableContent: the config is invalid (each error names its dotted path).
    """
    view = ConfigView(current)
    restored: object = view.restore(document)
    if complete is not None and isinstance(restored, dict):
        restored = complete(restored)
    try:
        return view, parse_config(restored, base_dir=base_dir, env={})
    except ConfigErrors as exc:
        errors = _config_errors(exc.lines)
        raise UnprocessableContent(INVALID_CONFIG, extra={"errors": errors}) from None


def _response(reply: Reply) -> Response:
    headers = Headers(
        [
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"date", http_date()),
        ]
    )
    if reply.status == 204:
        return Response(204, headers)
    headers.add(b"content-type", b"application/json")
    body = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
    return Response(reply.status, headers, body)


_HANDLERS: Final[dict[str, Handler]] = {
    "listConsumers": AdminAPI.list_consumers,
    "createConsumer": AdminAPI.create_consumer,
    "getConsumer": AdminAPI.get_consumer,
    "disableConsumer": AdminAPI.disable_consumer,
    "enableConsumer": AdminAPI.enable_consumer,
    "deleteConsumer": AdminAPI.delete_consumer,
    "issueKey": AdminAPI.issue_key,
    "listKeys": AdminAPI.list_keys,
    "revokeKey": AdminAPI.revoke_key,
    "setPassword": AdminAPI.set_password,
    "listClients": AdminAPI.list_clients,
    "createClient": AdminAPI.create_client,
    "rotateClientSecret": AdminAPI.rotate_client_secret,
    "deleteClient": AdminAPI.delete_client,
    "getConfig": AdminAPI.get_config,
    "putConfig": AdminAPI.put_config,
    "listAudit": AdminAPI.list_audit,
    "openapi": AdminAPI.openapi,
    "listBlockedSources": blocks.list_blocked,
    "blockSource": blocks.block_source,
    "unblockSource": blocks.unblock_source,
    "unblockNetwork": blocks.unblock_source,
}

__all__ = ["AdminAPI", "ConfigHost", "Conflict"]
