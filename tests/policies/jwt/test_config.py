"""JWTConfig: accepted and refused settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.policies.jwt.config import JWTConfig
from tests.policies.jwt.tokens import AUDIENCE, ISSUER, ec_key, rsa_key

BASE = {"issuer": ISSUER, "audience": AUDIENCE}
SECRET = "s" * 32


@pytest.mark.parametrize(
    ("extra", "algorithms"),
    [
        ({"jwks_uri": "https://idp.example.test/jwks.json"}, ("RS256", "ES256")),
        ({"jwks_uri": "https://idp.example.test:8443/keys?v=2"}, ("RS256", "ES256")),
        (
            {"jwks_uri": "http://127.0.0.1:9999/jwks", "allow_insecure_jwks": True},
            ("RS256", "ES256"),
        ),
        ({"jwks_uri": "http://[::1]:9999/jwks", "allow_insecure_jwks": True}, ("RS256", "ES256")),
        ({"jwks_uri": "http://localhost/jwks", "allow_insecure_jwks": True}, ("RS256", "ES256")),
        ({"jwks_file": "/etc/bastion/jwks.json"}, ("RS256", "ES256")),
        ({"public_key_pem": rsa_key().as_pem(private=False).decode()}, ("RS256", "ES256")),
        (
            {"public_key_pem": ec_key().as_pem(private=False).decode(), "algorithms": ["ES256"]},
            ("ES256",),
        ),
        ({"secret": SECRET}, ("HS256",)),
        ({"secret": SECRET, "algorithms": ["HS512"]}, ("HS512",)),
        ({"jwks_file": "k.json", "algorithms": ["EdDSA", "PS256"]}, ("EdDSA", "PS256")),
    ],
    ids=[
        "https-jwks",
        "https-jwks-port-query",
        "http-loopback-v4-insecure",
        "http-loopback-v6-insecure",
        "http-localhost-insecure",
        "jwks-file",
        "rsa-pem",
        "ec-pem",
        "secret-default-hs256",
        "secret-hs512",
        "eddsa-ps256",
    ],
)
def test_config_accepts(extra, algorithms):
    config = JWTConfig.model_validate({**BASE, **extra})
    assert config.allowed_algorithms == algorithms


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "exactly one key source"),
        (
            {"jwks_uri": "https://a.test/j", "jwks_file": "k.json"},
            "exactly one key source",
        ),
        ({"jwks_file": "k.json", "algorithms": ["none"]}, '"none" algorithm'),
        ({"jwks_file": "k.json", "algorithms": ["NONE"]}, '"none" algorithm'),
        ({"jwks_file": "k.json", "algorithms": ["XS256"]}, "unsupported algorithm"),
        ({"jwks_file": "k.json", "algorithms": []}, "at least one algorithm"),
        ({"jwks_file": "k.json", "algorithms": ["HS256"]}, "need a secret"),
        ({"jwks_file": "k.json", "algorithms": ["RS256", "HS256"]}, "need a secret"),
        ({"secret": SECRET, "algorithms": ["HS256", "RS256"]}, "never mix"),
        ({"secret": SECRET, "algorithms": ["HS256", "HS384"]}, "exactly one HMAC"),
        ({"secret": "s" * 31}, "at least 32 bytes"),
        ({"jwks_uri": "http://idp.example.test/jwks"}, "must use https"),
        (
            {"jwks_uri": "http://idp.example.test/jwks", "allow_insecure_jwks": True},
            "must use https",
        ),
        ({"jwks_uri": "http://127.0.0.1/jwks"}, "must use https"),
        ({"jwks_uri": "ftp://idp.example.test/jwks"}, "must use https"),
        ({"jwks_uri": "file:///etc/jwks.json"}, "absolute URL"),
        ({"jwks_uri": "https://user:pw@idp.example.test/jwks"}, "no credentials"),
        ({"jwks_uri": "https://idp.example.test/jwks#frag"}, "fragment"),
        ({"jwks_uri": "https://idp.example.test:99999/jwks"}, "invalid port"),
        ({"jwks_file": "k.json", "jwks_ca_file": "ca.pem"}, "only to jwks_uri"),
        ({"public_key_pem": "not a pem"}, "not a PEM public key"),
        ({"public_key_pem": rsa_key().as_pem(private=True).decode()}, "private key"),
        ({"jwks_file": "k.json", "realm": 'a"b'}, "realm"),
        ({"jwks_file": "k.json", "required_claims": ["a\nb"]}, "not a claim name"),
        ({"jwks_file": "k.json", "groups_claim": ""}, "not a claim name"),
        ({"jwks_file": "k.json", "audience": []}, "at least one"),
        ({"jwks_file": "k.json", "audience": ""}, "at least one"),
        ({"jwks_file": "k.json", "max_token_bytes": 100}, "greater than or equal"),
        ({"jwks_file": "k.json", "leeway": -1}, "greater than or equal"),
        ({"jwks_file": "k.json", "jwks_min_refetch_interval": 0}, "greater than or equal"),
        ({"jwks_file": "k.json", "surprise": 1}, "Extra inputs"),
    ],
    ids=[
        "no-key-source",
        "two-key-sources",
        "alg-none",
        "alg-NONE",
        "unknown-alg",
        "empty-allowlist",
        "hmac-without-secret",
        "hmac-mixed-without-secret",
        "secret-mixed-with-rsa",
        "secret-two-hmac-algs",
        "short-secret",
        "http-jwks",
        "http-jwks-not-loopback",
        "http-loopback-without-opt-in",
        "ftp-jwks",
        "file-jwks-uri",
        "credentials-in-jwks-uri",
        "fragment",
        "bad-port",
        "ca-file-without-uri",
        "garbage-pem",
        "private-pem",
        "realm-with-quote",
        "claim-with-newline",
        "empty-groups-claim",
        "no-audience",
        "empty-audience",
        "tiny-token-cap",
        "negative-leeway",
        "unbounded-refetch",
        "unknown-key",
    ],
)
def test_config_refuses(extra, message):
    with pytest.raises(ValidationError, match=message):
        JWTConfig.model_validate({**BASE, **extra})


@pytest.mark.parametrize("missing", ["issuer", "audience"], ids=["issuer", "audience"])
def test_config_requires_issuer_and_audience(missing):
    document = {**BASE, "jwks_file": "k.json"}
    del document[missing]
    with pytest.raises(ValidationError, match="Field required"):
        JWTConfig.model_validate(document)


def test_config_resolves_relative_files_against_the_config_folder(tmp_path: Path):
    config = JWTConfig.model_validate(
        {**BASE, "jwks_file": "keys/jwks.json"}, context={"base_dir": str(tmp_path)}
    )
    assert config.jwks_file == tmp_path / "keys" / "jwks.json"


def test_config_audiences_are_a_set_of_every_accepted_value():
    assert JWTConfig.model_validate({**BASE, "jwks_file": "k"}).audiences == {AUDIENCE}
    config = JWTConfig.model_validate({**BASE, "jwks_file": "k", "audience": ["a", "b"]})
    assert config.audiences == {"a", "b"}


def test_config_never_shows_the_secret():
    config = JWTConfig.model_validate({**BASE, "secret": SECRET})
    assert SECRET not in repr(config)
    assert SECRET not in str(config.model_dump())
