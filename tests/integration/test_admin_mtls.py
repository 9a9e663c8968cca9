"""The admin listener over HTTPS with client certificates (mutual TLS), plus the bearer token."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from bastion.config.loader import parse_config
from bastion.errors import ConfigError
from bastion.server.run import admin_context
from tests.integration.harness import free_ports, running_gateway

pytestmark = pytest.mark.integration

TOKEN = "an-admin-token-for-mtls-tests-0123456789"


def _client(ca: trustme.CA, cert: trustme.LeafCert | None) -> httpx.Client:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return httpx.Client(verify=context, timeout=5)


def test_admin_clients_need_a_certificate_from_the_configured_ca(tmp_path: Path) -> None:
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1")
    server.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    client_ca.cert_pem.write_to_path(str(tmp_path / "clients.pem"))
    (port,) = free_ports(1)
    admin = {
        "bind": f"127.0.0.1:{port}",
        "token": TOKEN,
        "tls": {
            "certificate": str(tmp_path / "cert.pem"),
            "private_key": str(tmp_path / "key.pem"),
            "client_ca": str(tmp_path / "clients.pem"),
        },
    }
    url = f"https://127.0.0.1:{port}"
    with running_gateway(tmp_path, {"admin": admin}):
        with _client(server_ca, client_ca.issue_cert("operator@example.com")) as operator:
            assert operator.get(url + "/status").status_code == 200
            assert operator.get(url + "/admin/consumers").status_code == 401  # token still needed
            listed = operator.get(
                url + "/admin/consumers", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert listed.status_code == 200
        for stranger in (None, other_ca.issue_cert("intruder@example.com")):
            with _client(server_ca, stranger) as client, pytest.raises(httpx.HTTPError):
                client.get(url + "/status")
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the admin port
            httpx.get(f"http://127.0.0.1:{port}/status", timeout=5)


def test_an_unusable_client_ca_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "clients.pem").write_text("not a certificate")
    config = parse_config(
        {
            "listeners": [{"bind": "127.0.0.1:18443", "plaintext": True}],
            "state_dir": str(tmp_path),
            "admin": {"tls": {"client_ca": str(tmp_path / "clients.pem")}},
        }
    )
    with pytest.raises(ConfigError) as caught:
        admin_context(config)
    assert caught.value.path == "admin.tls.client_ca"
