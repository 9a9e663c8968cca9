"""Audit reports: SARIF 2.1.0 structure, JSON, the text table, and no secret in any of them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from bastion.audit import RULES, Finding, audit_document, load_source
from bastion.audit.report import render_json, render_sarif, render_text, summary
from tests.audit.conftest import NOW

HMAC_SECRET = "a-short-hmac-secret-value"  # the jwt secret written in bad.yaml
SHORT_TOKEN = "tok-secret9"  # under 16 characters: refused by validation

_MESSAGE = {
    "type": "object",
    "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
    "properties": {"text": {"type": "string"}, "id": {"type": "string"}},
}
_MULTIFORMAT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
# The required properties and value constraints of SARIF 2.1.0 (OASIS standard, §3.13 sarifLog,
# §3.14 run, §3.18 tool, §3.19 toolComponent, §3.49 reportingDescriptor, §3.27 result,
# §3.11 message, §3.28 location, §3.29 physicalLocation, §3.30 region, §3.33 logicalLocation)
# for the parts this tool emits.
SARIF_SUBSET_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "uniqueItems": True,
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "name": {"type": "string"},
                                                "shortDescription": _MULTIFORMAT,
                                                "fullDescription": _MULTIFORMAT,
                                                "help": _MULTIFORMAT,
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {"level": _LEVEL},
                                                },
                                                "properties": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": _LEVEL,
                                "message": _MESSAGE,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "anyOf": [
                                                    {"required": ["address"]},
                                                    {"required": ["artifactLocation"]},
                                                ],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "properties": {
                                                            "uri": {
                                                                "type": "string",
                                                                "format": "uri-reference",
                                                            }
                                                        },
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {
                                                            "startLine": {
                                                                "type": "integer",
                                                                "minimum": 1,
                                                            }
                                                        },
                                                    },
                                                },
                                            },
                                            "logicalLocations": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "properties": {
                                                        "fullyQualifiedName": {"type": "string"}
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                                "properties": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture
def findings(bad_config: Path) -> list[Finding]:
    text = bad_config.read_text().replace(
        'admin: {bind: "0.0.0.0:9901"}', 'admin: {bind: "0.0.0.0:9901", token: "${ADMIN_TOKEN}"}'
    )
    bad_config.write_text(text)
    source = load_source(bad_config, env={"ADMIN_TOKEN": SHORT_TOKEN})
    findings = audit_document(source, now=NOW)
    assert any("admin.token" in f.message for f in findings)  # the refusal is reported
    return findings


def test_sarif_has_the_required_structure(findings: list[Finding]):
    log = json.loads(render_sarif(findings, RULES, artifact=Path("configs/bad.yaml")))
    jsonschema.Draft7Validator.check_schema(SARIF_SUBSET_SCHEMA)
    jsonschema.validate(log, SARIF_SUBSET_SCHEMA)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [rule.id for rule in RULES]
    assert len(run["results"]) == len(findings)
    for result in run["results"]:
        # §3.27.6: ruleIndex points at the descriptor whose id is ruleId.
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "configs/bad.yaml"


def test_sarif_levels_follow_severity(findings: list[Finding]):
    log = json.loads(render_sarif(findings, RULES, artifact=None))
    levels = {
        (f.severity, r["level"]) for f, r in zip(findings, log["runs"][0]["results"], strict=True)
    }
    assert levels <= {
        ("critical", "error"),
        ("high", "error"),
        ("medium", "warning"),
        ("low", "note"),
    }
    assert "physicalLocation" not in log["runs"][0]["results"][0]["locations"][0]


def test_sarif_names_an_absolute_config_by_file_uri(findings: list[Finding], tmp_path: Path):
    log = json.loads(render_sarif(findings, RULES, artifact=tmp_path / "bad.yaml"))
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == (tmp_path / "bad.yaml").as_uri()


def test_sarif_of_no_findings_is_still_a_valid_log():
    log = json.loads(render_sarif([], RULES, artifact=Path("good.yaml")))
    jsonschema.validate(log, SARIF_SUBSET_SCHEMA)
    assert log["runs"][0]["results"] == []


def test_json_report_lists_findings_and_counts(findings: list[Finding]):
    document = json.loads(render_json(findings, source="bad.yaml"))
    assert document["summary"] == summary(findings)
    assert sum(document["summary"].values()) == len(document["findings"]) == len(findings)
    first = document["findings"][0]
    assert set(first) == {"rule", "name", "severity", "message", "path", "line", "help"}
    assert first["severity"] == "critical"


def test_text_report_is_a_table_with_a_summary(findings: list[Finding]):
    buffer = io.StringIO()
    render_text(findings, Console(file=buffer, width=200, color_system=None), source="bad.yaml")
    text = buffer.getvalue()
    assert "BST008 cors-wildcard-with-credentials: List the allowed origins" in text
    assert f"{len(findings)} findings:" in text


def test_text_report_of_a_clean_config_says_so():
    buffer = io.StringIO()
    render_text([], Console(file=buffer, color_system=None), source="good.yaml")
    assert buffer.getvalue().strip() == "good.yaml: no findings"


def test_no_report_contains_a_secret(findings: list[Finding]):
    buffer = io.StringIO()
    render_text(findings, Console(file=buffer, width=400, color_system=None), source="bad.yaml")
    outputs = [
        buffer.getvalue(),
        render_json(findings, source="bad.yaml").decode(),
        render_sarif(findings, RULES, artifact=Path("bad.yaml")).decode(),
    ]
    for output in outputs:
        assert HMAC_SECRET not in output
        assert SHORT_TOKEN not in output
