"""Fixtures for the decision log tests: logs on SQLite (PostgreSQL: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log.decision_log import DecisionLog, open_decision_log


@pytest.fixture
def log(tmp_path: Path) -> Iterator[DecisionLog]:
    """A fresh SQLite-backed log in a temporary state directory."""
    opened = open_decision_log(tmp_path / "state")
    yield opened
    opened.close()
