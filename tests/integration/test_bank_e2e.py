"""The banking reference deployment end to end: the shipped config, the bank, the seed's threats.

Registers the demo's OAuth clients and customer logins (`bastion.cli.demo_oauth.provision`),
starts the bank (`python -m examples.bank`, told which gateway identities are which customers)
and the gateway (`python -m bastion run -c examples/bank/bastion.yaml`, its own OAuth server) as
real processes, obtains tokens through the real flows over HTTPS (client credentials for the
partner app, authorization code + PKCE through the login page for customers), and walks each
attack the deployment must stop, plus the happy paths it must keep working. It runs twice: one
gateway on SQLite and in-memory counters, and a two-node cluster sharing the real PostgreSQL
(clients, logins, codes, signing keys) and Redis (requests alternate between the nodes).

Two tokens are made by the test itself: a forged one (signed by a key Bastion never published)
and an expired one, signed with the gateway's real key read from its store
(`gateway_signed_token`), because a real token takes at least a minute to expire.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from bastion.cli.demo import demo_tokens, write_credentials
from bastion.cli.demo_attacks import attacks, gateway_signed_token, identities, report, run_attacks
from bastion.cli.demo_oauth import (
    CUSTOMER_SCOPE,
    PARTNER_SCOPE,
    DemoOAuth,
    FlowError,
    authorization_code,
    client_credentials,
    provision_demo,
    refresh,
)
from bastion.config.loader import load_config
from bastion.config.models import GatewayConfig
from bastion.proxy.tls import client_context
from tests.integration.harness import free_ports
from tests.policies.jwt.tokens import claims, ec_key, sign, unsigned

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "bank" / "bastion.yaml"
ISSUER = "https://bank.example.test"
ADMIN_TOKEN = "e2e-admin-token-0123456789"
ALICE, BOB = "cus_alice0001", "cus_bob00001"
ALICE_EUR, BOB_EUR = "acc_alice0001", "acc_bob00001"


@dataclass
class Deployment:
    """The running bank behind one gateway or a cluster of two."""

    https: str
    http: str
    admin: str
    trust: Any
    access_log: Path
    config: GatewayConfig
    demo: DemoOAuth
    nodes: tuple[str, ...] = ()
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, who: str = ALICE, scope: str = CUSTOMER_SCOPE, node: int = 0) -> str:
        """A customer's access token by the code flow through node `node` (cached per scope)."""
        key = (who, scope)
        if node or key not in self.tokens:
            base = (self.nodes or (self.https,))[node]
            login = self.demo.login(who)
            tokens = authorization_code(
                base, self.demo.customer_app, login, scope, verify=self.trust
            )
            if node:
                return tokens.access_token
            self.tokens[key] = tokens.access_token
        return self.tokens[key]

    def partner_token(self) -> str:
        """The partner app's token by the client-credentials grant."""
        return client_credentials(
            self.https, self.demo.partner, PARTNER_SCOPE, verify=self.trust
        ).access_token

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.trust, timeout=10)

    def node_clients(self) -> list[httpx.Client]:
        """One client per gateway node (one in single mode)."""
        bases = self.nodes or (self.https,)
        return [httpx.Client(base_url=base, verify=self.trust, timeout=10) for base in bases]


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 30, **kw: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, **kw).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def _cluster_backends(mode: str) -> Iterator[dict[str, str]]:
    """Environment for the shared store and counters: none for one node, PG + Redis for two."""
    if mode == "single":
        yield {}
        return
    from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
    from tests.store.support import postgres_schema

    require_redis()
    prefix = unique_prefix()
    with postgres_schema() as store_url:
        try:
            yield {
                "BASTION_STORE": store_url,
                "BASTION_COUNTERS": f"redis://127.0.0.1:6379/0?prefix={prefix}",
            }
        finally:
            delete_prefix(prefix)


@pytest.fixture(scope="module", params=["single", "cluster"])
def bank(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    mode: str = request.param
    state = tmp_path_factory.mktemp(f"bank-{mode}")
    nodes = 2 if mode == "cluster" else 1
    bank_port, *ports = free_ports(1 + 3 * nodes)
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    with _cluster_backends(mode) as backends:
        shared = {
            **os.environ,
            **backends,
            "BANK_UPSTREAM": f"http://127.0.0.1:{bank_port}",
            "BANK_OAUTH_ISSUER": ISSUER,
            "BASTION_STATE_DIR": str(state),
            "BASTION_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        shared.setdefault("BASTION_STORE", f"sqlite:///{state / 'bastion.db'}")
        config = load_config(CONFIG, env=shared)
        # What `bastion demo` does before it starts: clients and logins in the (shared) store,
        # then the bank learns which gateway identities are which of its customers.
        demo = provision_demo(config, state)
        links = [arg for pair in demo.links() for arg in ("--link", "=".join(pair))]
        upstream = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.bank",
                "--port",
                str(bank_port),
                "--db",
                str(state / "b.db"),
                *links,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(upstream)
        try:
            _wait(f"http://127.0.0.1:{bank_port}/healthz", upstream)
            for node in range(nodes):
                https_port, http_port, admin_port = ports[3 * node : 3 * node + 3]
                env = {
                    **shared,
                    "BANK_HTTPS_BIND": f"127.0.0.1:{https_port}",
                    "BANK_HTTP_BIND": f"127.0.0.1:{http_port}",
                    "BANK_ADMIN_BIND": f"127.0.0.1:{admin_port}",
                    "BASTION_ACCESS_LOG": str(state / f"access-{node}.log"),
                }
                log = (state / f"gateway-{node}.log").open("wb")
                logs.append(log)
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "bastion", "run", "-c", str(CONFIG)],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
                processes.append(gateway)
                _wait(f"http://127.0.0.1:{admin_port}/ready", gateway)
            first_https, first_http, first_admin = ports[0:3]
            yield Deployment(
                https=f"https://127.0.0.1:{first_https}",
                http=f"http://127.0.0.1:{first_http}",
                admin=f"http://127.0.0.1:{first_admin}",
                trust=client_context(ca_file=state / "dev-cert.pem"),
                access_log=state / "access-0.log",
                config=config,
                demo=demo,
                nodes=tuple(f"https://127.0.0.1:{ports[3 * n]}" for n in range(nodes)),
            )
        finally:
            for process in reversed(processes):
                _stop(process)
            for log in logs:
                log.close()


def forged(**overrides: Any) -> str:
    """A token for Alice signed by a key Bastion never published."""
    payload = claims(time.time(), iss=ISSUER, aud="bank", sub=ALICE, scope=CUSTOMER_SCOPE)
    payload.update(overrides)
    return sign(payload, ec_key("attacker"), alg="ES256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def transfer(client: httpx.Client, tok: str, amount: str = "1.00", **body: Any) -> httpx.Response:
    document = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": amount}
    document.update({"currency": "EUR", **body})
    headers = {**bearer(tok), "Idempotency-Key": uuid.uuid4().hex}
    return client.post("/v1/transfers", json=document, headers=headers)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert "traceback" not in response.text.lower()
    return body


# -- the happy paths the protection must not break -----------------------------------------------


def test_customer_reads_own_accounts_over_https_with_hardening_headers(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=bearer(bank.token()))
    assert response.status_code == 200, response.text
    assert {account["id"] for account in response.json()["data"]} >= {ALICE_EUR}
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "ratelimit" in response.headers


def test_deprecated_v1_answers_with_deprecation_and_sunset_headers(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v1/accounts", headers=bearer(bank.token()))
    assert response.status_code == 200
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"].endswith("GMT")
    assert 'rel="successor-version"' in response.headers["link"]


def test_customer_moves_money_once_per_idempotency_key(bank: Deployment) -> None:
    with bank.client() as client:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": "2.50"}
        body["currency"] = "EUR"
        first = client.post("/v1/transfers", json=body, headers={**bearer(bank.token()), **key})
        again = client.post("/v1/transfers", json=body, headers={**bearer(bank.token()), **key})
    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]


# -- the threats -----------------------------------------------------------------------------------


def test_plaintext_http_is_redirected_to_https(bank: Deployment) -> None:
    response = httpx.get(f"{bank.http}/v1/accounts")
    assert response.status_code == 308
    assert response.headers["location"].startswith("https://")


def _bad_token(bank: Deployment, kind: str) -> dict[str, str]:
    now = time.time()
    alice = bank.demo.login(ALICE).consumer_id
    if kind == "no_token":
        return {}
    if kind == "garbage":
        return bearer("not-a-token")
    if kind == "alg_none":
        return bearer(unsigned(claims(now, iss=ISSUER, aud="bank", sub=alice)))
    if kind == "forged_signature":
        return bearer(forged(sub=alice))
    if kind == "expired":
        # Signed with the gateway's real key (from its store): only the expiry is wrong.
        payload = claims(now, iss=ISSUER, aud="bank", sub=alice, scope=CUSTOMER_SCOPE)
        payload.update(iat=int(now) - 1000, exp=int(now) - 120, jti=uuid.uuid4().hex)
        return bearer(gateway_signed_token(bank.config, payload))
    # A real token from this gateway's OAuth server, issued to a client of another API.
    crm = client_credentials(bank.https, bank.demo.crm, PARTNER_SCOPE, verify=bank.trust)
    return bearer(crm.access_token)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("no_token", "missing_token"),
        ("garbage", "invalid_token"),
        ("alg_none", "invalid_token"),
        ("forged_signature", "invalid_token"),
        ("expired", "invalid_token"),
        ("stolen_for_other_aud", "invalid_token"),
    ],
)
def test_missing_forged_expired_or_stolen_tokens_get_401(
    bank: Deployment, kind: str, code: str
) -> None:
    headers = _bad_token(bank, kind)
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=headers)
    assert _problem(response, 401)["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_token_is_signed_by_a_key_the_gateway_publishes(bank: Deployment) -> None:
    # Guards the test above: the same kind of token, unexpired, is accepted, so "expired" is
    # refused for its expiry and not for its signature or claims.
    alice = bank.demo.login(ALICE).consumer_id
    payload = claims(time.time(), iss=ISSUER, aud="bank", sub=alice, scope=CUSTOMER_SCOPE)
    token = gateway_signed_token(bank.config, payload)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    with bank.client() as client:
        published = client.get("/.well-known/jwks.json").json()["keys"]
        accepted = client.get("/v2/accounts", headers=bearer(token))
    assert header["kid"] in {key["kid"] for key in published}
    assert accepted.status_code == 200, accepted.text


# -- the OAuth flows ------------------------------------------------------------------------------


def test_customer_token_comes_from_the_login_and_names_the_consumer(bank: Deployment) -> None:
    login = bank.demo.login(BOB)
    tokens = authorization_code(
        bank.https, bank.demo.customer_app, login, CUSTOMER_SCOPE, verify=bank.trust
    )
    body = tokens.access_token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["sub"] == login.consumer_id  # the bank maps it to cus_bob00001
    assert payload["aud"] == "bank"
    assert payload["iss"] == ISSUER
    assert set(tokens.scope.split()) == {"accounts:read", "transfers:write"}
    assert tokens.refresh_token
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=bearer(tokens.access_token))
    assert response.status_code == 200, response.text
    assert {account["customer_id"] for account in response.json()["data"]} == {BOB}


def test_wrong_password_gets_no_code(bank: Deployment) -> None:
    login = bank.demo.login(ALICE)
    wrong = type(login)(login.username, "not-the-password", login.consumer_id, login.customer_id)
    with pytest.raises(FlowError, match="login: answered 200"):
        authorization_code(
            bank.https, bank.demo.customer_app, wrong, "accounts:read", verify=bank.trust
        )


def test_customer_app_cannot_ask_for_a_scope_it_was_not_given(bank: Deployment) -> None:
    login = bank.demo.login(ALICE)
    with pytest.raises(FlowError, match="invalid_scope"):
        authorization_code(bank.https, bank.demo.customer_app, login, "admin", verify=bank.trust)


def test_partner_app_reads_the_linked_customers_accounts_but_moves_no_money(
    bank: Deployment,
) -> None:
    partner = bank.partner_token()
    with bank.client() as client:
        accounts = client.get("/v2/accounts", headers=bearer(partner))
        moved = transfer(client, partner, from_account=BOB_EUR, to_account=ALICE_EUR)
    assert accounts.status_code == 200, accounts.text
    assert {account["customer_id"] for account in accounts.json()["data"]} == {BOB}
    assert _problem(moved, 403)["code"] == "insufficient_scope"


def test_demo_tokens_and_credentials_file_work_as_written(bank: Deployment, tmp_path: Path) -> None:
    # What `bastion demo` does once the gateway answers: tokens through the flows, then a
    # credentials file whose tokens each reach the accounts of the right customer.
    tokens = demo_tokens(bank.demo, bank.https, verify=bank.trust)
    path = write_credentials(tmp_path, ADMIN_TOKEN, bank.demo, tokens)
    assert path.stat().st_mode & 0o777 == 0o600
    expected = {ALICE: ALICE, BOB: BOB, "partner": BOB}  # the partner is linked to Bob
    with bank.client() as client:
        for owner, token in tokens.items():
            assert f"TOKEN_{owner.upper()}=" in path.read_text()
            response = client.get("/v2/accounts", headers=bearer(token))
            assert response.status_code == 200, (owner, response.text)
            customers = {account["customer_id"] for account in response.json()["data"]}
            assert customers == {expected[owner]}


def test_public_customer_app_cannot_use_client_credentials(bank: Deployment) -> None:
    # A public client has no secret: anyone could present its id, so no token without a login.
    with bank.client() as client:
        response = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": bank.demo.customer_app.id},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unauthorized_client"


def test_refresh_token_rotates_and_a_reused_one_is_refused(bank: Deployment) -> None:
    # In the cluster the refresh happens on the other node: codes, refresh tokens and signing
    # keys live in PostgreSQL, not in one process.
    login = bank.demo.login(ALICE)
    app = bank.demo.customer_app
    first = authorization_code(bank.https, app, login, "accounts:read", verify=bank.trust)
    assert first.refresh_token is not None
    other = (bank.nodes or (bank.https,))[-1]
    second = refresh(other, app, first.refresh_token, verify=bank.trust)
    assert second.refresh_token not in (None, first.refresh_token)
    with pytest.raises(FlowError, match="refresh_token"):
        refresh(bank.https, app, first.refresh_token, verify=bank.trust)
    assert second.refresh_token is not None
    with pytest.raises(FlowError):  # reuse revoked the whole family
        refresh(bank.https, app, second.refresh_token, verify=bank.trust)


def test_code_from_one_node_is_redeemed_at_another(bank: Deployment) -> None:
    # The login happens on the first node, the code is redeemed at the last one (the same node
    # in single mode): codes live in the shared store.
    last = (bank.nodes or (bank.https,))[-1]
    login = bank.demo.login(ALICE)
    tokens = authorization_code(
        bank.https,
        bank.demo.customer_app,
        login,
        "accounts:read",
        verify=bank.trust,
        redeem_at=last,
    )
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=bearer(tokens.access_token))
    assert response.status_code == 200, response.text


def test_token_from_one_node_is_accepted_by_every_node(bank: Deployment) -> None:
    # Each node signs with, and verifies against, the signing keys kept in the shared store:
    # a token a node has never seen the key of makes it reload them.
    clients = bank.node_clients()
    try:
        for node in range(len(clients)):
            token = bank.token(ALICE, node=node) if node else bank.token(ALICE)
            for client in clients:
                response = client.get("/v2/accounts", headers=bearer(token))
                assert response.status_code == 200, (node, response.text)
    finally:
        for client in clients:
            client.close()


def test_token_without_the_scope_cannot_move_money(bank: Deployment) -> None:
    with bank.client() as client:
        response = transfer(client, bank.token(scope="accounts:read"))
    assert _problem(response, 403)["code"] == "insufficient_scope"


def test_another_customers_account_is_refused_by_the_ownership_check(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get(f"/v2/accounts/{BOB_EUR}", headers=bearer(bank.token(ALICE)))
        spoofed = client.get(
            f"/v2/accounts/{BOB_EUR}",
            headers={**bearer(bank.token(ALICE)), "X-Bastion-Consumer": BOB},
        )
    assert response.status_code == 403  # the bank's check, on the identity Bastion forwarded
    assert spoofed.status_code == 403  # a client-sent identity header never reaches the bank


@pytest.mark.parametrize(
    "path",
    ["/v2/accounts/acc_alice0001'%20OR%20'1'='1", "/v2/accounts/acc_alice0001%3Bdrop%20table"],
    ids=["sql_injection", "stacked_query"],
)
def test_injection_in_the_path_is_refused(bank: Deployment, path: str) -> None:
    with bank.client() as client:
        response = client.get(path, headers=bearer(bank.token()))
    _problem(response, 400)


@pytest.mark.parametrize(
    ("amount", "extra"),
    [("12.345", {}), ("-5", {}), ("1e3", {}), ("10", {"is_admin": True})],
    ids=["three_decimals", "negative", "exponent", "mass_assignment"],
)
def test_malformed_amounts_and_unknown_fields_are_refused(
    bank: Deployment, amount: str, extra: dict[str, Any]
) -> None:
    with bank.client() as client:
        response = transfer(client, bank.token(BOB), amount, **extra)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert f'"{amount}"' not in response.text  # the client's value is never echoed


def test_transfer_flood_from_one_customer_gets_429(bank: Deployment) -> None:
    # In the cluster the requests alternate between the two nodes: the per-customer limit of 10
    # a minute is shared through Redis, not 10 per node.
    statuses = []
    clients = bank.node_clients()
    try:
        tok = bank.token(BOB, scope="transfers:write")
        for attempt in range(24):
            client = clients[attempt % len(clients)]
            response = transfer(client, tok, "0.01", from_account=BOB_EUR, to_account=ALICE_EUR)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) > 0
                break
    finally:
        for client in clients:
            client.close()
    assert statuses[-1] == 429, statuses
    assert len(statuses) <= 11  # the per-customer limit is 10 per minute, across all nodes


def test_retired_version_gets_410(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v0/accounts", headers=bearer(bank.token()))
    assert _problem(response, 410)["code"] == "api_version_sunset"


def test_access_log_holds_no_token(bank: Deployment) -> None:
    secret = bank.token()
    with bank.client() as client:
        request_id = client.get("/v2/accounts", headers=bearer(secret)).headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and request_id not in bank.access_log.read_text():
        time.sleep(0.2)  # the sink flushes twice a second
    text = bank.access_log.read_text()
    assert request_id in text
    assert secret not in text
    assert secret.rsplit(".", 1)[1] not in text  # not even the signature


def test_every_attack_of_bastion_demo_attacks_is_blocked(bank: Deployment) -> None:
    # `bastion demo attacks` (fixed demo ports) run against this deployment, except the
    # brute-force lockout, which the next test covers.
    ids = identities(bank.config, bank.demo, bank.trust, gateway=bank.https)
    chosen = [attack for attack in attacks(ids, plain=bank.http) if attack.name != "brute-force"]
    outcomes = run_attacks(bank.trust, chosen, gateway=bank.https)
    buffer = io.StringIO()
    report(Console(file=buffer, width=200), outcomes)
    text = buffer.getvalue()
    assert len(outcomes) == 14
    assert [o.attack.name for o in outcomes if not o.blocked] == [], text
    assert "NOT BLOCKED" not in text


# Last in the module: it locks the test client's address out for the rest of the lockout.
def test_guessing_tokens_from_one_address_gets_locked_out(bank: Deployment) -> None:
    statuses = []
    with bank.client() as client:
        for _ in range(30):
            forged = sign(
                claims(time.time(), iss=ISSUER, aud="bank", sub=ALICE), ec_key("guess"), alg="ES256"
            )
            response = client.get("/v2/accounts", headers=bearer(forged))
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        # Once locked, even a valid token from this address waits out the lockout.
        locked = client.get("/v2/accounts", headers=bearer(bank.token()))
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    assert locked.status_code == 429
    assert _problem(locked, 429)["code"] == "too_many_failures"
    assert int(locked.headers["retry-after"]) > 0
