"""Masking, restoring and diffing the running config for the admin API."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from bastion.admin.config_view import JSON, MASK, ConfigView, diff, flatten
from bastion.config.loader import parse_config

TOKEN = "an-admin-token-of-some-length"
PEPPER = "a-pepper-of-at-least-thirty-two-characters"


def _document(**extra: Any) -> dict[str, Any]:
    return {
        "listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}],
        "admin": {"bind": "127.0.0.1:9901", "token": TOKEN},
        "pepper": PEPPER,
        "counters": "redis://user:redis-password@127.0.0.1:6379/0",
        "services": [
            {
                "name": "echo",
                "upstream": {"targets": ["http://127.0.0.1:9000"]},
                "routes": [{"name": "all", "paths": ["/"]}],
            }
        ],
        **extra,
    }


def test_masked_view_hides_secret_settings_and_url_passwords() -> None:
    view = ConfigView(parse_config(_document()))
    masked = view.masked
    assert isinstance(masked, dict)
    text = repr(masked)
    assert TOKEN not in text
    assert PEPPER not in text
    assert "redis-password" not in text
    assert masked["admin"]["token"] == MASK  # type: ignore[index,call-overload]
    assert masked["pepper"] == MASK
    assert masked["counters"] == f"redis://user:{MASK}@127.0.0.1:6379/0"
    assert masked["services"][0]["name"] == "echo"  # type: ignore[index,call-overload]


def test_restore_puts_back_masked_secrets_and_keeps_new_values() -> None:
    view = ConfigView(parse_config(_document()))
    edited = view.masked
    assert isinstance(edited, dict)
    edited["limits"]["idle_timeout"] = 9.0  # type: ignore[index,call-overload]
    restored = view.restore(edited)
    config = parse_config(restored, env={})
    assert config.admin is not None
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == TOKEN
    assert config.pepper is not None
    assert config.pepper.get_secret_value() == PEPPER
    assert config.counters == "redis://user:redis-password@127.0.0.1:6379/0"
    assert config.limits.idle_timeout == 9.0


def test_restore_uses_a_newly_sent_secret_instead_of_the_current_one() -> None:
    view = ConfigView(parse_config(_document()))
    edited = view.masked
    assert isinstance(edited, dict)
    edited["admin"]["token"] = "a-brand-new-admin-token"  # type: ignore[index,call-overload]
    restored = view.restore(edited)
    assert restored["admin"]["token"] == "a-brand-new-admin-token"  # type: ignore[index,call-overload]


def test_a_mask_where_no_secret_was_set_is_kept_as_sent() -> None:
    view = ConfigView(parse_config(_document()))
    edited = view.masked
    assert isinstance(edited, dict)
    edited["services"][0]["name"] = MASK  # type: ignore[index,call-overload]
    assert view.restore(edited)["services"][0]["name"] == MASK  # type: ignore[index,call-overload]


def test_round_trip_of_the_dump_validates_to_the_same_config() -> None:
    config = parse_config(_document())
    view = ConfigView(config)
    assert parse_config(view.restore(view.masked), env={}) == config


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [{"path": "a", "before": 1, "after": 2}]),
        ({"a": [1]}, {"a": [1, 2]}, [{"path": "a[1]", "after": 2}]),
        (
            {"a": {"b": None}},
            {"a": {}},
            [{"path": "a", "after": {}}, {"path": "a.b", "before": None}],
        ),
        ({"x": {"y": "s"}}, {"x": {"y": "t"}}, [{"path": "x.y", "before": "s", "after": "t"}]),
    ],
    ids=["same", "changed", "added-item", "removed-key", "nested"],
)
def test_diff_lists_changed_leaves_by_dotted_path(
    before: JSON, after: JSON, expected: list[dict[str, JSON]]
) -> None:
    assert diff(before, after) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@given(json_values, json_values)
def test_diff_is_empty_exactly_when_the_flattened_documents_are_equal(
    before: JSON, after: JSON
) -> None:
    assert (diff(before, after) == []) == (flatten(before) == flatten(after))


@given(json_values)
def test_a_document_never_differs_from_itself(value: JSON) -> None:
    assert diff(value, value) == []
