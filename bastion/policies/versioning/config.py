"""Settings for the versioning policy."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.core.policy import PolicyConfig
from bastion.policies.versioning.headers import normalise_version

Source = Literal["path", "header", "media_type"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # an HTTP field name / parameter name
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
# A URI reference as it may appear between `<` and `>` in a Link header: printable ASCII
# without spaces, angle brackets, quotes or backslashes (RFC 8288 §3).
_URI_REFERENCE = re.compile(r"^[\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,2048}$")


def _all_sources() -> list[Source]:
    return ["path", "header", "media_type"]


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} needs a time zone, e.g. 2026-06-30T23:59:59Z")
    return value


def _link_target(value: str | None) -> str | None:
    if value is None:
        return None
    if not _URI_REFERENCE.match(value):
        raise ValueError("must be a URL (or a path) without spaces, quotes or angle brackets")
    if not (value.startswith(("https://", "http://", "/"))):
        raise ValueError("must be an absolute http(s) URL or a path starting with /")
    return value


class VersionConfig(BaseModel):
    """The lifecycle of one API version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deprecated_at: datetime | None = Field(
        None,
        description="When the version is (or will be) deprecated: sent as `Deprecation` "
        "(RFC 9745) on every response of this version.",
    )
    sunset_at: datetime | None = Field(
        None,
        description="When the version stops being served: sent as `Sunset` (RFC 8594); from "
        "then on requests get 410 Gone.",
    )
    successor: str | None = Field(
        None,
        description='URL of the version that replaces this one (`Link: <...>; rel="successor-'
        'version"`).',
    )
    deprecation_link: str | None = Field(
        None,
        description='URL of a page about the deprecation (`Link: <...>; rel="deprecation"`, '
        "RFC 9745 §3).",
    )
    sunset_link: str | None = Field(
        None,
        description='URL of a page about the sunset policy (`Link: <...>; rel="sunset"`, '
        "RFC 8594 §6).",
    )

    @field_validator("deprecated_at")
    @classmethod
    def _deprecated_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value, "deprecated_at")

    @field_validator("sunset_at")
    @classmethod
    def _sunset_aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value, "sunset_at")

    @field_validator("successor", "deprecation_link", "sunset_link")
    @classmethod
    def _links(cls, value: str | None) -> str | None:
        return _link_target(value)

    @model_validator(mode="after")
    def _sunset_after_deprecation(self) -> Self:
        # RFC 9745 §4: the sunset cannot come before the deprecation.
        if (
            self.deprecated_at is not None
            and self.sunset_at is not None
            and self.sunset_at < self.deprecated_at
        ):
            raise ValueError("sunset_at is before deprecated_at (a version is deprecated first)")
        return self


class VersioningConfig(PolicyConfig):
    """Settings for the versioning policy: where the version comes from and each one's lifecycle.

    A version is named like `1`, `v1` or `2.1`; a leading `v` is ignored when matching, so the
    path `/v2/...`, `Accept-Version: 2` and `Accept: application/json; version=v2` all select
    the version configured as `v2` (or `2`).
    """

    versions: dict[str, VersionConfig] = Field(
        ..., min_length=1, description="The versions served, by name, with their lifecycle."
    )
    default: str | None = Field(
        None,
        description="Version of requests that name none; omitted: such requests get 400.",
    )
    sources: list[Source] = Field(
        default_factory=_all_sources,
        min_length=1,
        description="Where the version is read from: the first path segment (`/v1/...`), a "
        "request header, or a media-type parameter of `Accept`. When several name a "
        "version they must agree (400 otherwise).",
    )
    headers: list[str] = Field(
        default_factory=lambda: ["accept-version", "api-version"],
        min_length=1,
        description="Request headers that carry the version (source `header`).",
    )
    media_type_parameter: str = Field(
        "version",
        description="Parameter of an `Accept` media range that carries the version "
        "(source `media_type`), e.g. `application/json; version=2`.",
    )

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a header name")
        return list(dict.fromkeys(name.lower() for name in value))

    @field_validator("media_type_parameter")
    @classmethod
    def _parameter_name(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError(f"{value!r} is not a media-type parameter name")
        return value.lower()

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, value: list[Source]) -> list[Source]:
        return list(dict.fromkeys(value))

    @field_validator("versions")
    @classmethod
    def _version_names(cls, value: dict[str, VersionConfig]) -> dict[str, VersionConfig]:
        seen: dict[str, str] = {}
        for name in value:
            if not _VERSION.match(name):
                raise ValueError(f"{name!r} is not a version name (letters, digits, . _ -)")
            key = normalise_version(name)
            if key in seen:
                raise ValueError(f"versions {seen[key]!r} and {name!r} are the same version")
            seen[key] = name
        return value

    @model_validator(mode="after")
    def _known_default(self) -> Self:
        if self.default is not None and self.default not in self.versions:
            raise ValueError(f"default version {self.default!r} is not one of versions")
        return self
