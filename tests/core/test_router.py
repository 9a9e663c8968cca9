"""The router: exact, template and prefix paths, hosts, methods (405) and no match (404)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from bastion.core.router import Router, RouteSpec

HOST = "api.example.test"


def spec(
    name: str,
    *paths: str,
    methods: set[str] | None = None,
    hosts: tuple[str, ...] | None = None,
    exact: bool = False,
) -> RouteSpec:
    return RouteSpec(
        name=name,
        paths=paths,
        methods=frozenset(methods) if methods is not None else None,
        hosts=hosts,
        path_match="exact" if exact else "prefix",
    )


def router(*specs: RouteSpec) -> Router[str]:
    return Router([(s, s.name) for s in specs])


def matched(table: Router[str], path: str, method: str = "GET", host: str = HOST) -> str | None:
    return table.match(host, method, path).value


# --- precedence ------------------------------------------------------------------------------

PRECEDENCE = router(
    spec("catch_all", "/"),
    spec("users_prefix", "/v1/users"),
    spec("user_by_id", "/v1/users/{id}"),
    spec("me", "/v1/users/me", exact=True),
)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/users/me", "me"),
        ("/v1/users/42", "user_by_id"),
        ("/v1/users", "users_prefix"),
        ("/v1/users/42/orders", "users_prefix"),
        ("/v1/users/me/orders", "users_prefix"),
        ("/v1", "catch_all"),
        ("/", "catch_all"),
    ],
    ids=[
        "exact_beats_template_and_prefix",
        "template_beats_prefix",
        "prefix_itself",
        "template_matches_one_segment_only",
        "exact_matches_only_the_whole_path",
        "catch_all_below",
        "root",
    ],
)
def test_exact_then_template_then_prefix(path, route):
    assert matched(PRECEDENCE, path) == route


def test_template_wins_over_a_longer_prefix():
    table = router(spec("long_prefix", "/a/b/c"), spec("template", "/a/{x}"))
    assert matched(table, "/a/b") == "template"
    assert matched(table, "/a/b/c") == "long_prefix"


def test_exact_route_does_not_match_a_trailing_slash_or_sub_path():
    table = router(spec("health", "/health", exact=True))
    assert matched(table, "/health") == "health"
    assert matched(table, "/health/") is None
    assert matched(table, "/health/deep") is None


# --- prefixes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/v1", True),
        ("/v1/", True),
        ("/v1/x", True),
        ("/v1/x/y", True),
        ("/v1x", False),
        ("/v10/x", False),
        ("/v", False),
        ("/", False),
        ("/other/v1", False),
    ],
    ids=[
        "itself",
        "trailing_slash",
        "child",
        "grandchild",
        "longer_segment",
        "longer_segment_child",
        "shorter",
        "root",
        "elsewhere",
    ],
)
def test_prefix_matches_at_segment_boundaries(path, found):
    table = router(spec("v1", "/v1"))
    assert table.match(HOST, "GET", path).found is found


def test_prefix_written_with_a_trailing_slash_matches_the_same_paths():
    table = router(spec("v1", "/v1/"))
    assert matched(table, "/v1") == "v1"
    assert matched(table, "/v1/x") == "v1"
    assert matched(table, "/v1x") is None


@pytest.mark.parametrize("path", ["/", "/a", "/a/b/c", "/%7E"], ids=["root", "one", "deep", "odd"])
def test_slash_is_a_catch_all(path):
    assert matched(router(spec("all", "/")), path) == "all"


def test_longest_prefix_wins_whatever_the_config_order():
    table = router(
        spec("root", "/"), spec("v1", "/v1"), spec("accounts", "/v1/accounts"), spec("v", "/v")
    )
    assert matched(table, "/v1/accounts/7") == "accounts"
    assert matched(table, "/v1/transfers") == "v1"
    assert matched(table, "/v/x") == "v"
    assert matched(table, "/v2") == "root"


def test_equal_prefixes_keep_config_order():
    table = router(spec("first", "/api"), spec("second", "/api"))
    assert matched(table, "/api/x") == "first"


def test_route_with_several_paths_matches_each():
    table = router(spec("multi", "/a", "/b/{id}", "/c"), spec("root", "/"))
    assert [matched(table, p) for p in ("/a/1", "/b/2", "/c", "/d")] == [
        "multi",
        "multi",
        "multi",
        "root",
    ]


# --- templates -------------------------------------------------------------------------------


def test_template_parameters_are_extracted_by_name():
    table = router(spec("transfer", "/v1/accounts/{account_id}/transfers/{transfer_id}"))
    result = table.match(HOST, "GET", "/v1/accounts/acc-1/transfers/t%2099")
    assert result.found
    assert result.value == "transfer"
    assert result.params == {"account_id": "acc-1", "transfer_id": "t%2099"}


@pytest.mark.parametrize(
    "path",
    ["/v1/accounts", "/v1/accounts/", "/v1/accounts/a/b", "/v1/accountsx/a"],
    ids=["missing_segment", "empty_segment", "extra_segment", "different_literal"],
)
def test_template_parameter_is_exactly_one_non_empty_segment(path):
    table = router(spec("account", "/v1/accounts/{id}"))
    assert not table.match(HOST, "GET", path).found


def test_template_literals_are_not_regular_expressions():
    table = router(spec("dotted", "/v1.0/{id}"))
    assert matched(table, "/v1.0/x") == "dotted"
    assert matched(table, "/v1x0/x") is None


def test_non_template_matches_have_no_params():
    assert router(spec("all", "/")).match(HOST, "GET", "/x").params == {}


# --- hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "route"),
    [
        ("api.example.com", "exact_host"),
        ("www.example.com", "wildcard"),
        ("deep.api.example.org", "wildcard"),
        ("example.org", "any_host"),
        ("example.com", "any_host"),
        ("evil-example.com", "any_host"),
        ("other.test", "any_host"),
    ],
    ids=[
        "exact",
        "wildcard_sub_domain",
        "wildcard_other_suffix",
        "wildcard_needs_a_label",
        "bare_domain_not_wildcard",
        "suffix_without_dot",
        "no_host_fits",
    ],
)
def test_host_exact_and_wildcard(host, route):
    table = router(
        spec("exact_host", "/", hosts=("api.example.com",)),
        spec("wildcard", "/", hosts=("*.example.com", "*.example.org")),
        spec("any_host", "/"),
    )
    assert matched(table, "/", host=host) == route


def test_host_mismatch_is_not_found():
    table = router(spec("only_api", "/", hosts=("api.example.com",)))
    result = table.match("www.example.com", "GET", "/")
    assert not result.found
    assert result.allowed == ()


@pytest.mark.parametrize(
    "kind", ["exact", "template", "prefix"], ids=["exact", "template", "prefix"]
)
def test_hosts_apply_to_every_kind_of_path(kind):
    path = {"exact": "/x", "template": "/{id}", "prefix": "/x"}[kind]
    table = router(spec("hosted", path, hosts=("api.example.com",), exact=kind == "exact"))
    assert matched(table, "/x", host="api.example.com") == "hosted"
    assert matched(table, "/x", host="other.example.com") is None


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["exact", "template", "prefix"], ids=["exact", "template", "prefix"]
)
def test_wrong_method_lists_the_allowed_ones_sorted(kind):
    path = {"exact": "/x", "template": "/{id}", "prefix": "/x"}[kind]
    table = router(
        spec("write", path, methods={"POST", "PUT"}, exact=kind == "exact"),
        spec("read", path, methods={"GET"}, exact=kind == "exact"),
    )
    result = table.match(HOST, "DELETE", "/x")
    assert not result.found
    assert result.allowed == ("GET", "POST", "PUT")


def test_method_picks_between_routes_on_the_same_path():
    table = router(spec("write", "/x", methods={"POST"}), spec("read", "/x", methods={"GET"}))
    assert matched(table, "/x", "POST") == "write"
    assert matched(table, "/x", "GET") == "read"


def test_route_without_methods_takes_every_method():
    table = router(spec("any", "/x"))
    assert all(matched(table, "/x", m) == "any" for m in ("GET", "POST", "DELETE", "PATCH"))


def test_wrong_method_falls_through_to_a_route_that_takes_it():
    table = router(spec("read_only", "/v1", methods={"GET"}), spec("fallback", "/"))
    assert matched(table, "/v1", "POST") == "fallback"


def test_no_path_match_is_not_found_without_allowed_methods():
    table = router(spec("v1", "/v1", methods={"GET"}))
    result = table.match(HOST, "GET", "/v2")
    assert not result.found
    assert result.value is None
    assert result.allowed == ()


def test_routes_of_other_hosts_do_not_leak_their_methods_into_405():
    table = router(
        spec("internal", "/x", methods={"DELETE"}, hosts=("internal.example.com",)),
        spec("public", "/x", methods={"GET"}),
    )
    assert table.match("api.example.com", "POST", "/x").allowed == ("GET",)


def test_empty_table_matches_nothing():
    assert not Router[str]([]).match(HOST, "GET", "/").found


# --- property: prefixes against a brute-force oracle -----------------------------------------

_SEGMENTS = st.sampled_from(["a", "b", "ab", "v1", "v10"])
_PATHS = st.lists(_SEGMENTS, max_size=4).map(lambda parts: "/" + "/".join(parts))
_PREFIXES = st.tuples(_PATHS, st.booleans()).map(
    lambda pair: pair[0] + "/" if pair[1] and pair[0] != "/" else pair[0]
)


def _oracle(prefixes: list[str], path: str) -> int | None:
    """The index of the longest prefix that ends at a segment boundary of `path`; ties: first."""
    best: tuple[int, int] | None = None
    for index, prefix in enumerate(prefixes):
        bare = prefix.rstrip("/")
        fits = bare == "" or path == bare or path.startswith(bare + "/")
        if fits and (best is None or len(bare) > best[0]):
            best = (len(bare), index)
    return None if best is None else best[1]


@given(prefixes=st.lists(_PREFIXES, max_size=8), path=_PATHS)
def test_prefix_match_equals_longest_segment_boundary_prefix(prefixes, path):
    table = Router([(spec(f"r{i}", prefix), i) for i, prefix in enumerate(prefixes)])
    assert table.match(HOST, "GET", path).value == _oracle(prefixes, path)


def test_wildcard_host_matches_a_one_character_label():
    router = Router([(RouteSpec("w", ("/",), hosts=("*.example.com",)), "w")])
    assert router.match("a.example.com", "GET", "/").found
    assert not router.match("example.com", "GET", "/").found
    assert not router.match(".example.com", "GET", "/").found
