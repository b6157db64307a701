"""Shared fixtures: the real OPA binary, a real PostgreSQL and the golden test assets."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.engines.opa import find_opa
from engine.errors import ConfigError
from engine.log.scratch_db import scratch_database

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
POLICIES = REPO / "policies"


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The pinned OPA (scripts/install-opa.sh). Missing OPA fails the run: it never skips."""
    try:
        return find_opa()
    except ConfigError as exc:
        pytest.fail(str(exc))


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
