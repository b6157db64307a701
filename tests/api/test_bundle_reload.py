"""The service hot-reloads a new signed bundle without failing in-flight decisions, and
refuses a bundle signed by another key while the previous one keeps serving."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engine.api import create_app
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from engine.bundles import build_bundle, generate_signing_key
from engine.config import build_settings
from tests.conftest import POLICIES, REPO

REQUEST = json.loads((REPO / "examples" / "requests" / "pause.json").read_text())


def _publish(src: Path, target: Path, key: Path, revision: str) -> None:
    """Build to a temporary file, then rename over the served bundle (atomic)."""
    staging = target.with_suffix(".tmp")
    build_bundle(src, staging, signing_key=key, revision=revision, key_id="team")
    os.replace(staging, target)


def test_reload_keeps_in_flight_decisions_and_refuses_foreign_bundles(
    tmp_path: Path, opa_binary: Path
) -> None:
    key, pub = tmp_path / "team.pem", tmp_path / "team.pub.pem"
    generate_signing_key(key, pub)
    other_key, other_pub = tmp_path / "other.pem", tmp_path / "other.pub.pem"
    generate_signing_key(other_key, other_pub)
    bundle = tmp_path / "bundle.tar.gz"
    _publish(POLICIES, bundle, key, "r1")

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    tokens = TokenStore(database_url(state))
    ci = tokens.create("ci-pipeline", ["ci"])[0]
    tokens.close()
    settings = build_settings(
        state_dir=state, opa=str(opa_binary), bundle=bundle, bundle_public_key=pub,
        bundle_key_id="team", bundle_poll_s=3600,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {ci}"}
    with TestClient(create_app(settings)) as client:
        watcher = client.app.state.releasegate.bundle_watcher
        assert (
            client.post("/v1/decisions", json=REQUEST, headers=headers).json()["policy"]["revision"]
            == "r1"
        )

        # 1. A new signed bundle, swapped in while decisions are being made.
        answers: list[dict[str, Any]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                answers.append(client.post("/v1/decisions", json=REQUEST, headers=headers).json())

        worker = threading.Thread(target=load)
        worker.start()
        try:
            _publish(POLICIES, bundle, key, "r2")
            assert watcher.check_now() is True
            # keep deciding until a decision from the new bundle was made (bounded wait)
            for _ in range(3000):
                if any(a.get("policy", {}).get("revision") == "r2" for a in answers):
                    break
                threading.Event().wait(0.01)
        finally:
            stop.set()
            worker.join()
        assert any(a["policy"]["revision"] == "r2" for a in answers)
        assert all(a["verdict"] == "pause" for a in answers)
        assert {r["code"] for a in answers for r in a["reasons"]} == {"approval_missing"}
        assert {a["policy"]["revision"] for a in answers} <= {"r1", "r2"}

        # 2. A bundle signed by another key: refused, r2 keeps serving, visible everywhere.
        _publish(POLICIES, bundle, other_key, "r3")
        assert watcher.check_now() is False
        decision = client.post("/v1/decisions", json=REQUEST, headers=headers).json()
        assert decision["policy"]["revision"] == "r2"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert "refused" in json.dumps(ready.json())
        metrics = client.get("/metrics").text
        assert 'releasegate_bundle_reloads_total{result="refused"} 1.0' in metrics
        assert 'releasegate_bundle_reloads_total{result="ok"} 1.0' in metrics
        assert watcher.check_now() is None  # unchanged since the refusal

        # 3. Regression: the reported revision is the one OPA loaded, even when the file is
        # replaced again before anything asked (it used to be read lazily from the path).
        _publish(POLICIES, bundle, key, "r4")
        assert watcher.check_now() is True
        _publish(POLICIES, bundle, key, "r5")
        engine = client.app.state.releasegate.engine
        assert engine.policy.revision == "r4"
        decision = client.post("/v1/decisions", json=REQUEST, headers=headers).json()
        assert decision["policy"]["revision"] == "r4"
