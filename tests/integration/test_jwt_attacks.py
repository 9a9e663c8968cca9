"""JWT attacks against both front doors: every forgery is a 401 that says only `invalid_token`.

Each test runs through a real gateway listener and through BastionMiddleware in front of an
app: the policies are the same, so is every answer. The jwt policy verifies with a local JWKS
file (one RSA key). The attacker's own key is served by a loopback JWKS endpoint that tokens
point at with `jku`/`x5u`: it must never be asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests.frontdoor import FRONT_DOORS, FrontDoor, Reply, open_front_door
from tests.integration.jwks_server import JWKSServer, serving_jwks
from tests.integration.jwt_gateway import auth_routes, jwt_settings
from tests.policies.jwt.tokens import (
    b64,
    claims,
    hs256_with_public_key,
    jwks,
    rsa_key,
    sign,
    sign_raw,
    tamper,
    unsigned,
)

pytestmark = pytest.mark.integration

ATTACKER = "attacker-1"
INVALID = 'Bearer realm="bastion", error="invalid_token"'


def now() -> int:
    return int(time.time())


@pytest.fixture(scope="module")
def attacker_jwks() -> Iterator[JWKSServer]:
    """The attacker's key set, on a loopback URL tokens will name."""
    with serving_jwks(jwks(rsa_key(ATTACKER))) as server:
        yield server


@pytest.fixture(scope="module", params=FRONT_DOORS)
def door(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontDoor]:
    state_dir = tmp_path_factory.mktemp("jwt-attacks")
    keys = state_dir / "jwks.json"
    keys.write_bytes(jwks(rsa_key()))
    # The jwt policy sits at the service level: one key source and token cache for every route.
    service = {
        "name": "echo",
        "policies": {"jwt": jwt_settings(jwks_file=str(keys))},
        "routes": [*auth_routes(), {"name": "all", "paths": ["/"]}],
    }
    with open_front_door(request.param, state_dir, {"services": [service]}) as opened:
        yield opened


def call(
    door: FrontDoor,
    path: str = "/api",
    token: str | None = None,
    *,
    method: str = "GET",
    authorization: bytes | None = None,
) -> Reply:
    """One request with a bearer token (or a raw Authorization value)."""
    headers: dict[bytes, bytes] = {}
    if token is not None:
        headers[b"authorization"] = b"Bearer " + token.encode()
    if authorization is not None:
        headers[b"authorization"] = authorization
    return door.request(method, path, headers=headers)


def good(**overrides: object) -> dict[str, object]:
    return claims(now(), **overrides)


def attacks(attacker: JWKSServer) -> dict[str, Callable[[], str]]:
    mine = rsa_key(ATTACKER)
    return {
        "alg-none": lambda: unsigned(good()),
        "alg-none-with-kid": lambda: unsigned(good(), {"alg": "none", "kid": "rsa-1"}),
        "hs256-keyed-with-the-rsa-public-key": lambda: hs256_with_public_key(good(), rsa_key()),
        "stripped-signature": lambda: sign(good()).rsplit(".", 1)[0] + ".",
        "kid-path-traversal": lambda: sign(good(), mine, kid="../../dev/null"),
        "kid-absolute-path": lambda: sign(good(), mine, kid="/dev/null"),
        "jku-to-attacker-keys": lambda: sign_raw(
            {"alg": "RS256", "kid": ATTACKER, "jku": attacker.url}, good(), mine
        ),
        "x5u-to-attacker-cert": lambda: sign_raw(
            {"alg": "RS256", "kid": ATTACKER, "x5u": attacker.url}, good(), mine
        ),
        "embedded-attacker-jwk": lambda: sign_raw(
            {"alg": "RS256", "jwk": {"kty": "RSA", "e": "AQAB", "n": "x" * 40}}, good(), mine
        ),
        "expired": lambda: sign(good(exp=now() - 3600)),
        "nbf-in-the-future": lambda: sign(good(nbf=now() + 3600)),
        "wrong-issuer": lambda: sign(good(iss="https://evil.test")),
        "wrong-audience": lambda: sign(good(aud="another-api")),
        "tampered-payload": lambda: tamper(sign(good()), sub="admin"),
        "tampered-scope": lambda: tamper(sign(good()), scope="transfers:write admin"),
        "signed-by-attacker-with-our-kid": lambda: sign(good(), mine, kid="rsa-1"),
        "oversized": lambda: sign(good(padding="x" * 9000)),
        "garbage": lambda: "garbage",
        "jwe-shaped": lambda: "a.b.c.d.e",
        "empty-segments": lambda: "..",
        "json-instead-of-jwt": lambda: b64({"sub": "alice"}),
    }


ATTACK_NAMES = list(attacks(JWKSServer(b"")).keys())


@pytest.mark.parametrize("name", ATTACK_NAMES, ids=ATTACK_NAMES)
def test_attack_is_refused_with_invalid_token(name, door, attacker_jwks):
    before = door.upstream_calls()
    response = call(door, token=attacks(attacker_jwks)[name]())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_token"
    assert problem["detail"] == "The bearer token is invalid."
    assert door.upstream_calls() == before  # nothing reached the upstream
    assert attacker_jwks.count() == 0  # keys are never fetched from token headers


def test_valid_token_reaches_the_upstream_with_the_identity(door):
    response = call(door, token=sign(good()))
    assert response.status_code == 200
    headers = dict(response.json()["headers"])
    assert headers["x-bastion-consumer"] == "alice"
    assert headers["x-bastion-scopes"] == "accounts:read transfers:write"


def test_missing_and_foreign_scheme_get_a_bare_challenge(door):
    for authorization in (None, b"Basic YWxpY2U6cHc="):
        response = call(door, authorization=authorization)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'
        assert response.json()["code"] == "missing_token"


def test_scopes_route_refuses_a_token_without_the_scope_with_insufficient_scope(door):
    read_only = sign(good(scope="transfers:read"))
    assert call(door, "/transfers", read_only).status_code == 200
    response = call(door, "/transfers", read_only, method="POST")
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="transfers:write"'
    )
    assert response.json()["code"] == "insufficient_scope"
    writer = sign(good(scope="transfers:read transfers:write"))
    assert call(door, "/transfers", writer, method="POST").status_code == 200


@pytest.mark.parametrize(
    ("groups", "status"),
    [(["staff"], 200), (["customers"], 403), (["staff", "suspended"], 403), ([], 403)],
    ids=["staff", "customer", "suspended-staff", "no-groups"],
)
def test_acl_route_admits_by_group(door, groups, status):
    response = call(door, "/staff", sign(good(groups=groups)))
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "acl_denied"


def test_spoofed_identity_headers_never_reach_the_upstream(door):
    response = door.request(
        "GET",
        "/api",
        headers={
            "authorization": f"Bearer {sign(good(sub='bob'))}",
            "x-bastion-consumer": "admin",
            "x-bastion-scopes": "everything",
        },
    )
    headers = response.json()["headers"]
    assert [v for k, v in headers if k == "x-bastion-consumer"] == ["bob"]
    assert ["x-bastion-scopes", "everything"] not in headers


def test_rejections_are_in_the_access_log_with_the_reason(door):
    call(door, token=sign(good(exp=now() - 3600)))
    log = door.access_log
    deadline = time.monotonic() + 3
    reasons: list[str] = []
    while time.monotonic() < deadline:  # the access log is written off the request path
        text = log.read_text() if log.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line]
        reasons = [line.get("error", {}).get("message") for line in lines]
        if "jwt: expired" in reasons:
            break
        time.sleep(0.05)
    assert "jwt: expired" in reasons
