"""Reading RFC 7662 answers: what counts as active, and what is not an answer at all."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.policies.introspection.answer import AnswerError, Rules, read_answer

NOW = 1_700_000_000.0


def answer(**members: object) -> bytes:
    return orjson.dumps({"active": True, "sub": "alice", **members})


def test_active_answer_gives_the_subject_scopes_and_expiry():
    verdict = read_answer(answer(scope="read write", exp=NOW + 60, jti="t1"), Rules(), NOW)
    assert verdict.identity is not None
    assert verdict.identity.consumer_id == "alice"
    assert verdict.identity.scopes == frozenset({"read", "write"})
    assert verdict.identity.credential_id == "t1"
    assert verdict.identity.method == "introspection"
    assert verdict.expires_at == NOW + 60


def test_client_id_names_the_caller_when_there_is_no_subject():
    body = orjson.dumps({"active": True, "client_id": "cl_1"})
    verdict = read_answer(body, Rules(), NOW)
    assert verdict.identity is not None
    assert verdict.identity.consumer_id == "cl_1"


@pytest.mark.parametrize(
    ("body", "rules", "reason"),
    [
        (b'{"active": false}', Rules(), "inactive"),
        (answer(exp=NOW), Rules(), "expired"),
        (answer(nbf=NOW + 10), Rules(), "not_yet_valid"),
        (orjson.dumps({"active": True}), Rules(), "no_subject"),
        (answer(sub="a\nb"), Rules(), "no_subject"),
        (answer(iss="https://evil"), Rules(issuer="https://as"), "wrong_issuer"),
        (answer(aud="other"), Rules(audiences=frozenset({"bank"})), "wrong_audience"),
        (answer(aud=["other", 3]), Rules(audiences=frozenset({"bank"})), "wrong_audience"),
        (answer(), Rules(audiences=frozenset({"bank"})), "wrong_audience"),
        (answer(scope="a\x01b"), Rules(), "bad_scope"),
    ],
    ids=[
        "inactive",
        "expired",
        "not-yet-valid",
        "no-subject",
        "control-character-subject",
        "wrong-issuer",
        "wrong-audience",
        "wrong-audience-list",
        "no-audience",
        "control-character-scope",
    ],
)
def test_answers_that_do_not_vouch_for_the_token_are_inactive(body, rules, reason):
    verdict = read_answer(body, rules, NOW)
    assert verdict.identity is None
    assert verdict.reason == reason


def test_audience_list_matches_any_configured_value():
    body = answer(aud=["other", "bank"])
    assert read_answer(body, Rules(audiences=frozenset({"bank"})), NOW).identity is not None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"active": "true"}',
        b'{"active": 1}',
        answer(exp="soon"),
        answer(exp=True),
        answer(sub=5),
    ],
    ids=[
        "not-json",
        "array",
        "no-active",
        "string-active",
        "number-active",
        "exp-string",
        "exp-bool",
        "sub-number",
    ],
)
def test_documents_that_are_not_rfc7662_answers_raise(body):
    with pytest.raises(AnswerError):
        read_answer(body, Rules(), NOW)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_authenticate_without_active_true(body):
    try:
        verdict = read_answer(body, Rules(), NOW)
    except AnswerError:
        return
    assert verdict.identity is None or b"true" in body


@given(
    st.dictionaries(
        st.sampled_from(["active", "sub", "client_id", "scope", "exp", "nbf", "aud", "iss"]),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)),
    )
)
def test_any_json_object_is_read_or_refused_never_crashes(document):
    try:
        verdict = read_answer(orjson.dumps(document), Rules(), NOW)
    except AnswerError:
        return
    if verdict.identity is not None:
        assert document["active"] is True


@pytest.mark.parametrize(
    "body",
    [b'{"active": true, "sub": "a", "exp": 1e400}', b'{"active": true, "sub": "a", "nbf": -1e999}'],
    ids=["infinite-exp", "infinite-nbf"],
)
def test_numbers_beyond_a_double_are_not_answers(body):
    with pytest.raises(AnswerError):
        read_answer(body, Rules(), NOW)
