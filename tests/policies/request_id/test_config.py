"""request_id settings: accepted and refused configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.policies.request_id import RequestIDConfig


def test_defaults_generate_ids_and_echo_them():
    config = RequestIDConfig()
    assert config.header == "x-request-id"
    assert config.trust_incoming is False
    assert config.echo is True


@pytest.mark.parametrize(
    ("header", "stored"),
    [
        ("X-Correlation-ID", "x-correlation-id"),
        (" x-trace ", "x-trace"),
        ("request_id", "request_id"),
    ],
    ids=["mixed_case_lowered", "whitespace_stripped", "underscore_token"],
)
def test_header_is_normalised(header, stored):
    assert RequestIDConfig(header=header).header == stored


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "not a valid header name"),
        ("x request id", "not a valid header name"),
        ("x-id\r\nx-evil", "not a valid header name"),
        ("x-id:", "not a valid header name"),
        ("Host", "reserved"),
        ("content-length", "reserved"),
        ("authorization", "reserved"),
    ],
    ids=["empty", "space", "crlf_injection", "colon", "host", "content_length", "authorization"],
)
def test_header_refuses_invalid_or_reserved_names(header, message):
    with pytest.raises(ValidationError, match=message):
        RequestIDConfig(header=header)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        RequestIDConfig.model_validate({"header": "x-request-id", "generate": "uuid"})
