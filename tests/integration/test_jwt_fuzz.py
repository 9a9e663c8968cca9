"""Random Authorization headers through a real listener: always a 401, never anything else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from tests.integration.harness import RunningGateway, read_response, status_of
from tests.integration.jwt_gateway import gateway_with_jwt, jwt_settings
from tests.policies.jwt.tokens import jwks, rsa_key

pytestmark = pytest.mark.integration

# A field value as RFC 9110 §5.5 allows it: visible ASCII, obs-text, and inner spaces or tabs.
_VALUE_BYTE = st.sampled_from([*range(0x21, 0x7F), *range(0x80, 0x100)])
_INNER = st.sampled_from([*range(0x20, 0x7F), 0x09, *range(0x80, 0x100)])
field_values = st.builds(
    lambda first, middle, last: (
        bytes([first, *middle, last]) if middle is not None else bytes([first])
    ),
    _VALUE_BYTE,
    st.lists(_INNER, max_size=300) | st.none(),
    _VALUE_BYTE,
)
bearer_values = st.builds(
    lambda scheme, token: scheme + b" " + token,
    st.sampled_from([b"Bearer", b"bearer", b"BEARER"]),
    st.binary(min_size=1, max_size=400).map(
        lambda raw: bytes(b if 0x21 <= b < 0x7F or b >= 0x80 else 0x41 for b in raw)
    ),
)
jwt_like = st.builds(
    lambda parts: b"Bearer " + b".".join(parts),
    st.lists(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=80
        ).map(str.encode),
        min_size=1,
        max_size=6,
    ),
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    state_dir = tmp_path_factory.mktemp("jwt-fuzz")
    keys = state_dir / "jwks.json"
    keys.write_bytes(jwks(rsa_key()))
    with gateway_with_jwt(state_dir, jwt_settings(jwks_file=str(keys))) as running:
        yield running


def status_for(gateway: RunningGateway, value: bytes) -> int:
    request = b"GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + value + b"\r\n\r\n"
    with gateway.connect() as sock:
        sock.sendall(request)
        return status_of(read_response(sock))


@settings(max_examples=150, deadline=None)
@given(value=field_values | bearer_values | jwt_like)
def test_random_authorization_values_always_get_401(gateway, value):
    assert status_for(gateway, value) == 401
