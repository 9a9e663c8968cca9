"""Settings for the api_key policy."""

from __future__ import annotations

from pydantic import Field

from bastion.core.policy import PolicyConfig

_FIELD_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"  # an RFC 9110 field name
_PARAM = r"^[A-Za-z0-9_.-]{1,64}$"
_REALM = r"^[A-Za-z0-9 _.:/-]{1,64}$"


class APIKeyConfig(PolicyConfig):
    """Settings for the api_key policy."""

    header: str = Field(
        "x-api-key", pattern=_FIELD_NAME, description="Request header that carries the key."
    )
    allow_query: bool = Field(
        False,
        description="Also accept the key in the query string (keys in URLs end up in browser "
        "history and proxy logs: only for clients that cannot send a header).",
    )
    query_param: str = Field(
        "api_key",
        pattern=_PARAM,
        description="Query parameter read when allow_query is true; its value is redacted.",
    )
    strip_credential: bool = Field(
        True,
        description="Remove the key (header or query parameter) before forwarding upstream; "
        "the upstream learns the caller from X-Bastion-Consumer.",
    )
    realm: str = Field(
        "bastion", pattern=_REALM, description="Realm named in the WWW-Authenticate challenge."
    )
