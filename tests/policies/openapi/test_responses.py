"""openapi response validation: upstream responses checked, stripped or replaced."""

from __future__ import annotations

import copy
import gzip
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.http.headers import Headers
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from bastion.policies.openapi.policy import (
    INVALID_UPSTREAM,
    NOT_STRIPPED,
    NOT_VALIDATED,
    UNDOCUMENTED_FIELDS,
    UNDOCUMENTED_MEDIA,
    UNDOCUMENTED_STATUS,
)
from tests.support import make_ctx

USER_SCHEMA = {"$ref": "#/components/schemas/User"}
SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "components": {
        "schemas": {
            "User": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "password": {"type": "string", "writeOnly": True},
                    "address": {"$ref": "#/components/schemas/Address"},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                },
            },
            "Address": {"type": "object", "properties": {"city": {"type": "string"}}},
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}},
            "Meta": {
                "type": "object",
                "additionalProperties": True,
                "properties": {"v": {"type": "integer"}},
            },
        }
    },
    "paths": {
        "/users/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": USER_SCHEMA}},
                    },
                    "4XX": {
                        "description": "error",
                        "content": {
                            "application/problem+json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"title": {"type": "string"}},
                                }
                            }
                        },
                    },
                },
            },
            "delete": {"responses": {"204": {"description": "gone"}}},
        },
        "/meta": {
            "get": {
                "responses": {
                    "default": {
                        "description": "any",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Meta"}}
                        },
                    }
                }
            }
        },
        "/report": {
            "get": {
                "responses": {"200": {"description": "pdf", "content": {"application/pdf": {}}}}
            }
        },
    },
}
JSON = (b"content-type", b"application/json")
USER = {"id": 1, "name": "ann", "address": {"city": "Oslo"}, "tags": [{"label": "a"}]}


def _policy(tmp_path: Path, **settings: object) -> OpenAPIPolicy:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    config = OpenAPIConfig.model_validate({"spec": str(path), **settings})
    return OpenAPIPolicy(config, PolicyDeps(clock=FakeClock()))


def _exchange(
    policy: OpenAPIPolicy,
    status: int,
    body: bytes | list[bytes],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    path: str = "/users/1",
) -> tuple[RequestContext, list[bytes]]:
    """Drive the phases as a front door does; returns the context and every output chunk."""
    ctx = make_ctx(method, path)
    assert policy.access(ctx) is None
    ctx.status = status
    upstream = [JSON, (b"x-upstream", b"1")] if headers is None else headers
    ctx.response_headers = Headers(upstream)
    policy.header_filter(ctx)
    chunks = body if isinstance(body, list) else [body]
    out = [policy.body_filter(ctx, chunk, False) for chunk in chunks]
    out.append(policy.body_filter(ctx, b"", True))
    return ctx, out


def _codes(ctx: RequestContext) -> list[str]:
    return [report.code for report in ctx.reports]


def test_response_phases_stay_off_the_chain_unless_configured(tmp_path):
    chain = Chain([_policy(tmp_path)])
    assert not chain.has_body_filter
    assert not chain.has_header_filter
    assert Chain([_policy(tmp_path, validate_responses="enforce")]).has_body_filter


@pytest.mark.parametrize("mode", ["report_only", "enforce"])
def test_a_documented_response_passes_unchanged(tmp_path, mode):
    body = orjson.dumps(USER)
    ctx, out = _exchange(_policy(tmp_path, validate_responses=mode), 200, body)
    assert ctx.status == 200
    assert b"".join(out) == body
    assert ctx.reports == []
    assert ctx.reject is None


@pytest.mark.parametrize(
    "leaked",
    [
        {**USER, "ssn": "123-45-6789"},
        {**USER, "address": {"city": "Oslo", "ssn": "123-45-6789"}},
        {**USER, "tags": [{"label": "a", "ssn": "123-45-6789"}]},
        {**USER, "password": "123-45-6789"},
    ],
    ids=["top-level", "nested-object", "array-item", "write-only"],
)
def test_enforce_replaces_excessive_data_exposure_with_a_502(tmp_path, leaked):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx, out = _exchange(policy, 200, orjson.dumps(leaked))
    body = b"".join(out)
    assert ctx.status == 502
    assert b"123-45-6789" not in body
    problem = orjson.loads(body)
    assert problem["code"] == INVALID_UPSTREAM
    assert problem["status"] == 502
    assert "errors" not in problem  # nothing of the upstream's response is echoed
    assert ctx.response_headers.get(b"content-type") == b"application/problem+json"
    assert ctx.response_headers.get(b"content-length") == str(len(body)).encode()
    assert ctx.response_headers.get(b"x-upstream") is None
    assert ctx.rejected_by == "openapi"


def test_replacement_keeps_headers_other_policies_added(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx = make_ctx("GET", "/users/1")
    policy.access(ctx)
    ctx.status = 200
    ctx.response_headers = Headers([JSON, (b"x-upstream", b"1")])
    policy.header_filter(ctx)
    ctx.response_headers.add(b"x-request-id", b"abc")  # a later policy's header_filter
    out = policy.body_filter(ctx, orjson.dumps({"id": 1, "extra": 1}), True)
    assert orjson.loads(out)["code"] == INVALID_UPSTREAM
    assert ctx.response_headers.get(b"x-request-id") == b"abc"
    assert ctx.response_headers.get(b"x-upstream") is None


def test_report_only_forwards_unchanged_and_reports(tmp_path):
    body = orjson.dumps({**USER, "ssn": "x"})
    ctx, out = _exchange(_policy(tmp_path, validate_responses="report_only"), 200, body)
    assert b"".join(out) == body
    assert ctx.status == 200
    assert _codes(ctx) == [UNDOCUMENTED_FIELDS]
    assert ctx.reject is None


def test_policy_report_only_mode_never_replaces(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce", mode="report_only")
    body = orjson.dumps({"id": "not a number"})
    ctx, out = _exchange(policy, 200, body)
    assert b"".join(out) == body
    assert _codes(ctx) == [INVALID_UPSTREAM]


def test_schema_mismatch_is_an_invalid_upstream_response(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx, out = _exchange(policy, 200, orjson.dumps({"name": 5}))
    assert ctx.status == 502
    assert orjson.loads(b"".join(out))["code"] == INVALID_UPSTREAM


def test_unparsable_json_is_an_invalid_upstream_response(tmp_path):
    policy = _policy(tmp_path, validate_responses="report_only")
    ctx, _ = _exchange(policy, 200, b"{not json")
    assert _codes(ctx) == [INVALID_UPSTREAM]


def test_additional_properties_true_keeps_the_schema_open(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    body = orjson.dumps({"v": 1, "anything": [1, 2]})
    ctx, out = _exchange(policy, 200, body, path="/meta")
    assert b"".join(out) == body
    assert ctx.status == 200


def test_undocumented_status_is_replaced_before_any_body_byte(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx = make_ctx("GET", "/users/1")
    policy.access(ctx)
    ctx.status = 500
    ctx.response_headers = Headers([JSON, (b"set-cookie", b"s=1")])
    policy.header_filter(ctx)
    # Decided from the head alone: the front door sends this head, with a Content-Length.
    assert ctx.status == 502
    assert ctx.response_headers.get(b"set-cookie") is None
    assert ctx.response_headers.get(b"content-length") is not None
    assert policy.body_filter(ctx, b'{"trace": "secret"}', False) == b""
    end = policy.body_filter(ctx, b"", True)
    assert orjson.loads(end)["code"] == INVALID_UPSTREAM


@pytest.mark.parametrize(
    ("method", "status", "headers", "body", "code"),
    [
        ("GET", 500, [JSON], b"{}", UNDOCUMENTED_STATUS),
        ("DELETE", 200, [JSON], b"{}", UNDOCUMENTED_STATUS),
        ("GET", 200, [(b"content-type", b"text/html")], b"<p>", UNDOCUMENTED_MEDIA),
        ("GET", 200, [], b"{}", UNDOCUMENTED_MEDIA),
        ("DELETE", 204, [JSON], b"", None),
        ("GET", 404, [(b"content-type", b"application/problem+json")], b'{"title": "x"}', None),
    ],
    ids=["status", "status-of-method", "media-type", "no-content-type", "no-body", "range"],
)
def test_status_and_media_type_are_checked(tmp_path, method, status, headers, body, code):
    policy = _policy(tmp_path, validate_responses="report_only")
    ctx, _ = _exchange(policy, status, body, headers=headers, method=method)
    assert _codes(ctx) == ([code] if code else [])


def test_an_undocumented_body_without_content_type_is_replaced(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx, _ = _exchange(policy, 204, [b""], headers=[], method="DELETE")
    assert ctx.status == 204
    ctx, out = _exchange(policy, 200, [b"leak", b"more"], headers=[])
    assert ctx.status == 502
    assert b"leak" not in b"".join(out)


def test_non_json_media_streams_without_buffering(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx, out = _exchange(
        policy,
        200,
        [b"%PDF-1", b"..."],
        headers=[(b"content-type", b"application/pdf")],
        path="/report",
    )
    assert out == [b"%PDF-1", b"...", b""]
    assert ctx.reports == []


def test_head_requests_are_not_judged_on_their_empty_body(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx, _ = _exchange(policy, 200, b"", method="HEAD")
    assert ctx.status == 200
    assert ctx.reports == []


def test_an_earlier_rejection_is_left_alone(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce")
    ctx = make_ctx("GET", "/users/x")
    with pytest.raises(Exception, match="parameters"):
        policy.access(ctx)
    ctx.status = 400
    ctx.response_headers = Headers([(b"content-type", b"application/problem+json")])
    policy.header_filter(ctx)
    assert policy.body_filter(ctx, b"{}", True) == b"{}"
    assert ctx.status == 400


def test_strip_removes_undocumented_fields_recursively(tmp_path):
    policy = _policy(tmp_path, strip_undocumented_response_fields=True)
    leaked = {
        **USER,
        "ssn": "1",
        "password": "2",
        "address": {"city": "Oslo", "geo": [1, 2]},
        "tags": [{"label": "a", "owner": "3"}, {"label": "b"}],
    }
    ctx, out = _exchange(policy, 200, [orjson.dumps(leaked)[:10], orjson.dumps(leaked)[10:]])
    body = b"".join(out)
    assert orjson.loads(body) == USER | {"tags": [{"label": "a"}, {"label": "b"}]}
    assert ctx.response_headers.get(b"content-length") == str(len(body)).encode()
    assert ctx.reports == []  # stripping alone (validate_responses off) reports nothing


def test_strip_with_enforce_forwards_the_stripped_body(tmp_path):
    policy = _policy(
        tmp_path, strip_undocumented_response_fields=True, validate_responses="enforce"
    )
    ctx, out = _exchange(policy, 200, orjson.dumps({**USER, "ssn": "1"}))
    assert orjson.loads(b"".join(out)) == USER
    assert ctx.status == 200


def test_strip_with_enforce_still_refuses_other_mismatches(tmp_path):
    policy = _policy(
        tmp_path, strip_undocumented_response_fields=True, validate_responses="enforce"
    )
    ctx, out = _exchange(policy, 200, orjson.dumps({"id": "one", "ssn": "1"}))
    assert ctx.status == 502
    assert b"ssn" not in b"".join(out)


def test_a_response_over_the_bound_streams_unvalidated(tmp_path):
    policy = _policy(tmp_path, validate_responses="enforce", max_response_bytes=64)
    leaked = orjson.dumps({**USER, "ssn": "x" * 100})
    pieces = [leaked[:30], leaked[30:60], leaked[60:]]
    ctx, out = _exchange(policy, 200, pieces)
    assert out[0] == b""  # held back while under the bound
    assert b"".join(out) == leaked  # then released as it was
    assert ctx.status == 200
    assert _codes(ctx) == [NOT_VALIDATED]


@pytest.mark.parametrize(
    "settings",
    [
        {"validate_responses": "report_only"},
        {"validate_responses": "enforce"},
        {"strip_undocumented_response_fields": True},
    ],
    ids=["report_only", "enforce", "strip"],
)
def test_the_forwarded_request_asks_for_an_unencoded_response(tmp_path, settings):
    ctx = make_ctx("GET", "/users/1", headers=[(b"accept-encoding", b"gzip, br")])
    _policy(tmp_path, **settings).access(ctx)
    assert ctx.request.headers.get_all(b"accept-encoding") == [b"identity"]


def test_without_response_checks_accept_encoding_is_left_alone(tmp_path):
    ctx = make_ctx("GET", "/users/1", headers=[(b"accept-encoding", b"gzip")])
    _policy(tmp_path).access(ctx)
    assert ctx.request.headers.get(b"accept-encoding") == b"gzip"


GZIP = [JSON, (b"content-encoding", b"gzip")]


@pytest.mark.parametrize("strip", [False, True], ids=["validate", "validate-and-strip"])
def test_a_compressed_response_fails_enforce(tmp_path, strip):
    policy = _policy(
        tmp_path, validate_responses="enforce", strip_undocumented_response_fields=strip
    )
    leaked = gzip.compress(orjson.dumps({**USER, "ssn": "1"}))
    ctx, out = _exchange(policy, 200, leaked, headers=GZIP)
    assert ctx.status == 502
    assert orjson.loads(b"".join(out))["code"] == INVALID_UPSTREAM


@pytest.mark.parametrize(
    "settings",
    [
        {"validate_responses": "report_only"},
        {"validate_responses": "report_only", "strip_undocumented_response_fields": True},
        {"strip_undocumented_response_fields": True},
    ],
    ids=["report_only", "report_only-and-strip", "strip"],
)
def test_a_compressed_response_is_forwarded_with_an_event_otherwise(tmp_path, settings):
    body = gzip.compress(orjson.dumps({**USER, "ssn": "1"}))
    ctx, out = _exchange(_policy(tmp_path, **settings), 200, body, headers=GZIP)
    assert (ctx.status, b"".join(out)) == (200, body)
    assert _codes(ctx) == [NOT_VALIDATED]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"validate_responses": "on"}, "Input should be"),
        ({"max_response_bytes": 0}, "greater than 0"),
        ({"strip_undocumented_response_fields": "maybe"}, "valid boolean"),
    ],
    ids=["mode", "bound", "strip"],
)
def test_refuses_invalid_response_settings(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        _policy(tmp_path, **settings)


def test_a_response_schema_that_cannot_compile_is_a_load_error(tmp_path):
    spec = {
        **SPEC,
        "paths": {
            "/bad": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "string", "pattern": "^(?=a)a$"}
                                }
                            },
                        }
                    }
                }
            }
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    config = OpenAPIConfig.model_validate({"spec": str(path), "validate_responses": "enforce"})
    with pytest.raises(ValueError, match="responses/200"):
        OpenAPIPolicy(config, PolicyDeps(clock=FakeClock()))


def test_strip_alone_leaves_undocumented_statuses_and_media_alone(tmp_path):
    policy = _policy(tmp_path, strip_undocumented_response_fields=True)
    ctx, out = _exchange(policy, 500, b'{"trace": 1}')
    assert (ctx.status, b"".join(out), ctx.reports) == (500, b'{"trace": 1}', [])
    ctx, out = _exchange(policy, 200, b"<p>", headers=[])
    assert (ctx.status, b"".join(out), ctx.reports) == (200, b"<p>", [])


def test_a_failing_check_fails_closed_in_enforce(tmp_path, monkeypatch):
    from bastion.policies.openapi import policy as module

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "check_json", broken)
    ctx, out = _exchange(_policy(tmp_path, validate_responses="enforce"), 200, b'{"id": 1}')
    assert ctx.status == 502
    assert b'"id": 1' not in b"".join(out)
    ctx, out = _exchange(_policy(tmp_path, validate_responses="report_only"), 200, b'{"id": 1}')
    assert b"".join(out) == b'{"id": 1}'


def _spec_policy(tmp_path: Path, schema: dict[str, Any], **settings: object) -> OpenAPIPolicy:
    spec = copy.deepcopy(SPEC)
    content = spec["paths"]["/users/{id}"]["get"]["responses"]["200"]["content"]
    content["application/json"]["schema"] = schema
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    config = OpenAPIConfig.model_validate({"spec": str(path), **settings})
    return OpenAPIPolicy(config, PolicyDeps(clock=FakeClock()))


ANY_OF = {
    "anyOf": [
        {"type": "object", "properties": {"id": {"type": "integer"}}},
        {
            "type": "object",
            "properties": {"x": {"type": "object", "properties": {"y": {"type": "integer"}}}},
        },
    ]
}


@pytest.mark.parametrize("mode", ["report_only", "enforce"])
def test_stripping_never_turns_an_invalid_body_into_a_valid_one(tmp_path, mode):
    policy = _spec_policy(
        tmp_path, ANY_OF, validate_responses=mode, strip_undocumented_response_fields=True
    )
    body = orjson.dumps({"x": {"y": 1, "secret": "s3cr3t"}, "id": "not-an-integer"})
    ctx, out = _exchange(policy, 200, body)
    if mode == "enforce":
        assert ctx.status == 502
    else:
        assert _codes(ctx) == [INVALID_UPSTREAM]
    assert b"s3cr3t" not in b"".join(out)


def test_stripping_a_valid_any_of_body_still_passes_enforce(tmp_path):
    policy = _spec_policy(
        tmp_path, ANY_OF, validate_responses="enforce", strip_undocumented_response_fields=True
    )
    ctx, out = _exchange(policy, 200, orjson.dumps({"id": 1, "ssn": "1"}))
    assert (ctx.status, orjson.loads(b"".join(out))) == (200, {"id": 1})


WIDE = b'{"id": 1, "ssn": "123", "n": 18446744073709551616}'
NUMBERS = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "n": {"type": "integer"}},
}


@pytest.mark.parametrize("mode", ["off", "report_only"])
def test_a_body_with_integers_past_64_bits_is_not_rewritten(tmp_path, mode):
    policy = _spec_policy(
        tmp_path, NUMBERS, validate_responses=mode, strip_undocumented_response_fields=True
    )
    ctx, out = _exchange(policy, 200, WIDE)
    assert b"".join(out) == WIDE  # unchanged: orjson would write the number as a float
    assert NOT_STRIPPED in _codes(ctx)


def test_a_body_with_integers_past_64_bits_fails_enforce_when_it_leaks(tmp_path):
    policy = _spec_policy(
        tmp_path, NUMBERS, validate_responses="enforce", strip_undocumented_response_fields=True
    )
    ctx, out = _exchange(policy, 200, WIDE)
    assert ctx.status == 502
    assert b"123" not in b"".join(out)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 1, "ssn": "1", "n": 18446744073709551615}',
        b'{"id": 1, "ssn": "1", "n": -9223372036854775808}',
        b'{"id": 1, "ssn": "18446744073709551616123", "n": 1}',
        b'{"id": 1, "ssn": "1", "n": 1.18446744073709551616}',
        b'{"id": 1, "ssn": "1", "n": 1e-18446744073709551616}',
    ],
    ids=["u64-max", "i64-min", "digits-in-a-string", "fraction", "exponent"],
)
def test_bodies_orjson_writes_back_faithfully_are_stripped(tmp_path, body):
    number = {"type": "number"}
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "n": number}}
    policy = _spec_policy(tmp_path, schema, strip_undocumented_response_fields=True)
    ctx, out = _exchange(policy, 200, body)
    assert b"ssn" not in b"".join(out)
    assert _codes(ctx) == []


def test_the_warning_names_no_full_property_name(tmp_path, caplog):
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    policy = _spec_policy(tmp_path, schema, validate_responses="report_only")
    body = orjson.dumps({"id": 1, "alice.secret@example.com": 1, "bob@example.org": 2})
    with caplog.at_level(logging.WARNING, logger="bastion.openapi"):
        _exchange(policy, 200, body)
    text = caplog.text
    assert "2 undocumented properties" in text
    assert "example.com" not in text
    assert "bob@example.org" not in text


def test_a_body_made_invalid_by_stripping_fails_enforce(tmp_path):
    schema = {"type": "object", "minProperties": 2, "properties": {"id": {"type": "integer"}}}
    policy = _spec_policy(
        tmp_path, schema, validate_responses="enforce", strip_undocumented_response_fields=True
    )
    ctx, out = _exchange(policy, 200, orjson.dumps({"id": 1, "ssn": "123"}))
    assert ctx.status == 502
    assert b"123" not in b"".join(out)
