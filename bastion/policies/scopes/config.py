"""Settings for the scopes policy."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _check_scopes(value: list[str]) -> list[str]:
    for scope in value:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a scope (RFC 6749 §3.3 scope-token)")
    return list(dict.fromkeys(value))


class ScopeRule(BaseModel):
    """Scopes one method needs, replacing the route-wide rule for that method."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: list[str] = Field(
        ..., description="Scopes required for this method (an empty list requires none)."
    )
    match: Literal["all", "any"] = Field(
        "all", description="`all`: every listed scope is needed; `any`: one of them is enough."
    )

    @field_validator("required")
    @classmethod
    def _check_required(cls, value: list[str]) -> list[str]:
        return _check_scopes(value)


class ScopesConfig(PolicyConfig):
    """Settings for the scopes policy: the OAuth scopes a caller's token must carry."""

    required: list[str] = Field(
        default_factory=list, description="Scopes required for every method without an override."
    )
    match: Literal["all", "any"] = Field(
        "all", description="`all`: every listed scope is needed; `any`: one of them is enough."
    )
    methods: dict[str, ScopeRule] = Field(
        default_factory=dict,
        description="Per-method overrides: {GET: {required: [read]}, POST: {required: [write]}}.",
    )

    @field_validator("required")
    @classmethod
    def _check_required(cls, value: list[str]) -> list[str]:
        return _check_scopes(value)

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: dict[str, ScopeRule]) -> dict[str, ScopeRule]:
        normalised: dict[str, ScopeRule] = {}
        for method, rule in value.items():
            upper = method.upper()
            if upper not in HTTP_METHODS:
                raise ValueError(f"{method!r} is not an HTTP method")
            if upper in normalised:
                raise ValueError(f"{upper} is listed twice")
            normalised[upper] = rule
        return normalised

    @model_validator(mode="after")
    def _check_something_required(self) -> Self:
        if not self.required and not any(rule.required for rule in self.methods.values()):
            raise ValueError("set required (or a method override that requires a scope)")
        return self
