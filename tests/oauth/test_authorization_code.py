"""The authorization-code grant with PKCE: the login page, the code, the token exchange."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

import pytest

from bastion.clock import FakeClock
from bastion.errors import Reject
from bastion.http.headers import Headers
from bastion.oauth import pkce
from bastion.oauth.authorize import CSRF_COOKIE, LOGIN_FAILED, AuthorizeEndpoint
from bastion.oauth.errors import OAuthError
from bastion.oauth.grant_store import digest
from bastion.oauth.server import AuthorizationServer
from bastion.policies.jwt.policy import JWTPolicy
from bastion.store.sql import SQLStore
from tests.oauth.flow import (
    REDIRECT,
    add_code_client,
    add_user,
    authorize_params,
    csrf_of,
    login,
    new_verifier,
    redirect_params,
)
from tests.oauth.support import ISSUER, Client, body_of, claims_of, form_headers, self_policy
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


@pytest.fixture
def endpoint(server: AuthorizationServer) -> AuthorizeEndpoint:
    return AuthorizeEndpoint(server)


async def get_code(endpoint: AuthorizeEndpoint, client: Client, verifier: str) -> str:
    response = await login(endpoint, authorize_params(client.id, verifier))
    _, query = redirect_params(response)
    return query["code"]


def exchange_body(code: str, verifier: str | None, redirect_uri: str = REDIRECT) -> bytes:
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        params["code_verifier"] = verifier
    return urlencode(params).encode()


async def exchange(server: AuthorizationServer, client: Client, body: bytes) -> dict[str, object]:
    response = await server.token(form_headers(client.basic()), body)
    assert response.status == 200, response.body
    return body_of(response)


async def authenticates(policy: JWTPolicy, token: str) -> bool:
    """Whether a `jwt: {issuer: self}` route accepts the bearer token."""
    ctx = make_ctx(headers=[(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())])
    try:
        pending = policy.access(ctx)
        if pending is not None:
            await pending
    except Reject:
        return False
    return ctx.identity is not None


async def refuse(server: AuthorizationServer, headers: Headers, body: bytes) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await server.token(headers, body)
    return caught.value


async def test_login_redirects_with_a_code_and_state_that_buy_tokens_for_the_consumer(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, clock: FakeClock
):
    client = await add_code_client(server)
    consumer_id = await add_user(server)
    verifier = new_verifier()
    response = await login(endpoint, authorize_params(client.id, verifier))
    target, query = redirect_params(response)
    assert target == REDIRECT
    assert query["state"] == "st-42"
    assert query["iss"] == ISSUER
    assert response.headers.get(b"cache-control") == b"no-store"
    document = await exchange(server, client, exchange_body(query["code"], verifier))
    assert document["token_type"] == "Bearer"
    assert document["scope"] == "read"
    assert isinstance(document["refresh_token"], str)
    _, claims = claims_of(str(document["access_token"]))
    assert claims["sub"] == consumer_id
    assert claims["client_id"] == client.id
    assert claims["exp"] == int(clock.time()) + 900


async def test_codes_and_refresh_tokens_are_stored_only_as_digests(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    document = await exchange(server, client, exchange_body(code, verifier))
    store = server.store
    assert isinstance(store, SQLStore)
    codes = await store._fetch("SELECT code_digest FROM bastion_oauth_codes")
    tokens = await store._fetch("SELECT token_digest FROM bastion_oauth_refresh_tokens")
    assert codes == [(digest(code),)]
    assert tokens == [(digest(str(document["refresh_token"])),)]


async def test_public_client_redeems_a_code_with_pkce_and_no_secret(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server, public=True)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    body = exchange_body(code, verifier) + f"&client_id={client.id}".encode()
    response = await server.token(form_headers(), body)
    assert response.status == 200
    assert "access_token" in body_of(response)


async def test_public_client_may_not_use_client_credentials(server: AuthorizationServer):
    client = await add_code_client(
        server, public=True, grants=("authorization_code", "client_credentials")
    )
    body = f"grant_type=client_credentials&client_id={client.id}".encode()
    error = await refuse(server, form_headers(), body)
    assert error.error == "unauthorized_client"


async def test_public_client_id_of_a_confidential_client_is_refused(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    body = exchange_body(code, verifier) + f"&client_id={client.id}".encode()
    error = await refuse(server, form_headers(), body)
    assert (error.error, error.status) == ("invalid_client", 401)


async def test_token_refuses_a_wrong_client_secret_for_a_code(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    wrong = Client(client.id, client.secret[:-2] + "xx")
    error = await refuse(server, form_headers(wrong.basic()), exchange_body(code, verifier))
    assert (error.error, error.status) == ("invalid_client", 401)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda code, v: exchange_body(code, new_verifier()), "invalid_grant"),
        (lambda code, v: exchange_body(code, v[:-1] + "A"), "invalid_grant"),
        (lambda code, v: exchange_body(code, pkce.s256(v)), "invalid_grant"),
        (lambda code, v: exchange_body(code, "short"), "invalid_grant"),
        (lambda code, v: exchange_body(code, None), "invalid_request"),
        (lambda code, v: exchange_body(code, v, REDIRECT + "/"), "invalid_grant"),
        (lambda code, v: exchange_body(code, v, REDIRECT + "?x=1"), "invalid_grant"),
        (lambda code, v: exchange_body(code, v, "https://evil.test/callback"), "invalid_grant"),
        (lambda code, v: exchange_body(code + "x", v), "invalid_grant"),
        (lambda code, v: b"grant_type=authorization_code&code_verifier=" + v.encode(), None),
    ],
    ids=[
        "other-verifier",
        "altered-verifier",
        "challenge-as-verifier",
        "malformed-verifier",
        "no-verifier",
        "redirect-trailing-slash",
        "redirect-extra-query",
        "redirect-other-host",
        "unknown-code",
        "no-code-no-redirect",
    ],
)
async def test_token_refuses_a_code_exchange_that_does_not_match(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, change, error
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    body = change(code, verifier)
    refused = await refuse(server, form_headers(client.basic()), body)
    assert refused.error == (error or "invalid_request")
    assert refused.response().headers.get(b"cache-control") == b"no-store"
    if error == "invalid_grant" and parse_qs(body.decode()).get("code") == [code]:
        # The failed attempt spent the code: the right verifier no longer helps.
        again = await refuse(server, form_headers(client.basic()), exchange_body(code, verifier))
        assert again.error == "invalid_grant"


async def test_code_issued_to_one_client_is_refused_to_another(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    other = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    error = await refuse(server, form_headers(other.basic()), exchange_body(code, verifier))
    assert error.error == "invalid_grant"


async def test_replayed_code_is_refused_and_revokes_the_tokens_it_bought(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, clock: FakeClock
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    first = await exchange(server, client, exchange_body(code, verifier))
    policy = self_policy(server, clock)
    token = str(first["access_token"])
    assert await authenticates(policy, token)
    replay = await refuse(server, form_headers(client.basic()), exchange_body(code, verifier))
    assert replay.error == "invalid_grant"
    assert not await authenticates(policy, token)
    introspected = await server.introspect(form_headers(client.basic()), f"token={token}".encode())
    assert body_of(introspected) == {"active": False}
    body = f"grant_type=refresh_token&refresh_token={first['refresh_token']}".encode()
    refreshed = await refuse(server, form_headers(client.basic()), body)
    assert refreshed.error == "invalid_grant"


async def test_code_expires_after_sixty_seconds(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, clock: FakeClock
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    clock.advance(61)
    error = await refuse(server, form_headers(client.basic()), exchange_body(code, verifier))
    assert error.error == "invalid_grant"


async def test_code_is_accepted_within_its_lifetime(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, clock: FakeClock
):
    client = await add_code_client(server)
    await add_user(server)
    verifier = new_verifier()
    code = await get_code(endpoint, client, verifier)
    clock.advance(59)
    await exchange(server, client, exchange_body(code, verifier))


async def test_client_without_the_grant_is_refused_at_the_token_endpoint(
    server: AuthorizationServer,
):
    client = await add_code_client(server, grants=("client_credentials",))
    body = exchange_body("abc", new_verifier())
    error = await refuse(server, form_headers(client.basic()), body)
    assert error.error == "unauthorized_client"


# The authorization endpoint.


async def test_login_page_is_locked_down(server: AuthorizationServer, endpoint: AuthorizeEndpoint):
    client = await add_code_client(server)
    page = await endpoint.page(Headers(), urlencode(authorize_params(client.id, "v" * 43)).encode())
    assert page.status == 200
    csp = (page.headers.get(b"content-security-policy") or b"").decode()
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    assert "form-action 'self' https://app.example.test;" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers.get(b"x-frame-options") == b"DENY"
    assert page.headers.get(b"cache-control") == b"no-store"
    cookie = (page.headers.get(b"set-cookie") or b"").decode()
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert f"; {attribute}" in cookie
    assert b"<script" not in page.body
    assert b"src=" not in page.body
    assert b"Budget &lt;App&gt;" in page.body  # the client name is escaped
    csrf_of(page)


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "cl_0000000000000000"},
        {"client_id": "nonsense"},
        {"client_id": None},
        {"redirect_uri": REDIRECT + "/"},
        {"redirect_uri": REDIRECT + "?next=1"},
        {"redirect_uri": "https://APP.example.test/callback"},
        {"redirect_uri": "https://evil.test/callback"},
        {"redirect_uri": None},
    ],
    ids=[
        "unknown-client",
        "malformed-client",
        "no-client",
        "trailing-slash",
        "extra-query",
        "case-changed",
        "other-host",
        "no-redirect",
    ],
)
async def test_authorize_shows_an_error_page_and_never_redirects_to_an_unregistered_uri(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, overrides
):
    client = await add_code_client(server)
    params = authorize_params(client.id, new_verifier(), **overrides)
    page = await endpoint.page(Headers(), urlencode(params).encode())
    assert page.status == 400
    assert page.headers.get(b"location") is None
    assert page.headers.get(b"set-cookie") is None
    assert b"not registered" in page.body


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "read admin"}, "invalid_scope"),
        ({"scope": 'read "x"'}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "unsupported_response_type"),
    ],
    ids=[
        "plain-pkce",
        "no-method",
        "no-challenge",
        "malformed-challenge",
        "unknown-scope",
        "malformed-scope",
        "implicit",
        "no-response-type",
    ],
)
async def test_authorize_redirects_errors_with_state_once_the_redirect_uri_is_trusted(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, overrides, error
):
    client = await add_code_client(server)
    params = authorize_params(client.id, new_verifier(), **overrides)
    response = await endpoint.page(Headers(), urlencode(params).encode())
    target, query = redirect_params(response)
    assert target == REDIRECT
    assert query == {"error": error, "state": "st-42", "iss": ISSUER}


async def test_authorize_refuses_a_client_not_allowed_the_code_grant(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server, grants=("client_credentials",))
    params = authorize_params(client.id, new_verifier())
    response = await endpoint.page(Headers(), urlencode(params).encode())
    _, query = redirect_params(response)
    assert query["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong password"),
        ("mallory", "correct horse battery staple"),
        ("alice", ""),
        ("a" * 300, "x"),
    ],
    ids=["wrong-password", "unknown-user", "empty-password", "long-username"],
)
async def test_failed_login_shows_one_generic_message_and_no_code(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, username, password
):
    client = await add_code_client(server)
    await add_user(server)
    params = authorize_params(client.id, new_verifier())
    response = await login(endpoint, params, username=username, password=password)
    assert response.status == 200
    assert response.headers.get(b"location") is None
    assert LOGIN_FAILED.encode() in response.body
    assert username.encode() not in response.body.replace(b'value="alice', b"")


async def test_disabled_consumer_cannot_log_in(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    consumer_id = await add_user(server)
    store = server.store
    assert isinstance(store, SQLStore)
    await store.set_consumer_disabled(consumer_id, True, actor="test")
    response = await login(endpoint, authorize_params(client.id, new_verifier()))
    assert response.status == 200
    assert LOGIN_FAILED.encode() in response.body


async def test_deny_redirects_access_denied_with_state(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint
):
    client = await add_code_client(server)
    params = authorize_params(client.id, new_verifier())
    response = await login(endpoint, params, username="", password="", decision="deny")
    _, query = redirect_params(response)
    assert query == {"error": "access_denied", "state": "st-42", "iss": ISSUER}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: ([], token),
        lambda token: ([(b"cookie", f"{CSRF_COOKIE}={token}".encode())], ""),
        lambda token: ([(b"cookie", f"{CSRF_COOKIE}={token}x".encode())], token),
        lambda token: (
            [(b"cookie", f"{CSRF_COOKIE}={token}; {CSRF_COOKIE}={token}".encode())],
            token,
        ),
        lambda token: ([(b"cookie", b"other=" + token.encode())], token),
        lambda token: ([(b"cookie", f"{CSRF_COOKIE}={token}".encode())], token + "\x80"),
    ],
    ids=["no-cookie", "no-field", "mismatch", "two-cookies", "other-cookie", "non-ascii"],
)
async def test_login_post_without_a_matching_csrf_token_is_refused(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, tamper
):
    client = await add_code_client(server)
    await add_user(server)
    params = authorize_params(client.id, new_verifier())
    page = await endpoint.page(Headers(), urlencode(params).encode())
    cookies, field = tamper(csrf_of(page))
    form = {**params, "username": "alice", "password": "correct horse battery staple"}
    form |= {"decision": "allow", "csrf_token": field} if field else {"decision": "allow"}
    response = await endpoint.submit(Headers(cookies), urlencode(form).encode())
    assert response.status == 403
    assert response.headers.get(b"location") is None


async def test_login_form_expires_after_ten_minutes(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, clock: FakeClock
):
    client = await add_code_client(server)
    await add_user(server)
    params = authorize_params(client.id, new_verifier())
    page = await endpoint.page(Headers(), urlencode(params).encode())
    token = csrf_of(page)
    clock.advance(601)
    form = {**params, "csrf_token": token, "username": "alice", "decision": "allow"}
    form["password"] = "correct horse battery staple"
    headers = Headers([(b"cookie", f"{CSRF_COOKIE}={token}".encode())])
    response = await endpoint.submit(headers, urlencode(form).encode())
    assert response.status == 403


@pytest.mark.parametrize(
    "body",
    [b"a=%zz", b"x=1&x=2", b"\xff", b"a=1&" * 40],
    ids=["bad-escape", "duplicate", "binary", "many-fields"],
)
async def test_malformed_login_form_gets_an_error_page(
    server: AuthorizationServer, endpoint: AuthorizeEndpoint, body
):
    response = await endpoint.submit(Headers(), body)
    assert response.status == 400
    assert response.headers.get(b"content-type") == b"text/html; charset=utf-8"
    assert response.headers.get(b"location") is None
