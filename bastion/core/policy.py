"""The policy base class, its configuration base, priorities and shared dependencies.

A policy is one security or traffic concern (authentication, rate limiting, headers...). It
compiles its configuration once in `__init__` and then serves every request of the routes it is
attached to. Phases are plain methods that return `None` when done, or an awaitable when they
must wait for I/O; the chain awaits only then, so the common path costs no coroutine.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bastion.clock import Clock, SystemClock
from bastion.core.context import RequestContext

if TYPE_CHECKING:
    from bastion.counters.base import Counters
    from bastion.store.cache import CachedStore


class Priority(IntEnum):
    """Priority bands: request phases run high to low, response phases low to high."""

    OBSERVE = 9000
    HARDEN = 8000
    CORS = 7000
    AUTHENTICATE = 6000
    AUTHORIZE = 5000
    RATE_LIMIT = 4000
    VALIDATE = 3000
    TRANSFORM = 2000


class PolicyConfig(BaseModel):
    """Base of every policy's settings: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["enforce", "report_only"] = Field(
        "enforce",
        description="`enforce` rejects; `report_only` logs what would have been rejected.",
    )


def _memory_counters() -> Counters:
    # Imported here: the counters package builds on policy arithmetic, and core stays below it.
    from bastion.counters.memory import MemoryCounters

    return MemoryCounters()


@dataclass(frozen=True, slots=True)
class PolicyDeps:
    """What the gateway hands every policy: the clock, the route it serves, shared counters.

    `counters` is one instance per gateway (the builder creates it from the `counters:`
    setting and passes the same one to every policy); the default, for policies built
    outside a gateway, is a private in-memory one.
    """

    clock: Clock = field(default_factory=SystemClock)
    route: str | None = None
    service: str | None = None
    https_port: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    counters: Counters = field(default_factory=_memory_counters)
    store: CachedStore | None = None  # consumers and credentials (`store:`); None: unset


C = TypeVar("C", bound=PolicyConfig)

PhaseResult = Awaitable[None] | None


class Policy(Generic[C]):
    """Base of every policy. Subclasses set `name`, `priority` and override the phases they need."""

    name: ClassVar[str]
    priority: ClassVar[int]
    config_model: ClassVar[type[PolicyConfig]]
    # Per class or per instance: a policy may decide in __init__ from its config.
    needs_request_body: bool = False
    # Authenticators establish the identity; on a route with `auth: any` they are tried as a
    # group (see `bastion.core.auth.AnyOf`) instead of each one having to succeed.
    authenticates: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The config model comes from the generic argument: `class X(Policy[XConfig])`.
        for base in getattr(cls, "__orig_bases__", ()):
            args = typing.get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], PolicyConfig):
                cls.config_model = args[0]

    def __init__(self, config: C, deps: PolicyDeps) -> None:
        self.config = config
        self.deps = deps
        self.report_only = config.mode == "report_only"

    def rewrite(self, ctx: RequestContext) -> PhaseResult:
        """Adjust the request before any access decision (client address, request id)."""
        return None

    def access(self, ctx: RequestContext) -> PhaseResult:
        """Decide: return to let the request through, raise a `Reject` to refuse it."""
        return None

    def header_filter(self, ctx: RequestContext) -> None:
        """Adjust `ctx.response_headers` (and `ctx.status`) before the response head is sent."""
        return None

    def body_filter(self, ctx: RequestContext, chunk: bytes, end: bool) -> bytes:
        """Transform a chunk of the response body; `end` marks the last one."""
        return chunk

    def log(self, ctx: RequestContext) -> None:
        """Record the outcome after the response has been sent."""
        return None

    def overrides(self, phase: str) -> bool:
        """Whether this policy implements `phase` (the chain skips no-op phases)."""
        return getattr(type(self), phase) is not getattr(Policy, phase)
