"""`bastion demo`: the banking example behind the gateway, on embedded defaults."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey

from bastion.config.loader import load_config
from bastion.config.models import GatewayConfig

BANK_PORT = 9000
BANK_CONFIG = Path("examples") / "bank" / "bastion.yaml"
DEMO_ISSUER = "https://idp.bank.example"
DEMO_CUSTOMERS = ("cus_alice0001", "cus_bob00001")
DEMO_TOKEN_HOURS = 12


def demo_identity_provider(state_dir: Path) -> tuple[Path, dict[str, str]]:
    """A stand-in identity provider for the demo: a signing key, its JWKS, customer tokens.

    The key is kept in `state_dir` (mode 0600) and reused; the JWKS file is what the `jwt`
    policy in examples/bank/bastion.yaml reads. Tokens last `DEMO_TOKEN_HOURS` hours.
    """
    key_path = state_dir / "demo-idp-key.json"
    if key_path.exists():
        key = ECKey.import_key(json.loads(key_path.read_text()))
    else:
        key = ECKey.generate_key("P-256", parameters={"kid": "demo-idp-1"})
        _write_private(key_path, json.dumps(key.as_dict(private=True)))
    jwks_path = state_dir / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    now = int(time.time())
    tokens = {}
    for customer in DEMO_CUSTOMERS:
        claims = {
            "iss": DEMO_ISSUER,
            "aud": "bank",
            "sub": customer,
            "scope": "accounts:read transfers:write",
            "iat": now,
            "exp": now + DEMO_TOKEN_HOURS * 3600,
            "jti": secrets.token_hex(8),
        }
        header = {"alg": "ES256", "kid": key.kid or "demo-idp-1", "typ": "at+jwt"}
        tokens[customer] = jwt.encode(header, claims, key, algorithms=["ES256"])
    return jwks_path, tokens


def demo_config(state_dir: Path, admin_token: str, repo: Path) -> GatewayConfig:
    """examples/bank/bastion.yaml with the demo's secrets and state folder filled in.

    Raises:
        ConfigErrors: the file is missing (run from the repository root) or invalid.
    """
    jwks_path, _ = demo_identity_provider(state_dir)
    env = {
        **os.environ,
        "BASTION_ADMIN_TOKEN": admin_token,
        "BASTION_STATE_DIR": str(state_dir),
        "BANK_JWKS_FILE": str(jwks_path),
        "BASTION_STORE": f"sqlite:///{state_dir / 'bastion.db'}",
    }
    return load_config(repo / BANK_CONFIG, env=env)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


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


def start_bank(state_dir: Path, repo: Path) -> subprocess.Popen[bytes]:
    """Start the banking example upstream on 127.0.0.1:9000.

    Raises:
        RuntimeError: the example is not found or does not become healthy.
    """
    if not (repo / "examples" / "bank" / "app.py").exists():
        raise RuntimeError("examples/bank not found: run `bastion demo` from the repository root")
    process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        [
            sys.executable,
            "-m",
            "examples.bank",
            "--port",
            str(BANK_PORT),
            "--db",
            str(state_dir / "bank.db"),
        ],
        cwd=repo,
    )
    if not _wait_http(f"http://127.0.0.1:{BANK_PORT}/healthz", 20):
        process.terminate()
        raise RuntimeError("the bank example did not start on 127.0.0.1:9000")
    return process


def write_credentials(state_dir: Path, admin_token: str, tokens: dict[str, str]) -> Path:
    """Write the demo's credentials to a file only the current user can read."""
    path = state_dir / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"BASTION_ADMIN_TOKEN={admin_token}"]
    lines += [f"TOKEN_{customer.upper()}={value}" for customer, value in tokens.items()]
    _write_private(path, "\n".join(lines) + "\n")
    return path


def new_admin_token() -> str:
    """A fresh 256-bit admin token."""
    return secrets.token_urlsafe(32)
