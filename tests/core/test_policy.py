"""The policy base class, its configuration base, and the per-request context it works on."""

from __future__ import annotations

import re

import pytest
from pydantic import Field, ValidationError
from typing_extensions import override

from bastion.clock import FakeClock, SystemClock
from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps
from tests.support import make_ctx


class _GreetingConfig(PolicyConfig):
    greeting: str = Field("hello", description="What to say.")


class _Greeting(Policy[_GreetingConfig]):
    name = "greeting"
    priority = 1

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        ctx.state(self)["said"] = self.config.greeting
        return None


class _Plain(Policy[PolicyConfig]):
    name = "plain"
    priority = 1


def test_config_model_comes_from_the_generic_argument():
    assert _Greeting.config_model is _GreetingConfig
    assert _Plain.config_model is PolicyConfig


def test_subclass_of_a_policy_keeps_its_parents_config_model():
    class _Louder(_Greeting):
        name = "louder"

    assert _Louder.config_model is _GreetingConfig


@pytest.mark.parametrize(
    ("mode", "report_only"),
    [("enforce", False), ("report_only", True)],
    ids=["enforce", "report_only"],
)
def test_mode_decides_report_only(mode, report_only):
    policy = _Greeting(_GreetingConfig.model_validate({"mode": mode}), PolicyDeps())
    assert policy.report_only is report_only


def test_mode_defaults_to_enforce():
    assert PolicyConfig().mode == "enforce"
    assert not _Plain(PolicyConfig(), PolicyDeps()).report_only


@pytest.mark.parametrize(
    "settings",
    [{"mode": "monitor"}, {"mode": "ENFORCE"}, {"unknown": 1}],
    ids=["unknown_mode", "mode_is_case_sensitive", "unknown_key"],
)
def test_policy_config_refuses_unknown_modes_and_keys(settings):
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate(settings)


def test_policy_config_is_frozen():
    config = PolicyConfig()
    with pytest.raises(ValidationError):
        config.mode = "report_only"  # type: ignore[misc]  # the point: frozen models refuse it


def test_base_phases_are_no_ops():
    policy = _Plain(PolicyConfig(), PolicyDeps())
    ctx = make_ctx()
    assert policy.rewrite(ctx) is None
    assert policy.access(ctx) is None
    policy.header_filter(ctx)
    assert policy.body_filter(ctx, b"chunk", True) == b"chunk"
    policy.log(ctx)
    assert ctx.status == 0
    assert len(ctx.response_headers) == 0
    assert ctx.identity is None


def test_policy_keeps_config_and_deps():
    config = _GreetingConfig(greeting="hi")
    deps = PolicyDeps(clock=FakeClock(), route="r", service="s", https_port=8443)
    policy = _Greeting(config, deps)
    assert policy.config is config
    assert policy.deps is deps


def test_deps_default_to_the_system_clock_and_no_route():
    deps = PolicyDeps()
    assert isinstance(deps.clock, SystemClock)
    assert (deps.route, deps.service, deps.https_port, deps.extras) == (None, None, None, {})


def test_state_is_private_to_each_policy_and_each_request():
    first, second = _Greeting(_GreetingConfig(), PolicyDeps()), _Plain(PolicyConfig(), PolicyDeps())
    ctx, other_ctx = make_ctx(), make_ctx()
    first.access(ctx)
    assert ctx.state(first) == {"said": "hello"}
    assert ctx.state(first) is ctx.state(first)
    assert ctx.state(second) == {}
    assert other_ctx.state(first) == {}


def test_ensure_request_id_generates_one_unique_id_and_keeps_it():
    ctx = make_ctx()
    request_id = ctx.ensure_request_id()
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert ctx.ensure_request_id() == request_id
    assert make_ctx().ensure_request_id() != request_id


def test_ensure_request_id_keeps_an_id_a_policy_already_set():
    ctx = make_ctx()
    ctx.request_id = "abc-123"
    assert ctx.ensure_request_id() == "abc-123"


def test_authenticate_records_the_identity():
    ctx = make_ctx()
    identity = Identity("c1", "alice", scopes=frozenset({"read"}), method="api_key")
    ctx.authenticate(identity)
    assert ctx.identity is identity


def test_identity_is_immutable():
    identity = Identity("c1")
    with pytest.raises(AttributeError):
        identity.consumer_id = "c2"  # type: ignore[misc]  # the point: frozen dataclass


def test_request_ids_of_a_forked_worker_never_repeat_the_parents():
    import os

    from bastion.core.context import new_request_id

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its first id and exits at once
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_id = new_request_id()
    assert len(child_id) == len(parent_id) == 32
    assert child_id[:16] != parent_id[:16]


@pytest.mark.parametrize(
    "identity",
    [
        Identity(consumer_id="alice\r\nx-admin: 1"),
        Identity(consumer_id="alice", scopes=frozenset({"read\nwrite"})),
    ],
    ids=["crlf_in_consumer", "newline_in_scope"],
)
def test_authenticate_refuses_values_that_would_split_forwarded_headers(identity):
    ctx = make_ctx()
    with pytest.raises(ValueError, match="printable"):
        ctx.authenticate(identity)
    assert ctx.identity is None
