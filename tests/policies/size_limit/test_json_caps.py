"""size_limit JSON caps: depth, array length, string length and key count of JSON bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.config.loader import ConfigErrors, parse_config
from bastion.core.chain import Chain
from bastion.core.policy import PolicyDeps
from bastion.errors import InvalidRequest, PayloadTooLarge, Reject
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from bastion.policies.size_limit import SizeLimitConfig, SizeLimitPolicy
from bastion.policies.size_limit.json_caps import JSONCaps, exceeded, parse_capped
from bastion.policies.size_limit.policy import PARSED_JSON
from tests.support import make_ctx

JSON = (b"content-type", b"application/json")


def _policy(**caps: object) -> SizeLimitPolicy:
    return SizeLimitPolicy(SizeLimitConfig.model_validate(caps), PolicyDeps(clock=FakeClock()))


def _post(body: bytes, content_type: bytes = b"application/json"):
    headers = [(b"host", b"h"), (b"content-type", content_type)]
    return make_ctx("POST", "/", headers=headers, body=body)


def _measure(value: object) -> tuple[int, int, int, int]:
    """Reference: (depth, longest array, longest string or key, most keys), recursively."""
    if isinstance(value, str):
        return 0, 0, len(value), 0
    if isinstance(value, list):
        inner = [_measure(item) for item in value]
        return (
            1 + max((m[0] for m in inner), default=0),
            max([len(value), *(m[1] for m in inner)]),
            max((m[2] for m in inner), default=0),
            max((m[3] for m in inner), default=0),
        )
    if isinstance(value, dict):
        inner = [_measure(item) for item in value.values()]
        return (
            1 + max((m[0] for m in inner), default=0),
            max((m[1] for m in inner), default=0),
            max([*(len(key) for key in value), *(m[2] for m in inner)], default=0),
            max([len(value), *(m[3] for m in inner)]),
        )
    return 0, 0, 0, 0


documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)
caps = st.integers(1, 8) | st.none()


@settings(max_examples=300, deadline=None)
@given(documents, caps, caps, caps, caps)
def test_accepted_iff_within_every_cap(document, depth, items, string, keys):
    limits = JSONCaps(depth, items, string, keys)
    measured = _measure(document)
    within = all(
        cap is None or value <= cap
        for value, cap in zip(measured, (depth, items, string, keys), strict=True)
    )
    _, cap = parse_capped(orjson.dumps(document), limits)
    assert (cap is None) == within
    ctx = _post(orjson.dumps(document))
    policy = _policy(
        max_json_depth=depth,
        max_json_array_length=items,
        max_json_string_length=string,
        max_json_keys=keys,
    )
    if within:
        assert policy.access(ctx) is None
    else:
        with pytest.raises(Reject) as exc:
            policy.access(ctx)
        assert exc.value.extra == {"limit": cap}


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 1024))
def test_depth_beyond_the_parsers_own_limit_is_named_as_depth(nesting, cap):
    body = b"[" * nesting + b"]" * nesting
    _, found = parse_capped(body, JSONCaps(max_depth=cap))
    if nesting > cap:
        assert found == "max_json_depth"
    elif nesting <= PARSER_DEPTH:
        assert found is None
    # Between the two: past the recursion limit of the duplicate-refusing parser (~900
    # levels), a document counts as too deep whatever the cap (docs/validation.md).


PARSER_DEPTH = 800
"""Nesting the duplicate-refusing parser always reads (the recursion limit is 1000 frames)."""
CAP_SETTINGS = [
    {"max_json_depth": 8},
    {"max_json_array_length": 100},
    {"max_json_string_length": 64},
    {"max_json_keys": 10},
]


@pytest.mark.parametrize(
    "hidden",
    [
        b"[" * 1000 + b"]" * 1000,
        b'"' + b"x" * 100_000 + b'"',
        b"[" + b"1," * 10_000 + b"1]",
        b"{" + b",".join(b'"k%d":1' % i for i in range(1000)) + b"}",
    ],
    ids=["deep", "long-string", "long-array", "many-keys"],
)
@pytest.mark.parametrize("caps", CAP_SETTINGS, ids=["depth", "array", "string", "keys"])
def test_a_repeated_key_cannot_hide_a_value_from_the_caps(caps, hidden):
    body = b'{"a": ' + hidden + b', "a": 1}'
    with pytest.raises(Reject) as exc:
        _policy(**caps).access(_post(body))
    assert exc.value.error_code in ("duplicate_json_key", "json_too_deep")


@settings(max_examples=200, deadline=None)
@given(documents, st.text(max_size=4), st.sampled_from(CAP_SETTINGS))
def test_any_repeated_key_is_refused_while_a_cap_is_set(document, key, caps):
    members = [(key, document), ("other", 1), (key, 1)]
    body = b"{" + b",".join(orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in members) + b"}"
    with pytest.raises(InvalidRequest) as exc:
        _policy(**{name: 1024 for name in caps}).access(_post(body))
    assert exc.value.error_code == "duplicate_json_key"
    assert _policy().access(_post(body)) is None  # no cap set: not parsed at all


def test_nesting_past_the_parsers_recursion_limit_is_too_deep():
    body = b"[" * 5000 + b"]" * 5000
    with pytest.raises(InvalidRequest) as exc:
        _policy(max_json_keys=10).access(_post(body))
    assert exc.value.error_code == "json_too_deep"


def test_non_utf8_json_is_refused():
    with pytest.raises(InvalidRequest) as exc:
        _policy(max_json_keys=10).access(_post('{"a": "é"}'.encode("utf-16")))
    assert exc.value.error_code == "invalid_json"


def test_strings_count_characters_not_bytes():
    assert exceeded("ééé", JSONCaps(max_string_length=3)) is None
    assert exceeded({"ééé": 1}, JSONCaps(max_string_length=2)) == "max_json_string_length"


@pytest.mark.parametrize(
    ("caps", "body", "kind", "code", "limit"),
    [
        ({"max_json_depth": 2}, b'{"a": [[1]]}', InvalidRequest, "json_too_deep", "max_json_depth"),
        (
            {"max_json_array_length": 2},
            b"[1, 2, 3]",
            PayloadTooLarge,
            "json_array_too_long",
            "max_json_array_length",
        ),
        (
            {"max_json_string_length": 4},
            b'{"k": "secret-value"}',
            PayloadTooLarge,
            "json_string_too_long",
            "max_json_string_length",
        ),
        (
            {"max_json_keys": 1},
            b'{"a": 1, "b": 2}',
            PayloadTooLarge,
            "json_too_many_keys",
            "max_json_keys",
        ),
    ],
    ids=["depth", "array", "string", "keys"],
)
def test_each_cap_names_itself_without_echoing_data(caps, body, kind, code, limit):
    with pytest.raises(kind) as exc:
        _policy(**caps).access(_post(body))
    assert exc.value.error_code == code
    assert exc.value.extra == {"limit": limit}
    assert b"secret" not in exc.value.detail.encode()


def test_a_body_declared_json_that_does_not_parse_is_refused():
    with pytest.raises(InvalidRequest) as exc:
        _policy(max_json_depth=4).access(_post(b"[NaN]"))
    assert exc.value.error_code == "invalid_json"


@pytest.mark.parametrize(
    "content_type", [b"text/plain", b"application/x-www-form-urlencoded"], ids=["text", "form"]
)
def test_other_media_types_are_not_measured(content_type):
    assert _policy(max_json_depth=1).access(_post(b"[[[[", content_type)) is None


def test_vendor_json_media_types_are_measured():
    with pytest.raises(InvalidRequest):
        _policy(max_json_depth=1).access(_post(b"[[1]]", b"application/problem+json; x=1"))


def test_caps_buffer_the_body_only_when_set():
    assert not Chain([_policy()]).needs_request_body
    assert Chain([_policy(max_json_keys=5)]).needs_request_body


def test_report_only_reports_and_lets_the_body_through():
    policy = _policy(max_json_depth=1, mode="report_only")
    chain = Chain([policy])
    ctx = _post(b"[[1]]")
    assert chain.access(ctx) is None
    assert [report.code for report in ctx.reports] == ["json_too_deep"]


def test_openapi_reuses_the_parsed_document(tmp_path: Path):
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/": {
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    openapi = OpenAPIPolicy(OpenAPIConfig(spec=str(path)), PolicyDeps(clock=FakeClock()))
    chain = Chain([_policy(max_json_depth=3), openapi])
    ctx = _post(b'{"a": 1}')
    assert chain.access(ctx) is None
    body, document = ctx.request.extra[PARSED_JSON]
    assert body is ctx.request.body
    assert document == {"a": 1}


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_json_depth", 1025, "less than or equal to 1024"),
        ("max_json_depth", 0, "greater than 0"),
        ("max_json_array_length", -1, "greater than 0"),
        ("max_json_string_length", "big", "valid integer"),
        ("max_json_keys", 0, "greater than 0"),
    ],
    ids=["depth-over-orjson", "depth-zero", "array", "string", "keys"],
)
def test_bad_caps_are_config_errors_at_their_dotted_path(setting, value, message):
    document = {
        "listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}],
        "services": [
            {
                "name": "svc",
                "upstream": {"targets": ["http://127.0.0.1:9000"]},
                "routes": [
                    {"name": "r", "paths": ["/"], "policies": {"size_limit": {setting: value}}}
                ],
            }
        ],
    }
    with pytest.raises(ConfigErrors) as exc:
        parse_config(document, env={})
    (line,) = exc.value.lines
    assert line.startswith(f"services[0].routes[0].policies.size_limit.{setting}:")
    assert message in line


@pytest.mark.parametrize(
    "body",
    [b"[NaN]", b"[Infinity]", b"[1e400]", b"[-1e400]", b"\xef\xbb\xbf[1]", b'{"a": 1'],
    ids=["nan", "infinity", "overflow", "negative-overflow", "bom", "truncated"],
)
def test_what_orjson_refuses_the_duplicate_refusing_parse_refuses_too(body):
    with pytest.raises(ValueError):  # noqa: PT011 - orjson's error is a ValueError as well
        orjson.loads(body)
    with pytest.raises(InvalidRequest) as exc:
        _policy(max_json_keys=10).access(_post(body))
    assert exc.value.error_code == "invalid_json"
