"""Fault injection against a served app: OPA killed or hanging, Prometheus down or slow,
the log database locked, full or read-only, the signing key missing or unreadable.

Each scenario returns a :class:`FaultReport`; the caller (pytest or the long mode) asserts
that ``problems`` is empty. Durations are bounded, never asserted on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.api import create_app
from engine.config import build_settings
from hardening.figures import Figures
from hardening.load import (
    LoadResult,
    ask,
    baseline,
    fail_open,
    join,
    run_load,
    violations,
    workload,
)
from hardening.service import Audit, audit, create_tokens, start_serve, uvicorn_app

WAIT_S = 60.0


@dataclass
class FaultReport:
    """What one scenario saw."""

    name: str
    answers: int = 0
    fault_answers: int = 0
    """Answers that named the fault (pause with its reason, or a 503)."""
    fail_open: int = 0
    problems: list[str] = field(default_factory=list)
    audit: Audit | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def check_audit(self, receipts: list[Any]) -> None:
        """Log export + verify pass and hold every receipt."""
        assert self.audit is not None
        if not self.audit.intact:
            self.problems.append(f"log verify failed: {self.audit.verify_output[-500:]}")
        lost = self.audit.lost(receipts)
        if lost:
            self.problems.append(f"{len(lost)} received decisions missing from the log")


@dataclass
class Served:
    """An in-process app served over HTTP, its tokens and state."""

    base: str
    app: Any
    tokens: dict[str, str]
    state_dir: Path

    @property
    def engine(self) -> Any:
        """The managed OPA engine of the running app."""
        return self.app.state.releasegate.engine


@contextmanager
def served_app(state_dir: Path, **overrides: Any) -> Iterator[Served]:
    """``create_app`` on the committed signed bundle and ``state_dir``, under uvicorn."""
    tokens = create_tokens(state_dir)
    settings = build_settings(state_dir=state_dir, auth_failure_limit=10**6, **overrides)
    app = create_app(settings)
    with uvicorn_app(app) as base:
        yield Served(base, app, tokens, state_dir)


def _wait(condition: Any, limit_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _score(
    report: FaultReport, answers: list[Any], normal: dict[str, str], reasons: set[str]
) -> None:
    report.answers += len(answers)
    report.fault_answers += sum(
        1 for a in answers if (a.status == 503) or (reasons & set(a.reasons))
    )
    report.fail_open += fail_open(answers, normal)
    report.problems += violations(answers, normal, reasons)


# -- OPA ---------------------------------------------------------------------------------


def opa_killed_under_load(
    work: Path, figures: Figures, *, threads: int = 8, kills: int = 1, requests_per_phase: int = 24
) -> FaultReport:
    """SIGKILL the managed OPA while ``threads`` clients post; the supervisor restarts it."""
    report = FaultReport("opa_killed_under_load")
    jobs = workload()
    result = LoadResult()
    with served_app(work / "state") as served:
        token = served.tokens["ci"]
        normal = baseline(served.base, token, jobs)
        for _ in range(kills):
            stop = threading.Event()
            restarts = served.engine.restarts
            workers = run_load(served.base, token, jobs, threads=threads, stop=stop,
                               result=result, max_requests=requests_per_phase * 3)  # fmt: skip
            _wait(lambda: len(result.answers) >= requests_per_phase // 2)
            os.kill(served.engine.pid, signal.SIGKILL)
            figures.fault("opa_sigkill_under_load")
            if not _wait(lambda r=restarts: served.engine.restarts > r and served.engine.healthy):
                report.problems.append("the supervisor did not restart OPA")
            join(workers)
        after = [ask(served.base, token, j) for j in jobs]
        if [a.verdict for a in after] != [normal[j.name] for j in jobs]:
            report.problems.append(f"after the restart: {[a.verdict for a in after]}")
        result.answers.extend(after)
        report.details["restarts"] = served.engine.restarts
    _score(report, result.answers, normal, {"engine_unavailable"})
    report.audit = audit(work / "state", work / "audit")
    report.check_audit(result.receipts)
    figures.decisions_checked += len(result.receipts)
    figures.fail_open += report.fail_open
    return report


def opa_hanging(work: Path, figures: Figures, *, threads: int = 4) -> FaultReport:
    """SIGSTOP the OPA: every decision times out to engine_unavailable; SIGCONT recovers."""
    report = FaultReport("opa_hanging")
    jobs = workload()
    result = LoadResult()
    with served_app(work / "state", eval_timeout_s=0.5) as served:
        token = served.tokens["ci"]
        normal = baseline(served.base, token, jobs)
        pid = served.engine.pid
        os.kill(pid, signal.SIGSTOP)
        figures.fault("opa_sigstop")
        try:
            stop = threading.Event()
            workers = run_load(served.base, token, jobs, threads=threads, stop=stop,
                               result=result, max_requests=threads * 3)  # fmt: skip
            join(workers)
        finally:
            os.kill(pid, signal.SIGCONT)
        hung = list(result.answers)
        if any(a.verdict != "pause" or "engine_unavailable" not in a.reasons for a in hung):
            report.problems.append(f"a hung OPA gave {[(a.status, a.verdict) for a in hung]}")
        after = [ask(served.base, token, j) for j in jobs]
        if [a.verdict for a in after] != [normal[j.name] for j in jobs]:
            report.problems.append(f"after SIGCONT: {[a.verdict for a in after]}")
        result.answers.extend(after)
    _score(report, result.answers, normal, {"engine_unavailable"})
    report.audit = audit(work / "state", work / "audit")
    report.check_audit(result.receipts)
    figures.decisions_checked += len(result.receipts)
    figures.fail_open += report.fail_open
    return report


# -- Prometheus ----------------------------------------------------------------------------


@contextmanager
def sleeping_http_server(delay_s: float) -> Iterator[int]:
    """A local TCP server that accepts, reads, and answers nothing for ``delay_s``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    done = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)  # keep it open, silent

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SLO_YAML = """prometheus:
  url: http://127.0.0.1:{port}
  deadline_s: 1
services:
  payments:
    sli:
      error_ratio: sum(rate(http_requests_total{{job="payments",code=~"5.."}}[{{window}}]))
    objective: 0.999
    query_timeout_s: 0.5
    cache_ttl_s: 0
"""


def prometheus_unavailable(work: Path, figures: Figures, *, mode: str) -> FaultReport:
    """Prometheus down (``mode="down"``: a closed port) or slow (a silent server):
    every decision of the SLO-configured service pauses with ``slo_unavailable``."""
    report = FaultReport(f"prometheus_{mode}")
    jobs = workload()

    @contextmanager
    def target() -> Iterator[int]:
        if mode == "down":
            yield closed_port()
        else:
            with sleeping_http_server(30.0) as port:
                yield port

    with target() as port:
        slo = work / "slo.yaml"
        slo.parent.mkdir(parents=True, exist_ok=True)
        slo.write_text(SLO_YAML.format(port=port))
        with served_app(work / "state", slo_config=slo) as served:
            figures.fault(f"prometheus_{mode}")
            answers = [ask(served.base, served.tokens["ci"], j) for j in jobs]
    for a in answers:
        if a.status != 200 or a.verdict == "allow" or "slo_unavailable" not in a.reasons:
            report.problems.append(f"{a.job}: {a.status} {a.verdict} {a.reasons}")
    # Normal verdicts without the fault: allow, pause, rollback (see load.workload).
    normal = {"allow": "allow", "pause": "pause", "rollback": "rollback"}
    _score(report, answers, normal, {"slo_unavailable"})
    report.audit = audit(work / "state", work / "audit")
    report.check_audit([a.receipt for a in answers if a.receipt])
    figures.decisions_checked += sum(1 for a in answers if a.receipt)
    figures.fail_open += report.fail_open
    return report


# -- the log database ----------------------------------------------------------------------


def _no_verdict_503(report: FaultReport, answer: Any, what: str) -> None:
    if answer.status != 503 or answer.verdict is not None:
        report.problems.append(f"{what}: expected a 503 without verdict, got {answer.status} "
                               f"{answer.verdict}")  # fmt: skip
    elif (answer.body or {}).get("code") != "log_unavailable":
        report.problems.append(f"{what}: 503 code {(answer.body or {}).get('code')}")


def database_locked(work: Path, figures: Figures) -> FaultReport:
    """Another connection holds ``BEGIN EXCLUSIVE`` beyond the 10 s busy timeout."""
    report = FaultReport("database_locked")
    job = workload()[0]
    with served_app(work / "state") as served:
        token = served.tokens["ci"]
        first = ask(served.base, token, job)
        db = sqlite3.connect(work / "state" / "log.db", isolation_level=None, timeout=0)
        db.execute("BEGIN EXCLUSIVE")
        figures.fault("sqlite_begin_exclusive")
        try:
            locked = ask(served.base, token, job, timeout=120)
        finally:
            db.execute("ROLLBACK")
            db.close()
        _no_verdict_503(report, locked, "locked")
        after = ask(served.base, token, job)
    return _audit_answers(
        report, figures, state=work / "state", work=work,
        answers=[first, locked, after], during=[locked],
    )  # fmt: skip


def _audit_answers(
    report: FaultReport,
    figures: Figures,
    *,
    state: Path,
    work: Path,
    answers: list[Any],
    during: list[Any],
) -> FaultReport:
    """Count the answers, then check every received decision against the verified log."""
    report.answers = len(answers)
    report.fault_answers = sum(a.status == 503 for a in during)
    report.audit = audit(state, work / "audit")
    receipts = [a.receipt for a in answers if a.receipt]
    report.check_audit(receipts)
    if report.audit.size != len(receipts):
        report.problems.append(f"log holds {report.audit.size} records, {len(receipts)} received")
    figures.decisions_checked += len(receipts)
    return report


def require_root(what: str) -> None:
    """Mounting a tmpfs needs root (CAP_SYS_ADMIN); say so instead of skipping."""
    if os.geteuid() != 0:
        raise RuntimeError(f"{what} needs root to mount a tmpfs (run the suite as root in CI)")


@contextmanager
def tmpfs(path: Path, *, size: str) -> Iterator[Path]:
    """A private tmpfs of ``size`` at ``path`` (unmounted afterwards)."""
    require_root("the database-full fault")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def database_full(work: Path, figures: Figures) -> FaultReport:
    """The state directory on a tmpfs filled to the last byte: 503, no record; space back,
    decisions again; the log verifies (tmpfs ``size=`` limit, honest ENOSPC)."""
    report = FaultReport("database_full")
    job = workload()[0]
    with tmpfs(work / "mnt", size="8m") as mnt:
        state = mnt / "state"
        with served_app(state) as served:
            token = served.tokens["ci"]
            before = [ask(served.base, token, job) for _ in range(3)]
            filler = mnt / "filler"
            with filler.open("wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError:
                    pass
            figures.fault("disk_full")
            full = [ask(served.base, token, job) for _ in range(2)]
            filler.unlink()
            after = [ask(served.base, token, job) for _ in range(2)]
        for i, a in enumerate(full):
            _no_verdict_503(report, a, f"full #{i}")
        if any(a.status != 200 for a in before + after):
            report.problems.append(f"outside the fault: {[a.status for a in before + after]}")
        return _audit_answers(
            report, figures, state=state, work=work,
            answers=before + full + after, during=full,
        )  # fmt: skip


def database_readonly(work: Path, figures: Figures) -> FaultReport:
    """The log database opened read-only (SQLite URI ``mode=ro``): 503 and no record; back
    read-write, decisions again; the log verifies.

    NOTE: a tmpfs cannot be remounted ``ro`` under a running service (SQLite holds the
    file open for writing: EBUSY), and ``chmod`` does not stop root; the read-only SQLite
    connection is the honest stand-in for a read-only volume.
    """
    report = FaultReport("database_readonly")
    job = workload()[0]
    state = work / "state"
    with served_app(state) as served:
        before = [ask(served.base, served.tokens["ci"], job) for _ in range(2)]
    tokens = served.tokens
    read_only = f"sqlite:///file:{state / 'log.db'}?mode=ro&uri=true"
    settings = build_settings(state_dir=state, database_url=read_only)
    figures.fault("database_readonly")
    with uvicorn_app(create_app(settings)) as base:
        ro = [ask(base, tokens["ci"], job) for _ in range(2)]
    with uvicorn_app(create_app(build_settings(state_dir=state))) as base:
        after = [ask(base, tokens["ci"], job) for _ in range(2)]
    for i, a in enumerate(ro):
        _no_verdict_503(report, a, f"read-only #{i}")
    if any(a.status != 200 for a in before + after):
        report.problems.append(f"outside the fault: {[a.status for a in before + after]}")
    return _audit_answers(
        report, figures, state=state, work=work, answers=before + ro + after, during=ro
    )


# -- the signing key at start ---------------------------------------------------------------


KEY_CASES = ("missing", "directory", "corrupt", "truncated", "group_readable")


def served_state(work: Path) -> Path:
    """A state directory that served once: key ring, tokens, one record."""
    state = work / "served-once"
    tokens = create_tokens(state)
    first = start_serve(state)
    first.tokens = tokens
    first.decide(workload()[0].body)
    first.stop()
    return state


def signing_key_at_start(
    work: Path, figures: Figures, case: str, *, template: Path
) -> tuple[int, str]:
    """Start ``serve`` on a copy of ``template`` whose key is ``case``; returns (exit, stderr).

    The key is removed, replaced by a directory (unreadable even for root), garbage, cut
    in half, or made group-readable.
    """
    state = work / f"state-{case}"
    shutil.copytree(template, state)
    key = state / "keys" / "signing-key.pem"
    pem = key.read_bytes()
    if case == "missing":
        key.unlink()
    elif case == "directory":
        key.unlink()
        key.mkdir(mode=0o700)
    elif case == "corrupt":
        key.write_bytes(b"not a key\n")
    elif case == "truncated":
        key.write_bytes(pem[: len(pem) // 2])
    elif case == "group_readable":
        key.chmod(0o640)
    figures.fault(f"signing_key_{case}")
    server = start_serve(state, wait=False)
    try:
        code = server.process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        server.kill9()
        return -1, "serve started on a damaged key: " + server.output()
    return code, server.stderr_path.read_text()
