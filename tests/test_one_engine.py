"""One engine, one truth: the service, ``check --local``, ``policy eval``, replay and bare OPA
give the same decision for the same input document, from the same signed bundle."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.adapters.cli import main
from engine.api import create_app
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from engine.config import DEFAULT_BUNDLE, DEFAULT_BUNDLE_KEY, build_settings
from tests.conftest import REPO

REQUESTS = REPO / "examples" / "requests"


def _outcome(decision: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]], list[str]]:
    return (
        decision["verdict"],
        [(r["code"], r["verdict"], r["message"]) for r in decision["reasons"]],
        [w["code"] for w in decision["warnings"]],
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, opa_binary: Path) -> Iterator[dict[str, Any]]:
    """Decisions made by the service (signed committed bundle) and their logged records."""
    state = tmp_path_factory.mktemp("one-engine") / "state"
    state.mkdir(mode=0o700)
    tokens = TokenStore(database_url(state))
    ci = tokens.create("ci-pipeline", ["ci"])[0]
    auditor = tokens.create("auditor", ["auditor"])[0]
    tokens.close()
    app = create_app(build_settings(state_dir=state, opa=str(opa_binary)))
    out: dict[str, Any] = {"state": state}
    with TestClient(app) as client:
        for name in ("allow", "pause", "rollback"):
            body = json.loads((REQUESTS / f"{name}.json").read_text())
            decision = client.post(
                "/v1/decisions", json=body, headers={"Authorization": f"Bearer {ci}"}
            ).json()
            record = client.get(
                f"/v1/decisions/{decision['decision_id']}",
                headers={"Authorization": f"Bearer {auditor}"},
            ).json()
            out[name] = (decision, record)
    yield out


@pytest.mark.parametrize("name", ["allow", "pause", "rollback"])
def test_every_path_agrees(
    name: str,
    served: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    opa_binary: Path,
) -> None:
    decision, record = served[name]
    assert decision["policy"]["digest"] == record["policy"]["digest"]
    document = tmp_path / "input.json"
    document.write_text(json.dumps(record["input"]))

    # policy eval: the managed OPA on the committed signed bundle, same input document
    capsys.readouterr()
    main(["policy", "eval", "--input", str(document)])
    assert _outcome(json.loads(capsys.readouterr().out)) == _outcome(decision)

    # bare `opa eval` on the same bundle file (the service's OPA verified its signature;
    # `opa eval` itself has no verification flags)
    argv = [str(opa_binary), "eval", "--format", "json", "--bundle", str(DEFAULT_BUNDLE)]
    argv += ["--input", str(document), "data.releasegate.decision"]
    bare = subprocess.run(argv, capture_output=True, text=True, check=True)
    value = json.loads(bare.stdout)["result"][0]["expressions"][0]["value"]
    assert _outcome(value) == _outcome(decision)

    # check --local on the same request: a new input document (new time, no caller), same
    # facts, so the same verdict and reasons
    capsys.readouterr()
    main(
        [
            "check",
            "--local",
            "--format",
            "json",
            "--state-dir",
            str(tmp_path / "local"),
            "--request",
            str(REQUESTS / f"{name}.json"),
        ]
    )
    local = json.loads(capsys.readouterr().out)
    assert _outcome(local) == _outcome(decision)
    assert local["policy"] == decision["policy"]
    assert local["engine"] == decision["engine"]


def test_replay_of_the_service_log_changes_nothing(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        main(
            [
                "replay",
                "--format",
                "json",
                "--state-dir",
                str(served["state"]),
                "--bundle",
                str(DEFAULT_BUNDLE),
                "--public-key",
                str(DEFAULT_BUNDLE_KEY),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["replayed"], report["unchanged"]) == (3, 3)
