"""openapi: requests are checked against the operation the document describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnprocessableContent,
    UnsupportedMediaType,
)
from bastion.http.response import problem_response
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from tests.support import make_ctx

BANK = Path(__file__).resolve().parents[3] / "examples/bank/openapi.yaml"

SPEC_30: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/items": {
            "get": {
                "parameters": [
                    {
                        "name": "tags",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    },
                    {
                        "name": "ids",
                        "in": "query",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    },
                    {
                        "name": "words",
                        "in": "query",
                        "style": "pipeDelimited",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {
                        "name": "filter",
                        "in": "query",
                        "style": "deepObject",
                        "schema": {
                            "type": "object",
                            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                        },
                    },
                    {
                        "name": "score",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                    },
                    {
                        "name": "note",
                        "in": "query",
                        "schema": {"type": "string", "nullable": True, "maxLength": 5},
                    },
                    {
                        "name": "session",
                        "in": "cookie",
                        "schema": {"type": "string", "pattern": "^[a-f0-9]{4}$"},
                    },
                ],
                "responses": {"200": {"description": "ok"}},
            },
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}},
                        "application/x-www-form-urlencoded": {
                            "schema": {"$ref": "#/components/schemas/Item"}
                        },
                    },
                },
                "responses": {"201": {"description": "created"}},
            },
        },
        "/items/{id}": {
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
            ],
            "get": {"responses": {"200": {"description": "ok"}}},
        },
        "/items/latest": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/files/{name}.{ext}": {
            "get": {
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "ext",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["txt", "md"]},
                    },
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/free": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string", "maxLength": 20},
                    "count": {"type": "integer"},
                    "price": {"type": "number", "maximum": 100, "exclusiveMaximum": True},
                    "owner": {"$ref": "#/components/schemas/Owner"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "big": {"type": "integer", "format": "int64"},
                },
            },
            "Owner": {
                "type": "object",
                "nullable": True,
                "properties": {"email": {"type": "string", "format": "email"}},
            },
        }
    },
}


def _policy(
    tmp_path: Path, spec: dict[str, Any] | None = None, **settings: object
) -> OpenAPIPolicy:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec or SPEC_30))
    config = OpenAPIConfig.model_validate({"spec": str(path), **settings})
    return OpenAPIPolicy(config, PolicyDeps(clock=FakeClock()))


@pytest.fixture
def policy(tmp_path: Path) -> OpenAPIPolicy:
    return _policy(tmp_path)


@pytest.fixture(scope="module")
def bank() -> OpenAPIPolicy:
    return OpenAPIPolicy(OpenAPIConfig(spec=BANK), PolicyDeps(clock=FakeClock()))


JSON = (b"content-type", b"application/json")


def _post(path: str, body: bytes, *headers: tuple[bytes, bytes]):
    return make_ctx("POST", path, headers=[(b"host", b"h"), *headers], body=body)


def _errors(exc: pytest.ExceptionInfo[Any]) -> list[dict[str, str]]:
    return exc.value.extra["errors"]  # type: ignore[no-any-return]


def test_runs_in_the_validate_band():
    assert OpenAPIPolicy.priority == Priority.VALIDATE


# --- routing --------------------------------------------------------------------------------


def test_access_admits_a_documented_request(bank):
    assert bank.access(make_ctx("GET", "/v1/accounts/acc_12345678")) is None


def test_access_refuses_an_undocumented_path_with_404(bank):
    with pytest.raises(NotFound):
        bank.access(make_ctx("GET", "/v1/admin"))


def test_access_refuses_an_undocumented_method_with_405_and_allow(bank):
    with pytest.raises(MethodNotAllowed) as exc:
        bank.access(make_ctx("DELETE", "/v1/transfers"))
    assert exc.value.headers == [(b"allow", b"POST")]


def test_head_is_checked_as_get(bank):
    assert bank.access(make_ctx("HEAD", "/v1/accounts")) is None


def test_concrete_paths_win_over_templates(policy):
    assert policy.operation("GET", "/items/latest")[0].template == "/items/latest"
    assert policy.operation("GET", "/items/7")[0].template == "/items/{id}"


def test_partial_template_segments_are_matched(policy):
    assert policy.access(make_ctx("GET", "/files/readme.md")) is None
    with pytest.raises(InvalidRequest):
        policy.access(make_ctx("GET", "/files/readme.exe"))


def test_base_path_is_removed_before_matching(tmp_path):
    policy = _policy(tmp_path, base_path="/api")
    assert policy.access(make_ctx("GET", "/api/items/3")) is None
    with pytest.raises(NotFound):
        policy.access(make_ctx("GET", "/items/3"))


# --- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        b"tags=1&tags=2",
        b"ids=1,2,3",
        b"words=a|b",
        b"filter[min]=1&filter[max]=9",
        b"score=0.5",
        b"note=abc",
        b"",
    ],
    ids=["form-exploded", "form-unexploded", "pipe", "deep-object", "number", "string", "none"],
)
def test_access_admits_parameters_in_every_style(policy, query):
    assert policy.access(make_ctx("GET", "/items", query=query)) is None


@pytest.mark.parametrize(
    ("query", "name"),
    [
        (b"tags=1&tags=x", "tags"),
        (b"ids=1,x", "ids"),
        (b"filter[min]=a", "filter"),
        (b"score=0", "score"),
        (b"note=toolong", "note"),
        (b"score=NaN", "score"),
        (b"score=1&score=2", "score"),
    ],
    ids=[
        "array-item",
        "unexploded-item",
        "deep-member",
        "exclusive-minimum-30",
        "max-length",
        "nan",
        "repeated-primitive",
    ],
)
def test_access_refuses_invalid_query_parameters_naming_them(policy, query, name):
    with pytest.raises(InvalidRequest) as exc:
        policy.access(make_ctx("GET", "/items", query=query))
    assert [error["name"] for error in _errors(exc)] == [name]
    assert all(error["in"] == "query" for error in _errors(exc))


def test_access_refuses_a_path_parameter_of_the_wrong_type(policy):
    with pytest.raises(InvalidRequest) as exc:
        policy.access(make_ctx("GET", "/items/abc"))
    assert _errors(exc) == [{"in": "path", "name": "id", "message": "has the wrong type"}]


def test_access_refuses_an_undeclared_query_parameter_by_default(policy):
    with pytest.raises(InvalidRequest) as exc:
        policy.access(make_ctx("GET", "/items", query=b"debug=1"))
    assert _errors(exc) == [{"in": "query", "name": "debug", "message": "is not allowed"}]


def test_strip_removes_undeclared_query_parameters_before_forwarding(tmp_path):
    policy = _policy(tmp_path, additional="strip")
    ctx = make_ctx("GET", "/items", query=b"debug=1&tags=2&x%20y=3")
    assert policy.access(ctx) is None
    assert ctx.request.query == b"tags=2"


def test_allow_forwards_undeclared_query_parameters(tmp_path):
    policy = _policy(tmp_path, additional="allow")
    ctx = make_ctx("GET", "/items", query=b"debug=1")
    assert policy.access(ctx) is None
    assert ctx.request.query == b"debug=1"


def test_report_only_strip_leaves_the_request_untouched(tmp_path):
    policy = _policy(tmp_path, additional="strip", mode="report_only")
    ctx = make_ctx("GET", "/items", query=b"debug=1")
    assert policy.access(ctx) is None
    assert ctx.request.query == b"debug=1"


def test_cookie_parameters_are_checked(policy):
    ok = make_ctx("GET", "/items", headers=[(b"host", b"h"), (b"cookie", b"session=beef")])
    assert policy.access(ok) is None
    bad = make_ctx("GET", "/items", headers=[(b"host", b"h"), (b"cookie", b"session=zz")])
    with pytest.raises(InvalidRequest) as exc:
        policy.access(bad)
    assert _errors(exc)[0]["in"] == "cookie"


def test_required_header_parameter_is_enforced(bank):
    body = (
        b'{"from_account":"acc_12345678","to_account":"acc_87654321","amount":"1","currency":"EUR"}'
    )
    with pytest.raises(InvalidRequest) as exc:
        bank.access(_post("/v1/transfers", body, JSON))
    assert _errors(exc) == [{"in": "header", "name": "Idempotency-Key", "message": "is required"}]


# --- bodies ---------------------------------------------------------------------------------


def test_access_admits_a_valid_json_body(policy):
    assert policy.access(_post("/items", b'{"name": "pen", "count": 2}', JSON)) is None


def test_access_admits_a_valid_form_body_with_coerced_fields(policy):
    form = (b"content-type", b"application/x-www-form-urlencoded; charset=utf-8")
    assert policy.access(_post("/items", b"name=pen&count=2&tags=a&tags=b", form)) is None
    with pytest.raises(UnprocessableContent):
        policy.access(_post("/items", b"name=pen&count=two", form))


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (b'{"count": 1}', "/name", "is required"),
        (b'{"name": "pen", "id": 5}', "/id", "is read-only and cannot be sent"),
        (b'{"name": "pen", "price": 100}', "/price", "must be less than 100"),
        (
            b'{"name": "pen", "count": 9007199254740992}',
            "/count",
            "is greater than 9007199254740991",
        ),
        (
            b'{"name": "pen", "owner": {"email": "nope"}}',
            "/owner/email",
            "is not in the required format",
        ),
        (b'{"name": "pen", "admin": true}', "/admin", "is not allowed"),
        (b'{"name": "pen", "owner": {"role": "x"}}', "/owner/role", "is not allowed"),
    ],
    ids=[
        "required",
        "read-only",
        "exclusive-maximum-30",
        "big-integer",
        "format",
        "mass-assignment",
        "nested-undeclared",
    ],
)
def test_access_refuses_an_invalid_body_with_422_and_a_pointer(policy, body, path, message):
    with pytest.raises(UnprocessableContent) as exc:
        policy.access(_post("/items", body, JSON))
    assert {"in": "body", "path": path, "message": message} in _errors(exc)


def test_nullable_30_schema_admits_null(policy):
    assert policy.access(_post("/items", b'{"name": "pen", "owner": null}', JSON)) is None


def test_int64_format_allows_integers_beyond_2_53(policy):
    assert policy.access(_post("/items", b'{"name": "pen", "big": 9007199254740993}', JSON)) is None


@pytest.mark.parametrize(
    "body",
    [b'{"name": NaN}', b'{"name": "pen"', b'{"name": Infinity}', b"\xff"],
    ids=["nan", "truncated", "infinity", "not-utf8"],
)
def test_access_refuses_an_unparsable_body_with_400(policy, body):
    with pytest.raises(InvalidRequest) as exc:
        policy.access(_post("/items", body, JSON))
    assert _errors(exc) == [{"in": "body", "path": "", "message": "is not valid JSON"}]


def test_access_refuses_an_undocumented_media_type_with_415(policy):
    with pytest.raises(UnsupportedMediaType):
        policy.access(_post("/items", b"name=pen", (b"content-type", b"text/plain")))


def test_access_refuses_a_missing_required_body(policy):
    with pytest.raises(InvalidRequest):
        policy.access(_post("/items", b"", JSON))


def test_access_refuses_a_body_on_an_operation_without_one(policy):
    ctx = make_ctx("GET", "/items/1", body=b"{}", headers=[(b"host", b"h"), JSON])
    with pytest.raises(InvalidRequest) as exc:
        policy.access(ctx)
    assert _errors(exc)[0]["message"] == "this operation takes no request body"


def test_duplicate_keys_are_refused_only_when_configured(tmp_path):
    body = b'{"name": "pen", "name": "evil"}'
    assert _policy(tmp_path).access(_post("/items", body, JSON)) is None
    strict = _policy(tmp_path, reject_duplicate_keys=True)
    with pytest.raises(InvalidRequest) as exc:
        strict.access(_post("/items", body, JSON))
    assert _errors(exc)[0]["message"] == "has a duplicate object key"


def test_strip_removes_undeclared_body_properties(tmp_path):
    policy = _policy(tmp_path, additional="strip")
    ctx = _post(
        "/items", b'{"name": "pen", "admin": true, "owner": {"email": "a@b.co", "x": 1}}', JSON
    )
    assert policy.access(ctx) is None
    assert orjson.loads(ctx.request.body or b"") == {"name": "pen", "owner": {"email": "a@b.co"}}


def test_strip_still_refuses_other_errors(tmp_path):
    policy = _policy(tmp_path, additional="strip")
    with pytest.raises(UnprocessableContent):
        policy.access(_post("/items", b'{"admin": true}', JSON))


def test_free_form_objects_stay_open_under_reject(policy):
    assert policy.access(_post("/free", b'{"anything": {"goes": [1]}}', JSON)) is None


def test_errors_never_echo_client_values(policy):
    secret = "s3cr3t-<script>-value"
    body = orjson.dumps({"name": secret * 3, "count": secret})
    with pytest.raises(UnprocessableContent) as exc:
        policy.access(_post("/items", body, JSON))
    rendered = problem_response(exc.value, "rid").body
    assert b"s3cr3t" not in rendered
    with pytest.raises(InvalidRequest) as exc2:
        policy.access(make_ctx("GET", "/items", query=b"score=" + secret.encode()))
    assert b"s3cr3t" not in problem_response(exc2.value, "rid").body


def test_problem_document_lists_errors(policy):
    with pytest.raises(UnprocessableContent) as exc:
        policy.access(_post("/items", b'{"count": "x"}', JSON))
    document = orjson.loads(problem_response(exc.value, "rid").body)
    assert document["status"] == 422
    assert document["code"] == "unprocessable_content"
    assert {"in": "body", "path": "/count", "message": "has the wrong type"} in document["errors"]


def test_body_buffering_is_requested_only_when_an_operation_needs_it(tmp_path):
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
    assert _policy(tmp_path, spec, additional="allow").needs_request_body is False
    assert _policy(tmp_path).needs_request_body is True
