"""bastion audit rules: each fires on the deliberately bad config, none on a sound one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bastion.audit import RULES, Finding, audit_document, load_source, source_from_text
from bastion.cli.demo import BANK_CONFIG
from tests.audit.conftest import NOW, write_certificate

SECRET_ENV = {
    "BASTION_ADMIN_TOKEN": "admin-token-that-is-long-enough-0123456789",
    "BASTION_PEPPER": "pepper-that-is-at-least-thirty-two-characters-long",
}


def _audit(path: Path, env: dict[str, str] | None = None, **kwargs: object) -> list[Finding]:
    now = kwargs.get("now", NOW)
    return audit_document(load_source(path, env=env or {}), now=now)  # type: ignore[arg-type]  # a datetime


def _by_rule(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [finding for finding in findings if finding.rule.id == rule_id]


def test_rule_ids_are_unique_and_stable():
    ids = [rule.id for rule in RULES]
    assert ids == [f"BST{n:03d}" for n in range(len(RULES))]
    assert len({rule.name for rule in RULES}) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.id}-{r.name}" for r in RULES])
def test_audit_flags_each_rule_on_the_bad_config(bad_config: Path, rule):
    assert _by_rule(_audit(bad_config), rule.id), f"{rule.id} did not fire"


@pytest.mark.parametrize(
    ("rule_id", "path", "severity"),
    [
        pytest.param("BST001", "services[0].routes[0]", "high", id="no-auth"),
        pytest.param("BST003", "services[0].routes[2].policies.jwt.secret", "high", id="hs256"),
        pytest.param("BST005", "listeners[1].tls.min_version", "high", id="tls-1.1"),
        pytest.param("BST006", "listeners[0].plaintext", "medium", id="plaintext"),
        pytest.param("BST008", "global_policies.cors.allow_origins", "critical", id="cors-creds"),
        pytest.param("BST009", "services[0].policies.cors.allow_origins", "low", id="cors-star"),
        pytest.param("BST010", "admin.bind", "high", id="public-admin"),
        pytest.param("BST011", "admin", "high", id="public-admin-no-token"),
        pytest.param(
            "BST012", "services[0].routes[1].policies.rate_limit.mode", "medium", id="report-only"
        ),
        pytest.param("BST013", "listeners[1].tls.certificate", "high", id="cert-10-days"),
        pytest.param("BST013", "listeners[3].tls.certificate", "medium", id="cert-unreadable"),
        pytest.param("BST014", "trusted_proxies[0]", "high", id="slash-8"),
        pytest.param("BST014", "trusted_proxies[1]", "critical", id="slash-0"),
        pytest.param("BST014", "trusted_proxies[2]", "high", id="v6-slash-32"),
        pytest.param("BST015", "services[0].upstream.tls_verify", "high", id="no-verify"),
        pytest.param("BST016", "services[0].routes[1]", "high", id="basic-over-plaintext"),
        pytest.param("BST016", "services[0].routes[2]", "medium", id="jwt-over-plaintext"),
        pytest.param("BST017", "listeners[2].tls", "low", id="dev-cert"),
    ],
)
def test_audit_places_and_grades_findings(bad_config: Path, rule_id: str, path: str, severity):
    found = {(f.path, f.severity) for f in _by_rule(_audit(bad_config), rule_id)}
    assert (path, severity) in found


def test_audit_leaves_sound_settings_alone(bad_config: Path):
    findings = _audit(bad_config)
    assert not [f for f in findings if f.path == "trusted_proxies[3]"]  # a /32
    authenticated = {f.path for f in _by_rule(findings, "BST001")}
    assert "services[0].routes[2]" not in authenticated  # jwt with a secret
    assert "services[0].routes[1]" not in authenticated  # basic_auth


def test_audit_reports_invalid_config_without_values(bad_config: Path):
    (finding,) = _by_rule(_audit(bad_config), "BST000")
    assert "global_policies.cors" in finding.message
    assert "got" not in finding.message


def test_audit_points_at_the_line_of_the_setting(bad_config: Path):
    lines = bad_config.read_text().splitlines()
    for finding in _audit(bad_config):
        if finding.path == "listeners[0].plaintext":
            assert finding.line is not None
            assert "plaintext: true" in lines[finding.line - 1]
            return
    pytest.fail("no plaintext finding")


def test_audit_grades_an_expired_certificate_critical(bad_config: Path):
    findings = _audit(bad_config, now=NOW + timedelta(days=11))
    (finding,) = [f for f in _by_rule(findings, "BST013") if f.severity == "critical"]
    assert "expired" in finding.message


def test_audit_ignores_a_certificate_expiring_after_30_days(bad_config: Path):
    write_certificate(bad_config.parent / "cert.pem", expires=NOW + timedelta(days=31))
    assert not [f for f in _by_rule(_audit(bad_config), "BST013") if "cert.pem" in f.message]


def test_audit_passes_a_sound_config(good_config: Path):
    assert _audit(good_config, SECRET_ENV) == []


def test_audit_works_without_the_secrets_in_the_environment(good_config: Path):
    # Unset ${VARS} stand for long placeholders: no spurious BST000, BST003 or BST011.
    assert _audit(good_config, {}) == []


def test_audit_flags_a_short_secret_from_the_environment(tmp_path: Path):
    document = yaml.safe_load((Path(__file__).parent / "good.yaml").read_text())
    document["services"][0]["policies"]["jwt"] = {
        "issuer": "https://idp.example",
        "audience": "bank",
        "algorithms": ["HS256"],
        "secret": "${JWT_SECRET}",
    }
    source = source_from_text(
        yaml.safe_dump(document), env={**SECRET_ENV, "JWT_SECRET": "tiny"}, base_dir=tmp_path
    )
    findings = audit_document(source, now=NOW)
    assert [f.path for f in _by_rule(findings, "BST003")] == ["services[0].policies.jwt.secret"]


def test_audit_counts_a_report_only_authentication_as_none(good_config: Path, tmp_path: Path):
    document = yaml.safe_load(good_config.read_text())
    document["services"][0]["policies"]["jwt"]["mode"] = "report_only"
    source = source_from_text(yaml.safe_dump(document), env=SECRET_ENV, base_dir=tmp_path)
    findings = audit_document(source, now=NOW)
    assert {f.path for f in _by_rule(findings, "BST001")} == {"services[0].routes[0]"}
    assert "report_only" in _by_rule(findings, "BST001")[0].message
    assert _by_rule(findings, "BST012")


def test_audit_applies_the_default_global_policies(tmp_path: Path):
    text = """
listeners: [{bind: "127.0.0.1:8443", tls: {}}]
services:
  - name: s
    upstream: {targets: ["http://127.0.0.1:9000"]}
    routes: [{name: r, paths: ["/"]}]
"""
    findings = audit_document(source_from_text(text, env={}, base_dir=tmp_path), now=NOW)
    assert sorted({f.rule.id for f in findings}) == ["BST001", "BST002", "BST007", "BST017"]


def test_audit_refuses_a_document_that_is_not_a_mapping(tmp_path: Path):
    from bastion.errors import ConfigError

    with pytest.raises(ConfigError, match="mapping"):
        source_from_text("- just\n- a list\n", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        source_from_text("listeners: [\n", base_dir=tmp_path)


def test_audit_requires_an_aware_now(good_config: Path):
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        audit_document(load_source(good_config, env={}), now=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


# The demo (examples/bank/bastion.yaml) knowingly serves /healthz and the retired /v0 (always
# 410) without authentication, and uses a development certificate; any other finding fails.
DEMO_KNOWN = {"BST001", "BST017"}


def test_demo_config_has_only_its_known_findings(tmp_path: Path):
    repo = Path(__file__).resolve().parents[2]
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text('{"keys": []}')
    env = {**SECRET_ENV, "BASTION_STATE_DIR": str(tmp_path), "BANK_JWKS_FILE": str(jwks_file)}
    text = (repo / BANK_CONFIG).read_text()
    findings = audit_document(
        source_from_text(text, env=env, base_dir=(repo / BANK_CONFIG).parent), now=NOW
    )
    assert {f.rule.id for f in findings} <= DEMO_KNOWN
    unauthenticated = _by_rule(findings, "BST001")
    assert {f.message for f in unauthenticated} == {
        "route 'health' has no authentication policy",
        "route 'v0' has no authentication policy",
    }
    assert not _by_rule(findings, "BST000")
