"""Accepted and refused basic_auth settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.basic_auth.config import BasicAuthConfig


def test_defaults_cache_briefly_and_strip_the_header():
    config = BasicAuthConfig()
    assert config.cache_ttl == 30.0
    assert config.strip_credential is True


@pytest.mark.parametrize(
    "settings",
    [{"cache_ttl": -1}, {"cache_ttl": 301}, {"realm": 'a"b'}, {"password": "x"}],
    ids=["negative-ttl", "long-ttl", "quote-in-realm", "unknown-key"],
)
def test_config_refuses(settings):
    with pytest.raises(ValidationError):
        BasicAuthConfig.model_validate(settings)
