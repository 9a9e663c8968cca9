"""Form bodies: strict parsing, every malformed input a clean invalid_request."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, strategies as st

from bastion.oauth.errors import OAuthError
from bastion.oauth.form import MAX_FIELDS, parse_form


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"grant_type=client_credentials", {"grant_type": "client_credentials"}),
        (b"scope=a+b&x=%41", {"scope": "a b", "x": "A"}),
        (b"scope=&grant_type=x", {"grant_type": "x"}),
        (b"name=%C3%A9", {"name": "é"}),
    ],
    ids=["empty", "one", "plus-and-escape", "empty-value-omitted", "utf8-escape"],
)
def test_parse_form_reads_parameters(body, expected):
    assert parse_form(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&a=2",
        b"a=&a=1",
        b"a",
        b"&",
        b"a=%ff",
        b"a=%zz",
        b"a=%4",
        b"a=%00",
        "a=é".encode(),
        b"&".join(b"f%d=1" % i for i in range(MAX_FIELDS + 1)),
    ],
    ids=[
        "duplicate",
        "duplicate-after-empty",
        "no-equals",
        "only-separator",
        "bad-utf8",
        "bad-escape",
        "short-escape",
        "nul",
        "raw-non-ascii",
        "too-many-fields",
    ],
)
def test_parse_form_refuses_malformed_bodies(body):
    with pytest.raises(OAuthError) as caught:
        parse_form(body)
    assert caught.value.error == "invalid_request"
    assert caught.value.status == 400


@given(st.binary(max_size=256))
def test_parse_form_returns_a_dict_or_invalid_request_for_any_bytes(body):
    error = None
    try:
        parsed = parse_form(body)
    except OAuthError as exc:
        error = exc.error
        parsed = {}
    assert error in (None, "invalid_request")
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in parsed.items())


@given(
    st.dictionaries(
        st.text(
            st.characters(min_codepoint=0x20, exclude_characters="\x7f", exclude_categories=["Cs"]),
            min_size=1,
        ),
        st.text(
            st.characters(min_codepoint=0x20, exclude_characters="\x7f", exclude_categories=["Cs"]),
            min_size=1,
        ),
        max_size=MAX_FIELDS // 2,
    )
)
def test_parse_form_round_trips_urlencoded_parameters(params):
    assert parse_form(urlencode(params).encode()) == params
