"""quota settings: accepted and refused configurations, dotted paths, the anonymous-caller rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bastion.config.loader import ConfigErrors, parse_config
from bastion.policies.quota import QuotaConfig
from bastion.policies.quota.checks import anonymous_quota


def test_defaults_count_per_consumer():
    config = QuotaConfig(limit=1000, period="month")
    assert (config.limit, config.period, config.key, config.name) == (
        1000,
        "month",
        ["consumer"],
        "quota",
    )
    assert config.headers
    assert config.on_backend_error == "local"
    assert config.needs_identity


@pytest.mark.parametrize(
    ("key", "needs"),
    [
        ("ip", False),
        (["ip", "route"], False),
        (["ip", "header:x-tenant"], False),
        ("consumer", True),
        (["ip", "credential"], True),
        ("route", True),
        ("header:x-tenant", True),
    ],
    ids=[
        "ip",
        "ip_per_route",
        "ip_per_header",
        "consumer",
        "credential_with_ip",
        "route_pools_everyone",
        "header_is_client_chosen",
    ],
)
def test_only_per_address_quotas_suit_anonymous_callers(key, needs):
    assert QuotaConfig(limit=1, period="day", key=key).needs_identity is needs


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"limit": 0, "period": "day"}, "greater than 0"),
        ({"limit": 10, "period": "week"}, "'day' or 'month'"),
        ({"limit": 10, "period": "Day"}, "'day' or 'month'"),
        ({"limit": 10}, "Field required"),
        ({"limit": 10, "period": "day", "key": "cookie"}, "unknown key kind"),
        ({"limit": 10, "period": "day", "name": "Bad Name"}, "pattern"),
        ({"limit": 10, "period": "day", "window": 60}, "Extra inputs"),
    ],
    ids=[
        "zero_limit",
        "unknown_period",
        "period_case",
        "period_missing",
        "unknown_key_kind",
        "bad_header_name",
        "unknown_setting",
    ],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        QuotaConfig.model_validate(settings)


def _document(
    policies: dict[str, Any], global_policies: dict[str, Any] | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}],
        "pepper": "p" * 40,
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
    if global_policies is not None:
        document["global_policies"] = global_policies
    return document


@pytest.mark.parametrize(
    ("policies", "path"),
    [
        ({"quota": {"limit": 0, "period": "day"}}, "services[0].routes[1].policies.quota.limit"),
        ({"quota": {"limit": 5, "period": "year"}}, "services[0].routes[1].policies.quota.period"),
        (
            {"quota": {"limit": 5, "period": "day", "key": "cookie"}},
            "services[0].routes[1].policies.quota.key",
        ),
    ],
    ids=["zero_limit", "bad_period", "unknown_key"],
)
def test_config_errors_name_the_dotted_path(policies, path):
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_document(policies))
    assert path in str(caught.value)


def _refusal(policies: dict[str, Any], global_policies: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigErrors) as caught:
        parse_config(_document(policies, global_policies))
    return str(caught.value)


def test_a_consumer_quota_on_an_anonymous_route_is_a_config_error_at_its_path():
    refusal = _refusal({"quota": {"limit": 5, "period": "day"}})
    assert "services[0].routes[1].policies.quota: route 'b' has no enforcing authentication" in (
        refusal
    )


def test_a_global_consumer_quota_is_reported_at_the_global_block():
    refusal = _refusal({}, {"quota": {"limit": 5, "period": "month"}})
    assert "global_policies.quota: " in refusal


@pytest.mark.parametrize(
    ("policies", "global_policies"),
    [
        ({"quota": {"limit": 5, "period": "day", "key": "ip"}}, None),
        ({"quota": {"limit": 5, "period": "day"}, "api_key": {}}, None),
        ({"quota": {"limit": 5, "period": "day"}}, {"api_key": {}}),
        ({"quota": {"limit": 5, "period": "day", "key": ["ip", "route"]}}, None),
        ({"quota": {"limit": 5, "period": "day", "key": "route"}, "basic_auth": {}}, None),
        ({}, None),
    ],
    ids=["ip_key", "route_authenticates", "global_authenticates", "ip_per_route", "basic", "none"],
)
def test_identified_or_ip_quotas_pass_the_check(policies, global_policies):
    config = parse_config(_document(policies, global_policies))
    assert anonymous_quota(config) is None


def test_a_route_wide_quota_on_an_anonymous_route_is_refused():
    assert "policies.quota: " in _refusal({"quota": {"limit": 5, "period": "day", "key": "route"}})


def test_a_report_only_authenticator_does_not_identify_callers():
    policies = {"quota": {"limit": 5, "period": "day"}, "api_key": {"mode": "report_only"}}
    assert "policies.quota: " in _refusal(policies)
