"""concurrency_limit settings: accepted and refused configurations, errors at the dotted path."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from bastion.config.loader import ConfigErrors, parse_config
from bastion.policies.concurrency_limit import ConcurrencyLimitConfig


def test_defaults():
    config = ConcurrencyLimitConfig(max=10)
    assert (config.max, config.key, config.lease_seconds) == (10, ["ip"], 30)
    assert (config.on_backend_error, config.mode) == ("local", "enforce")


def test_accepts_combined_keys_as_rate_limit_does():
    config = ConcurrencyLimitConfig.model_validate(
        {"max": 2, "key": ["Consumer", "header:X-Tenant"], "mode": "report_only"}
    )
    assert config.key == ["consumer", "header:x-tenant"]
    assert config.mode == "report_only"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max": 0}, "greater than 0"),
        ({"max": -3}, "greater than 0"),
        ({}, "Field required"),
        ({"max": 1, "key": "cookie"}, "unknown key kind"),
        ({"max": 1, "key": ["ip", "ip"]}, "listed twice"),
        ({"max": 1, "key": "header:"}, "header field name"),
        ({"max": 1, "lease_seconds": 0}, "greater than or equal to 1"),
        ({"max": 1, "on_backend_error": "ignore"}, "local"),
        ({"max": 1, "limit": 5}, "Extra inputs"),
    ],
    ids=[
        "zero_max",
        "negative_max",
        "max_missing",
        "unknown_key_kind",
        "duplicate_key_kind",
        "header_without_name",
        "zero_lease",
        "unknown_failure_mode",
        "unknown_setting",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        ConcurrencyLimitConfig.model_validate(settings)


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_only_positive_max_is_accepted(value):
    try:
        config = ConcurrencyLimitConfig(max=value)
    except ValidationError:
        assert value <= 0 or value > 1_000_000
        return
    assert 0 < config.max <= 1_000_000


def _document(policies: dict[str, object]) -> dict[str, object]:
    return {
        "listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}],
        "services": [
            {
                "name": "api",
                "upstream": {"targets": ["http://127.0.0.1:9000"]},
                "routes": [
                    {"name": "a", "paths": ["/a"]},
                    {"name": "b", "paths": ["/b"], "policies": policies},
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("policies", "path"),
    [
        ({"concurrency_limit": {"max": 0}}, "services[0].routes[1].policies.concurrency_limit.max"),
        (
            {"concurrency_limit": {"max": 1, "key": "session"}},
            "services[0].routes[1].policies.concurrency_limit.key",
        ),
        (
            {"concurrency_limit": {"max": 1, "lease_seconds": -1}},
            "services[0].routes[1].policies.concurrency_limit.lease_seconds",
        ),
    ],
    ids=["zero_max", "unknown_key", "negative_lease"],
)
def test_config_errors_name_the_dotted_path(policies, path):
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_document(policies))
    assert path in str(caught.value)
