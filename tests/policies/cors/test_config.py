"""cors settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.cors import CORSConfig


def test_defaults_allow_simple_methods_without_credentials():
    config = CORSConfig(allow_origins=["https://app.example"])
    assert config.allow_methods == ["GET", "HEAD", "POST"]
    assert config.allow_headers == []
    assert config.expose_headers == []
    assert config.allow_credentials is False
    assert config.max_age == 600


@pytest.mark.parametrize(
    ("settings", "origins"),
    [
        ({"allow_origins": ["https://app.example"]}, ["https://app.example"]),
        ({"allow_origins": ["HTTPS://App.Example:8443"]}, ["https://app.example:8443"]),
        ({"allow_origins": ["http://localhost:3000"]}, ["http://localhost:3000"]),
        (
            {"allow_origins": ["http://[::1]:8080", "http://127.0.0.1"]},
            ["http://[::1]:8080", "http://127.0.0.1"],
        ),
        ({"allow_origins": ["https://a.example", "https://a.example"]}, ["https://a.example"]),
        ({"allow_origins": ["*"]}, ["*"]),
        (
            {"allow_origins": ["https://a.example"], "allow_credentials": True},
            ["https://a.example"],
        ),
    ],
    ids=[
        "exact_origin",
        "lower_cased",
        "localhost_port",
        "ip_literals",
        "duplicates_merged",
        "wildcard",
        "credentials_with_listed_origin",
    ],
)
def test_accepts_origins(settings, origins):
    assert CORSConfig.model_validate(settings).allow_origins == origins


def test_methods_upper_cased_and_headers_lower_cased():
    config = CORSConfig(
        allow_origins=["https://a.example"],
        allow_methods=["get", "PATCH", "patch"],
        allow_headers=["Authorization", "X-Request-ID"],
        expose_headers=["RateLimit", "Retry-After"],
    )
    assert config.allow_methods == ["GET", "PATCH"]
    assert config.allow_headers == ["authorization", "x-request-id"]
    assert config.expose_headers == ["ratelimit", "retry-after"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "Field required"),
        ({"allow_origins": []}, "at least 1 item"),
        (
            {"allow_origins": ["*"], "allow_credentials": True},
            "cannot be used with allow_credentials",
        ),
        ({"allow_origins": ["*", "https://a.example"]}, "cannot be combined"),
        ({"allow_origins": ["null"]}, '"null" is refused'),
        ({"allow_origins": ["https://a.example/"]}, "is not an origin"),
        ({"allow_origins": ["https://a.example/app"]}, "is not an origin"),
        ({"allow_origins": ["a.example"]}, "is not an origin"),
        ({"allow_origins": ["ftp://a.example"]}, "is not an origin"),
        ({"allow_origins": ["https://*.a.example"]}, "is not an origin"),
        ({"allow_origins": ["https://a.example", "https://a.example\r\nx: y"]}, "is not an origin"),
        (
            {"allow_origins": ["https://a.example"], "allow_methods": ["GET POST"]},
            "not a valid method",
        ),
        ({"allow_origins": ["https://a.example"], "allow_headers": ["x:y"]}, "not a valid header"),
        ({"allow_origins": ["https://a.example"], "expose_headers": [""]}, "not a valid header"),
        ({"allow_origins": ["https://a.example"], "max_age": -1}, "greater than or equal to 0"),
        ({"allow_origins": ["https://a.example"], "max_age": 86401}, "less than or equal to 86400"),
        ({"allow_origins": ["https://a.example"], "origins": []}, "Extra inputs"),
    ],
    ids=[
        "origins_required",
        "origins_empty",
        "wildcard_with_credentials",
        "wildcard_mixed",
        "null_origin",
        "trailing_slash",
        "path",
        "no_scheme",
        "other_scheme",
        "pattern",
        "header_injection",
        "method_with_space",
        "header_with_colon",
        "empty_expose_header",
        "negative_max_age",
        "max_age_over_a_day",
        "unknown_key",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        CORSConfig.model_validate(settings)
