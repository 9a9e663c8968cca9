"""Loading specs: file references bundled, remote ones refused, invalid documents located."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from bastion.cli.main import main
from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.errors import UnprocessableContent
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from bastion.policies.openapi.loader import SpecError, load_spec
from tests.support import make_ctx

BASE = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}}


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def _op(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "requestBody": {"content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "ok"}},
        }
    }


def test_relative_file_references_are_bundled(tmp_path):
    (tmp_path / "schemas").mkdir()
    _write(
        tmp_path / "schemas" / "pet.yaml",
        {
            "Pet": {
                "type": "object",
                "properties": {"tag": {"$ref": "#/Tag"}},
                "required": ["tag"],
            },
            "Tag": {"type": "string", "maxLength": 3},
        },
    )
    spec = _write(
        tmp_path / "api.yaml", {**BASE, "paths": {"/pets": _op({"$ref": "schemas/pet.yaml#/Pet"})}}
    )
    document = load_spec(spec)
    schema = document["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert schema["properties"]["tag"] == {"type": "string", "maxLength": 3}
    policy = OpenAPIPolicy(OpenAPIConfig(spec=spec), PolicyDeps(clock=FakeClock()))
    ctx = make_ctx(
        "POST", "/pets", headers=[(b"content-type", b"application/json")], body=b'{"tag": "long"}'
    )
    with pytest.raises(UnprocessableContent):
        policy.access(ctx)


def test_json_documents_are_read(tmp_path):
    spec = tmp_path / "api.json"
    spec.write_bytes(orjson.dumps({**BASE, "paths": {}}))
    assert load_spec(spec)["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    "ref",
    ["https://evil.example/schema.json", "//evil.example/x.yaml", "http://127.0.0.1/x#/A"],
    ids=["https", "scheme-relative", "http"],
)
def test_remote_references_are_refused(tmp_path, ref):
    spec = _write(tmp_path / "api.yaml", {**BASE, "paths": {"/a": _op({"$ref": ref})}})
    with pytest.raises(SpecError, match="remote reference"):
        load_spec(spec)


def test_recursive_references_across_files_are_refused(tmp_path):
    _write(
        tmp_path / "a.yaml", {"A": {"type": "object", "properties": {"b": {"$ref": "b.yaml#/B"}}}}
    )
    _write(
        tmp_path / "b.yaml", {"B": {"type": "object", "properties": {"a": {"$ref": "a.yaml#/A"}}}}
    )
    spec = _write(tmp_path / "api.yaml", {**BASE, "paths": {"/a": _op({"$ref": "a.yaml#/A"})}})
    with pytest.raises(SpecError, match="recursive"):
        load_spec(spec)


def test_missing_reference_target_names_the_place(tmp_path):
    _write(tmp_path / "a.yaml", {"A": {"type": "string"}})
    spec = _write(tmp_path / "api.yaml", {**BASE, "paths": {"/a": _op({"$ref": "a.yaml#/Nope"})}})
    with pytest.raises(SpecError, match="#/Nope does not exist"):
        load_spec(spec)


def test_invalid_document_error_points_at_the_location(tmp_path):
    spec = _write(tmp_path / "api.yaml", {**BASE, "paths": {"/a": {"get": {"responses": "nope"}}}})
    with pytest.raises(SpecError, match=r"at #/paths//a/get/responses"):
        load_spec(spec)


def test_unsupported_openapi_version_is_refused(tmp_path):
    spec = _write(tmp_path / "api.yaml", {"swagger": "2.0", "info": {}, "paths": {}})
    with pytest.raises(SpecError, match=r"not 3\.0\.x or 3\.1\.x"):
        load_spec(spec)


def test_bastion_check_reports_an_invalid_spec_at_its_config_path(tmp_path):
    _write(tmp_path / "api.yaml", {**BASE, "paths": {"/a": {"get": {"responses": "nope"}}}})
    config = tmp_path / "bastion.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            listeners: [{bind: "127.0.0.1:8443", tls: {}}]
            services:
              - name: api
                upstream: {targets: ["http://127.0.0.1:9000"]}
                routes:
                  - name: all
                    paths: ["/"]
                    policies: {openapi: {spec: api.yaml}}
            """
        )
    )
    result = CliRunner().invoke(main, ["check", "-c", str(config)])
    assert result.exit_code == 1
    assert "services[0].routes[0].policies.openapi:" in result.stderr
    assert "api.yaml: at #/paths//a/get/responses" in result.stderr


def generated_spec(operations: int) -> dict[str, Any]:
    """A spec with `operations` operations: path, query and header parameters and bodies."""
    paths: dict[str, Any] = {}
    for index in range(operations // 2):
        item = {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 50},
                "count": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
                "owner": {"$ref": "#/components/schemas/Owner"},
            },
        }
        paths[f"/r{index}/{{id}}"] = {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {
                        "name": "X-Trace",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 64},
                    },
                ],
                "responses": {"200": {"description": "ok"}},
            },
            "put": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": item}},
                },
                "responses": {"200": {"description": "ok"}},
            },
        }
    return {
        **BASE,
        "paths": paths,
        "components": {
            "schemas": {"Owner": {"type": "object", "properties": {"email": {"type": "string"}}}}
        },
    }


def test_a_200_operation_spec_loads_checks_and_compiles_within_a_second(tmp_path):
    spec = _write(tmp_path / "big.yaml", generated_spec(200))
    # CPU time of this process, not wall time: other load on the machine does not count.
    started = time.process_time()
    policy = OpenAPIPolicy(OpenAPIConfig(spec=spec), PolicyDeps(clock=FakeClock()))
    elapsed = time.process_time() - started
    assert len(policy.compiled.operations) == 200
    assert elapsed < 1.0, f"compiling 200 operations took {elapsed:.2f} s"
    assert policy.access(make_ctx("GET", "/r99/5", query=b"limit=3")) is None
