"""Prints injection_guard's detection and false-positive rates on the test corpus.

Run: .venv/bin/python bench/injection_corpus.py [--verbose]

Attack strings count as detected when the default rule set flags them as a query parameter
value; benign strings count as flagged when it flags them as a query value or as a JSON body
string.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bastion.policies.injection_guard.rules import CATEGORIES, RULES, RULESET_VERSION, Matcher

CORPUS = Path(__file__).resolve().parent.parent / "tests/policies/injection_guard/corpus"


@dataclass(frozen=True)
class Figures:
    """Detection and false-positive counts on the corpus."""

    attacks: int
    detected: int
    benign: int
    flagged: int
    missed: list[str]
    false_positives: list[str]

    @property
    def detection_rate(self) -> float:
        """Share of attack strings flagged."""
        return self.detected / self.attacks

    @property
    def false_positive_rate(self) -> float:
        """Share of benign strings flagged."""
        return self.flagged / self.benign


def _lines(name: str) -> list[str]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def attack_strings() -> list[tuple[str, str]]:
    """(category, string) pairs of the attack corpus."""
    return [tuple(line.split("\t", 1)) for line in _lines("attacks.txt")]  # type: ignore[misc]  # two fields per line


def benign_strings() -> list[str]:
    """The benign corpus."""
    return _lines("benign.txt")


def measure() -> Figures:
    """Run the default rule set over both corpora."""
    matcher = Matcher.build(RULES)
    attacks = attack_strings()
    missed = [text for _, text in attacks if matcher.find(text, body=False) is None]
    benign = benign_strings()
    flagged = [
        text
        for text in benign
        if matcher.find(text, body=False) is not None or matcher.find(text, body=True) is not None
    ]
    return Figures(
        len(attacks), len(attacks) - len(missed), len(benign), len(flagged), missed, flagged
    )


def main() -> None:
    """Print the figures (and, with --verbose, the misses and false positives)."""
    figures = measure()
    print(f"rule set {RULESET_VERSION}: {len(RULES)} rules in {len(CATEGORIES)} categories")
    print(f"attacks blocked: {figures.detected}/{figures.attacks} ({figures.detection_rate:.1%})")
    print(
        f"benign flagged:  {figures.flagged}/{figures.benign} ({figures.false_positive_rate:.1%})"
    )
    if "--verbose" in sys.argv:
        for text in figures.missed:
            print(f"missed: {text!r}")
        for text in figures.false_positives:
            print(f"false positive: {text!r}")


if __name__ == "__main__":
    main()
