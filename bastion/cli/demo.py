"""`bastion demo`: the banking example behind the gateway, on embedded defaults."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from bastion.config.loader import parse_config
from bastion.config.models import GatewayConfig

BANK_PORT = 9000
DEMO_CONFIG = """
listeners:
  - {bind: "127.0.0.1:8443", tls: {}}          # no files: a self-signed development certificate
  - {bind: "127.0.0.1:8080"}                   # plain HTTP: 308 redirect to https://...:8443
admin: {bind: "127.0.0.1:9901", token: "${BASTION_ADMIN_TOKEN}"}
state_dir: "${BASTION_STATE_DIR:-var}"
access_log: {sink: "${BASTION_ACCESS_LOG:-stdout}"}
global_policies:
  request_id: {}
  security_headers: {}
  size_limit: {max_body_bytes: 65536}
services:
  - name: bank
    upstream: {targets: ["http://127.0.0.1:9000"], connect_timeout: 2, read_timeout: 30}
    routes:
      - {name: bank-v1, paths: ["/v1"]}
      - {name: bank-v2, paths: ["/v2"]}
      - {name: health, paths: ["/healthz"], path_match: exact, methods: [GET]}
"""


def demo_config(state_dir: Path, admin_token: str) -> GatewayConfig:
    """The embedded demo configuration with its secrets filled in."""
    env = {
        **os.environ,
        "BASTION_ADMIN_TOKEN": admin_token,
        "BASTION_STATE_DIR": str(state_dir),
    }
    return parse_config(yaml.safe_load(DEMO_CONFIG), env=env)


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


def write_credentials(state_dir: Path, admin_token: str) -> Path:
    """Write the demo's credentials to a file only the current user can read."""
    path = state_dir / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"BASTION_ADMIN_TOKEN={admin_token}\n")
    os.chmod(path, 0o600)
    return path


def new_admin_token() -> str:
    """A fresh 256-bit admin token."""
    return secrets.token_urlsafe(32)
