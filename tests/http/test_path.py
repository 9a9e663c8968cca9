"""Accepted and refused request paths: the canonical form the router and upstream both see."""

from __future__ import annotations

import pytest

from bastion.http import path as path_module
from bastion.http.path import MAX_PATH_LENGTH, PathRejected, canonical_path

ACCEPTED = [
    ("/", "/", "root"),
    ("/a", "/a", "single_segment"),
    ("/a/", "/a/", "trailing_slash_kept"),
    ("/v1/users/42", "/v1/users/42", "plain_path"),
    ("/v1/file.json", "/v1/file.json", "dot_inside_segment"),
    ("/a/.hidden", "/a/.hidden", "leading_dot_name"),
    ("/a/...", "/a/...", "three_dots_is_a_name"),
    ("/a/..b", "/a/..b", "dot_dot_prefix_is_a_name"),
    ("/a/./b", "/a/b", "single_dot_removed"),
    ("/a/b/../c", "/a/c", "dot_dot_removes_previous"),
    ("/a/b/..", "/a/", "final_dot_dot_leaves_slash"),
    ("/a/b/.", "/a/b/", "final_dot_leaves_slash"),
    ("/a/..", "/", "dot_dot_back_to_root"),
    ("/.", "/", "dot_at_root"),
    ("/./", "/", "dot_slash_at_root"),
    ("//double", "/double", "leading_double_slash_merged"),
    ("/a//b", "/a/b", "inner_double_slash_merged"),
    ("/a///b//", "/a/b/", "slash_runs_merged"),
    ("//", "/", "only_slashes"),
    ("/a//..", "/", "merge_then_dot_dot"),
    ("/a/b//../c", "/a/c", "merge_before_dot_dot"),
    ("/%61%62c", "/abc", "encoded_letters_decoded"),
    ("/%7E%2D%5F%2E%30", "/~-_.0", "encoded_unreserved_marks_decoded"),
    ("/%2e%2E%2e", "/...", "encoded_three_dots_is_a_name"),
    ("/a/%2e%2e/b", "/b", "encoded_dot_dot_removes_previous"),
    ("/a/%2e/b", "/a/b", "encoded_dot_removed"),
    ("/a%20b", "/a%20b", "encoded_space_kept"),
    ("/a%3fb", "/a%3Fb", "encoded_question_mark_upper_cased"),
    ("/a%3Bb", "/a%3Bb", "encoded_semicolon_kept"),
    ("/caf%c3%a9", "/caf%C3%A9", "encoded_utf8_kept_upper_cased"),
    ("/a%25", "/a%25", "encoded_percent_at_end"),
    ("/a%25zz", "/a%25zz", "encoded_percent_before_non_hex"),
    ("/a%25%C3", "/a%25%C3", "encoded_percent_before_an_escape"),
    ("/a%25%4a", "/a%25J", "encoded_percent_before_a_decoded_non_hex_letter"),
    ("/a;b", "/a;b", "path_parameter_kept"),
    ("/a;jsessionid=1/b", "/a;jsessionid=1/b", "session_parameter_kept"),
    ("/a/...;x", "/a/...;x", "three_dots_with_parameter_is_a_name"),
    ("/a/b;../c", "/a/b;../c", "parameter_containing_dots_is_a_name"),
    ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", "sub_delims_kept"),
    ("/{id}|^`[]", "/{id}|^`[]", "other_printable_kept"),
]

REJECTED = [
    ("", path_module.NOT_ABSOLUTE, "empty"),
    ("a/b", path_module.NOT_ABSOLUTE, "relative"),
    ("*", path_module.NOT_ABSOLUTE, "asterisk_form"),
    ("http://evil/a", path_module.NOT_ABSOLUTE, "absolute_form"),
    ("/..", path_module.ABOVE_ROOT, "dot_dot_at_root"),
    ("/../etc/passwd", path_module.ABOVE_ROOT, "leading_traversal"),
    ("/a/../../etc", path_module.ABOVE_ROOT, "traversal_past_root"),
    ("/%2e%2e/", path_module.ABOVE_ROOT, "encoded_traversal"),
    ("/%2E%2E/%2e%2e/etc", path_module.ABOVE_ROOT, "encoded_traversal_upper_case"),
    ("/.%2e/admin", path_module.ABOVE_ROOT, "half_encoded_traversal"),
    ("//../a", path_module.ABOVE_ROOT, "double_slash_then_traversal"),
    ("/a%2fb", path_module.ENCODED_SEPARATOR, "encoded_slash"),
    ("/a%2F..%2F..%2Fetc", path_module.ENCODED_SEPARATOR, "encoded_slash_traversal"),
    ("/a%5cb", path_module.ENCODED_SEPARATOR, "encoded_backslash"),
    ("/a%5C..%5Cb", path_module.ENCODED_SEPARATOR, "encoded_backslash_traversal"),
    ("/a\\b", path_module.BACKSLASH, "literal_backslash"),
    ("/a\\..\\b", path_module.BACKSLASH, "literal_backslash_traversal"),
    ("/a/%00", path_module.ENCODED_CONTROL, "encoded_nul"),
    ("/a%0d%0aSet-Cookie:x", path_module.ENCODED_CONTROL, "encoded_crlf"),
    ("/a%09", path_module.ENCODED_CONTROL, "encoded_tab"),
    ("/a%1f", path_module.ENCODED_CONTROL, "encoded_unit_separator"),
    ("/a%7f", path_module.ENCODED_CONTROL, "encoded_delete"),
    ("/%252e%252e/admin", path_module.DOUBLE_ENCODING, "double_encoded_traversal"),
    ("/a%252fb", path_module.DOUBLE_ENCODING, "double_encoded_slash"),
    ("/a%2525", path_module.DOUBLE_ENCODING, "double_encoded_percent"),
    ("/a%25%32%65", path_module.DOUBLE_ENCODING, "double_encoding_built_from_escapes"),
    ("/a%25%34%61", path_module.DOUBLE_ENCODING, "double_encoding_from_encoded_digits"),
    ("/a%2541", path_module.DOUBLE_ENCODING, "double_encoding_of_a_letter"),
    ("/..;/admin", path_module.PATH_PARAMETER_TRICK, "dot_dot_semicolon"),
    ("/a/..;/..;/admin", path_module.PATH_PARAMETER_TRICK, "nested_dot_dot_semicolon"),
    ("/a/..;x=1/admin", path_module.PATH_PARAMETER_TRICK, "dot_dot_semicolon_with_value"),
    ("/a/.;/admin", path_module.PATH_PARAMETER_TRICK, "dot_semicolon"),
    ("/a/%2e%2e;/admin", path_module.PATH_PARAMETER_TRICK, "encoded_dot_dot_semicolon"),
    ("/a/..%3b/admin", path_module.PATH_PARAMETER_TRICK, "dot_dot_encoded_semicolon"),
    ("/a/.%3B/admin", path_module.PATH_PARAMETER_TRICK, "dot_encoded_semicolon"),
    ("/%zz", path_module.BAD_ESCAPE, "non_hex_escape"),
    ("/a%", path_module.BAD_ESCAPE, "truncated_escape_at_end"),
    ("/a%4", path_module.BAD_ESCAPE, "one_digit_escape"),
    ("/a%4/b", path_module.BAD_ESCAPE, "one_digit_escape_mid_path"),
    ("/a%+1", path_module.BAD_ESCAPE, "signed_escape"),
    ("/a%%41", path_module.BAD_ESCAPE, "percent_before_escape"),
    ("/a b", path_module.BAD_CHARACTER, "raw_space"),
    ("/a\tb", path_module.BAD_CHARACTER, "raw_tab"),
    ("/a\x00b", path_module.BAD_CHARACTER, "raw_nul"),
    ("/a\r\nb", path_module.BAD_CHARACTER, "raw_crlf"),
    ("/a\x7fb", path_module.BAD_CHARACTER, "raw_delete"),
    ("/a#frag", path_module.BAD_CHARACTER, "fragment"),
    ("/a?q=1", path_module.BAD_CHARACTER, "query_not_split_off"),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(raw, expected) for raw, expected, _ in ACCEPTED],
    ids=[case_id for _, _, case_id in ACCEPTED],
)
def test_canonical_path_accepts_and_normalises(raw: str, expected: str) -> None:
    assert canonical_path(raw.encode("ascii")) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(raw, reason) for raw, reason, _ in REJECTED],
    ids=[case_id for _, _, case_id in REJECTED],
)
def test_canonical_path_rejects_ambiguous_or_malformed(raw: str, reason: str) -> None:
    with pytest.raises(PathRejected) as caught:
        canonical_path(raw.encode("latin-1"))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "raw",
    ["/caf\u00e9".encode(), "/\u4e2d\u6587".encode(), b"/a\x80", b"/a\xff", b"/\xc0\xae\xc0\xae/"],
    ids=["utf8_latin", "utf8_cjk", "high_byte", "byte_ff", "overlong_utf8_dot_dot"],
)
def test_canonical_path_rejects_non_ascii_bytes(raw: bytes) -> None:
    with pytest.raises(PathRejected) as caught:
        canonical_path(raw)
    assert caught.value.reason == path_module.BAD_CHARACTER


def test_canonical_path_accepts_path_at_length_limit() -> None:
    raw = b"/" + b"a" * (MAX_PATH_LENGTH - 1)
    assert canonical_path(raw) == raw.decode()


def test_canonical_path_rejects_path_over_length_limit() -> None:
    with pytest.raises(PathRejected) as caught:
        canonical_path(b"/" + b"a" * MAX_PATH_LENGTH)
    assert caught.value.reason == path_module.TOO_LONG


def test_canonical_path_checks_length_of_raw_bytes_before_decoding() -> None:
    # 2731 escapes are 8193 raw bytes but would decode to far fewer: the raw size is what counts.
    with pytest.raises(PathRejected):
        canonical_path(b"/" + b"%61" * 2731)


def test_path_rejected_is_a_value_error_with_public_reason() -> None:
    with pytest.raises(ValueError, match="encoded '/'") as caught:
        canonical_path(b"/a%2Fb")
    assert isinstance(caught.value, PathRejected)
    assert caught.value.reason == str(caught.value)


def test_canonical_path_reason_does_not_echo_client_input() -> None:
    with pytest.raises(PathRejected) as caught:
        canonical_path(b"/<script>%zz")
    assert "<script>" not in caught.value.reason
