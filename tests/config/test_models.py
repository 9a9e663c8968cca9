"""Gateway config models: accepted documents, defaults, and each refusal at its dotted path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bastion.config.loader import ConfigErrors, parse_config
from bastion.config.models import GatewayConfig, parse_bind
from bastion.policies.cors.config import CORSConfig
from bastion.policies.request_id.config import RequestIDConfig
from bastion.policies.security_headers.config import SecurityHeadersConfig

MINIMAL: dict[str, Any] = {"listeners": [{"bind": "127.0.0.1:8443"}]}


def service(name: str = "bank", *routes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "upstream": {"targets": ["http://127.0.0.1:9000"]},
        "routes": list(routes) or [route()],
        **extra,
    }


def route(name: str = "accounts", *paths: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "paths": list(paths) or ["/v1/accounts"], **extra}


def document(**settings: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MINIMAL), **settings}


def parse(doc: dict[str, Any]) -> GatewayConfig:
    return parse_config(doc, env={})


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        parse(doc)
    return raised.value.lines


def only_error(doc: dict[str, Any]) -> str:
    [line] = errors(doc)
    return line


# --- accepted --------------------------------------------------------------------------------


def test_minimal_config_is_accepted_with_secure_defaults():
    config = parse(MINIMAL)
    [listener] = config.listeners
    assert listener.bind == "127.0.0.1:8443"
    assert listener.tls is None
    assert listener.redirect_https is None
    assert listener.plaintext is False
    assert config.admin is None
    assert config.trusted_proxies == []
    assert config.services == []
    assert config.limits.max_body_bytes == 10 * 1024 * 1024
    assert config.access_log.sink == "stdout"


def test_full_service_is_accepted():
    config = parse(
        document(
            admin={"bind": "127.0.0.1:9901", "token": "a" * 32},
            trusted_proxies=["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"],
            services=[
                service(
                    "bank",
                    route("transfers", "/v1/transfers", methods=["POST"]),
                    route(
                        "account",
                        "/v1/accounts/{account_id}",
                        methods=["GET", "DELETE"],
                        hosts=["API.Example.com", "*.example.org"],
                        policies={"cors": {"allow_origins": ["https://app.example"]}},
                    ),
                    route("health", "/health", path_match="exact"),
                    policies={"ip_filter": {"deny": ["203.0.113.0/24"]}},
                )
            ],
        )
    )
    [bank] = config.services
    assert [r.name for r in bank.routes] == ["transfers", "account", "health"]
    assert bank.routes[1].hosts == ["api.example.com", "*.example.org"]
    assert bank.routes[1].policies.cors == CORSConfig(allow_origins=["https://app.example"])
    assert bank.routes[2].path_match == "exact"
    assert bank.policies.ip_filter is not None
    assert config.admin is not None
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == "a" * 32


def test_admin_token_is_never_shown_by_repr():
    config = parse(document(admin={"token": "do-not-print-this-token"}))
    assert "do-not-print-this-token" not in repr(config)
    assert "do-not-print-this-token" not in str(config.admin)


def test_config_is_frozen():
    config = parse(MINIMAL)
    with pytest.raises(ValidationError):
        config.services = []  # type: ignore[misc]  # the point: frozen models refuse it


# --- binds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("10.1.2.3:1", ("10.1.2.3", 1)),
        ("[::1]:8443", ("::1", 8443)),
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
    ],
    ids=["ipv4", "ipv4_lowest_port", "ipv6_loopback", "ipv6_highest_port"],
)
def test_parse_bind_accepts_ip_and_port(bind, expected):
    assert parse_bind(bind) == expected


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("localhost:8443", "must be an IP address"),
        ("127.0.0.1", "expected host:port"),
        ("127.0.0.1:", "expected host:port"),
        ("127.0.0.1:https", "expected host:port"),
        ("127.0.0.1:0", "between 1 and 65535"),
        ("127.0.0.1:65536", "between 1 and 65535"),
        ("[::1]", "expected host:port"),
        ("999.0.0.1:80", "must be an IP address"),
    ],
    ids=[
        "host_name",
        "no_port",
        "empty_port",
        "named_port",
        "port_zero",
        "port_too_high",
        "ipv6_without_port",
        "bad_ipv4",
    ],
)
def test_bad_bind_is_refused_at_its_path(bind, message):
    with pytest.raises(ValueError, match=message):
        parse_bind(bind)
    line = only_error({"listeners": [{"bind": "127.0.0.1:8080"}, {"bind": bind}]})
    assert line.startswith("listeners[1].bind: ")
    assert message in line


def test_listeners_are_required():
    assert only_error({}) == "listeners: Field required"
    assert only_error({"listeners": []}).startswith("listeners: ")


@pytest.mark.parametrize(
    "listeners",
    [
        [{"bind": "127.0.0.1:8443"}, {"bind": "127.0.0.1:8443", "redirect_https": "https://a"}],
        [{"bind": "[::1]:8443"}, {"bind": "[::1]:8443"}],
    ],
    ids=["two_listeners", "ipv6"],
)
def test_duplicate_binds_are_refused(listeners):
    line = only_error({"listeners": listeners})
    assert line == "listeners[1].bind: another listener already uses this address and port"


def test_admin_bind_cannot_reuse_a_listener_bind():
    line = only_error(document(admin={"bind": "127.0.0.1:8443"}))
    assert line == "admin.bind: another listener already uses this address and port"


def test_same_port_on_different_addresses_is_accepted():
    config = parse({"listeners": [{"bind": "127.0.0.1:8443"}, {"bind": "[::1]:8443"}]})
    assert len(config.listeners) == 2


# --- listeners and TLS -----------------------------------------------------------------------


def test_tls_listener_without_files_uses_a_development_certificate():
    config = parse({"listeners": [{"bind": "127.0.0.1:8443", "tls": {}}]})
    tls = config.listeners[0].tls
    assert tls is not None
    assert (tls.certificate, tls.private_key, tls.min_version) == (None, None, "1.2")


def test_tls_listener_with_both_files_is_accepted():
    config = parse(
        {
            "listeners": [
                {
                    "bind": "127.0.0.1:8443",
                    "tls": {
                        "certificate": "/etc/bastion/cert.pem",
                        "private_key": "/etc/bastion/key.pem",
                        "min_version": "1.3",
                    },
                }
            ]
        }
    )
    tls = config.listeners[0].tls
    assert tls is not None
    assert tls.certificate == Path("/etc/bastion/cert.pem")
    assert tls.private_key == Path("/etc/bastion/key.pem")
    assert tls.min_version == "1.3"


@pytest.mark.parametrize(
    "tls",
    [{"certificate": "cert.pem"}, {"private_key": "key.pem"}],
    ids=["certificate_without_key", "key_without_certificate"],
)
def test_tls_files_go_together(tls):
    line = only_error({"listeners": [{"bind": "127.0.0.1:8443", "tls": tls}]})
    assert line.startswith("listeners[0].tls: certificate and private_key go together")


@pytest.mark.parametrize("version", ["1.0", "1.1", "TLSv1.2", 1.2], ids=str)
def test_tls_below_1_2_or_misspelt_is_refused(version):
    line = only_error({"listeners": [{"bind": "127.0.0.1:8443", "tls": {"min_version": version}}]})
    assert line.startswith("listeners[0].tls.min_version: ")


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ({"tls": {}, "plaintext": True}, "a TLS listener neither redirects nor serves plaintext"),
        (
            {"tls": {}, "redirect_https": "https://localhost:8443"},
            "a TLS listener neither redirects nor serves plaintext",
        ),
        (
            {"redirect_https": "https://localhost:8443", "plaintext": True},
            "redirect_https and plaintext exclude each other",
        ),
    ],
    ids=["tls_and_plaintext", "tls_and_redirect", "redirect_and_plaintext"],
)
def test_listener_has_exactly_one_role(listener, message):
    line = only_error({"listeners": [{"bind": "127.0.0.1:8080", **listener}]})
    assert line.startswith(f"listeners[0]: {message}")


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://localhost:8443", "https://localhost:8443"),
        ("https://api.example.com/", "https://api.example.com"),
    ],
    ids=["with_port", "trailing_slash_removed"],
)
def test_redirect_https_accepts_an_https_origin(origin, expected):
    config = parse({"listeners": [{"bind": "127.0.0.1:8080", "redirect_https": origin}]})
    assert config.listeners[0].redirect_https == expected


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:8443", "https://", "https://api.example.com/v1", "localhost:8443"],
    ids=["plain_http", "no_host", "with_path", "no_scheme"],
)
def test_redirect_https_refuses_anything_but_an_https_origin(origin):
    line = only_error({"listeners": [{"bind": "127.0.0.1:8080", "redirect_https": origin}]})
    assert line.startswith("listeners[0].redirect_https: must be an https origin")


@pytest.mark.parametrize(
    ("listeners", "port"),
    [
        ([{"bind": "127.0.0.1:8080", "plaintext": True}], None),
        ([{"bind": "127.0.0.1:8080"}, {"bind": "127.0.0.1:8443", "tls": {}}], 8443),
        ([{"bind": "[::1]:443", "tls": {}}, {"bind": "127.0.0.1:8443", "tls": {}}], 443),
    ],
    ids=["no_tls", "second_listener", "first_of_two"],
)
def test_https_port_is_the_first_tls_listeners_port(listeners, port):
    assert parse({"listeners": listeners}).https_port == port


# --- admin -----------------------------------------------------------------------------------


def test_admin_defaults_to_loopback_without_token():
    config = parse(document(admin={}))
    assert config.admin is not None
    assert config.admin.bind == "127.0.0.1:9901"
    assert config.admin.token is None


def test_short_admin_token_is_refused():
    line = only_error(document(admin={"token": "fifteen-chars!!"}))
    assert line.startswith("admin.token: must be at least 16 characters")


# --- upstreams -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("https://api.internal:8443/", "https://api.internal:8443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
    ids=["http", "https_trailing_slash", "ipv6"],
)
def test_upstream_target_accepts_an_origin(target, expected):
    config = parse(document(services=[{**service(), "upstream": {"targets": [target]}}]))
    assert config.services[0].upstream.targets == [expected]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ftp://127.0.0.1", "must be http://host:port or https://host:port"),
        ("127.0.0.1:9000", "must be http://host:port or https://host:port"),
        ("http://127.0.0.1:9000/api", "must be an origin without path"),
        ("http://127.0.0.1:9000?x=1", "must be an origin without path"),
        ("http://user:pw@127.0.0.1:9000", "must be an origin without path"),
        ("http://127.0.0.1:99999", "Port out of range"),
    ],
    ids=["ftp", "no_scheme", "path", "query", "credentials", "bad_port"],
)
def test_upstream_target_refuses_non_origins(target, message):
    doc = document(services=[{**service(), "upstream": {"targets": ["http://a:1", target]}}])
    line = only_error(doc)
    assert line.startswith("services[0].upstream.targets[1]: ")
    assert message in line


def test_upstream_needs_a_target():
    line = only_error(document(services=[{**service(), "upstream": {"targets": []}}]))
    assert line.startswith("services[0].upstream.targets: ")


def test_relative_ca_file_is_resolved_against_the_base_dir(tmp_path):
    doc = document(services=[{**service(), "upstream": {"targets": ["https://a:1"]}}])
    doc["services"][0]["upstream"]["ca_file"] = "ca.pem"
    config = parse_config(doc, base_dir=tmp_path, env={})
    assert config.services[0].upstream.ca_file == tmp_path / "ca.pem"


# --- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/v1", "/v1/", "/v1/accounts/{account_id}", "/{a}/{b_2}", "/v1/files.json"],
    ids=["root", "prefix", "trailing_slash", "template", "two_params", "dot_in_segment"],
)
def test_route_path_accepted(path):
    config = parse(document(services=[service("s", route("r", path))]))
    assert config.services[0].routes[0].paths == [path]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("v1", "must start with /"),
        ("", "must start with /"),
        ("/v1/../admin", "must not contain dot segments"),
        ("/v1/./x", "must not contain dot segments"),
        ("/v1/{id", "must be a whole {name}"),
        ("/v1/x{id}", "must be a whole {name}"),
        ("/v1/{}", "must be a whole {name}"),
        ("/v1/{1st}", "must be a whole {name}"),
        ("/v1/{a-b}", "must be a whole {name}"),
    ],
    ids=[
        "relative",
        "empty",
        "dot_dot",
        "dot",
        "unclosed",
        "partial_segment",
        "empty_name",
        "digit_first",
        "dash",
    ],
)
def test_route_path_refused_at_its_path(path, message):
    line = only_error(document(services=[service("s", route("r", "/ok", path))]))
    assert line.startswith("services[0].routes[0].paths[1]: ")
    assert message in line


def test_route_needs_a_path():
    line = only_error(document(services=[service("s", {"name": "r", "paths": []})]))
    assert line.startswith("services[0].routes[0].paths: ")


@pytest.mark.parametrize(
    "methods",
    [["get"], ["TRACE"], ["CONNECT"]],
    ids=["lower_case", "trace", "connect"],
)
def test_unknown_or_lower_case_methods_are_refused(methods):
    line = only_error(document(services=[service("s", route("r", methods=methods))]))
    assert line.startswith("services[0].routes[0].methods[0]: ")


@pytest.mark.parametrize(
    "name",
    ["Bank", "-bank", "bank account", "", "b" * 64],
    ids=["upper_case", "leading_dash", "space", "empty", "too_long"],
)
def test_service_and_route_names_are_lower_case_identifiers(name):
    assert only_error(document(services=[service(name)])).startswith("services[0].name: ")
    line = only_error(document(services=[service("s", route(name))]))
    assert line.startswith("services[0].routes[0].name: ")


def test_duplicate_service_names_are_refused():
    line = only_error(document(services=[service("bank"), service("bank", route("other"))]))
    assert line == "services[1].name: this service name is used twice"


@pytest.mark.parametrize(
    "services",
    [
        [service("bank", route("accounts"), route("accounts", "/v2"))],
        [service("bank"), service("cards", route("accounts", "/cards"))],
    ],
    ids=["same_service", "across_services"],
)
def test_duplicate_route_names_are_refused(services):
    line = only_error(document(services=services))
    assert line.endswith(".name: this route name is used twice")
    assert line.startswith("services[")


# --- trusted proxies -------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"], ids=["ipv4_any", "ipv6_any"])
def test_trusting_every_address_is_refused(cidr):
    line = only_error(document(trusted_proxies=["10.0.0.0/8", cidr]))
    assert line.startswith(f"trusted_proxies: {cidr} trusts every address")


def test_trusted_proxies_must_be_networks():
    line = only_error(document(trusted_proxies=["proxy.internal"]))
    assert line.startswith("trusted_proxies: ")
    assert "proxy.internal" in line


# --- policies --------------------------------------------------------------------------------


def test_global_policies_default_to_request_id_and_security_headers():
    configured = parse(MINIMAL).global_policies.configured()
    assert configured == {
        "request_id": RequestIDConfig(),
        "security_headers": SecurityHeadersConfig(),
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, set()),
        ({"request_id": {}}, {"request_id"}),
        ({"cors": {"allow_origins": ["https://a.example"]}}, {"cors"}),
    ],
    ids=["empty", "one_default", "other_policy"],
)
def test_given_global_policies_are_exactly_the_listed_ones(given, expected):
    assert set(parse(document(global_policies=given)).global_policies.configured()) == expected


def test_route_and_service_policies_default_to_none():
    config = parse(document(services=[service()]))
    assert config.services[0].policies.configured() == {}
    assert config.services[0].routes[0].policies.configured() == {}


@pytest.mark.parametrize(
    ("policies_at", "where"),
    [
        ("route", "services[0].routes[0].policies.cors.allow_origins"),
        ("service", "services[0].policies.cors.allow_origins"),
        ("global", "global_policies.cors.allow_origins"),
    ],
    ids=["route", "service", "global"],
)
def test_policy_setting_errors_name_the_full_path(policies_at, where):
    bad = {"cors": {"allow_origins": ["null"]}}
    if policies_at == "route":
        doc = document(services=[service("s", route("r", policies=bad))])
    elif policies_at == "service":
        doc = document(services=[service("s", policies=bad)])
    else:
        doc = document(global_policies=bad)
    assert only_error(doc).startswith(f"{where}: ")


def test_unknown_policy_name_is_refused():
    line = only_error(document(services=[service("s", route("r", policies={"jwt_auth": {}}))]))
    assert line.startswith("services[0].routes[0].policies.jwt_auth: unknown setting")


def test_route_auth_combination_is_all_by_default_and_accepts_any():
    config = parse_config(document(services=[service("s", route("r", auth="any"))]))
    assert config.services[0].routes[0].auth == "any"
    assert parse_config(document(services=[service("s")])).services[0].routes[0].auth == "all"
    line = only_error(document(services=[service("s", route("r", auth="some"))]))
    assert line.startswith("services[0].routes[0].auth: ")
