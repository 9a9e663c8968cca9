"""The `Counters` seam: shared rate-limit state, in process memory or in Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from bastion.policies.rate_limit.algorithm import Decision, Rule

Check = tuple[str, "Rule"]
"""One limit to apply: the counter key and its rule."""
Decisions = tuple["Decision", ...]
"""One decision per check, in order."""
OnError = Literal["local", "allow", "deny"]


class Counters(Protocol):
    """Atomic check-and-count over keyed counters (rate limits, lockouts).

    `hit` answers synchronously when the state is in this process (memory, or Redis while it
    is down and the fallback is local) and returns an awaitable only when it must ask Redis.
    """

    kind: str
    """`memory` or `redis`."""
    spec: str
    """The `counters:` setting this instance was built from (kept across reloads if equal)."""

    def hit(
        self, checks: Sequence[Check], *, on_error: OnError = "local"
    ) -> Decisions | Awaitable[Decisions | None] | None:
        """Decide every check at once and count the request on all of them only if all allow.

        Returns:
            One decision per check; `None` when the backend is unavailable and `on_error` is
            not `local` (the caller applies allow or deny).
        """
        ...

    async def close(self) -> None:
        """Release connections; the instance is not used afterwards."""
        ...
