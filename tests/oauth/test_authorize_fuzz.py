"""Any query or form: the login page answers with a page or a redirect, never crashes or leaks."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from urllib.parse import quote

from hypothesis import given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.http.headers import Headers
from bastion.oauth.authorize import CSRF_COOKIE, AuthorizeEndpoint
from bastion.store.sqlite import SQLiteStore
from tests.oauth.flow import REDIRECT, add_code_client
from tests.oauth.support import make_server

FIELDS = st.sampled_from(
    [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "csrf_token",
        "username",
        "password",
        "decision",
    ]
)
VALUES = st.one_of(
    st.sampled_from(["code", "S256", "plain", REDIRECT, "read", "allow", "deny", "1.x", "cl"]),
    st.text(max_size=30),
)
PAIRS = st.lists(st.tuples(FIELDS, VALUES), max_size=8)
RAW = st.binary(max_size=120)


@settings(max_examples=200, deadline=None)
@given(PAIRS, RAW, st.booleans())
def test_authorize_never_fails_with_anything_but_a_page_or_a_redirect(pairs, raw, use_pairs):
    async def run() -> list[int]:
        with tempfile.TemporaryDirectory() as folder:
            store = SQLiteStore(Path(folder) / "fuzz.db")
            try:
                server = make_server(store, FakeClock())
                client = await add_code_client(server)
                endpoint = AuthorizeEndpoint(server)
                swapped = [(n, client.id if v == "cl" else v) for n, v in pairs]
                data = (
                    "&".join(f"{quote(n)}={quote(v)}" for n, v in swapped).encode()
                    if use_pairs
                    else raw
                )
                headers = Headers([(b"cookie", f"{CSRF_COOKIE}=1.x".encode())])
                responses = [await endpoint.page(Headers(), data)]
                responses.append(await endpoint.submit(headers, data))
            finally:
                await store.close()
        for response in responses:
            location = response.headers.get(b"location")
            if location is not None:
                assert location.startswith(REDIRECT.encode() + b"?")
            assert b"Traceback" not in response.body
        return [response.status for response in responses]

    statuses = asyncio.run(run())
    assert set(statuses) <= {200, 303, 400, 403}
