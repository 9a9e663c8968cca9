"""security_headers settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.security_headers import SecurityHeadersConfig


def test_defaults_enable_every_header():
    config = SecurityHeadersConfig()
    assert config.hsts is True
    assert config.max_age == 31_536_000
    assert config.include_subdomains is True
    assert config.preload is False
    assert config.content_security_policy == "frame-ancestors 'none'"
    assert config.frame_options == "DENY"
    assert config.referrer_policy == "no-referrer"
    assert config.remove_headers == ["server", "x-powered-by"]


@pytest.mark.parametrize(
    "settings",
    [
        {"preload": True},
        {"hsts": False, "preload": True, "include_subdomains": False},
        {"max_age": 0},
        {"content_security_policy": None, "frame_options": None, "referrer_policy": None},
        {"content_security_policy": "default-src 'self'; frame-ancestors 'none'"},
        {"frame_options": "SAMEORIGIN", "referrer_policy": "strict-origin-when-cross-origin"},
        {"remove_headers": ["X-AspNet-Version", " via "]},
        {"no_store_all": True, "no_store_errors": False},
    ],
    ids=[
        "preload_with_defaults",
        "preload_ignored_without_hsts",
        "max_age_zero_clears",
        "headers_disabled",
        "custom_csp",
        "other_values",
        "remove_list",
        "no_store_switches",
    ],
)
def test_accepts_valid_settings(settings):
    SecurityHeadersConfig.model_validate(settings)


def test_remove_headers_are_lower_cased():
    config = SecurityHeadersConfig(remove_headers=["X-AspNet-Version", " Via "])
    assert config.remove_headers == ["x-aspnet-version", "via"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preload": True, "include_subdomains": False}, "preload requires include_subdomains"),
        ({"preload": True, "max_age": 86400}, "preload requires max_age >= 31536000"),
        ({"max_age": -1}, "greater than or equal to 0"),
        ({"content_security_policy": ""}, "header value"),
        ({"content_security_policy": "default-src 'self'\r\nSet-Cookie: a=b"}, "header value"),
        ({"content_security_policy": " default-src"}, "header value"),
        ({"frame_options": "ALLOW-FROM https://a.example"}, "Input should be"),
        ({"referrer_policy": "always"}, "Input should be"),
        ({"remove_headers": ["bad header"]}, "not a valid header name"),
        ({"x_xss_protection": True}, "Extra inputs are not permitted"),
    ],
    ids=[
        "preload_without_subdomains",
        "preload_short_max_age",
        "negative_max_age",
        "empty_csp",
        "csp_header_injection",
        "csp_leading_space",
        "obsolete_allow_from",
        "unknown_referrer_policy",
        "invalid_remove_name",
        "unknown_key",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        SecurityHeadersConfig.model_validate(settings)
