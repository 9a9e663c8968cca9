"""Accepted and refused introspection settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.introspection.config import IntrospectionConfig

BASE = {"client_id": "gateway", "client_secret": "s3cret"}


@pytest.mark.parametrize(
    "settings",
    [
        {"introspection_endpoint": "https://as.example/oauth/introspect"},
        {"introspection_endpoint": "http://127.0.0.1:9000/introspect", "allow_insecure": True},
        {"introspection_endpoint": "http://localhost/introspect", "allow_insecure": True},
        {"introspection_endpoint": "https://as.example/i", "audience": ["bank", "api"]},
    ],
    ids=["https", "loopback-http", "localhost-http", "audiences"],
)
def test_accepted_settings(settings):
    config = IntrospectionConfig.model_validate({**BASE, **settings})
    assert config.introspection_endpoint == settings["introspection_endpoint"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"introspection_endpoint": "http://as.example/i"}, "must use https"),
        (
            {"introspection_endpoint": "http://as.example/i", "allow_insecure": True},
            "must use https",
        ),
        ({"introspection_endpoint": "http://127.0.0.1/i"}, "must use https"),
        ({"introspection_endpoint": "/oauth/introspect"}, "absolute URL"),
        ({"introspection_endpoint": "https://u:p@as.example/i"}, "no credentials"),
        ({"introspection_endpoint": "https://as.example/i#x"}, "fragment"),
        ({"introspection_endpoint": "https://as.example:99999/i"}, "invalid port"),
        ({"introspection_endpoint": "https://as.example/a b"}, "whitespace"),
        ({"introspection_endpoint": "https://as.example/i", "realm": 'a"b'}, "realm"),
        ({"introspection_endpoint": "https://as.example/i", "audience": []}, "audience"),
        ({"introspection_endpoint": "https://as.example/i", "timeout": 0}, "greater than 0"),
        ({"introspection_endpoint": "https://as.example/i", "client_id": "a\nb"}, "printable"),
    ],
    ids=[
        "plain-http",
        "insecure-non-loopback",
        "loopback-without-allow",
        "relative",
        "credentials",
        "fragment",
        "port",
        "whitespace",
        "realm",
        "empty-audience",
        "timeout",
        "client-id",
    ],
)
def test_refused_settings_name_the_problem(settings, message):
    with pytest.raises(ValidationError, match=message):
        IntrospectionConfig.model_validate({**BASE, **settings})


def test_client_credentials_are_required():
    with pytest.raises(ValidationError, match="client_secret"):
        IntrospectionConfig.model_validate(
            {"introspection_endpoint": "https://as.example/i", "client_id": "gateway"}
        )


def test_secret_is_not_shown_in_the_config_repr():
    config = IntrospectionConfig.model_validate(
        {**BASE, "introspection_endpoint": "https://as.example/i"}
    )
    assert "s3cret" not in repr(config)
