"""The injection corpus: detection and false-positive rates, and linear-time matching."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bastion.policies.injection_guard.rules import RULES, Matcher, normalise

CORPUS = Path(__file__).resolve().parent / "corpus"


def _lines(name: str) -> list[str]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def attack_strings() -> list[tuple[str, str]]:
    """(category, string) pairs; bench/injection_corpus.py reads the same files."""
    pairs = [line.split("\t", 1) for line in _lines("attacks.txt")]
    return [(category, text) for category, text in pairs]


def benign_strings() -> list[str]:
    return _lines("benign.txt")


@dataclass
class Figures:
    attacks: int = 0
    benign: int = 0
    missed: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def detection_rate(self) -> float:
        return 1 - len(self.missed) / self.attacks

    @property
    def false_positive_rate(self) -> float:
        return len(self.false_positives) / self.benign


def measure() -> Figures:
    """Attacks as query values; benign strings as query values and as JSON body strings."""
    matcher = Matcher.build(RULES)
    attacks = attack_strings()
    benign = benign_strings()
    figures = Figures(len(attacks), len(benign))
    figures.missed = [text for _, text in attacks if matcher.find(text, body=False) is None]
    figures.false_positives = [
        text
        for text in benign
        if matcher.find(text, body=False) is not None or matcher.find(text, body=True) is not None
    ]
    return figures


def test_corpus_blocks_at_least_95_percent_of_attacks_and_flags_at_most_1_percent_of_benign():
    figures = measure()
    assert figures.attacks >= 150
    assert figures.benign >= 300
    assert figures.detection_rate >= 0.95, figures.missed
    assert figures.false_positive_rate <= 0.01, figures.false_positives


def test_every_category_has_attack_strings_that_are_blocked():
    matcher = Matcher.build(RULES)
    by_category: dict[str, list[bool]] = {}
    for category, text in attack_strings():
        rule = matcher.find(text, body=False)
        by_category.setdefault(category, []).append(rule is not None)
    assert set(by_category) == {rule.category for rule in RULES}
    for category, results in by_category.items():
        assert sum(results) / len(results) >= 0.9, category


def test_benign_corpus_is_not_empty_of_tricky_cases():
    benign = benign_strings()
    assert any("'" in text for text in benign)
    assert any("<" in text for text in benign)
    assert any(text.startswith("https://") for text in benign)


HOSTILE = [
    "'" * 20000,
    "<" + "a" * 20000,
    "<a " + "x=1 " * 5000,
    "union " * 5000,
    ";" + " " * 20000 + "x",
    "../" * 7000,
    "http://" + "a@" * 5000,
    "%25" * 7000,
    "$(" * 10000,
    "or 1" * 5000,
    "/*" * 10000,
    "&#" * 10000,
    "a" * 60000 + "<script>",
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
def test_matching_a_long_hostile_string_stays_fast(text):
    matcher = Matcher.build(RULES)
    started = time.perf_counter()
    for body in (False, True):
        matcher.find(text, body=body)
    # Linear patterns scan 60 KB in a few ms; catastrophic backtracking would take minutes.
    assert time.perf_counter() - started < 0.5


def test_normalise_decodes_double_encoding_entities_and_sql_comments():
    assert normalise("%253Cscript%253E") == "<script>"
    assert normalise("&lt;B&gt;") == "<b>"
    assert normalise("UNION/**/SELECT") == "union select"
