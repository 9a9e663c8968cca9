"""Any body and Authorization header: the token endpoint answers or refuses, never crashes."""

from __future__ import annotations

import asyncio
import base64

from hypothesis import given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.http.headers import Headers
from bastion.oauth.config import OAuthConfig
from bastion.oauth.errors import OAuthError
from bastion.oauth.server import AuthorizationServer
from bastion.store.base import OAuthClientRecord, SigningKeyRecord
from tests.oauth.support import ISSUER

CLIENT_ID = "cl_0123456789abcdef"


class MemoryOAuthStore:
    """Just enough of the store for the token endpoint: one client, keys in a list."""

    def __init__(self) -> None:
        self.keys: list[SigningKeyRecord] = []

    async def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None:
        if client_id != CLIENT_ID:
            return None
        # SHA-256 of "secret".
        digest = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        return OAuthClientRecord(CLIENT_ID, "fuzz", digest, frozenset({"read"}))

    async def add_signing_key(self, record: SigningKeyRecord) -> None:
        self.keys.append(record)

    async def list_signing_keys(self, published_after: float) -> list[SigningKeyRecord]:
        return [key for key in self.keys if key.expires_at > published_after]


FIELDS = st.sampled_from(
    ["grant_type", "scope", "client_id", "client_secret", "code", "refresh_token", "x"]
)
VALUES = st.one_of(
    st.sampled_from(["client_credentials", "password", "read", CLIENT_ID, "secret", ""]),
    st.text(max_size=20),
)
FORMS = st.lists(st.tuples(FIELDS, VALUES), max_size=6).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs).encode("utf-8", "replace")
)
BODIES = st.one_of(FORMS, st.binary(max_size=200))
AUTHORIZATION = st.one_of(
    st.none(),
    st.just(b"Basic " + base64.b64encode(f"{CLIENT_ID}:secret".encode())),
    st.binary(max_size=80).map(lambda raw: b"Basic " + base64.b64encode(raw)),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(BODIES, AUTHORIZATION)
def test_token_endpoint_never_fails_with_anything_but_an_oauth_error(body, authorization):
    server = AuthorizationServer(
        OAuthConfig(issuer=ISSUER),
        MemoryOAuthStore(),  # type: ignore[arg-type]  # the token endpoint needs only these
        FakeClock(),
    )
    headers = Headers([(b"content-type", b"application/x-www-form-urlencoded")])
    if authorization is not None:
        headers.add(b"authorization", authorization)

    async def run() -> int:
        try:
            return (await server.token(headers, body)).status
        except OAuthError as exc:
            return exc.response().status

    assert asyncio.run(run()) in {200, 400, 401}
