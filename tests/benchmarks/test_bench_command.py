"""``python -m benchmarks`` in a tiny mode: every scenario runs end to end against the real
service, real OPA and real PostgreSQL, and the JSON results have the documented shape.

No timing is asserted anywhere: figures depend on the machine (issue 9).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scenarios import (
    ADMISSION_OPA,
    AFFINITY_ROW,
    FLOOR,
    OPA_FLOOR,
    PACED_OPA,
    RELAY,
    SERVICE_ROW,
)
from benchmarks.stages import STAGES
from engine.affinity import plan_for, usable_cpus
from engine.config import build_settings
from engine.log.decision_log import open_decision_log
from engine.log.verify import verify_export
from engine.runtime import opa_gomaxprocs
from tests.conftest import REPO

ROW_KEYS = {
    "name", "run", "requests", "ok", "statuses", "elapsed_s", "per_s", "p50_ms", "p95_ms",
    "p99_ms", "max_ms", "target_cpu_s", "cpu_ms_per_req", "opa_cpu_ms_per_req", "loadgen_cpu_s",
    "loadgen_cpu_ms_per_req", "first_error", "concurrency", "rate", "loadgen_procs",
    "other_cpu_cores", "steal_cores",
}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, opa_binary: Path) -> dict[str, Any]:
    """One tiny run of every scenario (SQLite and PostgreSQL)."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    workdir = out.parent / "work"
    argv = [
        sys.executable, "-m", "benchmarks", "--scenario", "all", "--requests", "8",
        "--concurrency", "2", "--repeat", "1", "--log-appends", "32", "--postgres",
        "--json", str(out), "--workdir", str(workdir),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["stdout"] = proc.stdout
    doc["path"] = str(out)
    doc["workdir"] = str(workdir)
    return doc


def _check_rows(rows: list[dict[str, Any]], names: set[str], requests: int) -> None:
    assert {r["name"] for r in rows} == names
    for row in rows:
        assert ROW_KEYS <= row.keys()
        # Every request was answered 200 with the expected verdict (a fail-closed pause is
        # a 200 too): the load generator measured real decisions.
        assert row["statuses"] == {"200": row["requests"]}, row["first_error"]
        expected = ('"verdict":"allow"', '"allowed":true')
        assert row["name"] in (FLOOR, OPA_FLOOR) or row["expect_text"] in expected
        assert row["ok"] == row["requests"] >= requests - 1
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        # Every generator connection was found held by a process of the target.
        assert sum(row["connections_per_process"]) == row["concurrency"]
        assert row["per_s"] > 0 and row["cpu_ms_per_req"] >= 0
        assert 0 <= row["opa_cpu_ms_per_req"] <= row["cpu_ms_per_req"]
        # Runs of a few clock ticks are too short to tell what other processes took.
        assert row["other_cpu_cores"] is None and row["steal_cores"] is None
        if row["name"].startswith(("bare OPA", "OPA +")):
            assert row["opa_cpu_ms_per_req"] == row["cpu_ms_per_req"]  # all of it is OPA


def test_machine_info_and_arguments(results: dict[str, Any]) -> None:
    assert results["machine"]["nproc"] >= 1
    assert len(results["machine"]["loadavg_start"]) == 3
    assert results["args"]["concurrency"] == 2
    assert results["postgres"] is True
    assert set(results["scenarios"]) == {"core", "admission", "cold", "log", "stages"}
    assert "load average" in results["stdout"].splitlines()[0]


def test_core_compares_releasegate_with_bare_opa(results: dict[str, Any]) -> None:
    core = results["scenarios"]["core"]
    names = {"releasegate (SQLite)", "releasegate, 2 workers", "releasegate (PostgreSQL)",
             "bare OPA", PACED_OPA, "OPA + console decision log", FLOOR}  # fmt: skip
    pinned = plan_for(usable_cpus()) is not None  # the cpu_affinity row needs 2+ CPUs
    _check_rows(core["runs"], names | ({AFFINITY_ROW} if pinned else set()), 8)
    assert core["request_bytes"] > 20_000
    assert 0 < core["opa_input_bytes"] < core["request_bytes"]
    assert core["ratio_releasegate_to_bare_opa"] > 0
    # OPA really logged its decisions to the console (one line per decision at least).
    assert core["opa_console_log_lines"] >= 8
    assert "releasegate / bare OPA throughput" in results["stdout"]
    # 2 clients: a mean of 15 ms is 2 / 0.015 = 133.3 decisions/s; the p99 needs more.
    assert "closed loop, 2 clients" in results["stdout"]
    assert "so a p99 <= 15 ms needs >= 134 decisions/s" in results["stdout"]
    # Bare OPA again, paced at the rate the service reached in the same round.
    service, paced = (
        next(r for r in core["runs"] if r["name"] == n) for n in (SERVICE_ROW, PACED_OPA)
    )
    assert paced["rate"] == service["per_s"] and paced["concurrency"] == 2
    costs = core["opa_cpu_ms_per_evaluation"]
    assert costs["bare_paced"] == round(paced["cpu_ms_per_req"], 3)
    assert costs["in_releasegate"] == round(service["opa_cpu_ms_per_req"], 3)
    assert "ms paced at releasegate's rate" in results["stdout"]
    # The paced OPA runs the service's OPA's Go processors; the saturated one Go's default.
    processors = core["gomaxprocs"]
    assert processors["service_opa"] == [processors["paced_opa"]]
    if "GOMAXPROCS" not in os.environ:
        assert processors["paced_opa"] == str(opa_gomaxprocs(build_settings()))
        assert processors["bare_opa"] is None
    # What the scheduler did with the one process's event loop thread; not for the others.
    loop = service["event_loop"]
    assert set(loop) == {"busy", "runqueue", "slept_per_req", "preempted_per_req"}
    assert 0 < loop["busy"] <= 1.05 and loop["runqueue"] >= 0
    assert "event loop thread: on a CPU" in results["stdout"]
    for row in core["runs"]:  # every one-process service row; not a worker's, not OPA's
        one_process = row["name"].startswith("releasegate") and "workers" not in row["name"]
        assert ("event_loop" in row) == one_process
    assert core["ratio_workers_to_bare_opa"] > 0
    workers = next(r for r in core["runs"] if r["name"] == "releasegate, 2 workers")
    assert 1 <= len(workers["connections_per_process"]) <= 2
    assert "releasegate with workers / bare OPA throughput" in results["stdout"]
    assert (core["ratio_affinity_to_bare_opa"] is not None) == pinned
    assert ("releasegate with cpu_affinity auto / bare OPA" in results["stdout"]) == pinned


def test_admission_is_paced(results: dict[str, Any]) -> None:
    admission = results["scenarios"]["admission"]
    _check_rows(
        admission["runs"], {"releasegate admission", FLOOR, ADMISSION_OPA, OPA_FLOOR, RELAY}, 8
    )
    assert {r["rate"] for r in admission["runs"]} == {admission["rate"]} == {100.0}
    assert admission["prior_decision_id"]
    # The admission rows' bare OPA runs with the service's managed OPA's Go processors.
    go = admission["gomaxprocs"]
    assert go["service_opa"] == [go["bare_opa"]]
    if "GOMAXPROCS" not in os.environ:
        assert go["bare_opa"] == str(opa_gomaxprocs(build_settings()))
    # Inside the service, from its answers' Server-Timing; the baselines send none.
    [service] = [r for r in admission["runs"] if r["name"] == "releasegate admission"]
    parts = service["server_timing"]
    assert set(parts) == {"opa", "log", "rest", "total"}
    assert 0 < parts["opa"]["p50_ms"] < parts["total"]["p50_ms"] <= service["p50_ms"]
    assert all("server_timing" not in r for r in admission["runs"] if "OPA" in r["name"])
    assert "inside the service (Server-Timing), p50/p99 ms: opa " in results["stdout"]
    # The baseline evaluates the document the service built for the warm-up admission: its
    # decision is an admission, reusing the prior decision, and the same allow.
    document = json.loads(
        Path(results["workdir"], "admission", "admission-opa-input.json").read_text()
    )
    assert document["input"]["adapter"] == "admission"
    [image] = document["input"]["admission"]["images"]
    assert image["prior_decision_id"] == admission["prior_decision_id"]
    assert admission["opa_input_bytes"] == len(json.dumps(document, separators=(",", ":")))
    # The disk's floor: the same record's durable commit alone, once per run, same rate.
    record = json.loads(Path(results["workdir"], "admission", "admission-record.json").read_text())
    assert record["input"] == document["input"] and record["request"]["adapter"] == "admission"
    [floor] = admission["commit_floor"]
    assert floor["run"] == 1 and floor["requests"] == 8
    assert 0 < floor["p50_ms"] <= floor["p95_ms"] <= floor["p99_ms"] <= floor["max_ms"]
    assert floor["cpu_ms_per_req"] > 0
    assert "durable commit of the same record" in results["stdout"]
    # The least front: its own process only (the OPA it calls is the bare OPA's row), and a
    # signed record in its log for every answer it gave.
    [relay] = [r for r in admission["runs"] if r["name"] == RELAY]
    # (8 paced requests can take less CPU than one clock tick: its CPU may read 0.)
    assert relay["opa_cpu_ms_per_req"] == 0 <= relay["cpu_ms_per_req"]
    [relay_state] = Path(results["workdir"], "admission").glob("relay-*/")
    log = open_decision_log(relay_state)
    try:
        out = io.StringIO()
        log.export(out)
        assert verify_export(out.getvalue().splitlines(), log.keyring).size >= relay["requests"]
    finally:
        log.close()


def test_cold_evidence_disables_the_cache(results: dict[str, Any]) -> None:
    cold = results["scenarios"]["cold"]
    _check_rows(cold["runs"], {"releasegate, cold verification"}, 8)
    assert "CACHE_SIZE=0" in cold["method"]


def test_log_appends_cover_both_backends_callers_and_writer_counts(
    results: dict[str, Any],
) -> None:
    rows = results["scenarios"]["log"]["runs"]
    assert {(r["backend"], r["caller"], r["writers"]) for r in rows} == {
        (backend, caller, writers)
        for backend in ("sqlite", "postgresql")
        for caller in ("threads", "event loop")
        for writers in (1, 16)
    }
    for row in rows:
        assert row["appends"] > 0 and row["appends_per_s"] > 0
        assert row["p50_ms"] <= row["p99_ms"]


def test_stages_time_every_part_of_one_decision(results: dict[str, Any]) -> None:
    stages = results["scenarios"]["stages"]
    (run,) = stages["runs"]
    assert run["iterations"] == 8
    assert set(run["ms"]) == {key for key, _ in STAGES}
    assert all(isinstance(v, float | int) and v >= 0 for v in run["ms"].values())
    # A CPU figure was taken for each path (their sizes are not asserted).
    assert run["ms"]["pipeline"] > 0
    assert run["ms"]["pipeline_loop"] > 0 and run["ms"]["app"] > 0
    assert "where the CPU of one decision goes" in results["stdout"]


def test_compare_reads_what_the_command_writes(results: dict[str, Any], tmp_path: Path) -> None:
    report = tmp_path / "compare.json"
    argv = [sys.executable, "-m", "benchmarks.compare", results["path"], results["path"],
            "--json", str(report), "--fail-worse", "0"]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = json.loads(report.read_text())["lines"]
    targets = {(x["scenario"], x["target"]) for x in lines}
    rows = results["scenarios"]["core"]["runs"]
    assert {("core", r["name"]) for r in rows} <= targets
    # Every closed-loop row against bare OPA; the paced row's throughput is its schedule.
    ratios = {("core", f"{r['name']} ÷ bare OPA") for r in rows if r["name"] != "bare OPA"}
    assert ratios - targets == {("core", f"{PACED_OPA} ÷ bare OPA")}
    assert {("stages", key) for key, _ in STAGES} <= targets
    assert {("log", "postgresql, 16 threads"), ("log", "sqlite, 16 on a loop")} <= targets
    assert ("admission", "releasegate admission") in targets
    # One run per target here: nothing can be judged, nothing changed.
    assert {x["verdict"] for x in lines} == {"?"}
    assert {x["change_pct"] for x in lines} <= {0.0, None}
