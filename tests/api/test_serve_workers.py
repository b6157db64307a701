"""``serve --workers N`` end to end: real worker processes sharing the command's one OPA.

The workers share one port, one managed OPA, one SQLite log and one metrics view; the OPA is
restarted for all of them when it dies; a stop leaves no process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.adapters.cli import main
from tests.api.conftest import prod_request
from tests.api.test_serve import Server, create_token, start_server, stop
from tests.engines.test_opa import _wait_for

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


def _opas(pid: int) -> list[int]:
    return [c for c in _children(pid) if _cmdline(c).split(" ")[0].endswith("opa")]


def _start_workers(
    tmp_path: Path, policies: Path, opa: Path, **env: str
) -> tuple[Server, Path, str]:
    """``serve --workers 2`` on a fresh state directory: the server, its state, a ci token."""
    state = tmp_path / "state"
    token = create_token(state, "ci-pipeline", "ci")
    env |= {"RELEASEGATE_BUNDLE": str(policies), "RELEASEGATE_OPA": str(opa)}
    return start_server(state, env, args=("--workers", "2")), state, token


def test_workers_share_the_port_the_log_and_the_metrics(
    tmp_path: Path, policy_dir: Path, opa_binary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, state, token = _start_workers(tmp_path, policy_dir, opa_binary)
    try:
        workers = [p for p in _children(server.process.pid) if "spawn_main" in _cmdline(p)]
        opas = _opas(server.process.pid)
        assert len(workers) == 2 and len(opas) == 1, (workers, opas)
        assert not [c for w in workers for c in _children(w) if "opa" in _cmdline(c)]
        assert f"workers:     2 processes, sharing one managed OPA (pid {opas[0]})" in (
            server.summary
        )

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


def test_the_shared_opa_is_restarted_for_every_worker(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    server, _, token = _start_workers(tmp_path, policy_dir, opa_binary)
    try:
        (old,) = _opas(server.process.pid)
        os.kill(old, signal.SIGKILL)
        assert _wait_for(lambda: _opas(server.process.pid) not in ([], [old]))
        (new,) = _opas(server.process.pid)

        # Both workers find the new OPA (8 connections land on both), every decision is
        # evaluated there: none fails closed once it answers /readyz.
        assert _wait_for(lambda: server.call("GET", "/readyz")[0] == 200)
        statuses: list[tuple[int, str]] = []

        def decide(_: int) -> None:
            status, _h, body = server.call(
                "POST", "/v1/decisions", token=token, body=prod_request()
            )
            statuses.append((status, str([r["code"] for r in body["reasons"]])))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(decide, range(16)))
        assert all(s == 200 and "engine_unavailable" not in codes for s, codes in statuses)

        # The restart is counted once, whichever worker answers the scrape. The worker that
        # claims it copies its count into the shared files a moment later (its thread may
        # wait for the interpreter lock in between), so a scrape just then can still read
        # 0; once a scrape shows the restart, every scrape shows it once.
        def restarts() -> str:
            _, _, metrics = server.call("GET", "/metrics")
            found = re.search(r"^releasegate_opa_restarts_total (\S+)$", metrics, re.M)
            return found.group(1) if found else metrics

        assert _wait_for(lambda: restarts() != "0.0")
        for _ in range(4):
            assert restarts() == "1.0"
    finally:
        code, err = stop(server)
    assert code == 0, err
    assert not _alive(new)


def test_a_new_bundle_reaches_every_worker_at_once(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(policy_dir, policies)
    server, _, token = _start_workers(
        tmp_path, policies, opa_binary, RELEASEGATE_BUNDLE_POLL_S="0.2"
    )

    def revisions() -> set[str]:
        seen = set()
        for _ in range(8):
            status, _h, body = server.call(
                "POST", "/v1/decisions", token=token, body=prod_request()
            )
            assert status == 200, body
            seen.add(body["policy"]["revision"])
        return seen

    def reloads(result: str) -> float:
        _, _, metrics = server.call("GET", "/metrics")
        found = re.search(
            rf'^releasegate_bundle_reloads_total{{result="{result}"}} (\S+)$', metrics, re.M
        )
        return float(found.group(1)) if found else 0.0

    try:
        (before,) = revisions()
        (policies / "releasegate" / "extra.rego").write_text(
            "package releasegate.extra\n\nx := 1\n"
        )
        assert _wait_for(lambda: revisions() != {before})
        (after,) = revisions()  # one revision: no worker is left on the old bundle
        assert after != before
        assert _wait_for(lambda: reloads("ok") == 1.0)

        (policies / "releasegate" / "broken.rego").write_text("package releasegate\n\nx := {\n")
        assert _wait_for(lambda: reloads("refused") == 1.0)
        status, _h, ready = server.call("GET", "/readyz")
        assert status == 200 and "a newer bundle was refused" in ready["checks"]["policy"]["detail"]
        assert revisions() == {after}
        for _ in range(4):  # counted once, whichever worker answers
            assert (reloads("ok"), reloads("refused")) == (1.0, 1.0)
    finally:
        code, err = stop(server)
    assert code == 0, err
