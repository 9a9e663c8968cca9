"""The OpenAPI 3.1 document of the admin API, built from the route table and payload models."""

from __future__ import annotations

from functools import cache
from typing import Final

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bastion import __version__
from bastion.admin.payloads import Problem
from bastion.admin.routes import OPERATIONS, Operation

_REF: Final = "#/components/schemas/{model}"
_PROBLEM: Final = {"$ref": "#/components/schemas/Problem"}
_ERRORS: Final = {
    "400": "The body is not JSON, or a query parameter or source address is invalid.",
    "401": "A valid admin bearer token is required.",
    "404": "No such resource.",
    "409": "A name or id is taken.",
    "413": "The body is too large.",
    "415": "The body must be application/json.",
    "422": "The body (or config) is invalid; `errors` names each field.",
    "503": "The credential store is unavailable.",
}


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Problem": Problem}
    for operation in OPERATIONS:
        for model in (operation.request, operation.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _operation(operation: Operation) -> dict[str, object]:
    responses: dict[str, object] = {}
    ok: dict[str, object] = {"description": operation.summary}
    if operation.response is not None:
        ref = {"$ref": _REF.format(model=operation.response.__name__)}
        ok["content"] = {"application/json": {"schema": ref}}
    elif operation.operation_id == "openapi":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses[str(operation.status)] = ok
    for status, description in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
    doc: dict[str, object] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "responses": responses,
    }
    parameters: list[dict[str, object]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in operation.parameters
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in operation.query
    ]
    if parameters:
        doc["parameters"] = parameters
    if operation.request is not None:
        ref = {"$ref": _REF.format(model=operation.request.__name__)}
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    elif operation.body == "config":
        schema = {"type": "object", "description": "A gateway config document (as in YAML)."}
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}, "application/yaml": {}},
        }
    return doc


def openapi_document() -> dict[str, object]:
    """The admin API described as an OpenAPI 3.1 document."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in _models()], ref_template=_REF
    )
    paths: dict[str, dict[str, object]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.template, {})[operation.method.lower()] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion admin API",
            "version": __version__,
            "description": "Manage consumers, credentials, OAuth clients, blocked sources and "
            "the running config. Every change is written to the audit log with actor "
            "`admin-api`.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"adminToken": []}],
    }


@cache
def openapi_bytes() -> bytes:
    """The document serialised once."""
    return orjson.dumps(openapi_document())
