"""The deprecated-version metric through a real gateway: calls to deprecated versions move it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.harness import RunningGateway, running_gateway
from tests.observability.prom import Samples, parse_samples, value

pytestmark = pytest.mark.integration

AUTH = {"authorization": "Bearer integration-admin-token"}
VERSIONING = {
    "default": "v2",
    "versions": {
        "v1": {"deprecated_at": "2023-06-30T23:59:59Z", "sunset_at": "2099-12-31T23:59:59Z"},
        "v2": {},
        "v3": {"deprecated_at": "2099-01-01T00:00:00Z"},  # deprecation announced, not yet due
    },
}
METRIC = "bastion_deprecated_version_requests_total"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway whose global policies include versioning."""
    extra = {"global_policies": {"request_id": {}, "versioning": VERSIONING}}
    with running_gateway(tmp_path_factory.mktemp("versioning-metric"), extra) as running:
        yield running


def _scrape(gw: RunningGateway) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics", headers=AUTH, timeout=5)
    assert response.status_code == 200
    return parse_samples(response.text)


def _get(gw: RunningGateway, path: str, **kwargs: object) -> int:
    url = f"http://127.0.0.1:{gw.http_port}{path}"
    return httpx.get(url, timeout=5, **kwargs).status_code  # type: ignore[arg-type]


def test_deprecated_version_calls_move_the_metric(gateway: RunningGateway) -> None:
    before = value(_scrape(gateway), METRIC, route="all", version="v1")
    assert _get(gateway, "/v1/accounts") == 200
    assert _get(gateway, "/accounts", headers={"accept-version": "1"}) == 200
    assert value(_scrape(gateway), METRIC, route="all", version="v1") == before + 2


def test_current_and_not_yet_deprecated_versions_do_not_count(gateway: RunningGateway) -> None:
    samples = _scrape(gateway)
    before_v2 = value(samples, METRIC, route="all", version="v2")
    before_v3 = value(samples, METRIC, route="all", version="v3")
    assert _get(gateway, "/v2/accounts") == 200
    assert _get(gateway, "/v3/accounts") == 200
    assert _get(gateway, "/accounts") == 200  # the default, v2
    samples = _scrape(gateway)
    assert value(samples, METRIC, route="all", version="v2") == before_v2 == 0
    assert value(samples, METRIC, route="all", version="v3") == before_v3 == 0


def test_metric_has_no_consumer_label(gateway: RunningGateway) -> None:
    assert _get(gateway, "/v1/x") == 200
    labels = {
        name
        for (sample, label_set) in _scrape(gateway)
        if sample == METRIC
        for name, _ in label_set
    }
    assert labels == {"route", "version"}
