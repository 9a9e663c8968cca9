"""injection_guard: payloads in path, query, headers and bodies are refused; exclusions work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.policy import PolicyDeps, Priority
from bastion.errors import InvalidRequest
from bastion.http.response import problem_response
from bastion.policies.injection_guard import InjectionGuardConfig, InjectionGuardPolicy
from tests.support import make_ctx

JSON = (b"content-type", b"application/json")
FORM = (b"content-type", b"application/x-www-form-urlencoded")


def _policy(**settings: object) -> InjectionGuardPolicy:
    return InjectionGuardPolicy(
        InjectionGuardConfig.model_validate(settings), PolicyDeps(clock=FakeClock())
    )


def test_runs_just_before_openapi_in_the_validate_band():
    assert InjectionGuardPolicy.priority == Priority.VALIDATE + 10


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"path": "/files/..%2f..%2fetc/passwd"}, "path"),
        ({"path": "/search", "query": b"q=%27%20OR%201%3D1--"}, "query"),
        (
            {"path": "/", "headers": [(b"host", b"h"), (b"referer", b"javascript:alert(1)")]},
            "header",
        ),
        (
            {
                "path": "/",
                "headers": [(b"host", b"h"), JSON],
                "body": b'{"a": {"b": ["<script>x</script>"]}}',
            },
            "body",
        ),
        (
            {"path": "/", "headers": [(b"host", b"h"), JSON], "body": b'{"user": {"$ne": null}}'},
            "body",
        ),
        (
            {
                "path": "/",
                "headers": [(b"host", b"h"), FORM],
                "body": b"name=x%3B+cat+%2Fetc%2Fpasswd",
            },
            "body",
        ),
        (
            {
                "path": "/",
                "headers": [(b"host", b"h"), (b"content-type", b"text/plain")],
                "body": b"url=file:///etc/passwd",
            },
            "body",
        ),
    ],
    ids=[
        "path-traversal",
        "query-sqli",
        "header-xss",
        "json-nested-xss",
        "json-nosql-key",
        "form-cmdi",
        "raw-ssrf",
    ],
)
def test_access_refuses_payloads_wherever_they_are(kwargs, where):
    method = "POST" if "body" in kwargs else "GET"
    with pytest.raises(InvalidRequest) as exc:
        _policy().access(make_ctx(method, **kwargs))
    assert exc.value.error_code == "injection_detected"
    errors = exc.value.extra["errors"]
    assert isinstance(errors, list)
    assert errors[0]["in"] == where


def test_access_admits_ordinary_requests():
    ctx = make_ctx(
        "POST",
        "/v1/customers/cus_123",
        query=b"q=O%27Brien&sort=name",
        headers=[(b"host", b"h"), JSON, (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)")],
        body=b'{"name": "Se\\u00e1n O\'Brien", "note": "It\'s 5 o\'clock -- fine", "site": "https://example.com/a?b=1"}',
    )
    assert _policy().access(ctx) is None


def test_the_response_names_the_place_but_not_the_rule_or_the_value():
    with pytest.raises(InvalidRequest) as exc:
        _policy().access(make_ctx("GET", "/s", query=b"q=%3Cscript%3Esecretvalue"))
    body = problem_response(exc.value, "rid").body
    assert b"secretvalue" not in body
    assert b"xss" not in body
    assert exc.value.extra["errors"] == [
        {"in": "query", "message": "contains a disallowed pattern", "name": "q"}
    ]


def test_the_matched_rule_is_kept_for_the_logs():
    policy = _policy()
    ctx = make_ctx("GET", "/s", query=b"q=1%20UNION%20SELECT%20password%20FROM%20users")
    with pytest.raises(InvalidRequest):
        policy.access(ctx)
    assert ctx.state(policy)["finding"].rule.id == "sqli-union-select"  # type: ignore[attr-defined]


def test_excluded_parameters_are_not_inspected():
    policy = _policy(exclude_parameters=["snippet"])
    ctx = make_ctx("GET", "/s", query=b"snippet=%3Cscript%3Ex%3C%2Fscript%3E")
    assert policy.access(ctx) is None
    body = b'{"doc": {"snippet": "<script>x</script>"}}'
    assert policy.access(make_ctx("POST", "/s", headers=[(b"host", b"h"), JSON], body=body)) is None
    with pytest.raises(InvalidRequest):
        policy.access(make_ctx("GET", "/s", query=b"other=%3Cscript%3E"))


def test_excluded_rules_and_categories_are_off():
    assert (
        _policy(exclude_rules=["xss-script-tag"]).access(
            make_ctx("GET", "/s", query=b"q=%3Cscript")
        )
        is None
    )
    assert (
        _policy(categories=["sqli"]).access(make_ctx("GET", "/s", query=b"q=../../etc/passwd"))
        is None
    )


def test_only_configured_headers_are_inspected():
    headers = [(b"host", b"h"), (b"x-note", b"<script>")]
    assert _policy().access(make_ctx("GET", "/", headers=headers)) is None
    with pytest.raises(InvalidRequest):
        _policy(headers=["X-Note"]).access(make_ctx("GET", "/", headers=headers))


def test_crlf_rule_applies_to_query_but_not_to_body_text():
    with pytest.raises(InvalidRequest):
        _policy().access(make_ctx("GET", "/", query=b"next=%0d%0aSet-Cookie:%20a=b"))
    body = b'{"letter": "Dear Bob,\\nNote: see you soon"}'
    assert (
        _policy().access(make_ctx("POST", "/", headers=[(b"host", b"h"), JSON], body=body)) is None
    )


def test_report_only_records_and_lets_the_request_through():
    policy = _policy(mode="report_only")
    ctx = make_ctx("GET", "/", query=b"q=%3Cscript%3E")
    Chain([policy]).access(ctx)
    assert [report.code for report in ctx.reports] == ["injection_detected"]


def test_body_inspection_can_be_switched_off():
    policy = _policy(inspect_body=False)
    assert policy.needs_request_body is False
    body = b'{"a": "<script>"}'
    assert policy.access(make_ctx("POST", "/", headers=[(b"host", b"h"), JSON], body=body)) is None


def test_config_refuses_unknown_rule_ids_and_categories():
    with pytest.raises(ValidationError, match="unknown rule id"):
        InjectionGuardConfig.model_validate({"exclude_rules": ["nope"]})
    with pytest.raises(ValidationError):
        InjectionGuardConfig.model_validate({"categories": ["ldap"]})


def test_the_json_body_size_limit_parsed_is_scanned_without_a_second_parse():
    from bastion.policies.size_limit import SizeLimitConfig, SizeLimitPolicy
    from bastion.policies.size_limit.json_body import PARSED_JSON

    size_limit = SizeLimitPolicy(SizeLimitConfig(max_json_depth=8), PolicyDeps(clock=FakeClock()))
    chain = Chain([size_limit, _policy()])
    body = b'{"q": "1 UNION SELECT password FROM users"}'
    ctx = make_ctx("POST", "/", headers=[JSON], body=body)
    with pytest.raises(InvalidRequest):
        chain.access(ctx)
    # The scan reads the document left under PARSED_JSON for this very body.
    ctx = make_ctx("POST", "/", headers=[JSON], body=b'{"q": "harmless"}')
    ctx.request.extra[PARSED_JSON] = (ctx.request.body, {"q": "<script>alert(1)</script>"})
    with pytest.raises(InvalidRequest):
        _policy().access(ctx)
    # A stale entry (another body) is ignored.
    ctx = make_ctx("POST", "/", headers=[JSON], body=b'{"q": "harmless"}')
    ctx.request.extra[PARSED_JSON] = (b"{}", {"q": "<script>alert(1)</script>"})
    assert _policy().access(ctx) is None
