"""Crash durability (``kill -9`` under load, restart, audit) and several services appending
to one PostgreSQL. The oracle is the client: every decision a client received (its id,
``log.index`` and ``record_hash``) must be in the exported, verified log with that hash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from engine.log.scratch_db import scratch_database
from hardening.figures import Figures
from hardening.load import Answer, LoadResult, join, run_load, workload
from hardening.seeds import REPO
from hardening.service import (
    Audit,
    Receipt,
    ServeProcess,
    audit,
    create_tokens,
    start_serve,
)

WAIT_S = 120.0


@dataclass
class DurabilityReport:
    """What the crash rounds or the shared-database run saw."""

    rounds: int = 0
    received: int = 0
    lost: int = 0
    log_size: int = 0
    intact: bool = True
    problems: list[str] = field(default_factory=list)


def _reap_opa(server: ServeProcess) -> None:
    """The managed OPA outlives a SIGKILLed serve (it is its child): stop it by its pid."""
    with suppress(RuntimeError, OSError):
        os.kill(server.opa_pid(), signal.SIGKILL)


def _wait_for(result: LoadResult, count: int, limit_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while len(result.receipts) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def crash_rounds(
    work: Path, figures: Figures, *, rounds: int = 1, threads: int = 8, per_round: int = 40
) -> DurabilityReport:
    """``rounds`` times: serve, load from ``threads`` clients, ``kill -9`` once ``per_round``
    receipts are in, restart on the same state directory; then audit all receipts."""
    report = DurabilityReport()
    state = work / "state"
    tokens = create_tokens(state)
    jobs = workload()
    result = LoadResult()
    for _ in range(rounds):
        server = start_serve(state)
        server.tokens = tokens
        stop = threading.Event()
        base = server.url
        workers = run_load(base, tokens["ci"], jobs, threads=threads, stop=stop, result=result,
                           stop_on_refused=True)  # fmt: skip
        _wait_for(result, len(result.receipts) + per_round)
        server.kill9()
        figures.fault("serve_sigkill_under_load")
        _reap_opa(server)
        stop.set()
        join(workers)
        report.rounds += 1
    # Restart on the same state: it must come up and decide (and its records count too).
    server = start_serve(state)
    server.tokens = tokens
    for job in jobs:
        answer = server.decide(job.body)
        receipt = answer.receipt()
        if receipt is None:
            report.problems.append(f"after restart: HTTP {answer.status}")
        else:
            result.answers.append(Answer(job.name, 200, receipt.verdict, (), receipt))
    if server.stop() != 0:
        report.problems.append("serve did not stop cleanly after the restart")
    _finish(report, result.receipts, audit(state, work / "audit"), figures)
    return report


def _finish(
    report: DurabilityReport, receipts: list[Receipt], checked: Audit, figures: Figures
) -> None:
    report.received = len(receipts)
    report.log_size = checked.size
    report.intact = checked.intact
    lost = checked.lost(receipts)
    report.lost = len(lost)
    if not checked.intact:
        report.problems.append(f"log verify failed: {checked.verify_output[-600:]}")
    if lost:
        report.problems.append(f"{len(lost)} received decisions not in the log: {lost[:3]}")
    indexes = sorted(i for i, _ in checked.hashes.values())
    if indexes != list(range(len(indexes))):
        report.problems.append("log indexes have gaps or duplicates")
    figures.decisions_checked += len(receipts)
    figures.decisions_lost += len(lost)


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_server_url() -> str:
    """``RELEASEGATE_TEST_POSTGRES_URL`` or the cluster of ``scripts/start-postgres.sh``."""
    url = os.environ.get("RELEASEGATE_TEST_POSTGRES_URL")
    if url:
        return url
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["bash", str(REPO / "scripts" / "start-postgres.sh")],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def shared_postgres(
    work: Path, figures: Figures, db_url: str, *, services: int = 3, threads: int = 3,
    requests: int = 30, kill_one: bool = False,
) -> DurabilityReport:  # fmt: skip
    """``services`` serve processes on one state directory (one key) and one PostgreSQL,
    each driven by ``threads`` clients for ``requests`` decisions; optionally one of them is
    SIGKILLed half-way. Export + verify: no gaps, no forks, every receipt present."""
    report = DurabilityReport(rounds=1)
    state = work / "state"
    env = {"RELEASEGATE_DATABASE_URL": db_url}
    tokens = create_tokens(state, db_url)
    # The first start creates the signing key; the others share the state directory.
    servers = [start_serve(state, env=env)]
    servers += [start_serve(state, env=env) for _ in range(services - 1)]
    jobs = workload()
    result = LoadResult()
    stop = threading.Event()
    workers = []
    for server in servers:
        server.tokens = tokens
        workers += run_load(server.url, tokens["ci"], jobs, threads=threads, stop=stop,
                            result=result, max_requests=requests)  # fmt: skip
    if kill_one:
        _wait_for(result, requests)
        servers[-1].kill9()
        figures.fault("postgres_replica_sigkill")
        _reap_opa(servers[-1])
    join(workers)
    for server in servers:
        if server.process.poll() is None and server.stop() != 0:
            report.problems.append("a serve process did not stop cleanly")
    figures.fault("postgres_shared_writers", services)
    _finish(report, result.receipts, audit(state, work / "audit", db_url=db_url), figures)
    return report


def postgres_database(server_url: str) -> AbstractContextManager[str]:
    """A fresh database on the server (dropped afterwards)."""
    return scratch_database(server_url, prefix="rg_hard_")
