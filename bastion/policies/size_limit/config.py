"""Settings for the size_limit policy."""

from __future__ import annotations

from pydantic import Field

from bastion.core.policy import PolicyConfig

MIB = 1024 * 1024


class SizeLimitConfig(PolicyConfig):
    """Settings for the size_limit policy; `null` lifts a limit (except the body's)."""

    max_body_bytes: int = Field(
        MIB,
        gt=0,
        description=(
            "Largest request body in bytes: a larger Content-Length gets 413 at once, and a"
            " chunked body is cut off with 413 when it goes past the limit."
        ),
    )
    max_uri_bytes: int | None = Field(
        8192, gt=0, description="Longest request target (path and query) in bytes; 414 above."
    )
    max_query_params: int | None = Field(
        256, gt=0, description="Most query parameters (`&`-separated); 400 above."
    )
    max_header_count: int | None = Field(
        100, gt=0, description="Most request header fields; 431 above."
    )
    max_json_depth: int | None = Field(
        None,
        gt=0,
        le=1024,
        description=(
            "Deepest nesting of arrays and objects in a JSON request body (at most 1024,"
            " orjson's own limit); 400 above. Setting any max_json_* buffers JSON bodies."
        ),
    )
    max_json_array_length: int | None = Field(
        None, gt=0, description="Most items in any one JSON array of the body; 413 above."
    )
    max_json_string_length: int | None = Field(
        None,
        gt=0,
        description="Longest JSON string (value or object key) in characters; 413 above.",
    )
    max_json_keys: int | None = Field(
        None, gt=0, description="Most members in any one JSON object of the body; 413 above."
    )
