"""The full authorization matrix of contract §5: every route x every role, no token, bad token.

An allowed role gets the route's success status (or, for the adapter routes whose status
carries a verdict, anything but an auth refusal); a role that may not gets 403 with code
``forbidden``; no token and an unknown or revoked token get 401. ``admin`` may do everything.
Public routes answer without a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.auth import ROLES
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore, hash_token
from engine.runtime import Runtime
from tests.api.conftest import Service, approval, dev_request, start_service

DIGEST = "sha256:" + "cd" * 32


def _admission_review() -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "dev",
            "userInfo": {"username": "system:serviceaccount:dev:deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "dev"},
                "spec": {"containers": [{"name": "web", "image": f"ghcr.io/acme/web@{DIGEST}"}]},
            },
        },
    }


@dataclass(frozen=True)
class Route:
    """One route of the contract's table."""

    method: str
    path: str
    roles: frozenset[str]
    ok: int | None  # None: the status carries a verdict (adapter routes)
    body: Callable[[], Any] | None = None


ROUTES = [
    Route("POST", "/v1/decisions", frozenset({"ci"}), 200, lambda: dev_request("matrix-1")),
    Route("GET", "/v1/decisions/{id}", frozenset({"auditor"}), 200),
    Route("GET", "/v1/decisions?limit=5", frozenset({"auditor"}), 200),
    Route("GET", "/v1/decisions/{id}/proof?tree_size=1", frozenset({"auditor"}), 200),
    Route("GET", "/v1/log/checkpoint", frozenset({"auditor"}), 200),
    Route("GET", "/v1/log/consistency?first=1&second=1", frozenset({"auditor"}), 200),
    Route("GET", "/v1/decisions/{id}/vsa", frozenset({"auditor"}), 200),
    Route("POST", "/v1/approvals", frozenset({"approver"}), 201, lambda: approval("matrix-1")),
    Route("GET", "/v1/approvals?release_id=matrix-1", frozenset({"auditor", "approver"}), 200),
    Route("POST", "/v1/admission", frozenset({"admission"}), 200, _admission_review),
    Route(
        "POST",
        "/v1/hooks/argo-rollouts",
        frozenset({"rollout"}),
        200,
        lambda: {
            "release_id": "web-2",
            "service": "web",
            "environment": "dev",
            "stage": "canary",
            "artifact_digest": DIGEST,
        },
    ),
    Route(
        "POST",
        "/v1/hooks/flagger/confirm-rollout",
        frozenset({"rollout"}),
        None,
        lambda: {"name": "web", "namespace": "dev", "phase": "Progressing"},
    ),
]
PUBLIC = ["/v1/keys", "/healthz", "/readyz", "/metrics"]
CALLERS = [*ROLES, "no-token", "bad-token", "revoked-token"]


@pytest.fixture(scope="module")
def svc(
    tmp_path_factory: pytest.TempPathFactory, runtime: Runtime, policy_dir: Path
) -> Iterator[tuple[Service, str, dict[str, str]]]:
    """One service with an allow decision (for the {id} routes) and every caller's headers.

    The failed-attempt limit is raised here: this module alone makes 36 failed attempts.
    """
    state = tmp_path_factory.mktemp("matrix") / "state"
    service = start_service(state, runtime, policy_dir, auth_failure_limit=10_000)
    decided = service.client.post(
        "/v1/decisions", json=dev_request("matrix-0"), headers=service.headers("ci")
    )
    assert decided.status_code == 200 and decided.json()["verdict"] == "allow"
    revoked = service.token("gone", *ROLES)
    store = TokenStore(database_url(service.state_dir))
    store.revoke(hash_token(revoked)[:16])
    store.close()
    headers = {role: service.headers(role) for role in ROLES}
    headers["no-token"] = {}
    headers["bad-token"] = {"Authorization": "Bearer rgt_" + "x" * 43}
    headers["revoked-token"] = {"Authorization": f"Bearer {revoked}"}
    yield service, decided.json()["decision_id"], headers
    service.close()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_route_by_caller(
    route: Route, caller: str, svc: tuple[Service, str, dict[str, str]]
) -> None:
    service, decision_id, headers = svc
    path = route.path.replace("{id}", decision_id)
    body = route.body() if route.body else None
    r = service.client.request(route.method, path, json=body, headers=headers[caller])
    where = f"{route.method} {path} as {caller}: {r.status_code} {r.text[:300]}"
    if caller in ("no-token", "bad-token", "revoked-token"):
        assert r.status_code == 401, where
        assert r.json()["code"] == "unauthenticated", where
        assert r.headers["WWW-Authenticate"] == "Bearer", where
    elif caller == "admin" or caller in route.roles:
        if route.ok is not None:
            assert r.status_code == route.ok, where
        else:
            assert r.status_code != 401 and r.json().get("code") != "forbidden", where
    else:
        assert r.status_code == 403, where
        assert r.json()["code"] == "forbidden", where


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_need_no_token(path: str, service: Service) -> None:
    assert service.client.get(path).status_code == 200
    bad = {"Authorization": "Bearer rgt_" + "y" * 43}
    assert service.client.get(path, headers=bad).status_code == 200
