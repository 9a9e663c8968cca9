"""Tests of redaction and of the ECS diagnostic logging setup."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, strategies as st

from bastion.observability.logging import SinkHandler, configure_logging, redact
from bastion.observability.sinks import MemorySink

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVlLXRoYXQtaXMtc2VjcmV0"
API_KEY = "bst_k7f3_" + "Q" * 20 + "-_" + "z" * 21


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: [REDACTED]"),
        ('authorization=Digest user=x, response="y"', "authorization=[REDACTED]"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz\nnext", "Proxy-Authorization: [REDACTED]\nnext"),
        ("Cookie: sid=1; theme=dark", "Cookie: [REDACTED]"),
        ("set-cookie: sid=1; HttpOnly", "set-cookie: [REDACTED]"),
        ("X-API-Key: bst_abc", "X-API-Key: [REDACTED]"),
        (
            "[(b'authorization', b'Bearer t0k'), (b'host', b'h')]",
            "[(b'authorization', b'[REDACTED]'), (b'host', b'h')]",
        ),
        ('{"authorization": "Bearer t0k", "a": 1}', '{"authorization": "[REDACTED]", "a": 1}'),
        ("sent Bearer abc123 upstream", "sent Bearer [REDACTED] upstream"),
        ("basic dXNlcjpwYXNz", "basic [REDACTED]"),
        (f"key {API_KEY} refused", "key bst_k7f3_[REDACTED] refused"),
        (f"token_{API_KEY}", "token_bst_k7f3_[REDACTED]"),
        (f"got {JWT}.", "got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.[REDACTED]."),
        ("login password=hunter2 ok", "login password=[REDACTED] ok"),
        ("db_password: 'p w d' ok", "db_password: '[REDACTED]' ok"),
        ('{"client_secret": "s3\\"cr"}', '{"client_secret": "[REDACTED]"}'),
        ("refresh_token=r1&scope=a", "refresh_token=[REDACTED]&scope=a"),
        ("api_key=k1, user=bob", "api_key=[REDACTED], user=bob"),
        ("route /v1/users matched in 3 ms", "route /v1/users matched in 3 ms"),
        ("token_type=bearer expires_in=900", "token_type=bearer expires_in=900"),
        (
            'WWW-Authenticate: Bearer realm="api", error="invalid_token"',
            'WWW-Authenticate: Bearer realm="api", error="invalid_token"',
        ),
        ('Basic realm="bastion", charset="UTF-8"', 'Basic realm="bastion", charset="UTF-8"'),
        ("(b'x', b'Basic dXNlcjpwYXNzd29yZA==')", "(b'x', b'Basic [REDACTED]')"),
        ("", ""),
    ],
    ids=[
        "authorization-header",
        "authorization-header-quoted-parts",
        "proxy-authorization-line",
        "cookie",
        "set-cookie",
        "x-api-key",
        "header-tuple-repr",
        "header-json",
        "bearer-in-prose",
        "basic-lower-case",
        "bastion-api-key",
        "api-key-after-underscore",
        "jwt-signature",
        "password-pair",
        "quoted-password-pair",
        "json-secret-with-escaped-quote",
        "refresh-token-pair",
        "api-key-pair",
        "nothing-secret",
        "token-type-is-not-a-secret",
        "bearer-challenge-kept",
        "basic-challenge-kept",
        "padded-basic-in-repr",
        "empty",
    ],
)
def test_redact_masks_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TOKEN68 = _B64URL + ".~+/"
_PASSWORD_CHARS = _B64URL + "!#$%()*+./:<>?@[]^{|}~"
_HEADER_CHARS = _PASSWORD_CHARS + " =,;"


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str]:
    """A (text, secret) pair: a credential in one of the forms Bastion may log."""
    form = draw(
        st.sampled_from(
            ["bearer", "basic", "header", "api_key", "jwt", "pair", "json_pair", "tuple"]
        )
    )
    if form == "bearer":
        token = draw(st.text(_TOKEN68, min_size=12, max_size=80))
        return f"Bearer {token}", token
    if form == "basic":
        raw = draw(st.binary(min_size=9, max_size=60))
        token = base64.b64encode(raw).decode()
        return f"{draw(st.sampled_from(['Basic', 'basic', 'BASIC']))} {token}", token
    if form == "header":
        name = draw(
            st.sampled_from(["Authorization", "proxy-authorization", "Cookie", "x-api-key"])
        )
        value = draw(st.text(_HEADER_CHARS, min_size=12, max_size=80).filter(lambda v: v.strip()))
        return f"{name}: {value}\n", value.strip()
    if form == "api_key":
        key_id = draw(st.text(_B64URL[:62], min_size=1, max_size=12))
        secret = draw(st.text(_B64URL, min_size=43, max_size=43))
        return f"bst_{key_id}_{secret}", secret
    if form == "jwt":
        header = "eyJ" + draw(st.text(_B64URL, min_size=8, max_size=40))
        payload = draw(st.text(_B64URL, min_size=8, max_size=80))
        signature = draw(st.text(_B64URL, min_size=16, max_size=86))
        return f"{header}.{payload}.{signature}", signature
    name = draw(
        st.sampled_from(
            [
                "password",
                "PASSWORD",
                "passwd",
                "client_secret",
                "refresh_token",
                "access_token",
                "api_key",
                "db_password",
            ]
        )
    )
    value = draw(st.text(_PASSWORD_CHARS, min_size=12, max_size=40))
    if form == "pair":
        return f"{name}={value}", value
    if form == "json_pair":
        return f'"{name}": "{value}"', value
    return f"(b'authorization', b'{value}')", value


# Filler text around the secrets: arbitrary, or made of the words and punctuation the rules
# key on, to catch one rule consuming the text another rule needed.
_TRICKY = [
    "Bearer",
    "basic",
    "Authorization:",
    "cookie=",
    "password",
    "=",
    ":",
    "'",
    '"',
    "b'",
    ",",
    ";",
    "\\",
    "\n",
    "token",
    "eyJ",
    "bst_",
    "_",
    ".",
    "realm=",
    " ",
]
fillers = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(_TRICKY), max_size=6).map("".join),
)


@given(
    parts=st.lists(st.tuples(fillers, secrets()), min_size=1, max_size=4),
    separator=st.sampled_from([" ", "\n", " | ", "; "]),
)
def test_redact_output_never_contains_a_generated_secret(
    parts: list[tuple[str, tuple[str, str]]], separator: str
) -> None:
    text = ""
    for filler, (form, _) in parts:
        text += filler + separator + form + separator
    for _, (_, secret) in parts:
        assume(text.count(secret) == 1)  # else it also stands where nothing secret is expected

    redacted = redact(text)

    for _, (_, secret) in parts:
        assert secret not in redacted


@given(st.text(alphabet="acdfghijlmnqrsuvwxyz0123456789 .,:=-_/\n"))
def test_redact_leaves_text_without_credential_markers_unchanged(text: str) -> None:
    assert redact(text) == text


@given(st.text())
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "eyJ" * 100_000,
        "_eyJ." * 100_000,
        "-bst_" * 100_000 + "x",
        "a_" * 100_000 + "token",
        "bearer " * 100_000,
        "bearer" + " " * 100_000 + '"',
        'password: "' + '\\"' * 100_000,
        "password: 'a'" + ":'a'" * 100_000,
    ],
    ids=[
        "jwt-heads",
        "jwt-dots",
        "api-key-ids",
        "pair-prefix",
        "schemes",
        "spaces",
        "escapes",
        "chain",
    ],
)
def test_redact_stays_linear_on_hostile_input(text: str) -> None:
    # A quadratic pattern would take minutes on these 300-700 kB strings.
    once = redact(text)
    assert redact(once) == once


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test (configure_logging changes it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _lines(sink: MemorySink) -> list[dict[str, Any]]:
    docs = []
    for line in sink.lines:
        assert line.endswith(b"\n")
        doc = orjson.loads(line)
        assert isinstance(doc, dict)
        docs.append(doc)
    return docs


def test_configure_logging_writes_redacted_ecs_json(root_logger: logging.Logger) -> None:
    sink = MemorySink()
    configure_logging("info", sink=sink)

    logging.getLogger("bastion.gateway").info("login with password=%s from %s", "hunter2", "cli")

    [doc] = _lines(sink)
    assert TIMESTAMP.match(str(doc["@timestamp"]))
    assert doc["ecs"] == {"version": "8.11.0"}
    assert doc["message"] == "login with password=[REDACTED] from cli"
    assert doc["log"] == {
        "level": "info",
        "logger": "bastion.gateway",
        "origin": {
            "file": {"name": "test_logging.py", "line": doc["log"]["origin"]["file"]["line"]},
            "function": "test_configure_logging_writes_redacted_ecs_json",
        },
    }
    assert doc["service"] == {"name": "bastion"}
    assert "error" not in doc
    assert b"hunter2" not in sink.lines[0]
    assert sink.flushes == 1


def test_configure_logging_redacts_exceptions(root_logger: logging.Logger) -> None:
    sink = MemorySink()
    configure_logging(sink=sink)

    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logging.getLogger("bastion.jwt").exception("verify failed for Bearer abc123")

    [doc] = _lines(sink)
    assert doc["message"] == "verify failed for Bearer [REDACTED]"
    error = doc["error"]
    assert isinstance(error, dict)
    assert error["type"] == "ValueError"
    assert error["message"] == "bad token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.[REDACTED]"
    assert "Traceback (most recent call last)" in error["stack_trace"]
    assert "ValueError: bad token" in error["stack_trace"]
    assert b"c2lnbmF0dXJlLXZhbHVlLXRoYXQtaXMtc2VjcmV0" not in sink.lines[0]


def test_configure_logging_drops_records_below_the_level(root_logger: logging.Logger) -> None:
    sink = MemorySink()
    configure_logging("WARNING", sink=sink)

    logging.getLogger("bastion.x").info("quiet")
    logging.getLogger("bastion.x").warning("loud")

    assert [doc["message"] for doc in _lines(sink)] == ["loud"]
    assert _lines(sink)[0]["log"]["level"] == "warning"


def test_configure_logging_refuses_an_unknown_level(root_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        configure_logging("verbose", sink=MemorySink())


def test_configure_logging_again_replaces_the_previous_handler(
    root_logger: logging.Logger,
) -> None:
    first, second = MemorySink(), MemorySink()
    configure_logging(sink=first)
    configure_logging(sink=second)

    logging.getLogger("bastion").error("once")

    assert first.lines == []
    assert not first.closed  # a caller's sink is flushed, never closed, by the handler
    assert len(second.lines) == 1
    assert sum(isinstance(h, SinkHandler) for h in root_logger.handlers) == 1


def test_configure_logging_text_mode_is_redacted_too(root_logger: logging.Logger) -> None:
    sink = MemorySink()
    configure_logging("debug", json=False, sink=sink)

    logging.getLogger("bastion.cli").debug("Cookie: sid=abc")

    [line] = sink.lines
    assert line.endswith(b" DEBUG bastion.cli: Cookie: [REDACTED]\n")


def test_log_records_may_carry_extra_ecs_fields(root_logger: logging.Logger) -> None:
    sink = MemorySink()
    configure_logging(sink=sink)

    logging.getLogger("bastion.security").warning(
        "authentication failed",
        extra={
            "ecs_fields": {
                "event": {"category": ["authentication"], "outcome": "failure"},
                "user": {"id": "c1"},
                "http": {"request": {"headers": ["authorization: Bearer leaked"]}},
                "message": "overridden?",
            }
        },
    )

    [doc] = _lines(sink)
    assert doc["event"] == {"category": ["authentication"], "outcome": "failure"}
    assert doc["user"] == {"id": "c1"}
    assert doc["http"] == {"request": {"headers": ["authorization: [REDACTED]"]}}
    assert doc["message"] == "authentication failed"


def test_handler_closes_a_sink_it_owns() -> None:
    owned, borrowed = MemorySink(), MemorySink()

    SinkHandler(owned, owns_sink=True).close()
    SinkHandler(borrowed, owns_sink=False).close()

    assert owned.closed
    assert not borrowed.closed
    assert borrowed.flushes == 1
