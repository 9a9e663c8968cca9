"""Reads Prometheus text exposition into a dict of samples, with prometheus-client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """Every sample of `text`, keyed by (sample name, label set); raises on invalid text."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample, 0 when it is absent (counters start at zero)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
