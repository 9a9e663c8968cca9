"""The injection_guard policy: refuse requests carrying SQLi, XSS and similar payloads."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import InvalidRequest
from bastion.policies.injection_guard.config import InjectionGuardConfig
from bastion.policies.injection_guard.rules import RULESET_VERSION, Matcher, select
from bastion.policies.injection_guard.scan import scan_request

INJECTION_DETECTED = "The request contains a pattern that is not allowed."
"""Public detail of the 400 when a rule matches (the rule itself is not disclosed)."""
MATCHED_MESSAGE = "contains a disallowed pattern"


class InjectionGuardPolicy(Policy[InjectionGuardConfig]):
    """Match path, query, selected headers and JSON/form body strings against the rule set.

    A match answers 400 `injection_detected` naming only where it was found; the rule id and
    category go to `ctx.state(policy)["finding"]` for logs. This is a negative security model
    layered under `openapi` validation, not a replacement for parameterised queries and output
    encoding in the upstream.
    """

    name = "injection_guard"
    priority = Priority.VALIDATE + 10
    version = RULESET_VERSION
    needs_request_body = True

    def __init__(self, config: InjectionGuardConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self.matcher = Matcher.build(select(config.categories, config.exclude_rules))
        self._headers = tuple(name.encode("latin-1") for name in config.headers)
        self._excluded = frozenset(config.exclude_parameters)
        self._path = config.inspect_path
        self._body = config.inspect_body
        self.needs_request_body = config.inspect_body

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        finding = scan_request(
            self.matcher,
            ctx.request,
            headers=self._headers,
            excluded=self._excluded,
            inspect_path=self._path,
            inspect_body=self._body,
        )
        if finding is None:
            return None
        ctx.state(self)["finding"] = finding
        problem = {"in": finding.location, "message": MATCHED_MESSAGE}
        if finding.name:
            problem["name"] = finding.name[:64]
        raise InvalidRequest(
            INJECTION_DETECTED, code="injection_detected", extra={"errors": [problem]}
        )
