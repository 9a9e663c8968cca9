"""The config loader: YAML, `${ENV}` interpolation, and how refusals are worded."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from bastion.config.loader import MAX_CONFIG_BYTES, ConfigErrors, dotted, load_config, parse_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError

MINIMAL: dict[str, Any] = {"listeners": [{"bind": "127.0.0.1:8443"}]}


def document(**settings: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MINIMAL), **settings}


def errors(doc: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        parse_config(doc, env=env or {})
    return raised.value.lines


def write(folder: Path, text: str, name: str = "bastion.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# --- dotted paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ((), ""),
        (("listeners",), "listeners"),
        (("listeners", 0, "bind"), "listeners[0].bind"),
        (
            ("services", 0, "routes", 2, "policies", "rate_limit", "limit"),
            "services[0].routes[2].policies.rate_limit.limit",
        ),
        (("trusted_proxies", 1), "trusted_proxies[1]"),
    ],
    ids=["empty", "top_level", "list_item_field", "deep", "list_item"],
)
def test_dotted_renders_error_locations(location, expected):
    assert dotted(location) == expected


# --- refusals --------------------------------------------------------------------------------


def test_config_errors_are_config_errors_with_one_line_each():
    with pytest.raises(ConfigError) as raised:
        parse_config({"listeners": [{"bind": "x"}], "limits": {"max_headers": 0}}, env={})
    assert isinstance(raised.value, ConfigErrors)
    assert len(raised.value.lines) == 2
    assert str(raised.value) == "\n".join(raised.value.lines)


def test_unknown_key_is_an_unknown_setting_at_its_path():
    doc = document(
        services=[
            {
                "name": "bank",
                "upstream": {"targets": ["http://127.0.0.1:9000"], "conect_timeout": 2},
                "routes": [{"name": "r", "paths": ["/"], "method": ["GET"]}],
            }
        ]
    )
    assert sorted(errors(doc)) == [
        "services[0].routes[0].method: unknown setting (check the spelling)",
        "services[0].upstream.conect_timeout: unknown setting (check the spelling)",
    ]


def test_unknown_top_level_key_is_named():
    assert errors(document(listener=[])) == ["listener: unknown setting (check the spelling)"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"limits": {"max_headers": "many"}},
            "limits.max_headers: Input should be a valid integer, unable to parse string as an"
            " integer (got 'many')",
        ),
        (
            {"limits": {"header_timeout": -1}},
            "limits.header_timeout: Input should be greater than 0 (got -1)",
        ),
        (
            {"listeners": [{"bind": 8443}]},
            "listeners[0].bind: Input should be a valid string (got 8443)",
        ),
        ({"services": "bank"}, "services: Input should be a valid list (got 'bank')"),
    ],
    ids=["string_for_int", "out_of_range", "int_for_string", "string_for_list"],
)
def test_wrong_type_or_value_shows_the_bad_value(settings, expected):
    assert errors(document(**settings)) == [expected]


def test_long_bad_values_are_cut_short():
    [line] = errors(document(limits={"max_headers": "x" * 500}))
    shown = line.split("(got ", 1)[1]
    assert shown.endswith("...)")
    assert len(shown) == 81


def test_missing_setting_does_not_show_a_value():
    assert errors({}) == ["listeners: Field required"]


@pytest.mark.parametrize(
    "doc",
    [[], "listeners: []", None, 42],
    ids=["list", "string", "empty_document", "number"],
)
def test_document_must_be_a_mapping(doc):
    assert errors(doc) == ["(top level): the config must be a mapping of settings"]


@pytest.mark.parametrize(
    "token",
    ["short-secret", 1234567890123456789],
    ids=["too_short", "wrong_type"],
)
def test_secret_values_are_hidden_in_errors(token):
    [line] = errors(document(admin={"token": token}))
    assert line.startswith("admin.token: ")
    assert line.endswith("(got (hidden))")
    assert str(token) not in line


def test_several_errors_are_reported_together():
    lines = errors(
        {
            "listeners": [{"bind": "localhost:1"}],
            "limits": {"max_headers": 1},
            "admin": {"bind": "nowhere"},
            "extra": True,
        }
    )
    assert sorted(line.split(":", 1)[0] for line in lines) == [
        "admin.bind",
        "extra",
        "limits.max_headers",
        "listeners[0].bind",
    ]


# --- environment interpolation ---------------------------------------------------------------


def _admin_token(doc: dict[str, Any], env: dict[str, str]) -> str:
    config = parse_config(doc, env=env)
    assert config.admin is not None
    assert config.admin.token is not None
    return config.admin.token.get_secret_value()


@pytest.mark.parametrize(
    ("written", "env", "expected"),
    [
        ("${TOKEN}", {"TOKEN": "t" * 20}, "t" * 20),
        ("${TOKEN:-default-token-value}", {}, "default-token-value"),
        ("${TOKEN:-default-token-value}", {"TOKEN": "from-environment-1"}, "from-environment-1"),
        ("prefix-${A}-${B}-suffix", {"A": "one", "B": "two"}, "prefix-one-two-suffix"),
        ("$${TOKEN}-literal-text", {"TOKEN": "unused"}, "${TOKEN}-literal-text"),
        ("${EMPTY:-}sixteen-characters", {}, "sixteen-characters"),
        ("${T}", {"T": "${OTHER}-not-expanded"}, "${OTHER}-not-expanded"),
        ("no-variables-in-this-one", {}, "no-variables-in-this-one"),
    ],
    ids=[
        "variable",
        "default_when_unset",
        "environment_beats_default",
        "inside_text",
        "dollar_escape",
        "empty_default",
        "values_not_expanded_twice",
        "plain",
    ],
)
def test_environment_interpolation(written, env, expected):
    assert _admin_token(document(admin={"token": written}), env) == expected


def test_missing_variable_is_an_error_naming_the_path():
    lines = errors(document(admin={"token": "${ADMIN_TOKEN}"}))
    assert lines == ["admin.token: environment variable ADMIN_TOKEN is not set and has no default"]


def test_missing_variable_in_a_list_names_the_index():
    lines = errors({"listeners": [{"bind": "127.0.0.1:8443"}, {"bind": "127.0.0.1:${PORT}"}]})
    assert lines == ["listeners[1].bind: environment variable PORT is not set and has no default"]


def test_interpolation_uses_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("BASTION_TEST_PORT", "9443")
    config = parse_config({"listeners": [{"bind": "127.0.0.1:${BASTION_TEST_PORT}"}]})
    assert config.listeners[0].bind == "127.0.0.1:9443"


@pytest.mark.parametrize(
    "value",
    [
        "x\nservices: []",
        "{bind: 127.0.0.1:1}",
        "[a, b]",
        "'quoted' # comment",
        "a: b",
    ],
    ids=["new_key", "flow_mapping", "flow_list", "quote_and_comment", "mapping"],
)
def test_environment_values_cannot_add_yaml_structure(tmp_path, value):
    path = write(
        tmp_path,
        """\
        listeners: [{bind: "127.0.0.1:8443"}]
        admin: {token: "sixteen-chars-at-least-${INJECT}"}
        """,
    )
    config = load_config(path, env={"INJECT": value})
    assert config.admin is not None
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == f"sixteen-chars-at-least-{value}"
    assert config.services == []


def test_interpolation_leaves_non_strings_alone():
    config = parse_config(document(limits={"max_headers": 50}), env={})
    assert config.limits.max_headers == 50


# --- files -----------------------------------------------------------------------------------


def test_load_config_reads_a_yaml_file(tmp_path):
    path = write(
        tmp_path,
        """\
        listeners:
          - {bind: "127.0.0.1:8443", tls: {}}
        services:
          - name: bank
            upstream: {targets: ["http://127.0.0.1:9000"]}
            routes:
              - {name: accounts, paths: ["/v1/accounts"], methods: [GET]}
        """,
    )
    config = load_config(path, env={})
    assert isinstance(config, GatewayConfig)
    assert config.services[0].routes[0].methods == ["GET"]


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = write(
        tmp_path,
        """\
        listeners:
          - bind: "127.0.0.1:8443"
            tls: {certificate: cert.pem
        services: []
        """,
    )
    [line] = _load_errors(path)
    assert line.startswith(f"{path}: line 4, column ")


def test_bad_indentation_names_its_line(tmp_path):
    path = write(tmp_path, "listeners:\n  - bind: a\n   tls: {}\n")
    [line] = _load_errors(path)
    assert line.startswith(f"{path}: line 3, column ")


def test_python_object_tags_are_refused(tmp_path):
    path = write(tmp_path, "listeners: !!python/object/apply:os.getcwd []\n")
    [line] = _load_errors(path)
    assert line.startswith(f"{path}: line 1, column 12: ")


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert _load_errors(missing) == [f"{missing}: cannot read (No such file or directory)"]


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    assert _load_errors(path) == [f"{path}: larger than {MAX_CONFIG_BYTES} bytes"]


def test_empty_file_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "")
    assert _load_errors(path) == ["(top level): the config must be a mapping of settings"]


def test_validation_errors_from_a_file_name_the_dotted_path(tmp_path):
    path = write(
        tmp_path,
        """\
        listeners: [{bind: "127.0.0.1:8443"}]
        services:
          - name: bank
            upstream: {targets: ["http://127.0.0.1:9000"]}
            routes:
              - name: accounts
                paths: ["/v1"]
                policies:
                  cors: {allow_origins: ["null"]}
        """,
    )
    [line] = _load_errors(path)
    assert line.startswith("services[0].routes[0].policies.cors.allow_origins: ")


def test_relative_paths_are_resolved_against_the_config_files_folder(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write(
        folder,
        """\
        listeners:
          - bind: "127.0.0.1:8443"
            tls: {certificate: certs/cert.pem, private_key: /abs/key.pem}
        state_dir: state
        services:
          - name: bank
            upstream: {targets: ["https://127.0.0.1:9000"], ca_file: ca.pem}
            routes: [{name: r, paths: ["/"]}]
        """,
    )
    config = load_config(path, env={})
    tls = config.listeners[0].tls
    assert tls is not None
    assert tls.certificate == folder / "certs" / "cert.pem"
    assert tls.private_key == Path("/abs/key.pem")
    assert config.state_dir == folder / "state"
    assert config.services[0].upstream.ca_file == folder / "ca.pem"


def test_parse_config_without_base_dir_keeps_relative_paths():
    doc = {
        "listeners": [{"bind": "127.0.0.1:8443", "tls": {"certificate": "c", "private_key": "k"}}]
    }
    tls = parse_config(doc, env={}).listeners[0].tls
    assert tls is not None
    assert tls.certificate == Path("c")


def _load_errors(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        load_config(path, env={})
    return raised.value.lines


# --- property: nothing but ConfigErrors ------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "listeners",
        "bind",
        "tls",
        "certificate",
        "private_key",
        "redirect_https",
        "plaintext",
        "admin",
        "token",
        "trusted_proxies",
        "limits",
        "max_headers",
        "services",
        "name",
        "upstream",
        "targets",
        "routes",
        "paths",
        "methods",
        "hosts",
        "policies",
        "global_policies",
        "cors",
        "allow_origins",
        "request_id",
        "security_headers",
        "ip_filter",
        "size_limit",
        "trusted_proxy",
        "mode",
        "state_dir",
    ]
) | st.text(max_size=8)

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "127.0.0.1:8443",
            "[::1]:1",
            "http://127.0.0.1:9000",
            "https://a",
            "/v1/{id}",
            "/",
            "0.0.0.0/0",
            "GET",
            "${UNSET}",
            "${X:-1}",
            "$${X}",
            "report_only",
        ]
    )
)

_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)


def _error_lines_or_none(doc: object, env: dict[str, str]) -> list[str] | None:
    """The error lines `parse_config` refused `doc` with; None when it accepted it."""
    try:
        parse_config(doc, env=env)
    except ConfigErrors as exc:
        return exc.lines
    return None


@settings(max_examples=300)
@given(
    doc=st.dictionaries(_KEYS, _VALUES, max_size=6),
    env=st.dictionaries(st.sampled_from(["X", "Y"]), st.text(max_size=5), max_size=2),
)
def test_parse_config_raises_only_config_errors(doc, env):
    lines = _error_lines_or_none(doc, env)
    if lines is not None:
        assert lines
        assert all(isinstance(line, str) and line for line in lines)


@given(value=_VALUES)
def test_any_document_shape_raises_only_config_errors(value):
    lines = _error_lines_or_none(value, {})
    assert lines is None or lines


def test_duplicate_bind_error_names_the_path_and_never_echoes_secrets():
    doc = {
        "admin": {"bind": "127.0.0.1:9901", "token": "${ADMIN_TOKEN}"},
        "listeners": [{"bind": "127.0.0.1:9901", "tls": {}}],
    }
    lines = errors(doc, env={"ADMIN_TOKEN": "prod-admin-token-7f3a9c"})
    assert lines == ["admin.bind: another listener already uses this address and port"]
    assert not any("prod-admin-token" in line for line in lines)


@pytest.mark.parametrize(
    ("first", "second"),
    [("127.0.0.1:8443", "127.0.0.1:08443"), ("[::1]:8443", "[0:0:0:0:0:0:0:1]:8443")],
    ids=["leading_zero_port", "ipv6_spellings"],
)
def test_duplicate_binds_are_found_whatever_their_spelling(first, second):
    doc = {"listeners": [{"bind": first, "tls": {}}, {"bind": second, "tls": {}}]}
    assert errors(doc) == ["listeners[1].bind: another listener already uses this address and port"]


def test_duplicate_route_name_is_reported_at_the_second_route():
    route = {"name": "r", "paths": ["/"]}
    doc = {
        "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
        "services": [
            {"name": "a", "upstream": {"targets": ["http://127.0.0.1:1"]}, "routes": [route]},
            {"name": "b", "upstream": {"targets": ["http://127.0.0.1:1"]}, "routes": [route]},
        ],
    }
    assert errors(doc) == ["services[1].routes[0].name: this route name is used twice"]


def test_repeated_template_parameter_is_a_config_error():
    doc = {
        "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
        "services": [
            {
                "name": "a",
                "upstream": {"targets": ["http://127.0.0.1:1"]},
                "routes": [{"name": "r", "paths": ["/x/{id}/{id}"]}],
            }
        ],
    }
    (line,) = errors(doc)
    assert line.startswith("services[0].routes[0].paths[0]: template parameter {id} appears twice")


def test_default_state_dir_is_relative_to_the_config_file(tmp_path):
    path = write(tmp_path, 'listeners: [{bind: "127.0.0.1:8443", tls: {}}]\n')
    assert load_config(path).state_dir == tmp_path / "var"


def test_nested_interpolation_in_a_default_is_refused_not_half_expanded():
    doc = {"listeners": [{"bind": "127.0.0.1:8443", "tls": {}}], "store": "${A:-x${B:-y}}"}
    (line,) = errors(doc, env={})
    assert line.startswith("store: a ${...} default cannot contain another ${...}")
