"""The admin route table: matching, path parameters and the OpenAPI document built from it."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from bastion.admin.openapi import openapi_document
from bastion.admin.routes import OPERATIONS, match


@pytest.mark.parametrize(
    ("method", "path", "operation_id", "arguments"),
    [
        ("GET", "/admin/consumers", "listConsumers", ()),
        ("POST", "/admin/consumers", "createConsumer", ()),
        ("GET", "/admin/consumers/alice", "getConsumer", ("alice",)),
        ("DELETE", "/admin/consumers/c_0123", "deleteConsumer", ("c_0123",)),
        ("POST", "/admin/consumers/alice/keys", "issueKey", ("alice",)),
        ("POST", "/admin/keys/k1/revoke", "revokeKey", ("k1",)),
        ("PUT", "/admin/consumers/bob/password", "setPassword", ("bob",)),
        ("POST", "/admin/oauth/clients/cl_1/rotate-secret", "rotateClientSecret", ("cl_1",)),
        ("PUT", "/admin/config", "putConfig", ()),
        ("GET", "/admin/openapi.json", "openapi", ()),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_match_finds_the_operation_and_its_arguments(
    method: str, path: str, operation_id: str, arguments: tuple[str, ...]
) -> None:
    found = match(method, path)
    assert isinstance(found, tuple)
    assert found[0].operation_id == operation_id
    assert found[1] == arguments


@pytest.mark.parametrize(
    "path",
    [
        "/admin/consumers/",
        "/admin/consumers/a/b/c",
        "/admin/consumers/..",
        "/admin/consumers/-leading-dash",
        "/admin/config/extra",
        "/adminconsumers",
    ],
)
def test_match_refuses_unknown_paths(path: str) -> None:
    assert match("GET", path) is None


def test_match_lists_the_allowed_methods_for_a_known_path() -> None:
    assert match("PATCH", "/admin/consumers/alice") == ["GET", "DELETE"]
    assert match("DELETE", "/admin/config") == ["GET", "PUT"]


def test_operation_ids_are_unique() -> None:
    ids = [operation.operation_id for operation in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_openapi_document_is_valid_and_describes_every_operation() -> None:
    document = openapi_document()
    validate(document)
    paths = document["paths"]
    assert isinstance(paths, dict)
    for operation in OPERATIONS:
        described = paths[operation.template][operation.method.lower()]
        assert described["operationId"] == operation.operation_id
        assert str(operation.status) in described["responses"]
        if operation.request is not None:
            assert "requestBody" in described
