"""ACLConfig: accepted and refused settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.acl.config import ACLConfig


def test_config_accepts_allow_deny_and_dedupes():
    config = ACLConfig.model_validate({"allow": ["staff", "staff"], "deny": ["suspended"]})
    assert config.allow == ["staff"]
    assert config.deny == ["suspended"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "set allow, deny or both"),
        ({"allow": [], "deny": []}, "set allow, deny or both"),
        ({"allow": [""]}, "not a group name"),
        ({"deny": ["a\nb"]}, "not a group name"),
        ({"allow": ["a"], "groups": ["b"]}, "Extra inputs"),
    ],
    ids=["empty", "empty-lists", "empty-group", "control-character", "unknown-key"],
)
def test_config_refuses(document, message):
    with pytest.raises(ValidationError, match=message):
        ACLConfig.model_validate(document)
