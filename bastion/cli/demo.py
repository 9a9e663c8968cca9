"""`bastion demo`: the banking example behind the gateway, on embedded defaults.

The gateway serves examples/bank/bastion.yaml with its own OAuth 2.0 server. Before it starts,
the demo registers the partner and customer-app clients and the customers' logins in the store
(`demo_oauth.provision`) and tells the bank which gateway identities are which customers. Once
the gateway answers, a background thread obtains tokens through the real flows (client
credentials; authorization code + PKCE through the login page) and writes them, with every id,
secret and a few curl commands, to `demo-credentials.txt` (mode 0600).
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import httpx

from bastion.cli.demo_oauth import (
    CUSTOMER_APP_REDIRECT,
    CUSTOMER_SCOPE,
    PARTNER_SCOPE,
    STATE_FILE,
    DemoOAuth,
    authorization_code,
    client_credentials,
    provision_demo,
    write_private,
)
from bastion.config.loader import load_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError

BANK_PORT = 9000
BANK_CONFIG = Path("examples") / "bank" / "bastion.yaml"
GATEWAY = "https://127.0.0.1:8443"
CREDENTIALS_FILE = "demo-credentials.txt"
ALICE, BOB = "cus_alice0001", "cus_bob00001"

_log = logging.getLogger("bastion.demo")


def demo_env(state_dir: Path, admin_token: str) -> dict[str, str]:
    """The environment examples/bank/bastion.yaml is read with by the demo."""
    return {
        **os.environ,
        "BASTION_ADMIN_TOKEN": admin_token,
        "BASTION_STATE_DIR": str(state_dir),
        "BASTION_STORE": f"sqlite:///{state_dir / 'bastion.db'}",
    }


def demo_config(state_dir: Path, admin_token: str, repo: Path) -> GatewayConfig:
    """examples/bank/bastion.yaml with the demo's secrets and state folder filled in.

    Raises:
        ConfigErrors: the file is missing (run from the repository root) or invalid.
    """
    return load_config(repo / BANK_CONFIG, env=demo_env(state_dir, admin_token))


def has_demo_state(state_dir: Path) -> bool:
    """Whether `bastion demo` has provisioned `state_dir` (what `demo attacks` needs)."""
    return (state_dir / STATE_FILE).exists() and (state_dir / CREDENTIALS_FILE).exists()


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - fixed loopback URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def start_bank(
    state_dir: Path, repo: Path, links: Sequence[tuple[str, str]] = ()
) -> subprocess.Popen[bytes]:
    """Start the banking example upstream on 127.0.0.1:9000.

    `links` are (gateway identity, customer id) pairs the bank enrols before serving: the
    consumer ids of the customers' logins and the partner's client id.

    Raises:
        RuntimeError: the example is not found or does not become healthy.
    """
    if not (repo / "examples" / "bank" / "app.py").exists():
        raise RuntimeError("examples/bank not found: run `bastion demo` from the repository root")
    argv = [sys.executable, "-m", "examples.bank", "--port", str(BANK_PORT)]
    argv += ["--db", str(state_dir / "bank.db")]
    for subject, customer in links:
        argv += ["--link", f"{subject}={customer}"]
    process = subprocess.Popen(argv, cwd=repo)  # noqa: S603 - fixed argument list, no shell
    if not _wait_http(f"http://127.0.0.1:{BANK_PORT}/healthz", 20):
        process.terminate()
        raise RuntimeError("the bank example did not start on 127.0.0.1:9000")
    return process


def demo_tokens(
    demo: DemoOAuth, base_url: str = GATEWAY, *, verify: ssl.SSLContext | bool = True
) -> dict[str, str]:
    """Fresh access tokens over HTTP: each customer's (code flow) and the partner's.

    Keys: the bank customer ids and `partner`.

    Raises:
        FlowError: a flow was refused.
        httpx.HTTPError: the gateway could not be reached.
    """
    tokens = {}
    for login in demo.logins:
        tokens[login.customer_id] = authorization_code(
            base_url, demo.customer_app, login, CUSTOMER_SCOPE, verify=verify
        ).access_token
    tokens["partner"] = client_credentials(
        base_url, demo.partner, PARTNER_SCOPE, verify=verify
    ).access_token
    return tokens


def write_credentials(
    state_dir: Path, admin_token: str, demo: DemoOAuth, tokens: dict[str, str]
) -> Path:
    """Write the demo's credentials, tokens and curl commands to a file only the user can read."""
    path = state_dir / CREDENTIALS_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert = shlex.quote(str(state_dir / "dev-cert.pem"))
    q = shlex.quote
    lines = [
        "# bastion demo: secrets of this demo only (mode 0600). Shell syntax: `. this-file`.",
        f"BASTION_ADMIN_TOKEN={q(admin_token)}",
        "# Partner app (confidential, client credentials, scope accounts:read, audience bank)",
        f"PARTNER_CLIENT_ID={q(demo.partner.id)}",
        f"PARTNER_CLIENT_SECRET={q(demo.partner.secret)}",
        "# Customer app (public, authorization code + PKCE S256, scopes accounts:read"
        " transfers:write)",
        f"APP_CLIENT_ID={q(demo.customer_app.id)}",
        f"APP_REDIRECT_URI={q(CUSTOMER_APP_REDIRECT)}",
        "# Another API's client (audience crm): its tokens are refused by the bank",
        f"CRM_CLIENT_ID={q(demo.crm.id)}",
        f"CRM_CLIENT_SECRET={q(demo.crm.secret)}",
        "# Customer logins for the login page (/oauth/authorize)",
    ]
    for login in demo.logins:
        name = login.username.upper()
        lines.append(f"{name}_USERNAME={q(login.username)}  # bank customer {login.customer_id}")
        lines.append(f"{name}_PASSWORD={q(login.password)}")
    lines.append("# Access tokens obtained at start-up through the flows above (15 minutes)")
    for owner, value in tokens.items():
        lines.append(f"TOKEN_{owner.upper()}={q(value)}")
    lines += [
        "",
        "# Try (after `. this-file`):",
        f'#   curl --cacert {cert} -u "$PARTNER_CLIENT_ID:$PARTNER_CLIENT_SECRET" \\',
        f"#     -d grant_type=client_credentials -d scope=accounts:read {GATEWAY}/oauth/token",
        f'#   curl --cacert {cert} -H "Authorization: Bearer $TOKEN_CUS_ALICE0001"'
        f" {GATEWAY}/v2/accounts",
        f'#   curl --cacert {cert} -H "Authorization: Bearer $TOKEN_PARTNER" {GATEWAY}/v2/accounts',
        "#   the authorization-code walk with curl: docs/tutorial.md",
    ]
    write_private(path, "\n".join(lines) + "\n")
    return path


def new_admin_token() -> str:
    """A fresh 256-bit admin token."""
    return secrets.token_urlsafe(32)


def _publish_credentials(state_dir: Path, admin_token: str, demo: DemoOAuth) -> None:
    """Wait for the gateway, obtain tokens through the flows, write the credentials file."""
    from bastion.proxy.tls import client_context

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            trust = client_context(ca_file=state_dir / "dev-cert.pem")
            tokens = demo_tokens(demo, verify=trust)
        except (OSError, httpx.HTTPError, ConfigError):
            time.sleep(0.3)  # no certificate yet, or not listening yet
            continue
        except Exception:  # noqa: BLE001 - a demo helper thread reports, never dies silently
            _log.exception("could not obtain the demo's tokens")
            return
        path = write_credentials(state_dir, admin_token, demo, tokens)
        print(  # noqa: T201 - the demo's console output
            f"\ncredentials and tokens: {path} (mode 0600)\n"
            f"  curl --cacert {state_dir / 'dev-cert.pem'} -H 'Authorization: Bearer ...'"
            f" {GATEWAY}/v2/accounts\n",
            file=sys.stderr,
        )
        return
    _log.error("the gateway did not answer within 60 s: no demo tokens")


def run_demo(state_dir: Path, repo: Path) -> int:
    """`bastion demo`: provision, start the bank, serve the gateway until SIGTERM/SIGINT.

    Returns:
        The gateway's exit code (1 when the bank or the config could not start).

    Raises:
        ConfigErrors: examples/bank/bastion.yaml is missing or invalid.
    """
    from bastion.server.run import serve

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    admin_token = new_admin_token()
    config = demo_config(state_dir, admin_token, repo)
    demo = provision_demo(config, state_dir)
    (state_dir / CREDENTIALS_FILE).unlink(missing_ok=True)  # a stale file holds stale tokens
    try:
        bank = start_bank(state_dir, repo, demo.links())
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the demo's console output
        return 1
    print(  # noqa: T201 - the demo's console output
        "\nBastion demo: the bank (examples/bank) behind examples/bank/bastion.yaml\n"
        f"  gateway (HTTPS):  {GATEWAY}/v2/accounts   (self-signed: curl --cacert"
        f" {state_dir / 'dev-cert.pem'})\n"
        "  OAuth 2.0:        /oauth/token  /oauth/authorize"
        "  /.well-known/oauth-authorization-server\n"
        "  redirect (HTTP):  http://127.0.0.1:8080/  -> 308 to HTTPS\n"
        "  admin:            http://127.0.0.1:9901/status  /ready  /metrics\n"
        f"  upstream (bank):  http://127.0.0.1:{BANK_PORT}  (no security of its own)\n"
        f"  credentials:      {state_dir / CREDENTIALS_FILE} (written once the gateway answers)\n",
        file=sys.stderr,
    )
    helper = threading.Thread(
        target=_publish_credentials,
        args=(state_dir, admin_token, demo),
        name="demo-credentials",
        daemon=True,
    )
    helper.start()
    _log.info("demo starting")
    try:
        return serve(config, None, 1)
    finally:
        bank.terminate()
        bank.wait(timeout=10)
