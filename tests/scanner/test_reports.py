"""Report formats: each parses as its format says and carries every finding."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import httpx
import pytest

from bastion.scanner.report import render
from bastion.scanner.runner import ScanOptions, ScanResult, run_scan
from tests.scanner.fixtures.bank import make_app, weak_token

pytestmark = pytest.mark.anyio


@pytest.fixture
async def result() -> ScanResult:
    app, _ = make_app(vulnerable=True)
    options = ScanOptions(
        target="https://bank.test",
        auth=f"Bearer {weak_token('alice')}",
        auth2=f"Bearer {weak_token('bob')}",
        rate=0,
        http_port=80,
        time_budget=0,  # the time-based probes have their own tests
    )
    return await run_scan(options, transport=httpx.ASGITransport(app=app))


async def test_json_report_lists_findings_with_evidence_and_remediation(result: ScanResult):
    document = json.loads(render(result, "json"))
    assert len(document["findings"]) == len(result.findings)
    assert sum(document["summary"].values()) == len(result.findings)
    for finding in document["findings"]:
        assert finding["remediation"]
        assert finding["severity"] in ("info", "low", "medium", "high", "critical")


async def test_sarif_report_is_sarif_2_1_0_with_rules_for_every_result(result: ScanResult):
    log = json.loads(render(result, "sarif"))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(result.findings)
    for item in run["results"]:
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"]
        assert item["level"] in ("error", "warning", "note")
        assert item["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


async def test_junit_report_fails_one_test_case_per_check_with_findings(result: ScanResult):
    root = ET.fromstring(render(result, "junit"))  # noqa: S314 - our own output
    cases = root.findall("./testsuite/testcase")
    failed = {
        case.get("name", "").split(" ", 1)[0] for case in cases if case.find("failure") is not None
    }
    assert failed == {f.check.id for f in result.findings}
    assert len(cases) == len(result.checks)


async def test_html_report_is_self_contained_and_escapes_evidence(result: ScanResult):
    page = render(result, "html")
    assert "<script" not in page
    assert 'src="http' not in page
    assert 'href="http' not in page
    assert "Traceback (most recent call last)" in page  # the planted stack trace, as text
    assert page.count("<tr>") == len(result.findings) + 1


async def test_text_report_names_each_finding(result: ScanResult):
    text = render(result, "text")
    for finding in result.findings:
        assert finding.check.id in text
