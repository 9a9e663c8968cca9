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
    validate_responses: Literal["off", "report_only", "enforce"] = Field(
        "off",
        description="Check upstream responses against the documented ones (status, media "
        "type, schema with undocumented fields refused): `report_only` forwards them and "
        "records a security event, `enforce` answers 502 `invalid_upstream_response` instead.",
    )
    strip_undocumented_response_fields: bool = Field(
        False,
        description="Remove properties the response schema does not describe from JSON "
        "responses (recursively), before they reach the client.",
    )
    max_response_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Largest response body buffered for validation or stripping; larger ones "
        "pass unvalidated, with a log event.",
    )
    max_multipart_parts: int = Field(
        100, gt=0, description="Most parts in a multipart/form-data request body; 400 above."
    )
    max_multipart_part_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Largest content of one multipart/form-data part (a file, say); 400 above.",
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
