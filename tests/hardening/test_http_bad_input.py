"""Raw hostile bodies through the HTTP layer (every class at every placement), and
schemathesis against the served OpenAPI for every operation and role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engine.api import create_app
from engine.config import build_settings
from hardening import seeds
from hardening.apifuzz import fuzz_api
from hardening.figures import Figures
from hardening.hostile import QUICK_CLASSES
from hardening.httpfuzz import PLACEMENTS, run_http_hostile
from hardening.service import create_tokens, uvicorn_app

API_EXAMPLES = 3
"""Generated cases per (operation, role, data mode) in pytest; the long mode runs more."""


def test_hostile_bodies_get_4xx_or_a_closed_verdict(
    app_client: tuple[TestClient, dict[str, str]], figures: Figures
) -> None:
    client, tokens = app_client

    def post(route: str, role: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {tokens[role]}", "Content-Type": "application/json"}
        r = client.post(route, content=raw, headers=headers)
        try:
            body = r.json()
        except ValueError:
            body = None
        return r.status_code, dict(r.headers), body

    violations = run_http_hostile(post, figures, classes=QUICK_CLASSES, trace_memory=False)
    assert violations == []
    tried = {k: v for k, v in figures.hostile.items() if k.startswith("http:")}
    assert len(tried) == len(PLACEMENTS)
    # Bodies the JSON decoder cannot read are 4xx at the door, never a verdict.
    for placement, by_class in tried.items():
        for klass in ("deep_nesting_100k", "invalid_utf8", "int_5000_digits"):
            assert set(by_class[klass].outcomes) <= {"400", "422"}, (placement, klass)


def test_schemathesis_every_route_and_role(tmp_path: Path, figures: Figures) -> None:
    state = tmp_path / "state"
    tokens = create_tokens(state)
    app = create_app(build_settings(state_dir=state, auth_failure_limit=10**6))
    with uvicorn_app(app) as base:
        result = fuzz_api(
            base, tokens, figures, examples=API_EXAMPLES, derandomize=True,
            reference_bundle=seeds.sigstore_bundle(),
        )  # fmt: skip
    assert result.failures == []
    assert figures.api_server_errors == 0 and figures.api_invalid_allowed == 0
    operations = {key.split(" [")[0] for key in result.cases}
    assert {"POST /v1/decisions", "POST /v1/admission", "POST /v1/approvals",
            "GET /v1/log/checkpoint", "POST /v1/hooks/flagger/{hook}"} <= operations  # fmt: skip
    roles = {key.split("[")[1].split(",")[0] for key in result.cases}
    assert roles == {"ci", "admission", "rollout", "approver", "auditor", "admin", "anonymous"}
