"""OpenAPI document, readiness, metrics isolation, structured logs, app lifecycle."""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
import threading
import weakref
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.api.logs import JsonLogFormatter
from engine.auth.sql import database_url
from engine.config import build_settings
from engine.runtime import Runtime
from tests.api.conftest import Service, ServiceFactory, dev_request, prod_request


def test_openapi_documents_routes_security_and_errors(service: Service) -> None:
    doc = service.client.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    paths = doc["paths"]
    for path, method in (
        ("/v1/decisions", "post"),
        ("/v1/decisions", "get"),
        ("/v1/decisions/{decision_id}", "get"),
        ("/v1/decisions/{decision_id}/proof", "get"),
        ("/v1/decisions/{decision_id}/vsa", "get"),
        ("/v1/log/checkpoint", "get"),
        ("/v1/log/consistency", "get"),
        ("/v1/approvals", "post"),
        ("/v1/approvals", "get"),
    ):
        op = paths[path][method]
        assert op["security"] == [{"bearerAuth": []}], (path, method)
        for status in ("401", "403"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody"), (path, method)
    post = paths["/v1/decisions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/DecisionRequestV1"
    )
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Decision"
    )
    assert {"413", "422", "503"} <= set(post["responses"])
    vsa = paths["/v1/decisions/{decision_id}/vsa"]["get"]
    assert {"404", "409"} <= set(vsa["responses"])
    for public in ("/v1/keys", "/healthz", "/readyz", "/metrics"):
        assert "security" not in paths[public]["get"], public
    schemas = doc["components"]["schemas"]
    assert schemas["DecisionRequestV1"]["additionalProperties"] is False
    assert schemas["ApprovalCreate"]["additionalProperties"] is False


def test_readyz_reports_each_check(service: Service) -> None:
    r = service.client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"engine", "policy", "log"}
    assert body["policy"]["digest"].startswith("sha256:")
    # Another connection holding the write lock makes the log unwritable for now.
    db = sqlite3.connect(
        database_url(service.state_dir).removeprefix("sqlite:///"), isolation_level=None, timeout=0
    )
    db.execute("BEGIN EXCLUSIVE")
    try:
        blocked = service.client.get("/readyz")
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert blocked.status_code == 503
    assert blocked.json()["status"] == "not_ready"
    assert blocked.json()["checks"]["log"]["ok"] is False
    assert blocked.json()["checks"]["engine"]["ok"] is True


def test_metrics_are_per_app(make_service: ServiceFactory) -> None:
    one, two = make_service(), make_service()
    assert one.decide(dev_request()).status_code == 200
    assert one.decide(prod_request()).status_code == 200
    m1, m2 = one.client.get("/metrics").text, two.client.get("/metrics").text
    assert 'releasegate_decisions_total{verdict="allow"} 1.0' in m1
    assert 'releasegate_decisions_total{verdict="pause"} 1.0' in m1
    assert "releasegate_decision_duration_seconds_count 2.0" in m1
    assert "releasegate_engine_evaluation_seconds_count 2.0" in m1
    assert "releasegate_log_append_seconds_count 2.0" in m1
    assert "releasegate_http_requests_in_flight 1.0" in m1  # the scrape itself
    assert "releasegate_verification_cache_misses_total" in m1
    assert "releasegate_decisions_total{" not in m2


def test_a_lone_request_commits_its_record_on_the_event_loop(make_service: ServiceFactory) -> None:
    before = set(threading.enumerate())
    service = make_service()
    first = service.decide(dev_request())
    second = service.decide(dev_request())
    assert first.status_code == second.status_code == 200
    # One request at a time: each record committed on the loop, the commit thread unused ...
    started = {t.name.split("_")[0] for t in threading.enumerate() if t not in before}
    assert "releasegate-log-commit" not in started
    # ... and durable and signed all the same.
    index = second.json()["log"]["index"]
    assert index == first.json()["log"]["index"] + 1
    stored = service.client.get(
        f"/v1/decisions/{second.json()['decision_id']}", headers=service.headers("auditor")
    )
    assert stored.status_code == 200
    assert stored.json()["log"] == second.json()["log"]
    assert stored.json()["signature"] == second.json()["signature"]


def test_one_json_log_line_per_request_and_decision(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="releasegate")
    decided = service.decide(prod_request()).json()
    formatter = JsonLogFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    decision = [x for x in lines if x.get("event") == "decision"]
    request = [x for x in lines if x.get("event") == "request"]
    assert len(decision) == 1 and len(request) == 1
    assert decision[0]["decision_id"] == decided["decision_id"] == request[0]["decision_id"]
    assert request[0]["subject"] == "ci-pipeline" and request[0]["status"] == 200
    text = "\n".join(json.dumps(x) for x in lines)
    assert service.tokens["ci"] not in text
    assert "dsseEnvelope" not in text and "verificationMaterial" not in text  # no raw evidence


def test_state_lives_only_while_serving(tmp_path: Path, runtime: Runtime, policy_dir: Path) -> None:
    settings = build_settings(state_dir=tmp_path / "s", bundle=policy_dir)
    app = create_app(settings, runtime=runtime)
    before = TestClient(app, raise_server_exceptions=False).get("/v1/keys")
    assert before.status_code == 503 and before.json()["code"] == "unavailable"
    with TestClient(app) as client:
        assert client.get("/v1/keys").status_code == 200
    assert getattr(app.state, "releasegate", None) is None
    # The shared runtime was adopted, not closed: it still evaluates.
    assert runtime.engine.healthy is True  # type: ignore[attr-defined]


class _Cycle:
    """An object that refers to itself: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("freeze", [True, False])
def test_startup_heap_is_frozen_only_while_serving(
    tmp_path: Path, runtime: Runtime, policy_dir: Path, freeze: bool
) -> None:
    gc.unfreeze()
    settings = build_settings(state_dir=tmp_path / "s", bundle=policy_dir, gc_freeze=freeze)
    app = create_app(settings, runtime=runtime)
    with TestClient(app) as client:
        assert client.get("/v1/keys").status_code == 200
        frozen = gc.get_freeze_count()
        # Objects made while serving are still collected: a cycle made now is freed.
        ref = weakref.ref(_Cycle())
        gc.collect()
        assert ref() is None
    if freeze:
        assert frozen > 10_000  # the app's state, FastAPI's routes, imported modules
    else:
        assert frozen == 0
    assert gc.get_freeze_count() == 0  # thawed on shutdown


def test_liveness_answers_while_every_worker_thread_is_taken(service: Service) -> None:
    # A probe that needed a worker thread would wait behind slow work on all of them (a
    # Prometheus or a database that does not answer) and the kubelet would restart a
    # process that is alive.
    portal = service.client.portal
    assert portal is not None  # the client is entered: its loop runs in the portal
    limiter = portal.call(anyio.to_thread.current_default_thread_limiter)
    total = limiter.total_tokens
    holder = object()
    limiter.total_tokens = 1
    portal.call(limiter.acquire_on_behalf_of, holder)
    answers: list[int] = []
    probe = threading.Thread(
        target=lambda: answers.append(service.client.get("/healthz").status_code)
    )
    try:
        probe.start()
        probe.join(timeout=10)
        assert answers == [200]
    finally:
        portal.call(limiter.release_on_behalf_of, holder)
        limiter.total_tokens = total
        probe.join(timeout=10)
