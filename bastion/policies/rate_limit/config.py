"""Settings for the rate_limit policy."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bastion.core.policy import PolicyConfig
from bastion.policies.rate_limit.algorithm import MAX_LOG_LIMIT, Algorithm

KEY_KINDS = ("ip", "consumer", "credential", "route")
HEADER_KIND = "header:"
MAX_WINDOW = 366 * 86_400
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _check_key(value: str | list[str]) -> list[str]:
    parts = [value] if isinstance(value, str) else value
    if not parts:
        raise ValueError("key must name at least one kind")
    result: list[str] = []
    for raw in parts:
        part = raw.strip().lower()
        if part.startswith(HEADER_KIND):
            if not _HEADER_NAME.fullmatch(part[len(HEADER_KIND) :]):
                raise ValueError(f"{raw!r}: header:<name> needs a valid header field name")
        elif part not in KEY_KINDS:
            raise ValueError(
                f"unknown key kind {raw!r}; use ip, consumer, credential, route, header:<name>"
            )
        if part in result:
            raise ValueError(f"key kind {raw!r} is listed twice")
        result.append(part)
    return result


def _check_algorithm(limit: int | None, algorithm: Algorithm, burst: int) -> None:
    """Cross-field rules of one limit; the error names `limit` when that is what is wrong."""
    if burst and algorithm != "gcra":
        raise ValueError("burst applies to the gcra algorithm only")
    if algorithm == "sliding_log" and limit is not None and limit > MAX_LOG_LIMIT:
        # The loader prints a "located" error as <model path>.<this path>: <message>.
        raise PydanticCustomError(
            "located",
            "{path}: {message}",
            {
                "path": "limit",
                "message": f"sliding_log keeps one entry per admitted request, so its limit is"
                f" at most {MAX_LOG_LIMIT:,} (got {limit}); use gcra for larger limits",
            },
        )


def _normalise_key(value: object) -> object:
    """Validate a `key` setting (a kind or a list of kinds); other types go to pydantic."""
    if isinstance(value, str):
        return _check_key(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return _check_key(value)
    return value


class LimitConfig(BaseModel):
    """One limit: `limit` requests per `window` seconds for each value of `key`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(gt=0, description="Requests admitted per window.")
    window: int = Field(gt=0, le=MAX_WINDOW, description="Window length in seconds.")
    burst: int = Field(
        0,
        ge=0,
        description="Requests admitted at once beyond the smooth rate (gcra only); at most "
        "limit + burst in any window.",
    )
    key: list[str] = Field(
        default_factory=lambda: ["ip"],
        description="What is counted: ip, consumer, credential, route, header:<name>, or a "
        "list combining them. consumer/credential/header fall back to the client IP when absent.",
    )
    algorithm: Algorithm = Field(
        "gcra",
        description="`gcra` (smooth, the default), `sliding_window` (approximate) or "
        f"`sliding_log` (exact, limit at most {MAX_LOG_LIMIT:,}).",
    )
    name: str | None = Field(
        None,
        pattern=_NAME,
        description="Policy name in the RateLimit headers; default `default` for a single limit.",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return _normalise_key(value)

    @model_validator(mode="after")
    def _fits_the_algorithm(self) -> Self:
        _check_algorithm(self.limit, self.algorithm, self.burst)
        return self


class RateLimitConfig(PolicyConfig):
    """Settings for the rate_limit policy: one limit inline, or several under `limits`."""

    limit: int | None = Field(None, gt=0, description="Requests admitted per window.")
    window: int | None = Field(None, gt=0, le=MAX_WINDOW, description="Window in seconds.")
    burst: int = Field(0, ge=0, description="Extra requests admitted at once (gcra only).")
    key: list[str] = Field(
        default_factory=lambda: ["ip"],
        description="ip, consumer, credential, route, header:<name>, or a list of them.",
    )
    algorithm: Algorithm = Field(
        "gcra", description="`gcra`, `sliding_window` or `sliding_log` (exact)."
    )
    name: str | None = Field(None, pattern=_NAME, description="Name in the RateLimit headers.")
    limits: list[LimitConfig] | None = Field(
        None, min_length=1, description="Several limits, all applied (instead of `limit`)."
    )
    headers: bool = Field(True, description="Send RateLimit and RateLimit-Policy headers.")
    legacy_headers: bool = Field(
        False, description="Also send X-RateLimit-Limit, -Remaining and -Reset."
    )
    exclude_preflight: bool = Field(True, description="Do not count CORS preflight requests.")
    on_backend_error: Literal["local", "allow", "deny"] = Field(
        "local",
        description="When Redis is unavailable: `local` counts in process memory, `allow` "
        "admits, `deny` refuses with 503.",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return _normalise_key(value)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.limits is None:
            if self.limit is None or self.window is None:
                raise ValueError("set limit and window, or a list of limits")
            _check_algorithm(self.limit, self.algorithm, self.burst)
        elif self.limit is not None or self.window is not None:
            raise ValueError("limit/window and limits exclude each other")
        names = [limit_name(item, len(self.resolved())) for item in self.resolved()]
        if len(set(names)) != len(names):
            raise ValueError("two limits share a name; give each a distinct `name`")
        return self

    def resolved(self) -> list[LimitConfig]:
        """Every limit of the policy, the inline form included."""
        if self.limits is not None:
            return list(self.limits)
        if self.limit is None or self.window is None:  # excluded by the validator
            raise ValueError("set limit and window, or a list of limits")
        return [
            LimitConfig(
                limit=self.limit,
                window=self.window,
                burst=self.burst,
                key=self.key,
                algorithm=self.algorithm,
                name=self.name,
            )
        ]


def limit_name(limit: LimitConfig, count: int) -> str:
    """The name a limit carries in the headers and counter keys."""
    if limit.name is not None:
        return limit.name
    return "default" if count == 1 else f"{limit.limit}-per-{limit.window}s"
