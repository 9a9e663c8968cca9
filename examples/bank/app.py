"""The banking API as a Starlette app: accounts, transactions and idempotent transfers on SQLite.

How this works: the app trusts the gateway in front of it. The caller's customer id arrives in
`X-Bastion-Consumer` and is the only identity the app knows; it performs no authentication, rate
limiting or schema validation of its own (README.md says why). It checks only what keeps the
ledger correct: amount syntax and sign, ownership, currencies, funds and idempotency keys.

Every endpoint runs its SQLite work in one worker-thread call on a fresh connection. Transfers run
inside `BEGIN IMMEDIATE`, which takes SQLite's write lock before the balance is read, so two
concurrent transfers cannot both spend the same money.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Literal

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typing_extensions import TypeIs

from examples.bank.db import CURRENCIES, connect, init_schema, to_decimal_string, to_minor

Version = Literal["v1", "v2"]
VERSIONS: tuple[Version, ...] = ("v1", "v2")

CONSUMER_HEADER = "x-bastion-consumer"
IDEMPOTENCY_HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
PROBLEM_TYPE_BASE = "https://bank.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

DEFAULT_LIMIT = 20
# The app's own bounds only stop nonsense reaching SQLite; openapi.yaml (enforced by the gateway)
# is stricter on purpose (limit ≤ 100), which the demo uses to show the gateway's validation.
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1

# ASCII digits only: Python's `\d` also matches other scripts' digits, which Decimal accepts.
_AMOUNT_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
_INT_RE = re.compile(r"[0-9]{1,10}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Problem(Exception):
    """An error rendered as an RFC 9457 problem+json response.

    RFC 9457 §3: https://www.rfc-editor.org/rfc/rfc9457#section-3
    """

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """Render a problem document; `request_id` echoes the gateway's `X-Request-ID` if present."""
    doc: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    request_id = request.headers.get("x-request-id")
    if request_id:
        doc["request_id"] = request_id
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(doc, status, headers=all_headers, media_type=PROBLEM_MEDIA_TYPE)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A transfer request, decoded from either API version into one internal form."""

    from_account: str
    to_account: str
    amount_minor: int
    currency: str
    reference: str | None

    def fingerprint(self) -> str:
        """A digest of the request's meaning, compared when an idempotency key is reused.

        `12.3` and `12.30` are the same amount, and a v1 and a v2 body describing the same
        transfer are the same request.
        """
        canonical = json.dumps(
            [self.from_account, self.to_account, self.amount_minor, self.currency, self.reference]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


async def _json_object(request: Request) -> dict[str, object]:
    body = await request.body()
    try:
        doc = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays
        raise Problem(400, "invalid_body", "The request body is not valid JSON.") from exc
    if not isinstance(doc, dict):
        raise Problem(400, "invalid_body", "The request body must be a JSON object.")
    return doc


def _is_text(value: object) -> TypeIs[str]:
    """Whether `value` is a string SQLite can store: JSON allows lone surrogates, UTF-8 does not."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string_field(doc: Mapping[str, object], name: str) -> str:
    value = doc.get(name)
    if not _is_text(value) or not value:
        raise Problem(400, "invalid_body", f"`{name}` must be a non-empty string.")
    return value


def _parse_amount(value: object, name: str) -> int:
    if not isinstance(value, str) or not _AMOUNT_RE.fullmatch(value):
        raise Problem(
            400,
            "invalid_body",
            f"`{name}` must be a decimal string with up to 12 digits and 2 decimals.",
        )
    minor = to_minor(Decimal(value))
    if minor <= 0:
        raise Problem(422, "invalid_amount", "The amount must be greater than zero.")
    return minor


def parse_transfer(doc: Mapping[str, object], version: Version) -> TransferRequest:
    """Decode a transfer body: v1 has `amount` + `currency`, v2 an `amount` object.

    Unknown members are ignored: refusing them is the gateway's job (openapi.yaml).

    Raises:
        Problem: 400 when a field is missing or malformed, 422 for a non-positive amount.
    """
    if version == "v1":
        amount_minor = _parse_amount(doc.get("amount"), "amount")
        currency = _string_field(doc, "currency")
    else:
        amount = doc.get("amount")
        if not isinstance(amount, dict):
            raise Problem(400, "invalid_body", "`amount` must be an object.")
        amount_minor = _parse_amount(amount.get("value"), "amount.value")
        currency = _string_field(amount, "currency")
    reference = doc.get("reference")
    if reference is not None and not _is_text(reference):
        raise Problem(400, "invalid_body", "`reference` must be a string.")
    return TransferRequest(
        from_account=_string_field(doc, "from_account"),
        to_account=_string_field(doc, "to_account"),
        amount_minor=amount_minor,
        currency=currency,
        reference=reference,
    )


def _consumer(request: Request) -> str:
    """The customer id the gateway authenticated; the app's only notion of identity."""
    consumer = request.headers.get(CONSUMER_HEADER)
    if not consumer:
        raise Problem(401, "unauthenticated", "No authenticated consumer.")
    return consumer


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise Problem(400, "invalid_query", f"`{name}` must be an integer from {low} to {high}.")
    return int(raw)


def _render_account(row: sqlite3.Row) -> dict[str, object]:
    return {
        "id": row["id"],
        "customer_id": row["customer_id"],
        "currency": row["currency"],
        "balance": to_decimal_string(row["balance_minor"]),
    }


def _render_transaction(row: sqlite3.Row) -> dict[str, object]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "amount": to_decimal_string(row["amount_minor"]),
        "currency": row["currency"],
        "balance_after": to_decimal_string(row["balance_after_minor"]),
        "description": row["description"],
        "transfer_id": row["transfer_id"],
        "created_at": row["created_at"],
    }


def render_transfer(row: sqlite3.Row, version: Version) -> dict[str, object]:
    """The transfer resource: v2 nests the amount with its currency and adds `created_at`."""
    doc: dict[str, object] = {
        "id": row["id"],
        "status": row["status"],
        "from_account": row["from_account"],
        "to_account": row["to_account"],
    }
    amount = to_decimal_string(row["amount_minor"])
    if version == "v1":
        doc["amount"] = amount
        doc["currency"] = row["currency"]
        doc["reference"] = row["reference"]
    else:
        doc["amount"] = {"value": amount, "currency": row["currency"]}
        doc["reference"] = row["reference"]
        doc["created_at"] = row["created_at"]
    return doc


def _json(doc: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(doc, status, headers={"Cache-Control": "no-store", **(headers or {})})


class _Bank:
    """The endpoints, bound to one database file and one clock."""

    def __init__(self, db_path: str | Path, now: Callable[[], datetime]) -> None:
        self._db_path = db_path
        self._now = now

    def routes(self) -> list[Route]:
        routes = [Route("/healthz", self.healthz, methods=["GET"])]
        for version in VERSIONS:
            prefix = f"/{version}"
            routes += [
                Route(f"{prefix}/accounts", self.list_accounts, methods=["GET"]),
                Route(f"{prefix}/accounts/{{account_id}}", self.get_account, methods=["GET"]),
                Route(
                    f"{prefix}/accounts/{{account_id}}/transactions",
                    self.list_transactions,
                    methods=["GET"],
                ),
                Route(
                    f"{prefix}/transfers",
                    functools.partial(self.create_transfer, version=version),
                    methods=["POST"],
                ),
                Route(
                    f"{prefix}/transfers/{{transfer_id}}",
                    functools.partial(self.get_transfer, version=version),
                    methods=["GET"],
                ),
            ]
        return routes

    # -- endpoints (async: parse the request, then one threadpool call for the database) --

    async def healthz(self, request: Request) -> Response:
        await run_in_threadpool(self._ping)
        return _json({"status": "ok"})

    async def list_accounts(self, request: Request) -> Response:
        consumer = _consumer(request)
        return _json(await run_in_threadpool(self._list_accounts, consumer))

    async def get_account(self, request: Request) -> Response:
        consumer = _consumer(request)
        account_id = request.path_params["account_id"]
        return _json(await run_in_threadpool(self._get_account, consumer, account_id))

    async def list_transactions(self, request: Request) -> Response:
        consumer = _consumer(request)
        account_id = request.path_params["account_id"]
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, MAX_OFFSET)
        page = await run_in_threadpool(self._list_transactions, consumer, account_id, limit, offset)
        return _json(page)

    async def create_transfer(self, request: Request, *, version: Version) -> Response:
        consumer = _consumer(request)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            raise Problem(400, "idempotency_key_missing", "Send an Idempotency-Key header.")
        transfer = parse_transfer(await _json_object(request), version)
        row, replayed = await run_in_threadpool(self._create_transfer, consumer, key, transfer)
        headers = {"Location": f"/{version}/transfers/{row['id']}"}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return _json(render_transfer(row, version), 201, headers)

    async def get_transfer(self, request: Request, *, version: Version) -> Response:
        consumer = _consumer(request)
        transfer_id = request.path_params["transfer_id"]
        row = await run_in_threadpool(self._get_transfer, consumer, transfer_id)
        return _json(render_transfer(row, version))

    # -- database work (runs on a worker thread, one connection per call) --

    def _ping(self) -> None:
        conn = connect(self._db_path)
        try:
            conn.execute("SELECT 1").fetchone()
        finally:
            conn.close()

    @staticmethod
    def _customer(conn: sqlite3.Connection, consumer: str) -> str:
        # A customer id as such, or an identity linked to one (an OAuth login's consumer id).
        row = conn.execute(
            "SELECT id FROM customers WHERE id = ?"
            " UNION ALL SELECT customer_id FROM identities WHERE subject = ? LIMIT 1",
            (consumer, consumer),
        ).fetchone()
        if row is None:
            raise Problem(401, "unknown_customer", "The consumer is not a customer of this bank.")
        return str(row["id"])

    @staticmethod
    def _owned_account(conn: sqlite3.Connection, customer: str, account_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT id, customer_id, currency, balance_minor FROM accounts WHERE id = ?",
            (account_id,),
        ).fetchone()
        if row is None:
            raise Problem(404, "account_not_found", "No such account.")
        if row["customer_id"] != customer:
            # 403, not 404: see README.md ("Ownership errors").
            raise Problem(403, "forbidden", "The account belongs to another customer.")
        return row

    def _list_accounts(self, consumer: str) -> dict[str, object]:
        conn = connect(self._db_path)
        try:
            customer = self._customer(conn, consumer)
            rows = conn.execute(
                "SELECT id, customer_id, currency, balance_minor FROM accounts"
                " WHERE customer_id = ? ORDER BY id",
                (customer,),
            ).fetchall()
        finally:
            conn.close()
        return {"data": [_render_account(row) for row in rows]}

    def _get_account(self, consumer: str, account_id: str) -> dict[str, object]:
        conn = connect(self._db_path)
        try:
            customer = self._customer(conn, consumer)
            return _render_account(self._owned_account(conn, customer, account_id))
        finally:
            conn.close()

    def _list_transactions(
        self, consumer: str, account_id: str, limit: int, offset: int
    ) -> dict[str, object]:
        conn = connect(self._db_path)
        try:
            customer = self._customer(conn, consumer)
            conn.execute("BEGIN")  # one snapshot for the count and the page
            try:
                account = self._owned_account(conn, customer, account_id)
                total = conn.execute(
                    "SELECT COUNT(*) FROM transactions WHERE account_id = ?", (account_id,)
                ).fetchone()[0]
                rows = conn.execute(
                    "SELECT id, account_id, amount_minor, balance_after_minor, description,"
                    " transfer_id, created_at, ? AS currency FROM transactions"
                    " WHERE account_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                    (account["currency"], account_id, limit, offset),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()
        return {
            "data": [_render_transaction(row) for row in rows],
            "limit": limit,
            "offset": offset,
            "total": total,
        }

    def _get_transfer(self, consumer: str, transfer_id: str) -> sqlite3.Row:
        conn = connect(self._db_path)
        try:
            customer = self._customer(conn, consumer)
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM transfers WHERE id = ?", (transfer_id,)
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            raise Problem(404, "transfer_not_found", "No such transfer.")
        if row["customer_id"] != customer:
            raise Problem(403, "forbidden", "The transfer belongs to another customer.")
        return row

    def _create_transfer(
        self, consumer: str, key: str, req: TransferRequest
    ) -> tuple[sqlite3.Row, bool]:
        conn = connect(self._db_path)
        try:
            customer = self._customer(conn, consumer)
            conn.execute("BEGIN IMMEDIATE")  # the write lock is held before balances are read
            try:
                result = self._transfer_locked(conn, customer, key, req)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return result
        finally:
            conn.close()

    def _transfer_locked(
        self, conn: sqlite3.Connection, customer: str, key: str, req: TransferRequest
    ) -> tuple[sqlite3.Row, bool]:
        fingerprint = req.fingerprint()
        previous = conn.execute(
            "SELECT fingerprint, transfer_id FROM idempotency_keys"
            " WHERE customer_id = ? AND key = ?",
            (customer, key),
        ).fetchone()
        if previous is not None:
            if not hmac.compare_digest(previous["fingerprint"], fingerprint):
                raise Problem(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request.",
                )
            replay = conn.execute(
                "SELECT * FROM transfers WHERE id = ?", (previous["transfer_id"],)
            ).fetchone()
            return replay, True

        source = self._owned_account(conn, customer, req.from_account)
        if req.to_account == req.from_account:
            raise Problem(422, "same_account", "Source and destination accounts are the same.")
        target = conn.execute(
            "SELECT id, currency, balance_minor FROM accounts WHERE id = ?", (req.to_account,)
        ).fetchone()
        if target is None:
            raise Problem(422, "unknown_account", "The destination account does not exist.")
        if req.currency not in CURRENCIES or not (
            source["currency"] == target["currency"] == req.currency
        ):
            raise Problem(
                422, "currency_mismatch", "Both accounts must hold the transfer's currency."
            )
        if source["balance_minor"] < req.amount_minor:
            raise Problem(422, "insufficient_funds", "The source account has insufficient funds.")

        transfer_id = "trf_" + secrets.token_hex(8)
        created_at = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conn.execute(
            "INSERT INTO transfers (id, customer_id, from_account, to_account, amount_minor,"
            " currency, reference, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                transfer_id,
                customer,
                req.from_account,
                req.to_account,
                req.amount_minor,
                req.currency,
                req.reference,
                "completed",
                created_at,
            ),
        )
        legs = (
            (source, -req.amount_minor, req.reference or f"Transfer to {req.to_account}"),
            (target, req.amount_minor, req.reference or f"Transfer from {req.from_account}"),
        )
        for account, delta, description in legs:
            balance_after = account["balance_minor"] + delta
            conn.execute(
                "UPDATE accounts SET balance_minor = ? WHERE id = ?", (balance_after, account["id"])
            )
            conn.execute(
                "INSERT INTO transactions (id, account_id, amount_minor, balance_after_minor,"
                " description, transfer_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    "txn_" + secrets.token_hex(8),
                    account["id"],
                    delta,
                    balance_after,
                    description,
                    transfer_id,
                    created_at,
                ),
            )
        conn.execute(
            "INSERT INTO idempotency_keys (customer_id, key, fingerprint, transfer_id)"
            " VALUES (?, ?, ?, ?)",
            (customer, key, fingerprint, transfer_id),
        )
        row = conn.execute("SELECT * FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
        return row, False


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
    return problem_response(request, exc.status, exc.code, exc.detail, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    detail = {
        "not_found": "No such resource.",
        "method_not_allowed": "Method not allowed for this resource.",
    }.get(code, HTTPStatus(exc.status_code).phrase + ".")
    return problem_response(request, exc.status_code, code, detail, dict(exc.headers or {}))


async def _on_crash(request: Request, exc: Exception) -> Response:
    return problem_response(request, 500, "internal_error", "Internal error.")


def create_app(db_path: str | Path, *, now: Callable[[], datetime] = _utc_now) -> Starlette:
    """Build the banking API on the SQLite file at `db_path`, creating its tables if needed.

    Args:
        db_path: The SQLite database file (created if missing). Use `seed()` for demo data.
        now: Clock for `created_at` timestamps; must return an aware datetime.

    Returns:
        The ASGI application serving `/healthz`, `/v1/...` and `/v2/...` (see openapi.yaml).
    """
    init_schema(db_path)
    bank = _Bank(db_path, now)
    return Starlette(
        routes=bank.routes(),
        exception_handlers={
            Problem: _on_problem,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
    )
