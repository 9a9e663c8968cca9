"""multipart/form-data: the bounded parser and request bodies checked against their schema."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.errors import InvalidRequest, UnprocessableContent
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from bastion.policies.openapi.multipart import (
    MAX_PART_HEADER_BYTES,
    MultipartError,
    boundary_of,
    parse_multipart,
)
from tests.support import make_ctx

BOUNDARY = b"b0undary"
Field = tuple[str, str | None, str | None, bytes]  # name, filename, content type, data


def encode(fields: list[Field], boundary: bytes = BOUNDARY) -> bytes:
    """A multipart/form-data body as clients send it."""
    out = b""
    for name, filename, content_type, data in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += b"--" + boundary + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        if content_type is not None:
            out += b"Content-Type: " + content_type.encode() + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def parse(body: bytes, *, max_parts: int = 100, max_part_bytes: int = 1 << 20) -> list[Field]:
    parts = parse_multipart(body, BOUNDARY, max_parts=max_parts, max_part_bytes=max_part_bytes)
    return [(p.name, p.filename, p.content_type, p.data) for p in parts]


# --- parser ---------------------------------------------------------------------------------


def test_parses_fields_and_files():
    fields: list[Field] = [
        ("name", None, None, b"ann"),
        ("avatar", "me.png", "image/png", b"\x89PNG\r\n\x00"),
        ("empty", None, None, b""),
    ]
    assert parse(encode(fields)) == fields


def test_quoted_parameters_are_unescaped():
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="a"; filename="x\\"y.txt"\r\n\r\n'
        b"1\r\n--b0undary--"
    )
    assert parse(body) == [("a", 'x"y.txt', None, b"1")]


@pytest.mark.parametrize(
    ("value", "boundary"),
    [
        (b"multipart/form-data; boundary=abc", b"abc"),
        (b'multipart/form-data; boundary="a b:c"', b"a b:c"),
        (b"multipart/form-data;boundary=abc ; charset=utf-8", b"abc"),
    ],
    ids=["token", "quoted", "spacing"],
)
def test_reads_the_boundary(value, boundary):
    assert boundary_of(value) == boundary


@pytest.mark.parametrize(
    "value",
    [
        b"multipart/form-data",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; boundary=" + b"a" * 71,
        b'multipart/form-data; boundary="ends with space "',
        b"multipart/form-data; boundary=a; boundary=b",
        b"multipart/form-data; boundary",
        b"/form-data; boundary=a",
    ],
    ids=["missing", "empty", "too-long", "trailing-space", "repeated", "no-value", "no-type"],
)
def test_refuses_a_bad_boundary(value):
    with pytest.raises(MultipartError):
        boundary_of(value)


OK_PART = b'Content-Disposition: form-data; name="a"\r\n\r\n1'


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"preamble\r\n--b0undary\r\n" + OK_PART + b"\r\n--b0undary--",
        b"--b0undary\r\n" + OK_PART,
        b"--b0undary\r\n" + OK_PART + b"\r\n--b0undary--trailing data",
        b"--b0undaryX\r\n" + OK_PART + b"\r\n--b0undary--",
        b"--b0undary\r\nno header block\r\n--b0undary--",
        b"--b0undary\r\n\r\n1\r\n--b0undary--",
        b"--b0undary\r\nContent-Type: text/plain\r\n\r\n1\r\n--b0undary--",
        b'--b0undary\r\nContent-Disposition: attachment; name="a"\r\n\r\n1\r\n--b0undary--',
        b"--b0undary\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b0undary--",
        b'--b0undary\r\nContent-Disposition: form-data; name=""\r\n\r\n1\r\n--b0undary--',
        b"--b0undary\r\nbad header\r\n\r\n1\r\n--b0undary--",
        b"--b0undary\r\n"
        + OK_PART.replace(b"\r\n\r\n", b"\r\n" + OK_PART.split(b"\r\n")[0] + b"\r\n\r\n")
        + b"\r\n--b0undary--",
        b'--b0undary\r\nContent-Disposition: form-data; name="\xff"\r\n\r\n1\r\n--b0undary--',
        b"--b0undary\r\nContent-Disposition: form-data; name=a b\r\n\r\n1\r\n--b0undary--",
        b"--b0undary\r\nX-Pad: "
        + b"p" * MAX_PART_HEADER_BYTES
        + b"\r\n"
        + OK_PART
        + b"\r\n--b0undary--",
    ],
    ids=[
        "empty",
        "preamble",
        "unterminated",
        "epilogue",
        "wrong-delimiter",
        "no-blank-line",
        "no-headers",
        "no-disposition",
        "not-form-data",
        "no-name",
        "empty-name",
        "malformed-header",
        "repeated-disposition",
        "name-not-utf8",
        "bad-parameter",
        "huge-headers",
    ],
)
def test_refuses_malformed_bodies(body):
    with pytest.raises(MultipartError):
        parse(body)


def test_bounds_parts_and_part_size():
    body = encode([("a", None, None, b"12345"), ("b", None, None, b"1")])
    assert len(parse(body, max_parts=2, max_part_bytes=5)) == 2
    with pytest.raises(MultipartError, match="too many parts"):
        parse(body, max_parts=1)
    with pytest.raises(MultipartError, match="too large"):
        parse(body, max_part_bytes=4)


names = st.text(st.characters(codec="utf-8", exclude_characters='"\\\r\n'), min_size=1)
media = st.sampled_from([None, "text/plain", "image/png", "application/json"])
fields = st.lists(
    st.tuples(names, st.one_of(st.none(), names), media, st.binary(max_size=64)), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(fields=fields, max_parts=st.integers(1, 10), max_part_bytes=st.integers(0, 80))
def test_round_trip_and_bounds(fields, max_parts, max_part_bytes):
    assume(all(b"--" + BOUNDARY not in data for *_, data in fields))
    body = encode(fields)
    within = len(fields) <= max_parts and all(len(f[3]) <= max_part_bytes for f in fields)
    try:
        parsed = parse(body, max_parts=max_parts, max_part_bytes=max_part_bytes)
    except MultipartError:
        assert not within
    else:
        assert within
        assert parsed == [(n, f, m.lower() if m else None, d) for n, f, m, d in fields]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.sampled_from([b"--b0undary", b"\r\n", b"--"])))
def test_arbitrary_bytes_only_ever_raise_multipart_error(noise, pieces):
    body = b"".join(pieces) + noise
    try:
        parts = parse(body, max_parts=5, max_part_bytes=100)
    except MultipartError:
        return
    assert len(parts) <= 5
    assert all(len(part[3]) <= 100 for part in parts)


# --- request bodies -------------------------------------------------------------------------

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/upload": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string", "maxLength": 10},
                                    "age": {"type": "integer"},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "meta": {
                                        "type": "object",
                                        "properties": {"lang": {"type": "string"}},
                                    },
                                    "avatar": {
                                        "type": "string",
                                        "format": "binary",
                                        "maxLength": 16,
                                    },
                                },
                            },
                            "encoding": {"avatar": {"contentType": "image/png, image/jpeg"}},
                        }
                    },
                },
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}
VALID: list[Field] = [
    ("name", None, None, b"ann"),
    ("age", None, None, b"42"),
    ("tags", None, None, b"a"),
    ("tags", None, None, b"b"),
    ("meta", None, "application/json", b'{"lang": "nb"}'),
    ("avatar", "me.png", "image/png", b"\x89PNG\x00\xff"),
]
CONTENT_TYPE = (b"content-type", b"multipart/form-data; boundary=b0undary")


def _policy(tmp_path: Path, **options: object) -> OpenAPIPolicy:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    config = OpenAPIConfig.model_validate({"spec": str(path), **options})
    return OpenAPIPolicy(config, PolicyDeps(clock=FakeClock()))


def _post(body: bytes, content_type: tuple[bytes, bytes] = CONTENT_TYPE):
    return make_ctx("POST", "/upload", headers=[(b"host", b"h"), content_type], body=body)


def _errors(exc: pytest.ExceptionInfo[Any]) -> list[dict[str, str]]:
    return exc.value.extra["errors"]  # type: ignore[no-any-return]


def test_a_valid_multipart_body_is_admitted(tmp_path):
    ctx = _post(encode(VALID))
    assert _policy(tmp_path).access(ctx) is None
    assert ctx.request.body == encode(VALID)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (("age", None, None, b"forty"), "/age", "has the wrong type"),
        (("name", None, None, b"a" * 11), "/name", "is longer than 10 characters"),
        (("avatar", "a.png", "image/png", b"\x00" * 17), "/avatar", "is longer than 16"),
        (("avatar", "a.gif", "image/gif", b"GIF"), "/avatar", "media type"),
        (("admin", None, None, b"true"), "/admin", "is not allowed"),
    ],
    ids=["integer", "text-length", "file-size", "file-type", "undeclared"],
)
def test_fields_are_checked_against_their_schema(tmp_path, change, path, message):
    fields = [f for f in VALID if f[0] != change[0]] + [change]
    with pytest.raises(UnprocessableContent) as exc:
        _policy(tmp_path).access(_post(encode(fields)))
    assert any(e["path"] == path and message in e["message"] for e in _errors(exc))
    assert b"forty" not in str(exc.value.extra).encode()


def test_a_missing_required_field_is_refused(tmp_path):
    fields = [f for f in VALID if f[0] != "name"]
    with pytest.raises(UnprocessableContent) as exc:
        _policy(tmp_path).access(_post(encode(fields)))
    assert _errors(exc)[0] == {"in": "body", "path": "/name", "message": "is required"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not multipart", CONTENT_TYPE),
        (encode(VALID), (b"content-type", b"multipart/form-data")),
        (encode([*VALID[:4], ("meta", None, "application/json", b"{bad")]), CONTENT_TYPE),
        (encode([("name", None, None, b"\xff\xfe")]), CONTENT_TYPE),
    ],
    ids=["malformed", "no-boundary", "json-part", "not-utf8"],
)
def test_unreadable_bodies_get_400(tmp_path, body, content_type):
    with pytest.raises(InvalidRequest) as exc:
        _policy(tmp_path).access(_post(body, content_type))
    assert exc.value.error_code == "invalid_body"


def test_part_limits_come_from_the_config(tmp_path):
    policy = _policy(tmp_path, max_multipart_parts=3)
    with pytest.raises(InvalidRequest):
        policy.access(_post(encode(VALID)))
    policy = _policy(tmp_path, max_multipart_part_bytes=4)
    with pytest.raises(InvalidRequest):
        policy.access(_post(encode(VALID)))


def test_strip_cuts_undeclared_fields_out_of_the_body(tmp_path):
    ctx = _post(encode([*VALID, ("admin", None, None, b"true")]))
    assert _policy(tmp_path, additional="strip").access(ctx) is None
    assert ctx.request.body is not None
    assert parse(ctx.request.body) == [(n, f, m, d) for n, f, m, d in VALID]


def test_strip_cannot_cut_inside_a_json_part(tmp_path):
    fields = [f for f in VALID if f[0] != "meta"] + [
        ("meta", None, "application/json", b'{"lang": "nb", "x": 1}')
    ]
    with pytest.raises(UnprocessableContent):
        _policy(tmp_path, additional="strip").access(_post(encode(fields)))


def test_a_multipart_body_without_a_schema_is_still_parsed(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    media = spec["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    del media["schema"]
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump(spec))
    policy = OpenAPIPolicy(OpenAPIConfig(spec=str(path)), PolicyDeps(clock=FakeClock()))
    assert policy.access(_post(encode(VALID))) is None
    with pytest.raises(InvalidRequest):
        policy.access(_post(b"garbage"))


# --- differential: Werkzeug (Flask's parser) must see the fields Bastion checked ------------

werkzeug_formparser = pytest.importorskip("werkzeug.formparser")

SMUGGLED = b'--b0undary\nContent-Disposition: form-data; name="role"\n\nadmin'
simple_names = st.text("abcxyz", min_size=1, max_size=4)
part_styles = st.fixed_dictionaries(
    {
        "name": simple_names,
        "file": st.sampled_from([None, "plain", "extended", "both"]),
        "header_end": st.sampled_from([b"\r\n", b"\n"]),
        "encoding": st.sampled_from([None, b"7bit", b"BINARY", b"base64", b"quoted-printable"]),
        "data": st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20).map(
            str.encode
        ),
        "smuggle": st.sampled_from([None, b"\n", b"\r", b"\r\n\r\n", b" ", b""]),
    }
)


def _render(style: dict[str, Any]) -> bytes:
    end: bytes = style["header_end"]
    disposition = b'form-data; name="' + style["name"].encode() + b'"'
    if style["file"] in ("plain", "both"):
        disposition += b'; filename="a.txt"'
    if style["file"] in ("extended", "both"):
        disposition += b"; filename*=UTF-8''x.php"
    head: bytes = b"Content-Disposition: " + disposition + end
    if style["encoding"] is not None:
        head += b"Content-Transfer-Encoding: " + style["encoding"] + end
    data: bytes = style["data"]
    if style["smuggle"] is not None:
        data += style["smuggle"] + SMUGGLED
    return b"--b0undary\r\n" + head + end + data + b"\r\n"


def _werkzeug_fields(body: bytes) -> list[tuple[str, str | None, bytes]]:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "multipart/form-data; boundary=b0undary",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, form, files = werkzeug_formparser.parse_form_data(environ)
    found = [(name, None, value.encode()) for name, value in form.items(multi=True)]
    for name, file in files.items(multi=True):
        try:
            found.append((name, file.filename, file.read()))
        finally:
            file.close()
    return sorted(found, key=repr)


@settings(max_examples=400, deadline=None)
@given(st.lists(part_styles, min_size=1, max_size=4))
def test_werkzeug_sees_exactly_the_fields_bastion_admits(styles):
    body = b"".join(_render(style) for style in styles) + b"--b0undary--\r\n"
    try:
        parts = parse(body)
    except MultipartError:
        return  # refused: nothing reaches the upstream
    ours = sorted(((n, f, d) for n, f, _, d in parts), key=repr)
    assert ours == _werkzeug_fields(body)


@pytest.mark.parametrize(
    "body",
    [
        b'--b0undary\r\nContent-Disposition: form-data; name="bio"\r\n\r\nhello\n'
        + SMUGGLED
        + b"\r\n--b0undary--\r\n",
        b'--b0undary\r\nContent-Disposition: form-data; name="bio"\r\n\r\nhello'
        + SMUGGLED
        + b"\r\n--b0undary--\r\n",
        b"--b0undary\r\nContent-Disposition: form-data; name=\"doc\"; filename*=UTF-8''x.php"
        b"\r\n\r\n<?php\r\n--b0undary--\r\n",
        b"--b0undary\r\nContent-Disposition: form-data; name*=UTF-8''role\r\n\r\nadmin"
        b"\r\n--b0undary--\r\n",
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nYWRtaW4=\r\n--b0undary--\r\n",
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\nX-Other: 1\r\n\r\n1'
        b"\r\n--b0undary--\r\n",
    ],
    ids=["lf-delimiter", "delimiter-in-content", "filename-star", "name-star", "base64", "bare-lf"],
)
def test_refuses_what_other_parsers_read_differently(body):
    with pytest.raises(MultipartError):
        parse(body)


@pytest.mark.parametrize("encoding", [b"7bit", b"8bit", b"Binary"])
def test_identity_transfer_encodings_are_accepted(encoding):
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n1\r\n--b0undary--\r\n"
    )
    assert parse(body) == [("a", None, None, b"1")]


def test_a_smuggled_field_gets_400_invalid_body(tmp_path):
    body = encode([("name", None, None, b"ann\n" + SMUGGLED)])
    with pytest.raises(InvalidRequest) as exc:
        _policy(tmp_path).access(_post(body))
    assert exc.value.error_code == "invalid_body"
