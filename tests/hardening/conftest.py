"""Fixtures for the hardening suite: figures shared by the session, PostgreSQL, an app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.config import build_settings
from hardening.durability import postgres_server_url
from hardening.figures import Figures
from hardening.service import create_tokens


@pytest.fixture(scope="session")
def figures() -> Figures:
    """Counters of the whole session (printed by nobody: the long mode reports them)."""
    return Figures()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A real PostgreSQL (``RELEASEGATE_TEST_POSTGRES_URL`` or scripts/start-postgres.sh)."""
    return postgres_server_url()


@pytest.fixture(scope="module")
def app_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An in-process app on the committed signed bundle (managed OPA), with a token per role."""
    state = tmp_path_factory.mktemp("hardening-app") / "state"
    tokens = create_tokens(state)
    app = create_app(build_settings(state_dir=state, auth_failure_limit=10**6))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens
