"""`bastion demo attacks`: replay the seed's threats against the running demo and show each blocked.

Then scan the bank directly and through the gateway with `bastion scan`, and compare.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey
from rich.console import Console
from rich.table import Table

from bastion.cli.demo import (
    ALICE,
    BANK_PORT,
    BOB,
    CREDENTIALS_FILE,
    GATEWAY,
    demo_config,
)
from bastion.cli.demo_oauth import (
    BANK_AUDIENCE,
    CUSTOMER_SCOPE,
    PARTNER_SCOPE,
    DemoOAuth,
    FlowError,
    authorization_code,
    client_credentials,
    provision_demo,
)
from bastion.config.models import GatewayConfig
from bastion.oauth.keys import load_key
from bastion.proxy.tls import client_context
from bastion.scanner.findings import Finding
from bastion.store import open_store
from bastion.store.base import SigningKeyRecord
from bastion.store.sql import SQLStore

PLAIN = "http://127.0.0.1:8080"
BANK = f"http://127.0.0.1:{BANK_PORT}"


@dataclass(frozen=True, slots=True)
class Attack:
    """One threat, the request that carries it, and the answers that mean it was stopped."""

    name: str
    threat: str
    send: Callable[[httpx.Client], httpx.Response]
    blocked_by: frozenset[int]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the gateway answered to one attack."""

    attack: Attack
    status: int
    code: str

    @property
    def blocked(self) -> bool:
        """Whether the answer is one that stops the attack."""
        return self.status in self.attack.blocked_by


@dataclass(frozen=True, slots=True)
class Identities:
    """The tokens the attacks use, each obtained the way its story says."""

    issuer: str
    alice_sub: str
    alice: str
    bob: str
    bob_transfers_only: str
    partner: str
    crm: str
    expired: str


def gateway_signed_token(config: GatewayConfig, claims: dict[str, object]) -> str:
    """A JWT signed with the gateway's current signing key, read from its store.

    Only someone who can read the store (and the pepper, when one is set) can do this: the
    operator. The demo uses it for one thing, a correctly signed token whose `exp` has passed,
    because waiting out a real token's lifetime (at least 60 s) would stall the demo.

    Raises:
        RuntimeError: the store holds no usable key yet (the gateway has issued no token).
    """
    oauth = config.oauth
    if oauth is None:
        raise RuntimeError("the config has no oauth block")

    async def records() -> list[SigningKeyRecord]:
        store = open_store(config.store)
        try:
            if not isinstance(store, SQLStore):  # pragma: no cover - every shipped store is SQL
                raise RuntimeError("the store holds no signing keys")
            return list(await store.list_signing_keys(time.time()))
        finally:
            await store.close()

    pepper = config.pepper.get_secret_value().encode() if config.pepper is not None else None
    for record in asyncio.run(records()):
        key = load_key(record, pepper)
        if key is not None and key.alg == oauth.signing_alg and key.retire_at > time.time():
            header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
            return jwt.encode(header, claims, key.key, algorithms=[key.alg])
    raise RuntimeError("no signing key in the store yet")


def identities(
    config: GatewayConfig, demo: DemoOAuth, trust: ssl.SSLContext, *, gateway: str = GATEWAY
) -> Identities:
    """Tokens through the real flows over HTTPS at `gateway`, plus one expired token.

    The expired one is signed with the gateway's real key (`gateway_signed_token`).

    Raises:
        FlowError: a flow was refused.
        httpx.HTTPError: the gateway could not be reached.
    """
    if config.oauth is None:
        raise RuntimeError("the config has no oauth block")
    alice, bob = demo.login(ALICE), demo.login(BOB)
    now = int(time.time())
    expired = {
        "iss": config.oauth.issuer,
        "aud": BANK_AUDIENCE,
        "sub": alice.consumer_id,
        "client_id": demo.customer_app.id,
        "scope": CUSTOMER_SCOPE,
        "iat": now - 1020,
        "exp": now - 120,  # past the policy's 30 s leeway
        "jti": secrets.token_hex(16),
    }
    app = demo.customer_app
    return Identities(
        issuer=config.oauth.issuer,
        alice_sub=alice.consumer_id,
        alice=authorization_code(gateway, app, alice, CUSTOMER_SCOPE, verify=trust).access_token,
        bob=authorization_code(gateway, app, bob, CUSTOMER_SCOPE, verify=trust).access_token,
        bob_transfers_only=authorization_code(
            gateway, app, bob, "transfers:write", verify=trust
        ).access_token,
        partner=client_credentials(gateway, demo.partner, PARTNER_SCOPE, verify=trust).access_token,
        crm=client_credentials(gateway, demo.crm, PARTNER_SCOPE, verify=trust).access_token,
        expired=gateway_signed_token(config, expired),
    )


def _forged(issuer: str, subject: str) -> str:
    """A well-formed token signed by a key the gateway has never seen (nor published)."""
    key = ECKey.generate_key("P-256", parameters={"kid": "attacker-1"})
    now = int(time.time())
    payload = {"iss": issuer, "aud": BANK_AUDIENCE, "sub": subject, "exp": now + 600, "iat": now}
    payload["scope"] = CUSTOMER_SCOPE
    header = {"alg": "ES256", "kid": "attacker-1", "typ": "at+jwt"}
    return jwt.encode(header, payload, key, algorithms=["ES256"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _transfer(
    token: str, amount: str, source: str = "acc_bob00001", **extra: object
) -> Callable[[httpx.Client], httpx.Response]:
    target = "acc_alice0001" if source == "acc_bob00001" else "acc_bob00001"
    body: dict[str, object] = {"from_account": source, "to_account": target}
    body.update({"amount": amount, "currency": "EUR", **extra})

    def send(client: httpx.Client) -> httpx.Response:
        headers = {**_bearer(token), "Idempotency-Key": uuid.uuid4().hex}
        return client.post("/v1/transfers", json=body, headers=headers)

    return send


def _flood(token: str) -> Callable[[httpx.Client], httpx.Response]:
    def send(client: httpx.Client) -> httpx.Response:
        response = _transfer(token, "0.01")(client)
        for _ in range(30):  # the per-customer limit is 10 a minute
            if response.status_code == 429:
                break
            response = _transfer(token, "0.01")(client)
        return response

    return send


def _guessing(issuer: str, subject: str) -> Callable[[httpx.Client], httpx.Response]:
    def send(client: httpx.Client) -> httpx.Response:
        response = client.get("/v2/accounts", headers=_bearer(_forged(issuer, subject)))
        for _ in range(30):  # 20 failed authentications from one address lock it out
            if response.status_code == 429:
                break
            response = client.get("/v2/accounts", headers=_bearer(_forged(issuer, subject)))
        return response

    return send


def attacks(ids: Identities, *, plain: str = PLAIN) -> list[Attack]:
    """The seed's threats against the bank, each with the answers that mean it was stopped.

    `plain` is the gateway's plain-HTTP listener (the one that only redirects).
    """
    alice = ids.alice
    get = httpx.Client.get
    return [
        Attack(
            "plaintext",
            "credentials over plain HTTP",
            lambda c: httpx.get(f"{plain}/v2/accounts", headers=_bearer(alice)),
            frozenset({308}),
        ),
        Attack("no-token", "anonymous access", lambda c: get(c, "/v2/accounts"), frozenset({401})),
        Attack(
            "forged-token",
            "token signed by an attacker's key",
            lambda c: get(c, "/v2/accounts", headers=_bearer(_forged(ids.issuer, ids.alice_sub))),
            frozenset({401}),
        ),
        Attack(
            "expired-token",
            "replayed token, correctly signed, expired 2 minutes ago",
            lambda c: get(c, "/v2/accounts", headers=_bearer(ids.expired)),
            frozenset({401}),
        ),
        Attack(
            "stolen-token",
            "token Bastion issued for another API (aud crm)",
            lambda c: get(c, "/v2/accounts", headers=_bearer(ids.crm)),
            frozenset({401}),
        ),
        Attack(
            "partner-transfer",
            "partner app (accounts:read) tries to move money",
            _transfer(ids.partner, "1.00"),
            frozenset({403}),
        ),
        Attack(
            "bola",
            "Alice reads Bob's account (BOLA)",
            lambda c: get(c, "/v2/accounts/acc_bob00001", headers=_bearer(alice)),
            frozenset({403}),
        ),
        Attack(
            "identity-spoof",
            "Alice claims to be Bob with a forwarded header",
            lambda c: get(
                c,
                "/v2/accounts/acc_bob00001",
                headers={**_bearer(alice), "X-Bastion-Consumer": BOB},
            ),
            frozenset({403}),
        ),
        Attack(
            "sql-injection",
            "SQL injection in an account id",
            lambda c: get(c, "/v2/accounts/acc_alice0001'%20OR%20'1'='1", headers=_bearer(alice)),
            frozenset({400}),
        ),
        Attack(
            "bad-amount",
            "malformed amount (three decimals)",
            _transfer(alice, "12.345", "acc_alice0001"),
            frozenset({400, 422}),
        ),
        Attack(
            "mass-assignment",
            "extra privileged field in a transfer",
            _transfer(alice, "1.00", "acc_alice0001", is_admin=True),
            frozenset({400, 422}),
        ),
        Attack(
            "path-traversal",
            "encoded slashes and dot segments",
            lambda c: get(c, "/v2/accounts/..%2f..%2fadmin", headers=_bearer(alice)),
            frozenset({400}),
        ),
        Attack(
            "flood",
            "transfer flood from one customer",
            _flood(ids.bob_transfers_only),
            frozenset({429}),
        ),
        Attack(
            "sunset",
            "call to the retired v0 API",
            lambda c: get(c, "/v0/accounts", headers=_bearer(alice)),
            frozenset({410}),
        ),
        Attack(
            "brute-force",
            "guessing tokens from one address (locks it out for a minute)",
            _guessing(ids.issuer, ids.alice_sub),
            frozenset({429}),
        ),
    ]


def run_attacks(
    trust: ssl.SSLContext, chosen: list[Attack], *, gateway: str = GATEWAY
) -> list[Outcome]:
    """Send the `chosen` attacks to the running demo gateway."""
    outcomes = []
    with httpx.Client(base_url=gateway, verify=trust, timeout=10) as client:
        for attack in chosen:
            response = attack.send(client)
            code = ""
            if response.headers.get("content-type") == "application/problem+json":
                code = str(response.json().get("code", ""))
            outcomes.append(Outcome(attack, response.status_code, code))
    return outcomes


DEMO_TIME_BUDGET = 5.0
"""Seconds each demo scan may spend on time-based probes (the default is 20)."""


def scan_comparison(ids: Identities, ca_file: Path, spec: Path) -> tuple[list[str], list[str]]:
    """Finding ids of `bastion scan` on the bank directly and through the gateway."""
    from bastion.scanner.runner import ScanOptions, run_scan

    # A short budget for the time-based probes keeps the demo quick (seconds, not a minute).
    direct = ScanOptions(
        target=BANK,
        openapi=str(spec),
        auth=f"X-Bastion-Consumer: {ALICE}",
        auth2=f"X-Bastion-Consumer: {BOB}",
        time_budget=DEMO_TIME_BUDGET,
    )
    gateway = ScanOptions(
        target=GATEWAY,
        openapi=str(spec),
        auth=f"Bearer {ids.alice}",
        auth2=f"Bearer {ids.bob}",
        verify=str(ca_file),
        http_port=8080,
        time_budget=DEMO_TIME_BUDGET,
    )
    alone, behind = (asyncio.run(run_scan(options)) for options in (direct, gateway))
    return _finding_ids(alone.findings), _finding_ids(behind.findings)


def _finding_ids(findings: list[Finding]) -> list[str]:
    return sorted(f"{finding.check.id} ({finding.level})" for finding in findings)


def report(console: Console, outcomes: list[Outcome]) -> None:
    """Print the attack table."""
    table = Table(title="Attacks against the banking demo (through Bastion)")
    for column in ("attack", "threat", "answer", "result"):
        table.add_column(column)
    for outcome in outcomes:
        answer = f"{outcome.status} {outcome.code}".strip()
        verdict = "[green]blocked[/green]" if outcome.blocked else "[red]NOT BLOCKED[/red]"
        table.add_row(outcome.attack.name, outcome.attack.threat, answer, verdict)
    console.print(table)


def report_scans(console: Console, direct: list[str], through: list[str]) -> None:
    """Print the scan comparison."""
    table = Table(title="bastion scan: the bank alone vs behind Bastion")
    table.add_column("target")
    table.add_column("findings")
    table.add_row(f"{BANK} (direct)", "\n".join(direct) or "none")
    table.add_row(f"{GATEWAY} (gateway)", "\n".join(through) or "none")
    console.print(table)


def _admin_token(state_dir: Path) -> str:
    """The admin token `bastion demo` wrote to its credentials file."""
    for line in (state_dir / CREDENTIALS_FILE).read_text().splitlines():
        name, eq, value = line.partition("=")
        if eq and name == "BASTION_ADMIN_TOKEN":
            return shlex.split(value)[0]
    raise RuntimeError(f"no admin token in {state_dir / CREDENTIALS_FILE}")


def main(state_dir: Path, repo: Path, *, scan: bool = True) -> int:
    """Run the attacks (and the scans); 0 when every attack was blocked and the gateway is clean."""
    console = Console(stderr=False)
    config = demo_config(state_dir, _admin_token(state_dir), repo)
    demo = provision_demo(config, state_dir)  # reads back what `bastion demo` registered
    ca_file = state_dir / "dev-cert.pem"
    trust = client_context(ca_file=ca_file)
    try:
        ids = identities(config, demo, trust)
    except (FlowError, httpx.HTTPError) as exc:
        # Typically the brute-force lockout of a previous run (one minute) or a stopped demo.
        console.print(f"[red]could not obtain the demo's tokens: {exc}[/red]")
        console.print("is `bastion demo` running? After a run, the lockout lasts a minute.")
        return 2
    all_attacks = attacks(ids)
    # Brute force goes last, after the scan: it locks this address out for a minute.
    outcomes = run_attacks(trust, all_attacks[:-1])
    ok = True
    if scan:
        direct, through = scan_comparison(ids, ca_file, repo / "examples" / "bank" / "openapi.yaml")
        report_scans(console, direct, through)
        ok = bool(direct) and not through
    outcomes += run_attacks(trust, all_attacks[-1:])
    report(console, outcomes)
    ok = ok and all(outcome.blocked for outcome in outcomes)
    console.print(
        "[green]all attacks blocked[/green]" if ok else "[red]something got through[/red]"
    )
    return 0 if ok else 1
