"""Accepted and refused api_key settings, and what the gateway config requires with it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.config.loader import ConfigErrors, parse_config
from bastion.policies.api_key.config import APIKeyConfig


def test_defaults_read_the_x_api_key_header_only():
    config = APIKeyConfig()
    assert config.header == "x-api-key"
    assert config.allow_query is False
    assert config.strip_credential is True


@pytest.mark.parametrize(
    "settings",
    [{"header": "bad header"}, {"header": ""}, {"query_param": "a&b"}, {"realm": 'x"y'}, {"x": 1}],
    ids=["space-in-header", "empty-header", "ampersand-param", "quote-in-realm", "unknown-key"],
)
def test_config_refuses(settings):
    with pytest.raises(ValidationError):
        APIKeyConfig.model_validate(settings)


def _gateway(**top: object) -> dict[str, object]:
    return {
        "listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}],
        "services": [
            {
                "name": "s",
                "upstream": {"targets": ["http://127.0.0.1:9000"]},
                "routes": [{"name": "r", "paths": ["/"], "policies": {"api_key": {}}}],
            }
        ],
        **top,
    }


def test_gateway_config_without_pepper_is_refused_when_api_key_is_used():
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_gateway())
    assert any(line.startswith("pepper") for line in caught.value.lines)


def test_gateway_config_refuses_a_short_pepper():
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_gateway(pepper="short"))
    assert any("32 characters" in line for line in caught.value.lines)


def test_gateway_config_with_pepper_and_store_is_accepted():
    config = parse_config(
        _gateway(pepper="p" * 40, store="postgresql://bastion@127.0.0.1:5432/bastion")
    )
    assert config.pepper is not None
    assert config.store.startswith("postgresql://")


@pytest.mark.parametrize(
    "url",
    ["mysql://x/y", "sqlite://relative.db", "sqlite:///"],
    ids=["mysql", "two-slashes", "no-path"],
)
def test_gateway_config_refuses_unknown_store_urls(url):
    with pytest.raises(ConfigErrors):
        parse_config(_gateway(pepper="p" * 40, store=url))
