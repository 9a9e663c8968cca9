"""Properties of the path canonicaliser over generated paths, including hostile ones."""

from __future__ import annotations

import posixpath
import re
import string

from hypothesis import given, strategies as st

from bastion.http import path as path_module
from bastion.http.path import PathRejected, canonical_path

UNRESERVED = string.ascii_letters + string.digits + "-._~"

# Fragments that exercise every branch: separators, dot segments, escapes good and bad,
# path parameters, forbidden bytes and non-ASCII.
TOKENS = [
    "/", "//", ".", "..", "a", "b", "Z", "0", "~", "-", "_", ";", "..;", ".;", "=", ":", "@",
    "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%41", "%6a", "%7e", "%20", "%3b", "%3B", "%C3%A9",
    "%00", "%0a", "%7f", "%zz", "%", "%4", "2e", "41", "\\", "#", "?", " ", "\x00", "\u00e9",
]  # fmt: skip

# Fragments a valid path may hold, so that most generated paths are accepted and the properties
# of the result get exercised on tricky but legal input.
LEGAL_TOKENS = [
    "/", "//", "/", ".", "..", "a", "b", "Z", "0", "~", "-", "_", ";", "=", ":", "@",
    "%2e", "%2E", "%41", "%6a", "%7e", "%20", "%3b", "%3B", "%C3%A9", "%25", "%25", "2e", "41",
    "%32", "%65", "..;", ".;",
]  # fmt: skip


def _paths(tokens: list[str]) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(tokens), max_size=16).map(
        lambda parts: ("/" + "".join(parts)).encode()
    )


hostile_paths = st.one_of(_paths(TOKENS), _paths(LEGAL_TOKENS))
any_bytes = st.one_of(st.binary(max_size=64), hostile_paths)

REASONS = {
    value for name, value in vars(path_module).items() if name.isupper() and isinstance(value, str)
}
_ESCAPE = re.compile(r"%(..)")


def _outcome(raw: bytes) -> tuple[str, str]:
    try:
        return ("accepted", canonical_path(raw))
    except PathRejected as exc:
        return ("rejected", exc.reason)


@given(any_bytes)
def test_canonical_path_returns_or_raises_path_rejected_only(raw: bytes) -> None:
    kind, detail = _outcome(raw)  # any other exception escapes and fails the test
    if kind == "rejected":
        assert detail in REASONS
    else:
        assert detail.startswith("/")


@given(hostile_paths)
def test_canonical_path_is_idempotent(raw: bytes) -> None:
    kind, result = _outcome(raw)
    if kind == "accepted":
        assert canonical_path(result.encode("ascii")) == result


@given(hostile_paths)
def test_canonical_path_result_has_no_dot_segments_or_empty_segments(raw: bytes) -> None:
    kind, result = _outcome(raw)
    if kind != "accepted":
        return
    assert result.startswith("/")
    assert "/./" not in result
    assert "/../" not in result
    assert "//" not in result
    segments = result.split("/")[1:]
    assert ".." not in segments
    assert "." not in segments
    # No segment a servlet container would turn into a dot segment by stripping parameters.
    assert not any(seg.startswith((".;", "..;", ".%3B", "..%3B")) for seg in segments)


@given(hostile_paths)
def test_canonical_path_result_escapes_are_unambiguous(raw: bytes) -> None:
    kind, result = _outcome(raw)
    if kind != "accepted":
        return
    assert all(0x21 <= ord(char) < 0x7F for char in result)
    assert "\\" not in result
    assert "#" not in result
    # Every '%' starts an upper-case escape of a character that must stay encoded.
    assert result.count("%") == len(_ESCAPE.findall(result))
    for digits in _ESCAPE.findall(result):
        assert re.fullmatch(r"[0-9A-F]{2}", digits)
        char = chr(int(digits, 16))
        assert char not in UNRESERVED
        assert char not in "/\\"
        assert ord(char) >= 0x20
        assert ord(char) != 0x7F
    assert not re.search(r"%25[0-9A-Fa-f]{2}", result)


segment_chars = st.text(alphabet=UNRESERVED + ";:@!$&'()*+,=", max_size=6)
plain_segments = st.one_of(segment_chars, st.sampled_from(["", ".", "..", "..;", ".;"]))
plain_paths = st.lists(plain_segments, max_size=8).map(lambda segs: "/" + "/".join(segs))


@given(plain_paths, st.data())
def test_canonical_path_decoding_unreserved_commutes(plain: str, data: st.DataObject) -> None:
    encoded = []
    for char in plain:
        if char in UNRESERVED and data.draw(st.booleans()):
            digits = f"{ord(char):02x}"
            encoded.append("%" + (digits.upper() if data.draw(st.booleans()) else digits))
        else:
            encoded.append(char)
    assert _outcome("".join(encoded).encode()) == _outcome(plain.encode())


simple_segments = st.one_of(
    st.text(alphabet="abc", min_size=1, max_size=3), st.sampled_from(["", ".", ".."])
)
simple_paths = st.lists(simple_segments, max_size=8).map(lambda segs: "/" + "/".join(segs))


def _climbs_above_root(path: str) -> bool:
    depth = 0
    for segment in path.split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment not in ("", "."):
            depth += 1
    return False


@given(simple_paths)
def test_canonical_path_matches_posix_normalisation(raw: str) -> None:
    # posixpath.normpath is an independent oracle for paths made of names and dot segments,
    # except that it clamps ".." at the root (refused here) and drops the trailing slash.
    kind, result = _outcome(raw.encode())
    if _climbs_above_root(raw):
        assert (kind, result) == ("rejected", path_module.ABOVE_ROOT)
        return
    assert kind == "accepted"
    assert (result.rstrip("/") or "/") == posixpath.normpath("/" + raw.lstrip("/"))
    last = raw.rsplit("/", 1)[-1]
    assert result.endswith("/") == (last in ("", ".", "..") or result == "/")
