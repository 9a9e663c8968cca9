"""ip_filter settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.ip_filter import IPFilterConfig


@pytest.mark.parametrize(
    "settings",
    [
        {"allow": ["10.0.0.0/8"]},
        {"deny": ["203.0.113.0/24", "2001:db8::/32"]},
        {"allow": ["0.0.0.0/0", "::/0"], "deny": ["198.51.100.7"]},
        {"mode": "report_only", "deny": ["198.51.100.7"]},
    ],
    ids=["allow_only", "deny_only", "both", "report_only"],
)
def test_accepts_valid_settings(settings):
    IPFilterConfig.model_validate(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set allow, deny or both"),
        ({"allow": [], "deny": []}, "set allow, deny or both"),
        ({"allow": ["10.0.0.0/8", "intranet"]}, "invalid network 'intranet'"),
        ({"deny": ["192.0.2.1/24"]}, "host bits set"),
        ({"deny": ["10.0.0.0/8"], "block": []}, "Extra inputs"),
        ({"deny": ["10.0.0.0/8"], "mode": "audit"}, "Input should be"),
    ],
    ids=["empty", "both_empty", "invalid_entry", "host_bits", "unknown_key", "unknown_mode"],
)
def test_refuses_invalid_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        IPFilterConfig.model_validate(settings)
