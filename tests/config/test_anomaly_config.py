"""The `anomaly` block of the configuration: defaults on, bounds refused with their path."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.loader import ConfigErrors, parse_config

MINIMAL: dict[str, Any] = {"listeners": [{"bind": "127.0.0.1:8443", "tls": {}}]}


def test_anomaly_detection_is_on_by_default() -> None:
    anomaly = parse_config(MINIMAL, env={}).anomaly
    assert anomaly.enabled
    assert (anomaly.threshold, anomaly.min_requests, anomaly.half_life) == (0.5, 20, 60.0)


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"threshold": 0}, "anomaly.threshold"),
        ({"threshold": 1.5}, "anomaly.threshold"),
        ({"min_requests": 0}, "anomaly.min_requests"),
        ({"half_life": 0}, "anomaly.half_life"),
        ({"treshold": 0.4}, "anomaly.treshold"),
    ],
    ids=["zero-threshold", "threshold-above-one", "no-requests", "zero-half-life", "typo"],
)
def test_anomaly_settings_out_of_range_are_refused(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_config({**MINIMAL, "anomaly": settings}, env={})
    [line] = raised.value.lines
    assert line.startswith(path)
