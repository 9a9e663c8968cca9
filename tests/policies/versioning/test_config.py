"""versioning settings: accepted lifecycles and the mistakes refused at load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bastion.policies.versioning import VersioningConfig


def _config(**settings: Any) -> VersioningConfig:
    settings.setdefault("versions", {"v1": {}, "v2": {}})
    return VersioningConfig.model_validate(settings)


def test_config_accepts_a_full_lifecycle():
    config = _config(
        default="v2",
        versions={
            "v1": {
                "deprecated_at": "2026-01-01T00:00:00Z",
                "sunset_at": "2026-07-01T00:00:00+02:00",
                "successor": "https://api.example/v2",
                "deprecation_link": "https://developer.example/deprecation",
                "sunset_link": "/docs/sunset",
            },
            "v2": {},
        },
        headers=["API-Version"],
    )
    assert config.default == "v2"
    assert config.headers == ["api-version"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(
            {
                "versions": {
                    "v1": {
                        "deprecated_at": "2026-06-01T00:00:00Z",
                        "sunset_at": "2026-01-01T00:00:00Z",
                    }
                }
            },
            "sunset_at is before deprecated_at",
            id="sunset-before-deprecation",
        ),
        pytest.param({"default": "v3"}, "default version 'v3'", id="unknown-default"),
        pytest.param(
            {"versions": {"v1": {"sunset_at": "2026-01-01T00:00:00"}}},
            "needs a time zone",
            id="naive-sunset",
        ),
        pytest.param(
            {"versions": {"v1": {"deprecated_at": "2026-01-01T00:00:00"}}},
            "needs a time zone",
            id="naive-deprecation",
        ),
        pytest.param({"versions": {"v1": {}, "1": {}}}, "same version", id="same-version-twice"),
        pytest.param({"versions": {"v 1": {}}}, "not a version name", id="bad-version-name"),
        pytest.param({"versions": {}}, "at least 1", id="no-versions"),
        pytest.param({"headers": ["api version"]}, "not a header name", id="bad-header"),
        pytest.param(
            {"media_type_parameter": "v=1"}, "not a media-type parameter", id="bad-parameter"
        ),
        pytest.param(
            {"versions": {"v1": {"successor": 'https://x.example/"; rel=evil'}}},
            "without spaces, quotes",
            id="link-injection",
        ),
        pytest.param(
            {"versions": {"v1": {"deprecation_link": "javascript:alert(1)"}}},
            "absolute http(s) URL",
            id="link-scheme",
        ),
        pytest.param({"sources": []}, "at least 1", id="no-sources"),
        pytest.param({"sources": ["query"]}, "path", id="unknown-source"),
    ],
)
def test_config_refuses(settings: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config(**settings)
