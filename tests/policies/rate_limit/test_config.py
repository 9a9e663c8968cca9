"""rate_limit settings: accepted and refused configurations, errors at the dotted path."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from bastion.config.loader import ConfigErrors, parse_config
from bastion.policies.rate_limit import RateLimitConfig


def test_inline_limit_defaults():
    config = RateLimitConfig(limit=100, window=60)
    [limit] = config.resolved()
    assert (limit.limit, limit.window, limit.burst, limit.key, limit.algorithm) == (
        100,
        60,
        0,
        ["ip"],
        "gcra",
    )
    assert config.headers
    assert not config.legacy_headers
    assert config.exclude_preflight
    assert config.on_backend_error == "local"


def test_accepts_a_sliding_log_up_to_the_entry_cap():
    config = RateLimitConfig(limit=10_000, window=60, algorithm="sliding_log")
    [limit] = config.resolved()
    assert (limit.limit, limit.algorithm) == (10_000, "sliding_log")


def test_accepts_several_limits_and_combined_keys():
    config = RateLimitConfig.model_validate(
        {
            "limits": [
                {"limit": 10, "window": 1, "key": ["consumer", "route"]},
                {"limit": 1000, "window": 86400, "key": "header:X-Tenant", "name": "daily"},
            ]
        }
    )
    first, second = config.resolved()
    assert first.key == ["consumer", "route"]
    assert second.key == ["header:x-tenant"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"limit": 0, "window": 60}, "greater than 0"),
        ({"limit": -5, "window": 60}, "greater than 0"),
        ({"limit": 5, "window": 0}, "greater than 0"),
        ({"limit": 5, "window": -1}, "greater than 0"),
        ({"limit": 5}, "set limit and window"),
        ({"limit": 5, "window": 60, "key": "cookie"}, "unknown key kind"),
        ({"limit": 5, "window": 60, "key": ["ip", "ip"]}, "listed twice"),
        ({"limit": 5, "window": 60, "key": []}, "at least one"),
        ({"limit": 5, "window": 60, "key": "header:"}, "header field name"),
        ({"limit": 5, "window": 60, "key": "header:bad name"}, "header field name"),
        ({"limit": 5, "window": 60, "burst": -1}, "greater than or equal to 0"),
        (
            {"limit": 5, "window": 60, "burst": 2, "algorithm": "sliding_window"},
            "gcra algorithm only",
        ),
        ({"limit": 5, "window": 60, "algorithm": "token_bucket"}, "gcra"),
        (
            {"limit": 5, "window": 60, "burst": 1, "algorithm": "sliding_log"},
            "gcra algorithm only",
        ),
        ({"limit": 10_001, "window": 60, "algorithm": "sliding_log"}, "at most 10,000"),
        (
            {"limits": [{"limit": 20_000, "window": 1, "algorithm": "sliding_log"}]},
            "at most 10,000",
        ),
        ({"limit": 5, "window": 60, "limits": [{"limit": 1, "window": 1}]}, "exclude each other"),
        ({"limits": []}, "at least 1"),
        ({"limits": [{"limit": 1, "window": 1}, {"limit": 1, "window": 1}]}, "share a name"),
        ({"limit": 5, "window": 60, "on_backend_error": "ignore"}, "local"),
        ({"limit": 5, "window": 60, "per": "minute"}, "Extra inputs"),
    ],
    ids=[
        "zero_limit",
        "negative_limit",
        "zero_window",
        "negative_window",
        "window_missing",
        "unknown_key_kind",
        "duplicate_key_kind",
        "empty_key",
        "header_without_name",
        "header_bad_name",
        "negative_burst",
        "burst_with_sliding_window",
        "unknown_algorithm",
        "burst_with_sliding_log",
        "sliding_log_too_long",
        "sliding_log_too_long_in_list",
        "inline_and_list",
        "empty_list",
        "duplicate_names",
        "unknown_failure_mode",
        "unknown_setting",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        RateLimitConfig.model_validate(settings)


@given(st.text(min_size=1, max_size=20))
def test_key_kinds_outside_the_known_set_are_refused(kind):
    known = {"ip", "consumer", "credential", "route"}
    try:
        config = RateLimitConfig.model_validate({"limit": 1, "window": 1, "key": kind})
    except ValidationError:
        return
    [part] = config.resolved()[0].key
    assert part in known or part.startswith("header:")


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
        (
            {"rate_limit": {"limit": 0, "window": 60}},
            "services[0].routes[1].policies.rate_limit.limit",
        ),
        (
            {"rate_limit": {"limit": 1, "window": 60, "key": "cookie"}},
            "services[0].routes[1].policies.rate_limit.key",
        ),
        (
            {"rate_limit": {"limits": [{"limit": 1, "window": 1}, {"limit": -1, "window": 1}]}},
            "services[0].routes[1].policies.rate_limit.limits[1].limit",
        ),
        (
            {"rate_limit": {"limit": 50_000, "window": 60, "algorithm": "sliding_log"}},
            "services[0].routes[1].policies.rate_limit.limit: sliding_log keeps one entry",
        ),
        (
            {
                "rate_limit": {
                    "limits": [
                        {"limit": 1, "window": 1},
                        {"limit": 10_001, "window": 1, "algorithm": "sliding_log"},
                    ]
                }
            },
            "services[0].routes[1].policies.rate_limit.limits[1].limit: sliding_log keeps",
        ),
    ],
    ids=["zero_limit", "unknown_key", "negative_in_list", "long_log", "long_log_in_list"],
)
def test_config_errors_name_the_dotted_path(policies, path):
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_document(policies))
    assert path in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("redis://127.0.0.1:6379/x", "database must be a number"),
        ("postgres://127.0.0.1/0", "memory or redis"),
        ("memcached", "memory or redis"),
        ("redis://127.0.0.1:6379/0?timeout_ms=0", "timeout_ms"),
        ("redis://127.0.0.1:6379/0?password=x", "unknown option"),
    ],
    ids=["bad_db", "other_scheme", "unknown_word", "zero_timeout", "unknown_option"],
)
def test_counters_setting_is_validated(value, message):
    document = _document({}) | {"counters": value}
    with pytest.raises(ConfigErrors, match=message) as caught:
        parse_config(document)
    assert "counters" in str(caught.value)


def test_counters_setting_accepts_memory_and_redis_urls():
    assert parse_config(_document({})).counters == "memory"
    url = "redis://127.0.0.1:6379/2?prefix=x:&timeout_ms=30"
    assert parse_config(_document({}) | {"counters": url}).counters == url
