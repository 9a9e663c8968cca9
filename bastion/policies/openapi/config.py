"""Settings for the openapi policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bastion.config.paths import ConfigPath
from bastion.core.policy import PolicyConfig


class OpenAPIConfig(PolicyConfig):
    """Settings for the openapi policy: requests are checked against an OpenAPI document."""

    spec: ConfigPath = Field(
        description="OpenAPI 3.0 or 3.1 document (YAML or JSON), relative to the config file."
    )
    additional: Literal["reject", "strip", "allow"] = Field(
        "reject",
        description="Undeclared query parameters and body properties: `reject` (400/422), "
        "`strip` (removed before forwarding) or `allow`.",
    )
    base_path: str = Field(
        "",
        description="Prefix of request paths in front of the document's paths, e.g. `/api`.",
    )
    validate_responses: Literal["off"] = Field(
        "off", description="Response validation; only `off` is implemented so far."
    )
    reject_duplicate_keys: bool = Field(
        False,
        description="Refuse JSON bodies with a repeated object key (parser-differential "
        "defence; parses with the slower standard-library parser).",
    )

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        if value in ("", "/"):
            return ""
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError("must start with / and not end with / (e.g. /api)")
        return value
