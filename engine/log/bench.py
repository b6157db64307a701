"""Append benchmark: ``python -m engine.log.bench [--postgres-url URL] [--json FILE]``.

For SQLite and PostgreSQL, with 1 and 16 concurrent writers sharing one ``DecisionLog``,
measures appends per second and the p50/p99 latency of an append (enqueue to durable
commit). The writers are threads calling ``append`` (the command line, replay, routes run
in worker threads) or tasks on one event loop awaiting ``append_async`` (the service's
decisions). Each run uses a fresh database.
PostgreSQL is measured when ``--postgres-url`` or ``RELEASEGATE_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.scratch_db import scratch_database
from engine.models.decision import Decision, EngineInfo, PolicyInfo


def _decision(n: int) -> Decision:
    return Decision.model_validate(
        {
            "decision_id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "verdict": "allow",
            "release": {
                "id": f"bench-{n}",
                "service": "bench",
                "environment": "prod",
                "stage": "deploy",
            },
            "artifact": {"uri": "ghcr.io/acme/bench", "digest": "sha256:" + "ab" * 32},
            "policy": PolicyInfo(revision="bench", digest="sha256:" + "cd" * 32),
            "engine": EngineInfo(name="opa", version="bench"),
            "input_digest": "sha256:" + "ef" * 32,
        }
    )


INPUT = {"release": {"id": "bench"}, "evidence": {"scans": [{"vulns": list(range(50))}]}}


CALLERS = ("threads", "event loop")


def run_one(
    backend: str, writers: int, appends: int, pg_url: str | None, caller: str = "threads"
) -> dict[str, Any]:
    """One configuration; returns its figures."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(pg_url, prefix="rg_bench_")
        if backend == "postgresql" and pg_url
        else _null() as db_url,
    ):
        log = open_decision_log(Path(tmp) / "state", database_url=db_url)
        per_writer = max(1, appends // writers)
        try:
            log.append(_decision(-1), input_document=INPUT, caller="bench", adapter="check")
            run = _in_threads if caller == "threads" else _on_a_loop
            latencies, elapsed = run(log, writers, per_writer)
        finally:
            log.close()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "backend": backend,
        "caller": caller,
        "writers": writers,
        "appends": len(latencies),
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
    }


def _in_threads(log: DecisionLog, writers: int, per_writer: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def work(w: int) -> None:
        mine = []
        for n in range(per_writer):
            d = _decision(w * per_writer + n)
            t0 = time.perf_counter()
            log.append(d, input_document=INPUT, caller="bench", adapter="check")
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return latencies, time.perf_counter() - start


def _on_a_loop(log: DecisionLog, writers: int, per_writer: int) -> tuple[list[float], float]:
    async def work(w: int) -> list[float]:
        mine = []
        for n in range(per_writer):
            d = _decision(w * per_writer + n)
            t0 = time.perf_counter()
            await log.append_async(d, input_document=INPUT, caller="bench", adapter="api")
            mine.append(time.perf_counter() - t0)
        return mine

    async def run() -> list[float]:
        done = await asyncio.gather(*(work(w) for w in range(writers)))
        return [latency for mine in done for latency in mine]

    start = time.perf_counter()
    latencies = asyncio.run(run())
    return latencies, time.perf_counter() - start


def writers_label(row: dict[str, Any]) -> str:
    """``16 threads``, ``1 on a loop``: how many writers, and of which kind."""
    n, caller = row.get("writers"), row.get("caller", "threads")  # older files: threads
    if caller == "threads":
        return f"{n} thread{'s' if n != 1 else ''}"
    return f"{n} on a loop"


@contextmanager
def _null() -> Iterator[None]:
    yield None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m engine.log.bench", description=__doc__)
    parser.add_argument("--appends", type=int, default=2000, help="appends per configuration")
    parser.add_argument("--postgres-url", default=os.environ.get("RELEASEGATE_TEST_POSTGRES_URL"))
    parser.add_argument("--json", type=Path, help="also write the figures to FILE")
    args = parser.parse_args(argv)
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    rows = [
        run_one(backend, writers, args.appends, args.postgres_url, caller)
        for backend in backends
        for caller in CALLERS
        for writers in (1, 16)
    ]
    header = (
        f"{'backend':<11} {'writers':<18} {'appends':>7} {'appends/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backend']:<11} {writers_label(r):<18} {r['appends']:>7} "
            f"{r['appends_per_s']:>10} {r['p50_ms']:>8} {r['p99_ms']:>8}"
        )
    if not args.postgres_url:
        print("(PostgreSQL skipped: pass --postgres-url or set RELEASEGATE_TEST_POSTGRES_URL)")
    if args.json:
        args.json.write_text(json.dumps({"results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
