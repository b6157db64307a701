"""The adapters over HTTP: ``/v1/admission``, ``/v1/hooks/argo-rollouts``,
``/v1/hooks/flagger/{hook}`` on the real app (real OPA, SQLite log and token store), and the
admission path end to end with ``releasegate check --server`` against a real HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine.adapters.cli import main
from engine.api import create_app
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from engine.config import build_settings
from engine.decision import DecisionPipeline
from engine.engines.opa import ManagedOpaEngine
from engine.inputs.base import FactProviders, NoApprovalStore
from engine.inputs.provenance import ProvenanceVerifier
from engine.inputs.providers import ScanReports, SigstoreProvenance
from engine.log import open_decision_log
from engine.models.slo import SloSection
from engine.runtime import Runtime
from tests.adapters.conftest import DIGEST_A, DIGEST_B, FixedSlo, review

pytestmark = pytest.mark.opa

FAST_BURN = SloSection.model_validate({
    "status": "ok", "objective": 0.999, "window": "30d",
    "budget_remaining": {"value": 0.8, "query": "budget", "range": "30d",
                         "evaluated_at": "2026-11-26T12:00:00Z", "points": 1},
    "burn_rates": [{
        "severity": "fast", "factor": 14.4, "long_window": "1h", "short_window": "5m",
        "long": {"value": 20.0, "query": "burn 1h", "range": "1h",
                 "evaluated_at": "2026-11-26T12:00:00Z", "points": 1},
        "short": {"value": 25.0, "query": "burn 5m", "range": "5m",
                  "evaluated_at": "2026-11-26T12:00:00Z", "points": 1},
    }],
})  # fmt: skip


@dataclass
class Service:
    """A running app and a token per role."""

    app: FastAPI
    client: TestClient
    tokens: dict[str, str]
    state_dir: Path

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def service(
    tmp_path: Path, opa_engine: ManagedOpaEngine, verifier: ProvenanceVerifier, slo: FixedSlo
) -> Iterator[Service]:
    state_dir = tmp_path / "svc"
    state_dir.mkdir(mode=0o700)
    settings = build_settings(state_dir=state_dir, admission_environments={"payments": "dev"})
    providers = FactProviders(
        provenance=SigstoreProvenance(verifier),
        vulnerabilities=ScanReports(),
        slo=slo,
        approvals=NoApprovalStore(),
    )
    runtime = Runtime(
        settings=settings,
        engine=opa_engine,
        pipeline=DecisionPipeline(engine=opa_engine, providers=providers),
    )
    store = TokenStore(database_url(state_dir))
    tokens = {role: store.create(f"{role}-bot", [role])[0]
              for role in ("ci", "admission", "rollout", "auditor")}  # fmt: skip
    store.close()
    app = create_app(settings, runtime=runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Service(app, client, tokens, state_dir)


def dev_allow(svc: Service, digest: str = DIGEST_A) -> str:
    body = {
        "release": {"id": "payments-1", "service": "payments", "environment": "dev",
                    "stage": "deploy"},
        "artifact": {"uri": "ghcr.io/acme/payments", "digest": digest},
    }  # fmt: skip
    r = svc.client.post("/v1/decisions", json=body, headers=svc.auth("ci"))
    assert r.status_code == 200 and r.json()["verdict"] == "allow", r.text
    return str(r.json()["decision_id"])


# -- admission ---------------------------------------------------------------------------


def test_admission_over_http(service: Service) -> None:
    prior = dev_allow(service)
    body = review("Deployment")
    r = service.client.post("/v1/admission", json=body, headers=service.auth("admission"))
    assert r.status_code == 200
    response = r.json()["response"]
    assert response["allowed"] is True
    decision_id = response["auditAnnotations"]["decision-id"]
    assert r.headers["X-Releasegate-Decision-Id"] == decision_id
    record = service.client.get(f"/v1/decisions/{decision_id}", headers=service.auth("auditor"))
    assert record.status_code == 200
    images = record.json()["input"]["admission"]["images"]
    assert images[0]["prior_decision_id"] == prior


def test_admission_environment_from_path(service: Service) -> None:
    dev_allow(service)
    r = service.client.post(
        "/v1/admission/prod", json=review("Pod"), headers=service.auth("admission")
    )
    response = r.json()["response"]
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert "no_prior_decision" in response["status"]["message"]


def test_admission_needs_the_admission_role(service: Service) -> None:
    body = review("Pod")
    assert service.client.post("/v1/admission", json=body).status_code == 401
    r = service.client.post("/v1/admission", json=body, headers=service.auth("ci"))
    assert r.status_code == 403


def test_admission_malformed(service: Service) -> None:
    body = review("Pod")
    body["request"]["object"]["spec"]["containers"] = "nginx"
    r = service.client.post("/v1/admission", json=body, headers=service.auth("admission"))
    assert r.status_code == 200
    response = r.json()["response"]
    assert response["uid"] == body["request"]["uid"] and response["allowed"] is False
    assert "request.object.spec.containers" in response["status"]["message"]
    r = service.client.post("/v1/admission", json={"kind": "x"}, headers=service.auth("admission"))
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input"
    r = service.client.post(
        "/v1/admission", content=b"{not json", headers=service.auth("admission")
    )
    assert r.status_code == 422


# -- Argo Rollouts -----------------------------------------------------------------------


def rollout_body(**over: Any) -> dict[str, Any]:
    return {"release_id": "payments-1.4.2", "service": "payments", "environment": "prod",
            "stage": "canary", "artifact_digest": DIGEST_A, **over}  # fmt: skip


@pytest.mark.parametrize(
    ("over", "fast_burn", "verdict", "outcome", "code"),
    [
        ({}, False, "allow", "Successful", None),
        ({"stage": "promote"}, False, "pause", "Inconclusive", "approval_missing"),
        ({}, True, "rollback", "Failed", "slo_fast_burn"),
    ],
)
def test_argo_rollouts_metric_with_real_policy(
    service: Service, slo: FixedSlo, over: dict[str, Any], fast_burn: bool, verdict: str,
    outcome: str, code: str | None,
) -> None:  # fmt: skip
    if fast_burn:
        slo.section = FAST_BURN
    r = service.client.post(
        "/v1/hooks/argo-rollouts", json=rollout_body(**over), headers=service.auth("rollout")
    )
    assert r.status_code == 200
    doc = r.json()
    assert (doc["verdict"], doc["outcome"]) == (verdict, outcome)
    assert [x["code"] for x in doc["reasons"]] == ([code] if code else [])
    assert r.headers["X-Releasegate-Decision-Id"] == doc["decision_id"]


def test_argo_rollouts_bad_body_names_the_field(service: Service) -> None:
    r = service.client.post(
        "/v1/hooks/argo-rollouts",
        json=rollout_body(stage="deploy", artifact_digest="sha256:short"),
        headers=service.auth("rollout"),
    )
    assert r.status_code == 422
    locs = {e["loc"] for e in r.json()["errors"]}
    assert {"stage", "artifact_digest"} <= locs


# -- Flagger -----------------------------------------------------------------------------


def flagger_body(**metadata: str) -> dict[str, Any]:
    meta = {"release_id": "payments-1.4.2", "environment": "prod", "service": "payments",
            "artifact_digest": DIGEST_A, **metadata}  # fmt: skip
    return {"name": "payments", "namespace": "payments", "phase": "Progressing",
            "checksum": "85d557f47b", "metadata": meta}  # fmt: skip


@pytest.mark.parametrize(
    ("hook", "fast_burn", "status", "verdict"),
    [
        ("confirm-rollout", False, 200, "allow"),
        ("confirm-promotion", False, 403, "pause"),  # promote needs an approval in prod
        ("rollout", True, 403, "rollback"),
        ("rollback", True, 200, "rollback"),
        ("rollback", False, 403, "allow"),
        ("post-rollout", True, 200, "rollback"),
    ],
)
def test_flagger_hooks_with_real_policy(
    service: Service, slo: FixedSlo, hook: str, fast_burn: bool, status: int, verdict: str
) -> None:
    if fast_burn:
        slo.section = FAST_BURN
    r = service.client.post(
        f"/v1/hooks/flagger/{hook}", json=flagger_body(), headers=service.auth("rollout")
    )
    assert r.status_code == status, r.text
    assert r.json()["verdict"] == verdict
    assert r.json()["hook"] == hook
    assert r.headers["X-Releasegate-Decision-Id"] == r.json()["decision_id"]


def test_flagger_identity_falls_back_to_the_payload(service: Service) -> None:
    body = {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc"}
    r = service.client.post(
        "/v1/hooks/flagger/pre-rollout", json=body, headers=service.auth("rollout")
    )
    assert r.status_code == 200
    release = r.json()["release"]
    assert (release["id"], release["service"], release["environment"], release["stage"]) == (
        "test/podinfo@abc", "podinfo", "test", "canary")  # fmt: skip


def test_flagger_unknown_hook_and_bad_payload(service: Service) -> None:
    r = service.client.post(
        "/v1/hooks/flagger/event", json=flagger_body(), headers=service.auth("rollout")
    )
    assert r.status_code == 404
    r = service.client.post(
        "/v1/hooks/flagger/rollout", json={"namespace": "x"}, headers=service.auth("rollout")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "name"
    r = service.client.post(
        "/v1/hooks/flagger/rollout",
        json=flagger_body(artifact_digest="latest"),
        headers=service.auth("rollout"),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "metadata.artifact_digest"
    r = service.client.post(
        "/v1/hooks/flagger/rollout", json=flagger_body(), headers=service.auth("admission")
    )
    assert r.status_code == 403


# -- end to end: check --server, then admission ------------------------------------------


@pytest.fixture
def server_url(service: Service) -> Iterator[str]:
    """The same app served over real HTTP by uvicorn on a free local port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(service.app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_check_allow_then_admission_reuses_it(
    service: Service, server_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("RELEASEGATE_TOKEN", service.tokens["ci"])
    argv = ["check", "--server", server_url, "--artifact", f"ghcr.io/acme/payments@{DIGEST_A}",
            "--service", "payments", "--environment", "dev", "--stage", "deploy",
            "--release-id", "payments-1.4.2", "--format", "github"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "releasegate: allow for payments-1.4.2" in out
    headers = service.auth("admission")
    allowed = service.client.post("/v1/admission", json=review("Pod"), headers=headers).json()
    assert allowed["response"]["allowed"] is True
    other = review("Pod", image=f"ghcr.io/acme/payments@{DIGEST_B}")
    denied = service.client.post("/v1/admission", json=other, headers=headers).json()
    assert denied["response"]["allowed"] is False
    assert denied["response"]["status"]["code"] == 403
    assert "no_prior_decision" in denied["response"]["status"]["message"]
    # The CI allow, the allowed and the denied admission are all in the log.
    log = open_decision_log(service.state_dir, create_key=False)
    try:
        assert len(log.query(limit=10)[0]) == 3
    finally:
        log.close()


def test_check_formats_against_a_server(
    service: Service, server_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A prod deploy without evidence pauses: exit 3, in SARIF and in JUnit."""
    monkeypatch.setenv("RELEASEGATE_TOKEN", service.tokens["ci"])
    argv = ["check", "--server", server_url, "--artifact", DIGEST_B, "--service", "payments",
            "--environment", "prod", "--stage", "deploy", "--release-id", "payments-2"]  # fmt: skip
    assert main([*argv, "--format", "sarif"]) == 3
    sarif = json.loads(capsys.readouterr().out)
    run = sarif["runs"][0]
    assert run["invocations"][0]["exitCode"] == 3
    assert {r["ruleId"] for r in run["results"]} == {
        "provenance_missing", "scan_missing", "approval_missing"}  # fmt: skip
    assert main([*argv, "--format", "junit"]) == 3
    root = ET.fromstring(capsys.readouterr().out.split("\n", 1)[1])
    failed = {c.attrib["name"] for c in root.iter("testcase") if c.find("failure") is not None}
    assert failed == {"provenance", "vulnerabilities", "approvals"}
