"""Concurrent decision load with client-side receipts, and the fail-closed oracle.

A :class:`Workload` is a few real requests whose normal verdicts are measured first
(:func:`baseline`). Under a fault every answer must be either that normal verdict or a
``pause`` whose reasons name the fault (``engine_unavailable``, ``slo_unavailable``), or a
503 without a verdict; an ``allow`` for a request whose normal verdict is not ``allow`` is
a fail-open and counted as such.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hardening import seeds
from hardening.service import Receipt, Reply, call


@dataclass(frozen=True)
class Job:
    """One request of the workload."""

    name: str
    body: dict[str, Any]


def workload() -> list[Job]:
    """allow (dev, verified bundle), pause (prod: approval, scan), rollback (wrong subject)."""
    rollback = seeds.decision_request("dev")
    rollback["artifact"]["digest"] = "sha256:" + "0" * 64
    return [
        Job("allow", seeds.decision_request("dev")),
        Job("pause", seeds.decision_request("prod")),
        Job("rollback", rollback),
    ]


@dataclass
class Answer:
    """One answer as a client saw it (``status`` 0: no answer, the connection failed)."""

    job: str
    status: int
    verdict: str | None
    reasons: tuple[str, ...]
    receipt: Receipt | None
    body: Any = None


def ask(base: str, token: str, job: Job, *, timeout: float = 60.0) -> Answer:
    """POST one decision; a refused or reset connection, or a cut answer, is status 0."""
    try:
        reply: Reply = call(base, "POST", "/v1/decisions", token=token, body=job.body,
                            timeout=timeout)  # fmt: skip
    except OSError:
        return Answer(job.name, 0, None, (), None)
    body = reply.body if isinstance(reply.body, dict) else {}
    return Answer(
        job.name, reply.status, body.get("verdict"),
        tuple(r["code"] for r in body.get("reasons", [])), reply.receipt(), body,
    )  # fmt: skip


def baseline(base: str, token: str, jobs: list[Job]) -> dict[str, str]:
    """The normal verdict of every job (asserted to be the intended one)."""
    verdicts = {}
    for job in jobs:
        answer = ask(base, token, job)
        if answer.status != 200 or answer.verdict != job.name:
            raise RuntimeError(f"baseline {job.name}: got {answer.status} {answer.verdict}")
        verdicts[job.name] = answer.verdict
    return verdicts


@dataclass
class LoadResult:
    """Every answer of a load run."""

    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        """Thread-safe append."""
        with self.lock:
            self.answers.append(answer)

    @property
    def receipts(self) -> list[Receipt]:
        """Receipts of every 200 decision."""
        return [a.receipt for a in self.answers if a.receipt is not None]


def run_load(
    base: Callable[[], str] | str,
    token: str,
    jobs: list[Job],
    *,
    threads: int,
    stop: threading.Event,
    result: LoadResult,
    max_requests: int | None = None,
    stop_on_refused: bool = False,
    timeout: float = 60.0,
) -> list[threading.Thread]:
    """Start ``threads`` workers posting jobs round-robin until ``stop`` (or the budget)."""
    budget = [max_requests if max_requests is not None else 10**9]
    budget_lock = threading.Lock()

    def worker(offset: int) -> None:
        n = offset
        while not stop.is_set():
            with budget_lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            url = base() if callable(base) else base
            answer = ask(url, token, jobs[n % len(jobs)], timeout=timeout)
            result.add(answer)
            n += 1
            if answer.status == 0:
                if stop_on_refused:
                    return
                time.sleep(0.05)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    return workers


def join(workers: list[threading.Thread], *, limit_s: float = 300.0) -> None:
    """Wait for the workers (bounded)."""
    deadline = time.monotonic() + limit_s
    for w in workers:
        w.join(timeout=max(0.1, deadline - time.monotonic()))


def violations(answers: list[Answer], normal: dict[str, str], fault_reasons: set[str]) -> list[str]:
    """Answers that are neither normal, nor a fail-closed pause naming the fault, nor a 503."""
    out = []
    for a in answers:
        if a.status == 0 or (a.status == 503 and a.verdict is None):
            continue
        if a.status != 200:
            out.append(f"{a.job}: HTTP {a.status} {str(a.body)[:200]}")
        elif a.verdict == normal[a.job]:
            continue
        elif a.verdict == "pause" and fault_reasons & set(a.reasons):
            continue
        else:
            out.append(f"{a.job}: {a.verdict} {a.reasons} (normally {normal[a.job]})")
    return out


def fail_open(answers: list[Answer], normal: dict[str, str]) -> int:
    """Allows for requests that are not normally allowed."""
    return sum(1 for a in answers if a.verdict == "allow" and normal[a.job] != "allow")
