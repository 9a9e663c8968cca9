"""A policy that fails unexpectedly: a fixed 500, and the request still finishes its log phase."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from bastion.core.context import RequestContext
from bastion.policies.injection_guard.policy import InjectionGuardPolicy
from tests.integration.harness import running_gateway

pytestmark = pytest.mark.integration


def _broken(self: InjectionGuardPolicy, ctx: RequestContext) -> None:
    raise RuntimeError("a bug in a policy")


def test_a_failing_policy_answers_500_and_releases_what_earlier_policies_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # concurrency_limit takes a slot before injection_guard runs; the log phase gives it back.
    # Were the log phase skipped, the slot would leak and the second request would get 429.
    monkeypatch.setattr(InjectionGuardPolicy, "access", _broken)
    extra = {"global_policies": {"concurrency_limit": {"max": 1}, "injection_guard": {}}}
    with running_gateway(tmp_path, extra) as gateway:
        url = f"http://127.0.0.1:{gateway.http_port}/x"
        answers = [httpx.get(url, timeout=5) for _ in range(2)]
        for answer in answers:
            assert answer.status_code == 500
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert (problem["code"], problem["detail"]) == (
                "internal_error",
                "An internal error occurred.",
            )
            assert "bug" not in answer.text
        assert gateway.seen == []
    deadline = time.monotonic() + 3
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(lines) < 2:
        text = (tmp_path / "access.log").read_text()
        lines = [json.loads(line) for line in text.splitlines() if '"status_code":500' in line]
        time.sleep(0.05)
    assert len(lines) == 2  # both requests went through the log phase
