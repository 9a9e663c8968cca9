"""API versioning through both front doors: lifecycle headers, 410 after sunset, 400 if bad."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.frontdoor import FRONT_DOORS, FrontDoor, Reply, open_front_door

pytestmark = pytest.mark.integration

VERSIONING = {
    "default": "v2",
    "versions": {
        "v0": {
            "deprecated_at": "2019-01-01T00:00:00Z",
            "sunset_at": "2020-01-01T00:00:00Z",
            "successor": "https://api.example/v2",
        },
        "v1": {
            "deprecated_at": "2023-06-30T23:59:59Z",
            "sunset_at": "2099-12-31T23:59:59Z",
            "successor": "https://api.example/v2",
            "deprecation_link": "https://developer.example.com/deprecation",
        },
        "v2": {},
    },
}


@pytest.fixture(scope="module", params=FRONT_DOORS)
def versioned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontDoor]:
    """A front door whose global policies include versioning."""
    document = {
        "global_policies": {"request_id": {}, "versioning": VERSIONING},
        "services": [{"name": "echo", "routes": [{"name": "all", "paths": ["/"]}]}],
    }
    state_dir = tmp_path_factory.mktemp("versioning")
    with open_front_door(request.param, state_dir, document) as door:
        yield door


def _get(door: FrontDoor, path: str, headers: dict[str, str] | None = None) -> Reply:
    return door.request("GET", path, headers)


def test_deprecated_version_is_served_with_lifecycle_headers(versioned: FrontDoor) -> None:
    response = _get(versioned, "/v1/accounts")
    assert response.status_code == 200
    assert response.json()["path"] == "/v1/accounts"
    assert response.headers["deprecation"] == "@1688169599"
    assert response.headers["sunset"] == "Thu, 31 Dec 2099 23:59:59 GMT"
    assert response.headers.get_list("link") == [
        '<https://api.example/v2>; rel="successor-version"',
        '<https://developer.example.com/deprecation>; rel="deprecation"',
    ]


def test_current_version_by_header_has_no_lifecycle_headers(versioned: FrontDoor) -> None:
    response = _get(versioned, "/accounts", {"Accept-Version": "2"})
    assert response.status_code == 200
    assert "deprecation" not in response.headers
    assert "sunset" not in response.headers


def test_media_type_parameter_selects_the_version(versioned: FrontDoor) -> None:
    response = _get(versioned, "/accounts", {"Accept": "application/json; version=1"})
    assert response.status_code == 200
    assert response.headers["deprecation"] == "@1688169599"


def test_sunset_version_gets_410_problem_json(versioned: FrontDoor) -> None:
    before = versioned.upstream_calls()
    response = _get(versioned, "/v0/accounts")
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (410, "api_version_sunset")
    assert response.headers["sunset"] == "Wed, 01 Jan 2020 00:00:00 GMT"
    assert response.headers["link"] == '<https://api.example/v2>; rel="successor-version"'
    assert versioned.upstream_calls() == before  # never reached the upstream


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        pytest.param("/v7/accounts", {}, "unknown_api_version", id="unknown"),
        pytest.param(
            "/v1/accounts", {"API-Version": "2"}, "conflicting_api_version", id="conflict"
        ),
    ],
)
def test_bad_versions_get_400(
    versioned: FrontDoor, path: str, headers: dict[str, str], code: str
) -> None:
    response = _get(versioned, path, headers)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_config_with_sunset_before_deprecation_is_refused(tmp_path: Path) -> None:
    from bastion.config.loader import ConfigErrors, parse_config

    document = {
        "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
        "global_policies": {
            "versioning": {
                "versions": {
                    "v1": {
                        "deprecated_at": "2026-06-01T00:00:00Z",
                        "sunset_at": "2026-01-01T00:00:00Z",
                    }
                }
            }
        },
    }
    with pytest.raises(ConfigErrors) as info:
        parse_config(document, base_dir=tmp_path)
    assert any(
        line.startswith("global_policies.versioning.versions.v1") for line in info.value.lines
    )
