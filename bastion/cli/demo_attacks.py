"""`bastion demo attacks`: replay the seed's threats against the running demo and show each blocked.

Then scan the bank directly and through the gateway with `bastion scan`, and compare.
"""

from __future__ import annotations

import asyncio
import json
import secrets
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

from bastion.cli.demo import BANK_PORT, DEMO_ISSUER
from bastion.proxy.tls import client_context
from bastion.scanner.findings import Finding

GATEWAY = "https://127.0.0.1:8443"
PLAIN = "http://127.0.0.1:8080"
BANK = f"http://127.0.0.1:{BANK_PORT}"
ALICE, BOB = "cus_alice0001", "cus_bob00001"


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


class DemoIdentities:
    """Tokens signed by the demo identity provider's key (kept in the state folder)."""

    def __init__(self, state_dir: Path) -> None:
        raw = json.loads((state_dir / "demo-idp-key.json").read_text())
        self._key = ECKey.import_key(raw)

    def token(
        self, customer: str, *, scope: str = "accounts:read transfers:write", **claims: object
    ) -> str:
        """A token for `customer`; `claims` override the defaults (exp, aud...)."""
        now = int(time.time())
        payload: dict[str, object] = {
            "iss": DEMO_ISSUER,
            "aud": "bank",
            "sub": customer,
            "scope": scope,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_hex(8),
        }
        payload.update(claims)
        header = {"alg": "ES256", "kid": self._key.kid or "demo-idp-1", "typ": "at+jwt"}
        return jwt.encode(header, payload, self._key, algorithms=["ES256"])


def _forged(customer: str) -> str:
    """A well-formed token signed by a key the gateway has never seen."""
    key = ECKey.generate_key("P-256", parameters={"kid": "demo-idp-1"})
    now = int(time.time())
    payload = {"iss": DEMO_ISSUER, "aud": "bank", "sub": customer, "exp": now + 600, "iat": now}
    payload["scope"] = "accounts:read transfers:write"
    return jwt.encode({"alg": "ES256", "kid": "demo-idp-1"}, payload, key, algorithms=["ES256"])


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


def _guessing(customer: str) -> Callable[[httpx.Client], httpx.Response]:
    def send(client: httpx.Client) -> httpx.Response:
        response = client.get("/v2/accounts", headers=_bearer(_forged(customer)))
        for _ in range(30):  # 20 failed authentications from one address lock it out
            if response.status_code == 429:
                break
            response = client.get("/v2/accounts", headers=_bearer(_forged(customer)))
        return response

    return send


def attacks(ids: DemoIdentities) -> list[Attack]:
    """The seed's threats against the bank, each with the answers that mean it was stopped."""
    alice = ids.token(ALICE)
    get = httpx.Client.get
    return [
        Attack(
            "plaintext",
            "credentials over plain HTTP",
            lambda c: httpx.get(f"{PLAIN}/v2/accounts", headers=_bearer(alice)),
            frozenset({308}),
        ),
        Attack("no-token", "anonymous access", lambda c: get(c, "/v2/accounts"), frozenset({401})),
        Attack(
            "forged-token",
            "token signed by an attacker's key",
            lambda c: get(c, "/v2/accounts", headers=_bearer(_forged(ALICE))),
            frozenset({401}),
        ),
        Attack(
            "expired-token",
            "replayed expired token",
            lambda c: get(
                c, "/v2/accounts", headers=_bearer(ids.token(ALICE, exp=int(time.time()) - 60))
            ),
            frozenset({401}),
        ),
        Attack(
            "stolen-token",
            "token issued for another service",
            lambda c: get(c, "/v2/accounts", headers=_bearer(ids.token(ALICE, aud="crm"))),
            frozenset({401}),
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
            _flood(ids.token(BOB, scope="transfers:write")),
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
            _guessing(ALICE),
            frozenset({429}),
        ),
    ]


def run_attacks(trust: ssl.SSLContext, chosen: list[Attack]) -> list[Outcome]:
    """Send the `chosen` attacks to the running demo gateway."""
    outcomes = []
    with httpx.Client(base_url=GATEWAY, verify=trust, timeout=10) as client:
        for attack in chosen:
            response = attack.send(client)
            code = ""
            if response.headers.get("content-type") == "application/problem+json":
                code = str(response.json().get("code", ""))
            outcomes.append(Outcome(attack, response.status_code, code))
    return outcomes


def scan_comparison(ids: DemoIdentities, ca_file: Path, spec: Path) -> tuple[list[str], list[str]]:
    """Finding ids of `bastion scan` on the bank directly and through the gateway."""
    from bastion.scanner.runner import ScanOptions, run_scan

    direct = ScanOptions(
        target=BANK,
        openapi=str(spec),
        auth=f"X-Bastion-Consumer: {ALICE}",
        auth2=f"X-Bastion-Consumer: {BOB}",
    )
    gateway = ScanOptions(
        target=GATEWAY,
        openapi=str(spec),
        auth=f"Bearer {ids.token(ALICE)}",
        auth2=f"Bearer {ids.token(BOB)}",
        verify=str(ca_file),
        http_port=8080,
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


def main(state_dir: Path, repo: Path, *, scan: bool = True) -> int:
    """Run the attacks (and the scans); 0 when every attack was blocked and the gateway is clean."""
    console = Console(stderr=False)
    ids = DemoIdentities(state_dir)
    ca_file = state_dir / "dev-cert.pem"
    trust = client_context(ca_file=ca_file)
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
