"""Headers: an ordered, repeatable list of raw header fields."""

from __future__ import annotations

import pytest

from bastion.http.headers import Headers


def sample() -> Headers:
    return Headers(
        [
            (b"host", b"api.example.test"),
            (b"accept", b"application/json"),
            (b"x-forwarded-for", b"192.0.2.1"),
            (b"x-forwarded-for", b"198.51.100.2"),
        ]
    )


def test_get_returns_the_first_value():
    assert sample().get(b"x-forwarded-for") == b"192.0.2.1"


def test_get_returns_the_default_when_absent():
    assert sample().get(b"cookie") is None
    assert sample().get(b"cookie", b"none") == b"none"


def test_get_all_returns_every_value_in_order():
    assert sample().get_all(b"x-forwarded-for") == [b"192.0.2.1", b"198.51.100.2"]
    assert sample().get_all(b"cookie") == []


def test_names_are_matched_as_given_lower_case_bytes():
    headers = sample()
    assert b"host" in headers
    assert b"Host" not in headers
    assert "host" not in headers


def test_empty_value_is_present_not_missing():
    headers = Headers([(b"x-empty", b"")])
    assert b"x-empty" in headers
    assert headers.get(b"x-empty", b"default") == b""


def test_add_appends_and_keeps_existing_fields():
    headers = sample()
    headers.add(b"x-forwarded-for", b"203.0.113.3")
    assert headers.get_all(b"x-forwarded-for") == [b"192.0.2.1", b"198.51.100.2", b"203.0.113.3"]
    assert headers.items()[-1] == (b"x-forwarded-for", b"203.0.113.3")


def test_set_replaces_every_copy_with_one_field():
    headers = sample()
    headers.set(b"x-forwarded-for", b"10.0.0.1")
    assert headers.get_all(b"x-forwarded-for") == [b"10.0.0.1"]
    assert len(headers) == 3


def test_set_adds_an_absent_field():
    headers = Headers()
    headers.set(b"x-request-id", b"abc")
    assert headers.items() == [(b"x-request-id", b"abc")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [(b"accept", b"application/json"), (b"content-type", b"text/plain")],
    ids=["present_kept", "absent_added"],
)
def test_setdefault_adds_only_when_absent(name, expected):
    headers = sample()
    headers.setdefault(name, b"text/plain")
    assert headers.get_all(name) == [expected]


def test_remove_drops_every_copy_and_keeps_the_rest_in_order():
    headers = sample()
    headers.remove(b"x-forwarded-for")
    assert headers.items() == [(b"host", b"api.example.test"), (b"accept", b"application/json")]


def test_remove_of_an_absent_field_changes_nothing():
    headers = sample()
    before = list(headers)
    headers.remove(b"cookie")
    assert list(headers) == before


def test_remove_many_drops_every_named_field():
    headers = sample()
    headers.remove_many(frozenset({b"host", b"x-forwarded-for", b"cookie"}))
    assert list(headers) == [(b"accept", b"application/json")]


def test_arrival_order_and_duplicates_are_kept():
    items = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    headers = Headers(items)
    assert list(headers) == items
    assert len(headers) == 3


def test_headers_copy_the_iterable_they_are_built_from():
    items = [(b"a", b"1")]
    headers = Headers(items)
    items.append((b"b", b"2"))
    assert len(headers) == 1


def test_items_is_the_live_list():
    headers = Headers()
    headers.items().append((b"x-live", b"yes"))
    assert headers.get(b"x-live") == b"yes"


def test_repr_shows_the_fields():
    assert repr(Headers([(b"a", b"1")])) == "Headers([(b'a', b'1')])"
