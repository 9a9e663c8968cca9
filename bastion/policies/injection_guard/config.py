"""Settings for the injection_guard policy."""

from __future__ import annotations

from pydantic import Field, field_validator

from bastion.core.policy import PolicyConfig
from bastion.policies.injection_guard.rules import CATEGORIES, RULES, Category

DEFAULT_HEADERS = ["user-agent", "referer", "x-forwarded-host", "x-original-url", "x-rewrite-url"]


class InjectionGuardConfig(PolicyConfig):
    """Settings for the injection_guard policy (see docs/validation.md for the rule set)."""

    categories: list[Category] = Field(
        default_factory=lambda: list(CATEGORIES),
        description="Rule categories applied: sqli, xss, traversal, cmdi, nosql, crlf, ssrf.",
    )
    exclude_rules: list[str] = Field(
        default_factory=list, description="Rule ids switched off on this route."
    )
    exclude_parameters: list[str] = Field(
        default_factory=list,
        description="Query parameter, form field and JSON property names (at any depth) "
        "whose values are not inspected, e.g. a free-text field that legitimately holds code.",
    )
    headers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HEADERS),
        description="Request headers whose values are inspected.",
    )
    inspect_path: bool = Field(True, description="Inspect the path's segments.")
    inspect_body: bool = Field(
        True,
        description="Inspect JSON and form bodies (the body is buffered for this).",
    )

    @field_validator("exclude_rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        known = {rule.id for rule in RULES}
        for rule_id in value:
            if rule_id not in known:
                raise ValueError(f"unknown rule id {rule_id!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [name.strip().lower() for name in value]
