"""Lifecycle header values against the RFC 9745 and RFC 8594 examples; the `Accept` parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, strategies as st

from bastion.policies.versioning.headers import (
    deprecation_value,
    link_value,
    media_type_version,
    normalise_version,
    sunset_value,
)


def test_deprecation_value_matches_the_rfc_9745_example():
    # RFC 9745 §2.2: "Deprecation: @1688169599" is Friday, June 30, 2023 at 23:59:59 UTC.
    assert deprecation_value(datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC)) == b"@1688169599"


def test_deprecation_value_is_whole_seconds_whatever_the_zone():
    when = datetime(2023, 7, 1, 1, 59, 59, 900_000, tzinfo=timezone(timedelta(hours=2)))
    assert deprecation_value(when) == b"@1688169599"


def test_sunset_value_matches_the_rfc_8594_example():
    # RFC 8594 §3 shows "Sunset: Sat, 31 Dec 2018 23:59:59 GMT". 31 Dec 2018 was a Monday:
    # the example's weekday is inconsistent, so the instant is compared, and the value sent
    # carries the weekday an IMF-fixdate requires.
    rfc_example = "Sat, 31 Dec 2018 23:59:59 GMT"
    when = datetime(2018, 12, 31, 23, 59, 59, tzinfo=UTC)
    value = sunset_value(when)
    assert parsedate_to_datetime(value.decode()) == parsedate_to_datetime(rfc_example) == when
    assert value == b"Mon, 31 Dec 2018 23:59:59 GMT"


def test_sunset_value_of_the_rfc_9745_example_is_an_imf_fixdate_in_gmt():
    # RFC 9745 §4 pairs the example deprecation with a sunset a year later.
    when = datetime(2024, 7, 1, 1, 59, 59, tzinfo=timezone(timedelta(hours=2)))
    assert sunset_value(when) == b"Sun, 30 Jun 2024 23:59:59 GMT"


def test_link_value_matches_the_rfc_9745_example_form():
    # RFC 9745 §3: Link: <https://developer.example.com/deprecation>; rel="deprecation"; ...
    value = link_value("https://developer.example.com/deprecation", "deprecation")
    assert value == b'<https://developer.example.com/deprecation>; rel="deprecation"'


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("v1", "1", id="v-prefix"),
        pytest.param("V2", "2", id="upper-v"),
        pytest.param("2.1", "2.1", id="dotted"),
        pytest.param("beta", "beta", id="word"),
        pytest.param("v", "v", id="lone-v"),
    ],
)
def test_normalise_version(name: str, key: str):
    assert normalise_version(name) == key


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param(b"application/json; version=2", "2", id="plain"),
        pytest.param(b'application/json;version="v2"', "v2", id="quoted"),
        pytest.param(b"application/json; Version=3", "3", id="parameter-name-case"),
        pytest.param(b"text/html, application/json; q=0.9; version=4", "4", id="second-range"),
        pytest.param(
            b'application/json; x="a,b;version=9"; version=5', "5", id="quoted-separators"
        ),
        pytest.param(b"application/json", None, id="absent"),
        pytest.param(b"application/json; versionx=2", None, id="other-parameter"),
        pytest.param(b"application/json; version=\xff", None, id="not-ascii"),
    ],
)
def test_media_type_version_reads_the_parameter(accept: bytes, expected: str | None):
    assert media_type_version(accept, "version") == expected


@given(st.binary(max_size=200))
def test_media_type_version_never_raises(accept: bytes):
    result = media_type_version(accept, "version")
    assert result is None or isinstance(result, str)


@given(st.from_regex(r"[A-Za-z0-9.,; =-]{0,20}", fullmatch=True))
def test_media_type_version_round_trips_quoted_values(value: str):
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    accept = f'application/json; version="{quoted}"'.encode()
    assert media_type_version(accept, "version") == value
