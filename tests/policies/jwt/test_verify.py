"""verify_access_token(): every way a token is refused, and what a good one yields."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings, strategies as st
from joserfc.jwk import OctKey

from bastion.clock import FakeClock
from bastion.policies.jwt.keys import KeySet, parse_jwks, parse_pem, secret_key_set
from bastion.policies.jwt.verify import (
    TokenError,
    TokenRules,
    UnknownKeyError,
    VerifiedToken,
    identity_from,
    verify_access_token,
)
from tests.policies.jwt.tokens import (
    AUDIENCE,
    ISSUER,
    NOW,
    b64,
    claims,
    ec_key,
    hs256_with_public_key,
    jwks,
    okp_key,
    rsa_key,
    sign,
    sign_raw,
    tamper,
    unsigned,
)

ALLOWED = frozenset({"RS256", "ES256", "EdDSA"})
RULES = TokenRules(issuer=ISSUER, audiences=frozenset({AUDIENCE}), algorithms=ALLOWED)
SECRET = b"0123456789abcdef0123456789abcdef"
RS = {"alg": "RS256", "kid": "rsa-1"}


@pytest.fixture
def keys() -> KeySet:
    return parse_jwks(jwks(rsa_key(), ec_key(), okp_key()), ALLOWED)


def verify(token: str | bytes, keys: KeySet, rules: TokenRules = RULES) -> VerifiedToken:
    return verify_access_token(token, keys, rules, FakeClock())


@pytest.mark.parametrize(
    ("alg", "key"),
    [("RS256", rsa_key()), ("ES256", ec_key()), ("EdDSA", okp_key())],
    ids=["rs256", "es256", "eddsa"],
)
def test_verify_accepts_a_good_token_for_each_pinned_key_type(alg, key, keys):
    verified = verify(sign(claims(), key, alg=alg), keys)

    assert verified.subject == "alice"
    assert verified.kid == key.kid
    assert verified.expires_at == NOW + 300
    assert verified.token_id == "token-1"


def test_verify_accepts_bytes_and_an_audience_list_that_contains_ours(keys):
    token = sign(claims(aud=["other", AUDIENCE]))
    assert verify(token.encode(), keys).subject == "alice"


def test_verify_accepts_a_token_without_kid_when_one_unnamed_key_fits():
    keys = parse_pem(rsa_key().as_pem(private=False), frozenset({"RS256"}))
    assert verify(sign(claims(), kid=None), keys).subject == "alice"


def test_verify_accepts_hs256_with_a_configured_secret():
    keys = secret_key_set(SECRET, "HS256")
    rules = TokenRules(ISSUER, frozenset({AUDIENCE}), frozenset({"HS256"}))
    token = sign(claims(), OctKey.import_key(SECRET), alg="HS256", kid=None)
    assert verify(token, keys, rules).subject == "alice"


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: "x" * 9000, "too_large"),
        (lambda: "not-a-jwt", "malformed"),
        (lambda: "a.b", "malformed"),
        (lambda: "a.b.c.d.e", "malformed"),
        (lambda: "é.b.c", "malformed"),
        (lambda: "!!!.b.c", "malformed"),
        (lambda: f"{b64(b'not json')}.{b64(claims())}.sig", "malformed"),
        (lambda: f"{b64({'typ': 'JWT'})}.{b64(claims())}.sig", "malformed"),
        (lambda: f"{b64({'alg': 5})}.{b64(claims())}.sig", "malformed"),
        (lambda: unsigned(claims()), "algorithm_not_allowed"),
        (lambda: unsigned(claims(), {"alg": "None"}), "algorithm_not_allowed"),
        (lambda: unsigned(claims(), {"alg": "NONE"}), "algorithm_not_allowed"),
        (lambda: hs256_with_public_key(claims(), rsa_key()), "algorithm_not_allowed"),
        (lambda: sign(claims(), rsa_key(), alg="PS256"), "algorithm_not_allowed"),
        (lambda: sign(claims(), header={"jku": "https://evil.test/jwks"}), "forbidden_header"),
        (lambda: sign(claims(), header={"x5u": "https://evil.test/cert"}), "forbidden_header"),
        (lambda: sign(claims(), header={"x5c": ["MIIB"]}), "forbidden_header"),
        (
            lambda: sign_raw({**RS, "jwk": ec_key().as_dict(private=False)}, claims()),
            "forbidden_header",
        ),
        (lambda: sign_raw({**RS, "crit": ["exp"], "exp": 1}, claims()), "forbidden_header"),
        (lambda: sign_raw({**RS, "b64": False, "crit": ["b64"]}, claims()), "forbidden_header"),
        (lambda: sign(claims(), header={"typ": "dpop+jwt"}), "wrong_type"),
        (lambda: sign_raw({**RS, "typ": 7}, claims()), "wrong_type"),
        (lambda: sign_raw({"alg": "RS256", "kid": 7}, claims()), "malformed"),
        (lambda: sign(claims(), ec_key(), alg="ES256", kid="rsa-1"), "algorithm_mismatch"),
        (lambda: sign(claims()).rsplit(".", 1)[0] + ".", "bad_signature"),
        (lambda: sign(claims()).rsplit(".", 1)[0] + ".AAAA", "bad_signature"),
        (lambda: tamper(sign(claims()), sub="mallory"), "bad_signature"),
        (lambda: sign(claims(), rsa_key("rsa-1", 3072)), "bad_signature"),
        (lambda: sign_raw(RS, b'["not", "an", "object"]'), "malformed"),
        (lambda: sign_raw(RS, b"not json"), "malformed"),
        (lambda: sign_raw(RS, b'{"exp": NaN}'), "malformed"),
        (lambda: sign_raw(RS, claims(exp=1e400)), "malformed"),
        (lambda: sign(claims(exp=None)), "missing_claim"),
        (lambda: sign(claims(exp="soon")), "bad_claims"),
        (lambda: sign(claims(exp=True)), "bad_claims"),
        (lambda: sign(claims(exp=2**60)), "bad_claims"),
        (lambda: sign(claims(exp=NOW - 31)), "expired"),
        (lambda: sign(claims(nbf=NOW + 31)), "not_yet_valid"),
        (lambda: sign(claims(nbf="later")), "bad_claims"),
        (lambda: sign(claims(iat=NOW + 31)), "issued_in_future"),
        (lambda: sign(claims(iss="https://evil.test")), "wrong_issuer"),
        (lambda: sign(claims(iss=None)), "wrong_issuer"),
        (lambda: sign(claims(aud="other-api")), "wrong_audience"),
        (lambda: sign(claims(aud=["a", "b"])), "wrong_audience"),
        (lambda: sign(claims(aud=None)), "wrong_audience"),
        (lambda: sign(claims(aud=5)), "wrong_audience"),
        (lambda: sign(claims(sub=None)), "missing_claim"),
        (lambda: sign(claims(sub="")), "missing_claim"),
        (lambda: sign(claims(sub="alice\r\nX-Bastion-Consumer: root")), "bad_claims"),
    ],
    ids=[
        "oversized",
        "one-segment",
        "two-segments",
        "five-segments-jwe",
        "non-ascii",
        "bad-characters",
        "header-not-json",
        "header-without-alg",
        "alg-not-a-string",
        "alg-none",
        "alg-None",
        "alg-NONE",
        "hs256-keyed-with-rsa-public-key",
        "alg-outside-allowlist",
        "jku-header",
        "x5u-header",
        "x5c-header",
        "embedded-jwk-header",
        "crit-header",
        "b64-header",
        "wrong-typ",
        "typ-not-a-string",
        "kid-not-a-string",
        "kid-of-another-key-type",
        "stripped-signature",
        "garbage-signature",
        "tampered-payload",
        "signed-by-another-key-same-kid",
        "payload-not-an-object",
        "payload-not-json",
        "exp-nan",
        "exp-infinity",
        "exp-missing",
        "exp-not-a-number",
        "exp-boolean",
        "exp-absurd",
        "expired-beyond-leeway",
        "nbf-beyond-leeway",
        "nbf-not-a-number",
        "iat-in-the-future",
        "wrong-issuer",
        "no-issuer",
        "wrong-audience",
        "audience-list-without-ours",
        "no-audience",
        "audience-not-a-string",
        "no-subject",
        "empty-subject",
        "subject-with-crlf",
    ],
)
def test_verify_rejects(make_token, reason, keys):
    with pytest.raises(TokenError) as caught:
        verify(make_token(), keys)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "kid",
    ["../../dev/null", "/etc/passwd", "https://evil.test/key", "' OR 1=1 --", "rsa-2"],
    ids=["path-traversal", "absolute-path", "url", "sql", "unknown"],
)
def test_verify_treats_any_unknown_kid_as_an_unknown_key(kid, keys):
    with pytest.raises(UnknownKeyError) as caught:
        verify(sign(claims(), kid=kid), keys)
    assert caught.value.kid == kid
    assert caught.value.reason == "unknown_key"


def test_verify_refuses_a_token_without_kid_when_several_keys_could_fit():
    keys = KeySet.of(
        [
            *parse_pem(rsa_key().as_pem(private=False), frozenset({"RS256"})).unnamed,
            *parse_pem(rsa_key("r2").as_pem(private=False), frozenset({"RS256"})).unnamed,
        ]
    )
    with pytest.raises(UnknownKeyError):
        verify(sign(claims(), kid=None), keys)


def test_verify_refuses_hs256_signed_with_the_pem_when_hs256_is_allowed_but_keys_are_public():
    # Even if an allowlist named HS256, an RSA key is pinned to RS256 and never verifies HMAC.
    rules = TokenRules(ISSUER, frozenset({AUDIENCE}), frozenset({"RS256", "HS256"}))
    keys = parse_jwks(jwks(rsa_key()), frozenset({"RS256"}))
    with pytest.raises(TokenError) as caught:
        verify(hs256_with_public_key(claims(), rsa_key()), keys, rules)
    assert caught.value.reason == "algorithm_mismatch"


@pytest.mark.parametrize(
    ("overrides", "accepted"),
    [
        ({"exp": NOW - 29}, True),
        ({"exp": NOW - 31}, False),
        ({"nbf": NOW + 29}, True),
        ({"nbf": NOW + 31}, False),
        ({"iat": NOW + 29}, True),
        ({"iat": NOW + 31}, False),
    ],
    ids=["exp-in-leeway", "exp-past", "nbf-in-leeway", "nbf-future", "iat-in-leeway", "iat-future"],
)
def test_verify_applies_the_leeway_to_time_claims(overrides, accepted, keys):
    token = sign(claims(**overrides))
    if accepted:
        assert verify(token, keys).subject == "alice"
    else:
        with pytest.raises(TokenError):
            verify(token, keys)


def test_verify_requires_configured_claims(keys):
    rules = TokenRules(ISSUER, frozenset({AUDIENCE}), ALLOWED, required_claims=("client_id", "azp"))
    with pytest.raises(TokenError) as caught:
        verify(sign(claims(client_id="app")), keys, rules)
    assert caught.value.reason == "missing_claim"
    assert verify(sign(claims(client_id="app", azp="app")), keys, rules).subject == "alice"


def test_verify_checks_size_before_parsing(keys):
    rules = TokenRules(ISSUER, frozenset({AUDIENCE}), ALLOWED, max_token_bytes=300)
    with pytest.raises(TokenError) as caught:
        verify(sign(claims()), keys, rules)
    assert caught.value.reason == "too_large"


@settings(max_examples=300)
@given(st.binary(max_size=600) | st.text(max_size=600))
def test_verify_raises_only_token_errors_on_arbitrary_input(data):
    keys = parse_jwks(jwks(rsa_key()), frozenset({"RS256"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TokenError):
            verify(data, keys)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "b64", "zip", "cty", "x5t"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.lists(st.text()),
    )
)
def test_verify_raises_only_token_errors_on_arbitrary_headers(header):
    keys = parse_jwks(jwks(rsa_key()), frozenset({"RS256"}))
    token = f"{b64(header)}.{b64(claims())}.{b64(b'signature')}"
    with pytest.raises(TokenError):
        verify(token, keys)


def test_identity_takes_subject_scopes_groups_and_token_id(keys):
    identity = identity_from(verify(sign(claims()), keys), "groups")

    assert identity.consumer_id == "alice"
    assert identity.scopes == {"accounts:read", "transfers:write"}
    assert identity.groups == {"customers"}
    assert identity.credential_id == "token-1"
    assert identity.method == "jwt"


@pytest.mark.parametrize(
    ("overrides", "groups_claim", "scopes", "groups"),
    [
        ({"scope": None, "scp": ["a", "b"]}, "groups", {"a", "b"}, {"customers"}),
        ({"scope": None, "scp": "a b"}, "groups", {"a", "b"}, {"customers"}),
        ({"scope": 'a "b" c\\d'}, "groups", {"a"}, {"customers"}),
        ({"scope": None}, "groups", set(), {"customers"}),
        ({"groups": "x y"}, "groups", {"accounts:read", "transfers:write"}, {"x", "y"}),
        (
            {"realm_access": {"roles": ["admin"]}},
            "realm_access.roles",
            {"accounts:read", "transfers:write"},
            {"admin"},
        ),
        (
            {"https://example.test/groups": ["ops"]},
            "https://example.test/groups",
            {"accounts:read", "transfers:write"},
            {"ops"},
        ),
        ({"groups": 5}, "groups", {"accounts:read", "transfers:write"}, set()),
        ({"groups": ["ok", "bad\n", 3]}, "groups", {"accounts:read", "transfers:write"}, {"ok"}),
    ],
    ids=[
        "scp-list",
        "scp-string",
        "invalid-scope-tokens-dropped",
        "no-scopes",
        "groups-string",
        "nested-groups-claim",
        "url-named-groups-claim",
        "groups-wrong-type",
        "bad-groups-dropped",
    ],
)
def test_identity_reads_scope_and_group_claim_shapes(overrides, groups_claim, scopes, groups, keys):
    identity = identity_from(verify(sign(claims(**overrides)), keys), groups_claim)
    assert identity.scopes == scopes
    assert identity.groups == groups


def test_identity_drops_a_token_id_with_control_characters(keys):
    identity = identity_from(verify(sign(claims(jti="a\nb")), keys), "groups")
    assert identity.credential_id is None
