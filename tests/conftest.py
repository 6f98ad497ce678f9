"""Shared fixtures: the whole stack on loopback, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Every simulator and the reference service on free loopback ports (stopped at the end)."""
    with Stack() as running:
        yield running
