"""``serve --workers N`` end to end: real worker processes, each with its own OPA.

The workers share one port, one SQLite log and one metrics view; a stop leaves no process.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.adapters.cli import main
from tests.api.conftest import prod_request
from tests.api.test_serve import create_token, start_server, stop

DECISIONS = 24


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_share_the_port_the_log_and_the_metrics(
    tmp_path: Path, policy_dir: Path, opa_binary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    token = create_token(state, "ci-pipeline", "ci")
    env = {"RELEASEGATE_BUNDLE": str(policy_dir), "RELEASEGATE_OPA": str(opa_binary)}
    server = start_server(state, env, args=("--workers", "2"))
    try:
        assert "workers:     2 processes, each with its own managed OPA" in server.summary
        workers = [p for p in _children(server.process.pid) if "spawn_main" in _cmdline(p)]
        opas = [c for w in workers for c in _children(w) if "opa" in _cmdline(c)]
        assert len(workers) == 2 and len(opas) == 2, (workers, opas)

        def decide(_: int) -> tuple[int, str]:
            status, _h, body = server.call(
                "POST", "/v1/decisions", token=token, body=prod_request()
            )
            return status, body["decision_id"]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(decide, range(DECISIONS)))
        assert {status for status, _ in results} == {200}
        ids = [decision_id for _, decision_id in results]
        assert len(set(ids)) == DECISIONS

        # Whichever worker answers the scrape reports every worker's decisions.
        for _ in range(4):
            _, _, metrics = server.call("GET", "/metrics")
            assert f'releasegate_decisions_total{{verdict="pause"}} {DECISIONS}.0' in metrics
            assert "releasegate_http_requests_in_flight 1.0" in metrics  # this scrape
            assert "releasegate_opa_restarts_total 0.0" in metrics
    finally:
        code, err = stop(server)
    assert code == 0, err
    assert not [p for p in [*workers, *opas] if _alive(p)]
    logged = [json.loads(x) for x in err.splitlines() if x.startswith('{"')]
    assert sorted(x["decision_id"] for x in logged if x.get("event") == "decision") == sorted(ids)

    # One log, one sequence: exported and verified offline.
    export, keys = tmp_path / "export.jsonl", tmp_path / "keys.json"
    assert main(["log", "export", "--state-dir", str(state), "--out", str(export)]) == 0
    records = [json.loads(x) for x in export.read_text().splitlines()[:-1]]
    assert sorted(r["log"]["index"] for r in records) == list(range(DECISIONS))
    assert sorted(r["decision_id"] for r in records) == sorted(ids)
    capsys.readouterr()
    assert main(["keys", "show", "--state-dir", str(state)]) == 0
    keys.write_text(capsys.readouterr().out)
    assert main(["log", "verify", "--export", str(export), "--keys", str(keys)]) == 0


def test_workers_refuse_a_missing_bundle_before_starting_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELEASEGATE_BUNDLE", str(tmp_path / "missing.tar.gz"))
    argv = ["serve", "--state-dir", str(tmp_path / "s"), "--workers", "2", "--port", "0"]
    assert main(argv) == 1
    assert "missing.tar.gz does not exist" in capsys.readouterr().err
