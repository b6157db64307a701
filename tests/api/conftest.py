"""Fixtures for the API tests: a real OPA on the repository's policy, apps on SQLite, tokens.

The policy is ``policies/releasegate`` with ``tests/assets/api/policy-overrides.json``
merged over its data (no scan requirement, no freeze window; the file says why), so that
the real corpus bundle ``conformance/happy-path-intoto-in-dsse-v3`` over ``a.txt`` makes a
prod deploy whose only blocking reason is ``approval_missing``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.approvals import ApprovalStore
from engine.auth import ROLES
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from engine.config import Settings, build_settings
from engine.runtime import Runtime, open_runtime
from tests.conftest import ASSETS, REPO

API_ASSETS = ASSETS / "api"
CONFORMANCE = ASSETS / "sigstore" / "conformance"
ARTIFACT_DIGEST = "sha256:" + hashlib.sha256((CONFORMANCE / "a.txt").read_bytes()).hexdigest()
REQUESTER = "alice@example.com"
CI_SUBJECT = "ci-pipeline"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (objects merge, other values replace)."""
    out = dict(base)
    for key, value in over.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's Rego (tests excluded) with the test data overrides."""
    src = REPO / "policies" / "releasegate"
    dst = tmp_path_factory.mktemp("policy") / "releasegate"
    (dst / "config").mkdir(parents=True)
    for rego in src.glob("*.rego"):
        if not rego.name.endswith("_test.rego"):
            shutil.copy(rego, dst / rego.name)
    data = json.loads((src / "config" / "data.json").read_text())
    overrides = json.loads((API_ASSETS / "policy-overrides.json").read_text())
    (dst / "config" / "data.json").write_text(json.dumps(merge(data, overrides)))
    return dst.parent


@pytest.fixture(scope="session")
def runtime(
    policy_dir: Path, tmp_path_factory: pytest.TempPathFactory, opa_binary: Path
) -> Iterator[Runtime]:
    """One managed OPA shared by the apps of this session (each app has its own pipeline)."""
    settings = build_settings(
        state_dir=tmp_path_factory.mktemp("runtime-state"), bundle=policy_dir, opa=str(opa_binary)
    )
    rt = open_runtime(settings)
    yield rt
    rt.close()


@dataclass
class Service:
    """A running app, its client, its settings and a token per role."""

    client: TestClient
    settings: Settings
    tokens: dict[str, str]
    state_dir: Path
    closers: list[Any] = field(default_factory=list)

    def headers(self, role: str) -> dict[str, str]:
        """The Authorization header of the token holding ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def decide(self, body: dict[str, Any], *, role: str = "ci") -> Any:
        """``POST /v1/decisions`` with the token of ``role``; returns the response."""
        return self.client.post("/v1/decisions", json=body, headers=self.headers(role))

    def close(self) -> None:
        """Leave the app's lifespan; close what the test opened for it."""
        self.client.__exit__(None, None, None)
        for closer in self.closers:
            closer.close()

    def token(self, subject: str, *roles: str) -> str:
        """Create another token in this service's store."""
        store = TokenStore(database_url(self.state_dir))
        try:
            return store.create(subject, list(roles))[0]
        finally:
            store.close()


ServiceFactory = Callable[..., Service]


def start_service(
    state_dir: Path,
    runtime: Runtime,
    policy_dir: Path,
    *,
    approvals_clock: Callable[[], int] | None = None,
    **overrides: Any,
) -> Service:
    """Create tokens for every role, then start an app on ``state_dir`` (enter its lifespan)."""
    state_dir.mkdir(mode=0o700)
    settings = build_settings(state_dir=state_dir, bundle=policy_dir, **overrides)
    store = TokenStore(database_url(state_dir))
    tokens = {role: store.create(f"{role}-subject", [role])[0] for role in ROLES}
    tokens["ci"] = store.create(CI_SUBJECT, ["ci"])[0]
    store.close()
    approvals = None
    if approvals_clock is not None:
        approvals = ApprovalStore(
            database_url(state_dir),
            default_ttl_s=settings.approval_default_ttl_s,
            max_ttl_s=settings.approval_max_ttl_s,
            clock=approvals_clock,
        )
    app = create_app(settings, runtime=runtime, approvals=approvals)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    service = Service(client, settings, tokens, state_dir)
    if approvals is not None:
        service.closers.append(approvals)
    return service


@pytest.fixture
def make_service(tmp_path: Path, runtime: Runtime, policy_dir: Path) -> Iterator[ServiceFactory]:
    """Start apps on fresh state directories; every one is shut down after the test."""
    started: list[Service] = []

    def start(**overrides: Any) -> Service:
        service = start_service(
            tmp_path / f"state-{len(started)}", runtime, policy_dir, **overrides
        )
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.close()


@pytest.fixture
def service(make_service: ServiceFactory) -> Service:
    """One app with default settings."""
    return make_service()


def prod_request(
    *, release_id: str = "payments-1.4.2", requested_by: str | None = REQUESTER, **extra: Any
) -> dict[str, Any]:
    """A prod deploy with verifiable provenance; blocked only by ``approval_missing``."""
    bundle = json.loads(
        (CONFORMANCE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json").read_text()
    )
    release = {
        "id": release_id,
        "service": "payments",
        "environment": "prod",
        "stage": "deploy",
        "version": "1.4.2",
    }
    if requested_by is not None:
        release["requested_by"] = requested_by
    return {
        "release": release,
        "artifact": {"uri": "ghcr.io/acme/payments", "digest": ARTIFACT_DIGEST},
        "evidence": {"attestations": [bundle]},
        **extra,
    }


def dev_request(release_id: str = "payments-dev-1") -> dict[str, Any]:
    """A dev deploy without evidence (allowed by the policy: nothing is required in dev)."""
    return {
        "release": {
            "id": release_id,
            "service": "payments",
            "environment": "dev",
            "stage": "deploy",
        },
        "artifact": {"digest": "sha256:" + "ab" * 32},
    }


def approval(release_id: str = "payments-1.4.2", **extra: Any) -> dict[str, Any]:
    """A ``POST /v1/approvals`` body for :func:`prod_request`."""
    return {
        "release_id": release_id,
        "artifact_digest": ARTIFACT_DIGEST,
        "environment": "prod",
        **extra,
    }
