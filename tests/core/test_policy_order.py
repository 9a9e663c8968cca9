"""Pins the priority bands and every built-in policy's name and priority.

Registering a policy (bastion/policies/registry.py) means adding it to `EXPECTED` below: the
order policies run in is a security property (authenticate before authorize before rate limit
before validate), so it changes only on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import bastion.config.models
import bastion.policies
from bastion.config.models import GatewayConfig
from bastion.config.policies import PoliciesConfig
from bastion.core.policy import Policy, PolicyConfig, Priority
from bastion.policies.registry import BUILTIN_POLICIES

# name -> priority of every registered built-in policy.
EXPECTED = {
    "trusted_proxy": Priority.OBSERVE + 20,
    "request_id": Priority.OBSERVE + 10,
    "ip_filter": Priority.HARDEN + 50,
    "size_limit": Priority.HARDEN + 40,
    "security_headers": Priority.HARDEN,
    "cors": Priority.CORS,
    "brute_force": Priority.AUTHENTICATE + 40,
    "api_key": Priority.AUTHENTICATE + 30,
    "basic_auth": Priority.AUTHENTICATE + 20,
    "jwt": Priority.AUTHENTICATE + 10,
    "introspection": Priority.AUTHENTICATE + 5,
    "acl": Priority.AUTHORIZE + 10,
    "scopes": Priority.AUTHORIZE,
    "quota": Priority.RATE_LIMIT + 10,
    "rate_limit": Priority.RATE_LIMIT,
    "concurrency_limit": Priority.RATE_LIMIT - 10,
    "injection_guard": Priority.VALIDATE + 10,
    "openapi": Priority.VALIDATE,
    "versioning": Priority.TRANSFORM,
}

BAND_WIDTH = 1000


def test_priority_bands_are_pinned():
    assert {band.name: int(band) for band in Priority} == {
        "OBSERVE": 9000,
        "HARDEN": 8000,
        "CORS": 7000,
        "AUTHENTICATE": 6000,
        "AUTHORIZE": 5000,
        "RATE_LIMIT": 4000,
        "VALIDATE": 3000,
        "TRANSFORM": 2000,
    }


def test_authenticate_runs_before_authorize_before_rate_limit_before_validate():
    assert (
        Priority.OBSERVE
        > Priority.HARDEN
        > Priority.CORS
        > Priority.AUTHENTICATE
        > Priority.AUTHORIZE
        > Priority.RATE_LIMIT
        > Priority.VALIDATE
        > Priority.TRANSFORM
    )


def test_registered_builtins_and_their_priorities_are_pinned():
    assert {name: cls.priority for name, cls in BUILTIN_POLICIES.items()} == EXPECTED


def test_builtins_run_in_the_pinned_order():
    by_priority = sorted(BUILTIN_POLICIES.values(), key=lambda cls: cls.priority, reverse=True)
    assert [cls.name for cls in by_priority] == [
        "trusted_proxy",
        "request_id",
        "ip_filter",
        "size_limit",
        "security_headers",
        "cors",
        "brute_force",
        "api_key",
        "basic_auth",
        "jwt",
        "introspection",
        "acl",
        "scopes",
        "quota",
        "rate_limit",
        "concurrency_limit",
        "injection_guard",
        "openapi",
        "versioning",
    ]


def test_builtin_priorities_are_unique_so_the_order_never_depends_on_config():
    priorities = [cls.priority for cls in BUILTIN_POLICIES.values()]
    assert len(set(priorities)) == len(priorities)


@pytest.mark.parametrize("name", sorted(BUILTIN_POLICIES), ids=sorted(BUILTIN_POLICIES))
def test_builtin_priority_lies_inside_a_band(name):
    priority = BUILTIN_POLICIES[name].priority
    assert any(band <= priority < band + BAND_WIDTH for band in Priority)


@pytest.mark.parametrize("name", sorted(BUILTIN_POLICIES), ids=sorted(BUILTIN_POLICIES))
def test_registered_name_is_the_folder_and_class_name(name):
    cls = BUILTIN_POLICIES[name]
    assert cls.name == name
    assert cls.__module__ == f"bastion.policies.{name}.policy"
    assert issubclass(cls, Policy)


@pytest.mark.parametrize("name", sorted(BUILTIN_POLICIES), ids=sorted(BUILTIN_POLICIES))
def test_registered_name_is_the_policies_config_field_of_its_config_model(name):
    field = PoliciesConfig.model_fields[name]
    config_model = BUILTIN_POLICIES[name].config_model
    assert issubclass(config_model, PolicyConfig)
    assert typing.get_args(field.annotation) == (config_model, type(None))
    assert field.default is None
    assert field.description


def test_policies_config_has_a_field_for_exactly_the_registered_policies():
    assert set(PoliciesConfig.model_fields) == set(BUILTIN_POLICIES)


def test_every_policy_folder_is_registered():
    root = Path(bastion.policies.__file__).parent
    folders = {info.name for info in pkgutil.iter_modules([str(root)]) if info.ispkg}
    assert folders == set(BUILTIN_POLICIES)


def _models_reachable_from(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every pydantic model a config document can contain, found through field annotations."""
    found: set[type[BaseModel]] = set()
    pending: list[object] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.add(item)
            pending.extend(field.annotation for field in item.model_fields.values())
        else:
            pending.extend(typing.get_args(item))
    return found


def _all_config_models() -> set[type[BaseModel]]:
    models = _models_reachable_from(GatewayConfig)
    models.update(cls.config_model for cls in BUILTIN_POLICIES.values())
    modules: list[types.ModuleType] = [bastion.config.models]
    modules.extend(
        importlib.import_module(f"bastion.policies.{name}.config") for name in BUILTIN_POLICIES
    )
    for module in modules:
        models.update(
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, BaseModel)
            and obj.__module__ == module.__name__
        )
    return models


CONFIG_MODELS = sorted(_all_config_models(), key=lambda m: f"{m.__module__}.{m.__qualname__}")


def test_config_models_were_found():
    names = {model.__name__ for model in CONFIG_MODELS}
    assert {"GatewayConfig", "RouteConfig", "PoliciesConfig", "TLSConfig", "CORSConfig"} <= names


@pytest.mark.parametrize("model", CONFIG_MODELS, ids=[m.__name__ for m in CONFIG_MODELS])
def test_every_config_model_is_frozen_and_refuses_unknown_keys(model):
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("model", CONFIG_MODELS, ids=[m.__name__ for m in CONFIG_MODELS])
def test_every_config_field_is_described(model):
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []
