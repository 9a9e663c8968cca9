"""ScopesConfig: accepted and refused settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.scopes.config import ScopesConfig


def test_config_accepts_required_scopes_and_method_overrides():
    config = ScopesConfig.model_validate(
        {
            "required": ["accounts:read", "accounts:read"],
            "match": "any",
            "methods": {"post": {"required": ["transfers:write"]}},
        }
    )
    assert config.required == ["accounts:read"]
    assert set(config.methods) == {"POST"}


def test_config_accepts_only_overrides():
    config = ScopesConfig.model_validate({"methods": {"DELETE": {"required": ["admin"]}}})
    assert config.required == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "set required"),
        ({"required": []}, "set required"),
        ({"methods": {"GET": {"required": []}}}, "set required"),
        ({"required": ["has space"]}, "not a scope"),
        ({"required": ['quo"te']}, "not a scope"),
        ({"required": ["back\\slash"]}, "not a scope"),
        ({"required": [""]}, "not a scope"),
        ({"required": ["a"], "match": "most"}, "'all' or 'any'"),
        ({"required": ["a"], "methods": {"FETCH": {"required": ["b"]}}}, "not an HTTP method"),
        (
            {"required": ["a"], "methods": {"get": {"required": ["b"]}, "GET": {"required": []}}},
            "listed twice",
        ),
        ({"required": ["a"], "methods": {"GET": {"required": ["x y"]}}}, "not a scope"),
        ({"required": ["a"], "methods": {"GET": {"scopes": ["b"]}}}, "Extra inputs"),
    ],
    ids=[
        "nothing-required",
        "empty-required",
        "empty-override",
        "space",
        "quote",
        "backslash",
        "empty-scope",
        "bad-match",
        "bad-method",
        "duplicate-method",
        "bad-override-scope",
        "unknown-override-key",
    ],
)
def test_config_refuses(document, message):
    with pytest.raises(ValidationError, match=message):
        ScopesConfig.model_validate(document)
