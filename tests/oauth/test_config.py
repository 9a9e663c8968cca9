"""The `oauth:` block: accepted and refused settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.config.loader import parse_config
from bastion.oauth.config import OAuthConfig


def test_config_defaults():
    config = OAuthConfig.model_validate({"issuer": "https://auth.example/"})
    assert config.issuer == "https://auth.example"
    assert config.access_token_ttl == 900
    assert config.signing_alg == "ES256"
    assert config.key_rotation_days == 30


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"issuer": "http://auth.example"}, "https"),
        ({"issuer": "https://auth.example?x=1"}, "query"),
        ({"issuer": "https://auth.example#f"}, "fragment"),
        ({"issuer": "https://u:p@auth.example"}, "credentials"),
        ({"issuer": "https://a.example", "signing_alg": "HS256"}, "ES256"),
        ({"issuer": "https://a.example", "access_token_ttl": 10}, "greater than"),
        ({"issuer": "https://a.example", "key_rotation_days": 0}, "greater than"),
        ({"issuer": "https://a.example", "refresh": True}, "Extra inputs"),
    ],
    ids=["http", "query", "fragment", "credentials", "hmac", "short-ttl", "no-rotation", "extra"],
)
def test_config_refuses(settings, message):
    with pytest.raises(ValidationError, match=message):
        OAuthConfig.model_validate(settings)


def test_gateway_config_accepts_an_oauth_block():
    config = parse_config(
        {
            "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
            "oauth": {"issuer": "https://localhost:8443", "signing_alg": "RS256"},
        }
    )
    assert config.oauth is not None
    assert config.oauth.signing_alg == "RS256"


def test_brute_force_is_on_by_default_and_can_be_tuned_or_turned_off():
    assert OAuthConfig.model_validate({"issuer": "https://a.example"}).brute_force is None
    tuned = OAuthConfig.model_validate(
        {"issuer": "https://a.example", "brute_force": {"max_failures": 3}}
    )
    assert tuned.brute_force is not False
    assert tuned.brute_force is not None
    assert tuned.brute_force.max_failures == 3
    off = OAuthConfig.model_validate({"issuer": "https://a.example", "brute_force": False})
    assert off.brute_force is False


def test_gateway_config_names_the_path_of_a_bad_brute_force_setting():
    with pytest.raises(Exception, match=r"oauth\.brute_force"):
        parse_config(
            {
                "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
                "oauth": {"issuer": "https://localhost:8443", "brute_force": {"lockout": 0}},
            }
        )
