"""Shared fixtures: the real OPA binary and the golden test assets."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.engines.opa import find_opa
from engine.errors import ConfigError

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
