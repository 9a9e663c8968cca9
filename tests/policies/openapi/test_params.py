"""Parameter styles and coercion: what a client serialises per the spec is read back exactly."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from bastion.policies.openapi.params import (
    StyleError,
    coerce,
    parse_cookies,
    parse_query,
    split_header,
    split_path,
    split_query,
)

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
safe_items = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=",.;=|& "), min_size=1, max_size=12
)


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_coerce_reads_back_every_integer(value):
    assert coerce(str(value), ("integer",)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_coerce_reads_back_every_finite_number(value):
    assert coerce(repr(value), ("number",)) == value


@given(texts)
def test_coerce_never_raises_and_returns_a_string_or_a_strict_literal(text):
    result = coerce(text, ("integer", "number", "boolean"))
    if isinstance(result, bool):
        assert text in ("true", "false")
    elif isinstance(result, int | float):
        assert text.strip() == text
        assert "_" not in text
    else:
        assert result == text


@pytest.mark.parametrize(
    "text",
    ["+1", " 1", "1 ", "1_000", "١٢", "0x10", "NaN", "nan", "Infinity", "-inf", "1e999", "", "1."],
    ids=[
        "plus",
        "lead-space",
        "trail-space",
        "underscore",
        "arabic-digits",
        "hex",
        "NaN",
        "nan",
        "Infinity",
        "neg-inf",
        "overflow",
        "empty",
        "trailing-dot",
    ],
)
def test_coerce_refuses_lenient_number_literals(text):
    assert coerce(text, ("integer", "number")) == text


@pytest.mark.parametrize(
    ("text", "types", "expected"),
    [
        ("true", ("boolean",), True),
        ("false", ("boolean",), False),
        ("True", ("boolean",), "True"),
        ("1", ("boolean",), "1"),
        ("42", ("string",), "42"),
        ("42", ("integer", "string"), 42),
        ("4.5", ("integer", "number"), 4.5),
        ("null", ("integer", "null"), None),
        ("null", ("string", "null"), "null"),
    ],
    ids=[
        "true",
        "false",
        "True-stays",
        "1-not-bool",
        "string-kept",
        "int-first",
        "number",
        "null",
        "null-string",
    ],
)
def test_coerce_follows_the_schema_types(text, types, expected):
    assert coerce(text, types) == expected


@given(st.lists(safe_items, min_size=1, max_size=5))
def test_simple_array_round_trips(items):
    raw = ",".join(quote(item, safe="") for item in items)
    assert split_path(raw, "p", "simple", False, "array") == items


@given(st.lists(safe_items, min_size=1, max_size=5), st.booleans())
def test_label_array_round_trips(items, explode):
    sep = "." if explode else ","
    raw = "." + sep.join(quote(item, safe="") for item in items)
    assert split_path(raw, "p", "label", explode, "array") == items


@given(st.lists(safe_items, min_size=1, max_size=5), st.booleans())
def test_matrix_array_round_trips(items, explode):
    encoded = [quote(item, safe="") for item in items]
    raw = "".join(f";p={e}" for e in encoded) if explode else ";p=" + ",".join(encoded)
    assert split_path(raw, "p", "matrix", explode, "array") == items


@given(st.dictionaries(safe_items, safe_items, min_size=1, max_size=4), st.booleans())
def test_simple_object_round_trips(members, explode):
    if explode:
        raw = ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in members.items())
    else:
        raw = ",".join(f"{quote(k, safe='')},{quote(v, safe='')}" for k, v in members.items())
    assert split_path(raw, "p", "simple", explode, "object") == members


@given(st.dictionaries(safe_items, safe_items, min_size=1, max_size=4))
def test_matrix_exploded_object_round_trips(members):
    raw = "".join(f";{quote(k, safe='')}={quote(v, safe='')}" for k, v in members.items())
    assert split_path(raw, "p", "matrix", True, "object") == members


@given(st.lists(st.tuples(texts, texts), max_size=6))
def test_parse_query_reads_back_form_encoded_pairs(pairs):
    query = "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs if n)
    expected = [(n, v) for n, v in pairs if n]
    assert parse_query(query.encode()) == expected


@pytest.mark.parametrize(
    ("style", "text", "expected"),
    [
        ("form", "a,b,c", ["a", "b", "c"]),
        ("spaceDelimited", "a b c", ["a", "b", "c"]),
        ("pipeDelimited", "a|b|c", ["a", "b", "c"]),
    ],
    ids=["form", "space", "pipe"],
)
def test_split_query_reads_unexploded_arrays(style, text, expected):
    assert split_query([text], "p", style, False, "array") == expected


def test_split_query_refuses_a_repeated_primitive():
    with pytest.raises(StyleError):
        split_query(["1", "2"], "p", "form", True, "primitive")


@pytest.mark.parametrize(
    ("raw", "style", "explode", "kind"),
    [
        ("x", "label", False, "primitive"),
        ("x=1", "matrix", False, "primitive"),
        (";q=1", "matrix", False, "primitive"),
        ("a,b,c", "simple", False, "object"),
        ("%ff", "simple", False, "primitive"),
    ],
    ids=["label-no-dot", "matrix-no-semicolon", "matrix-other-name", "odd-pairs", "bad-utf8"],
)
def test_split_path_refuses_text_not_in_the_style(raw, style, explode, kind):
    with pytest.raises(StyleError):
        split_path(raw, "p", style, explode, kind)


def test_split_header_strips_spaces_around_items():
    assert split_header("a, b ,c", False, "array") == ["a", "b", "c"]


def test_parse_cookies_keeps_the_first_of_repeated_names():
    assert parse_cookies("a=1; b=2; a=3") == {"a": "1", "b": "2"}


def test_parse_query_refuses_invalid_utf8_escapes():
    with pytest.raises(StyleError):
        parse_query(b"a=%ff")
