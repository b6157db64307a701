"""Fixtures for the decision log tests: logs on SQLite, a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.scratch_db import scratch_database
from tests.log.helpers import REPO


@pytest.fixture
def log(tmp_path: Path) -> Iterator[DecisionLog]:
    """A fresh SQLite-backed log in a temporary state directory."""
    opened = open_decision_log(tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL: ``RELEASEGATE_TEST_POSTGRES_URL`` or one started by the script."""
    url = os.environ.get("RELEASEGATE_TEST_POSTGRES_URL")
    if not url:
        out = subprocess.run(
            ["bash", str(REPO / "scripts" / "start-postgres.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        url = out.stdout.strip().splitlines()[-1]
    return url


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server (dropped afterwards)."""
    with scratch_database(postgres_url) as url:
        yield url
