"""JWKS over real HTTPS (trustme CA): rotation without restart, IdP outages, bounded refetching."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.integration.jwks_server import JWKSServer, ca_with_server_cert, serving_jwks
from tests.integration.jwt_gateway import call, gateway_with_jwt, jwt_settings
from tests.policies.jwt.tokens import claims, ec_key, jwks, rsa_key, sign

pytestmark = pytest.mark.integration


def token(key=None, alg: str = "RS256", **overrides: object) -> str:
    return sign(claims(time.time(), **overrides), key, alg=alg)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    return ca_with_server_cert(tmp_path)


@pytest.fixture
def idp(ca) -> Iterator[JWKSServer]:
    with serving_jwks(jwks(rsa_key()), ca=ca[0]) as server:
        yield server


def start(tmp_path: Path, idp: JWKSServer, ca_file: Path | None, **settings: object):
    jwt = jwt_settings(
        jwks_uri=idp.url,
        jwks_ca_file=str(ca_file) if ca_file else None,
        algorithms=["RS256", "ES256"],
        **settings,
    )
    return gateway_with_jwt(tmp_path, {k: v for k, v in jwt.items() if v is not None})


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_new_kid_is_picked_up_without_restart(tmp_path, idp, ca):
    with start(tmp_path, idp, ca[1], jwks_min_refetch_interval=0.2) as gateway:
        assert call(gateway, token=token()).status_code == 200
        idp.document = jwks(rsa_key(), ec_key())  # the IdP adds a key and starts using it
        time.sleep(0.3)
        assert call(gateway, token=token(ec_key(), "ES256")).status_code == 200
        assert call(gateway, token=token()).status_code == 200
        assert idp.paths[-1] == "/jwks.json"


def test_unknown_kids_refetch_at_most_once_per_interval(tmp_path, idp, ca):
    with start(tmp_path, idp, ca[1], jwks_min_refetch_interval=60) as gateway:
        assert call(gateway, token=token()).status_code == 200
        time.sleep(0.2)  # let any background fetch finish
        fetched = idp.count()
        for index in range(30):
            forged = sign(claims(time.time()), rsa_key(), kid=f"made-up-{index}")
            assert call(gateway, token=forged).status_code == 401
        assert idp.count() == fetched == 1


def test_idp_down_keeps_the_last_good_key_set(tmp_path, idp, ca):
    with start(
        tmp_path, idp, ca[1], jwks_min_refetch_interval=0.2, jwks_refresh_interval=0.3
    ) as gateway:
        assert call(gateway, token=token(jti="first")).status_code == 200
        idp.status = 503  # the IdP fails from now on
        time.sleep(0.4)
        # An unknown kid forces a refetch, which fails; the stale set triggers another one.
        forged = sign(claims(time.time()), ec_key(), alg="ES256")
        assert call(gateway, token=forged).status_code == 401
        assert wait_until(lambda: idp.count() >= 2)
        # Tokens signed by the last good key still work (a fresh token: no cache hit).
        assert call(gateway, token=token(jti="second")).status_code == 200
        idp.status = 200
        idp.document = jwks(rsa_key(), ec_key())
        time.sleep(0.3)
        assert call(gateway, token=forged).status_code == 200


def test_no_key_set_ever_loaded_fails_closed_with_503(tmp_path, idp, ca):
    idp.status = 500
    with start(tmp_path, idp, ca[1]) as gateway:
        response = call(gateway, token=token())
        assert response.status_code == 503
        assert response.json()["code"] == "jwks_unavailable"
        assert "www-authenticate" not in response.headers


def test_jwks_server_with_an_untrusted_certificate_is_never_believed(tmp_path, idp):
    # No jwks_ca_file: the system CAs do not know the trustme CA, so TLS verification fails.
    with start(tmp_path, idp, None) as gateway:
        assert call(gateway, token=token()).status_code == 503
        assert idp.count() == 0  # the handshake failed before any request was sent


def test_jwks_over_loopback_http_when_explicitly_allowed(tmp_path):
    with serving_jwks(jwks(rsa_key())) as plain:
        jwt = jwt_settings(jwks_uri=plain.url, allow_insecure_jwks=True)
        with gateway_with_jwt(tmp_path, jwt) as gateway:
            assert call(gateway, token=token()).status_code == 200
