"""size_limit settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.size_limit import SizeLimitConfig


def test_defaults_cap_every_dimension():
    config = SizeLimitConfig()
    assert config.max_body_bytes == 1024 * 1024
    assert config.max_uri_bytes == 8192
    assert config.max_query_params == 256
    assert config.max_header_count == 100


def test_accepts_lifting_the_optional_limits():
    config = SizeLimitConfig(max_uri_bytes=None, max_query_params=None, max_header_count=None)
    assert config.max_uri_bytes is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_body_bytes": 0}, "greater than 0"),
        ({"max_body_bytes": -1}, "greater than 0"),
        ({"max_body_bytes": None}, "valid integer"),
        ({"max_uri_bytes": 0}, "greater than 0"),
        ({"max_query_params": -5}, "greater than 0"),
        ({"max_header_count": 0}, "greater than 0"),
        ({"max_body_bytes": "1MB"}, "valid integer"),
        ({"max_body_bytes": 1.5}, "valid integer"),
        ({"max_body": 10}, "Extra inputs"),
    ],
    ids=[
        "zero_body",
        "negative_body",
        "body_limit_required",
        "zero_uri",
        "negative_params",
        "zero_headers",
        "unit_string",
        "fraction",
        "unknown_key",
    ],
)
def test_refuses_invalid_limits(settings, message):
    with pytest.raises(ValidationError, match=message):
        SizeLimitConfig.model_validate(settings)
