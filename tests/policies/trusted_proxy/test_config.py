"""trusted_proxy settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.trusted_proxy import TrustedProxyConfig


def test_defaults_trust_nobody():
    config = TrustedProxyConfig()
    assert config.proxies == []
    assert config.header == "x-forwarded-for"
    assert config.allow_any is False


@pytest.mark.parametrize(
    "settings",
    [
        {"proxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]},
        {"proxies": ["10.0.0.1"], "header": "forwarded"},
        {"proxies": ["0.0.0.0/0"], "allow_any": True},
        {"proxies": ["::/0", "0.0.0.0/0"], "allow_any": True},
        {"proxies": ["0.0.0.0/1"]},
    ],
    ids=["networks_and_addresses", "forwarded_header", "any_ipv4_allowed", "any_allowed", "half"],
)
def test_accepts_valid_settings(settings):
    assert TrustedProxyConfig.model_validate(settings).proxies == settings["proxies"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"proxies": ["10.0.0.0/8", "not-an-ip"]}, "invalid network 'not-an-ip'"),
        ({"proxies": ["10.0.0.1/8"]}, "host bits set"),
        ({"header": "x-real-ip"}, "literal_error|Input should be"),
        ({"proxies": ["0.0.0.0/0"]}, "covers every address .*evade IP filters and rate limits"),
        ({"proxies": ["::/0"]}, "covers every address"),
        ({"proxies": ["0.0.0.0/1", "128.0.0.0/1"]}, "covers every address"),
        ({"proxies": ["::ffff:0.0.0.0/96"]}, "covers every address"),
        ({"proxies": [], "trust": True}, "Extra inputs are not permitted"),
    ],
    ids=[
        "invalid_entry",
        "host_bits",
        "unknown_header",
        "any_ipv4",
        "any_ipv6",
        "any_ipv4_in_two_halves",
        "any_ipv4_in_mapped_form",
        "unknown_key",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        TrustedProxyConfig.model_validate(settings)
