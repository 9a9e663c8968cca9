"""Fixtures for integration tests: a running gateway with an echo upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import RunningGateway, running_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway with default policies proxying everything to the echo upstream."""
    with running_gateway(tmp_path) as running:
        yield running
