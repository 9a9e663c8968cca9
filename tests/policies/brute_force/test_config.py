"""Accepted and refused brute_force settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.brute_force.config import BruteForceConfig


def test_defaults_lock_a_pair_before_an_address():
    config = BruteForceConfig()
    assert config.max_failures < config.max_ip_failures
    assert config.on_backend_error == "local"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_failures": 10, "max_ip_failures": 5}, "max_ip_failures must be at least"),
        ({"max_failures": 0}, "greater than or equal to 1"),
        ({"window": 0}, "greater than or equal to 1"),
        ({"lockout": 0}, "greater than or equal to 1"),
        ({"api_key_header": "bad header"}, "should match pattern"),
        ({"on_backend_error": "maybe"}, "Input should be"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
    ids=[
        "ip-below-pair",
        "zero-failures",
        "zero-window",
        "zero-lockout",
        "header",
        "on-error",
        "extra",
    ],
)
def test_refused_settings_name_the_problem(settings, message):
    with pytest.raises(ValidationError, match=message):
        BruteForceConfig.model_validate(settings)
