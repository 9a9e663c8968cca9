"""OpenAPI parsing: any JSON document either yields operations or a clear ScanError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from bastion.scanner.runner import FieldSchema, Operation, ScanError, operations_from_spec
from tests.scanner.fixtures.bank import spec

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["get", "post", "parameters", "name", "in", "security", "requestBody", "url", "x"]
            )
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["paths", "servers", "security", "basePath"]), JSON),
    st.text(max_size=8),
)
def test_operations_from_spec_never_crashes_on_hostile_documents(
    document: dict[str, object], server_url: str
):
    document = {**document, "servers": [{"url": server_url}]} if server_url else document
    try:
        operations = operations_from_spec(document)
    except ScanError:
        return
    assert all(isinstance(op, Operation) for op in operations)


@pytest.mark.parametrize("url", ["::::", "\x00"], ids=["colons", "nul"])
def test_operations_from_spec_refuses_a_server_url_that_is_not_a_url(url: str):
    with pytest.raises(ScanError, match="servers"):
        operations_from_spec({"paths": {}, "servers": [{"url": url}]})


def test_operations_from_spec_reads_security_parameters_and_bodies():
    operations = {(op.method, op.path): op for op in operations_from_spec(spec())}
    assert operations[("GET", "/v2/accounts")].secured
    assert not operations[("GET", "/v2/branches")].secured  # operation-level `security: []`
    item = operations[("GET", "/v2/accounts/{account_id}")]
    assert item.path_params == ["account_id"]
    assert operations[("PATCH", "/v2/profile")].body_example == '{"display_name": "Ada"}'


def test_operations_from_spec_resolves_parameter_refs_with_their_constraints():
    document = {
        "components": {
            "parameters": {
                "Limit": {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                }
            }
        },
        "paths": {
            "/v1/items": {"get": {"parameters": [{"$ref": "#/components/parameters/Limit"}]}}
        },
    }
    (operation,) = operations_from_spec(document)
    (limit,) = operation.parameters
    assert (limit.name, limit.location) == ("limit", "query")
    assert limit.schema == FieldSchema(kind="integer", minimum=1, maximum=100)
