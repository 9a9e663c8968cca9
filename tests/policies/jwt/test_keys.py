"""Key loading: every key pinned to one algorithm; unusable keys skipped, never guessed."""

from __future__ import annotations

import json

import pytest

from bastion.policies.jwt.keys import KeyLoadError, parse_jwks, parse_pem, secret_key_set
from tests.policies.jwt.tokens import ec_key, jwks, okp_key, rsa_key

ASYMMETRIC = frozenset({"RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"})


@pytest.mark.parametrize(
    ("key", "extra", "pinned"),
    [
        (rsa_key(), {}, "RS256"),
        (rsa_key(), {"alg": "PS256"}, "PS256"),
        (ec_key(), {}, "ES256"),
        (ec_key("ec-384", "P-384"), {}, "ES384"),
        (okp_key(), {}, "EdDSA"),
        (okp_key(), {"alg": "Ed25519"}, "Ed25519"),
    ],
    ids=["rsa-default", "rsa-declared-ps256", "ec-p256", "ec-p384", "okp-default", "okp-ed25519"],
)
def test_parse_jwks_pins_each_key_to_one_algorithm(key, extra, pinned):
    keys = parse_jwks(jwks(key, extra=extra), ASYMMETRIC)
    assert keys.by_kid[key.kid].alg == pinned


@pytest.mark.parametrize(
    "extra",
    [
        {"alg": "ES256"},
        {"alg": "HS256"},
        {"alg": 256},
        {"use": "enc"},
        {"key_ops": ["encrypt"]},
        {"key_ops": "verify"},
        {"kid": 5},
    ],
    ids=[
        "alg-of-another-type",
        "alg-hmac",
        "alg-not-a-string",
        "use-enc",
        "ops-no-verify",
        "ops-not-a-list",
        "kid-not-a-string",
    ],
)
def test_parse_jwks_skips_keys_that_cannot_verify_safely(extra):
    document = json.loads(jwks(rsa_key(), extra=extra))
    document["keys"].append(json.loads(jwks(ec_key()))["keys"][0])
    keys = parse_jwks(json.dumps(document).encode(), ASYMMETRIC)
    assert keys.kids == {"ec-1"}


def test_parse_jwks_skips_symmetric_short_malformed_and_disallowed_keys():
    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "oct"},
            json.loads(jwks(rsa_key("short", 1024)))["keys"][0],
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            {"kty": "EC", "kid": "no-curve"},
            json.loads(jwks(rsa_key(), extra={"alg": "RS512"}))["keys"][0],
            "not an object",
            json.loads(jwks(ec_key()))["keys"][0],
        ]
    }
    keys = parse_jwks(json.dumps(document).encode(), ASYMMETRIC)
    assert keys.kids == {"ec-1"}


@pytest.mark.parametrize(
    "document",
    [b"not json", b"[]", b'{"keys": {}}', b'{"nokeys": []}', b'{"keys": []}', b"\xff\xfe"],
    ids=["not-json", "array", "keys-not-a-list", "no-keys", "empty", "not-utf8"],
)
def test_parse_jwks_refuses_documents_without_a_usable_key(document):
    with pytest.raises(KeyLoadError):
        parse_jwks(document, ASYMMETRIC)


def test_parse_jwks_keeps_the_first_of_two_keys_with_one_kid():
    document = json.loads(jwks(rsa_key()))
    document["keys"].append(json.loads(jwks(ec_key(), extra={"kid": "rsa-1"}))["keys"][0])
    keys = parse_jwks(json.dumps(document).encode(), ASYMMETRIC)
    assert keys.by_kid["rsa-1"].alg == "RS256"
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("key", "allowed", "pinned"),
    [
        (rsa_key(), frozenset({"RS256", "ES256"}), "RS256"),
        (rsa_key(), frozenset({"PS256"}), "PS256"),
        (ec_key(), frozenset({"RS256", "ES256"}), "ES256"),
        (okp_key(), frozenset({"EdDSA"}), "EdDSA"),
    ],
    ids=["rsa", "rsa-pss-only", "ec", "ed25519"],
)
def test_parse_pem_pins_the_key(key, allowed, pinned):
    keys = parse_pem(key.as_pem(private=False).decode(), allowed)
    assert [k.alg for k in keys.unnamed] == [pinned]


@pytest.mark.parametrize(
    ("pem", "allowed"),
    [
        (rsa_key().as_pem(private=True), frozenset({"RS256"})),
        (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", frozenset({"RS256"})),
        (ec_key().as_pem(private=False), frozenset({"RS256"})),
        (rsa_key().as_pem(private=False), frozenset({"ES256"})),
    ],
    ids=["private-key", "garbage", "ec-key-rsa-allowlist", "rsa-key-ec-allowlist"],
)
def test_parse_pem_refuses_unusable_pems(pem, allowed):
    with pytest.raises(KeyLoadError):
        parse_pem(pem, allowed)


def test_secret_key_set_requires_32_bytes_and_an_hmac_algorithm():
    assert [k.alg for k in secret_key_set(b"k" * 32, "HS384").unnamed] == ["HS384"]
    with pytest.raises(KeyLoadError):
        secret_key_set(b"k" * 31, "HS256")
    with pytest.raises(KeyLoadError):
        secret_key_set(b"k" * 32, "RS256")
