"""The log's durable commit alone, paced: what the disk adds to a lone decision's latency.

``python -m engine.log.commit_floor RECORD --state-dir DIR [--rate R] [--count N] [--json F]``

A decision is durably logged before it is returned, so a lone admission waits for its
record's commit. This times that commit by itself on this machine's disk: ``count`` copies
of a logged record (``RECORD``: its JSON, as ``GET /v1/decisions/{id}`` returns it; each
copy gets a fresh decision id and timestamp) are appended to a new SQLite log in ``DIR``,
one at a time, ``rate`` per second, each in its own transaction, as the service commits a
record that is alone in its batch: ``BEGIN IMMEDIATE`` with the writer lock, the rows (the
record with its indexes, its reasons, its Merkle nodes, the head) and the ``COMMIT`` that
writes and syncs the write-ahead log, with the log's own store, schema, pragmas and
checkpoint thread. Only those steps are timed. The record is drafted and sealed between
them, untimed; there is no HTTP, no OPA, no event loop and no hand-over between threads.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.log.decision_log import open_decision_log
from engine.log.record import TS_FORMAT, DecisionRecordV1
from engine.log.store import SqlRecordStore
from engine.log.writer import Pending, RecordDraft

NAME = "the log's durable commit alone"


def quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values (``q`` in [0, 1]): the smallest value
    with at least ``q`` of the values at or below it."""
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


class RecordCopies:
    """Copies of a logged record, appended one transaction each to a new SQLite log.

    Each copy gets a fresh decision id and timestamp; its input, request and verdict are
    the record's. :meth:`draft` drafts a copy (the log's own drafting), :meth:`commit`
    seals and writes it in a transaction of its own, as the service commits a record that is
    alone in its batch, and returns what that took (:class:`CommitTimes`).
    """

    def __init__(self, state: Path, record: DecisionRecordV1) -> None:
        self.record = record
        self.log = open_decision_log(state)
        store = self.log.store
        if not isinstance(store, SqlRecordStore) or not store.is_sqlite:
            self.log.close()
            raise ValueError("the commit floor is measured on a SQLite log")
        self.store = store
        self._template = record.decision().model_copy(update={"log": None, "signature": None})

    def draft(self) -> RecordDraft:
        """A new copy, drafted by the log (untimed by :meth:`commit`)."""
        decision = self._template.model_copy(
            update={
                "decision_id": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).strftime(TS_FORMAT),
            }
        )
        # NOTE: the log's own drafting and sealing (engine.log internals).
        return self.log._draft(  # noqa: SLF001
            decision,
            input_document=self.record.input,
            caller=self.record.request.caller,
            adapter=self.record.request.adapter,
            input_canonical=None,
        )

    def commit(self, draft: RecordDraft) -> CommitTimes:
        """``BEGIN IMMEDIATE`` with the writer lock, the seal, the rows, ``COMMIT``."""
        store, log = self.store, self.log
        wall, cpu0 = time.perf_counter(), time.thread_time()
        txn = store.try_begin()
        if txn is None:
            raise RuntimeError("the log's writer lock is held by another writer")
        begun, cpu1 = time.perf_counter(), time.thread_time()
        try:
            batch = store._writer.seal_batch(  # noqa: SLF001
                [Pending(draft, log._seal)],  # noqa: SLF001
                txn.size,
                txn.last,
                txn.fetch,
            )
            sealed, cpu2 = time.perf_counter(), time.thread_time()
            store.write_rows(txn, batch)
        except BaseException:
            store.abort(txn)
            raise
        store.commit(txn, batch)  # rolls back and releases the lock itself on failure
        done, cpu3 = time.perf_counter(), time.thread_time()
        return CommitTimes(
            unsealed_s=(begun - wall) + (done - sealed),
            unsealed_cpu_s=(cpu1 - cpu0) + (cpu3 - cpu2),
        )

    def close(self) -> None:
        """Close the log (its checkpoint thread included)."""
        self.log.close()


@dataclass(frozen=True)
class CommitTimes:
    """One copy's transaction: wall and CPU seconds of begin, rows and COMMIT (no seal)."""

    unsealed_s: float
    unsealed_cpu_s: float


def time_commits(
    state: Path, record: DecisionRecordV1, *, rate: float, count: int
) -> dict[str, Any]:
    """Append ``count`` copies of ``record`` to a new SQLite log in ``state`` at ``rate``
    per second; the figures of the timed part (begin, rows, commit) of each."""
    if rate <= 0 or count < 1:
        raise ValueError("rate must be > 0 and count >= 1")
    copies = RecordCopies(state, record)
    latencies: list[float] = []
    cpu = 0.0
    try:
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            times = copies.commit(copies.draft())
            latencies.append(times.unsealed_s)
            cpu += times.unsealed_cpu_s
        elapsed = time.perf_counter() - start
    finally:
        copies.close()
    ordered = sorted(latencies)
    return {
        "name": NAME,
        "requests": count,
        "per_s": round(count / elapsed, 1),
        "p50_ms": round(quantile(ordered, 0.50) * 1000, 3),
        "p95_ms": round(quantile(ordered, 0.95) * 1000, 3),
        "p99_ms": round(quantile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "cpu_ms_per_req": round(cpu * 1000 / count, 3),
        "record_bytes": len(record.model_dump_json()),
    }


def main(argv: list[str] | None = None) -> int:
    """Time the commits; print one line (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m engine.log.commit_floor", description=__doc__)
    parser.add_argument("record", type=Path, help="a logged record's JSON")
    parser.add_argument("--state-dir", type=Path, required=True, help="a new directory")
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second")
    parser.add_argument("--count", type=int, default=1000, help="commits in all")
    parser.add_argument("--json", type=Path, help="also write the figures to FILE")
    args = parser.parse_args(argv)
    if args.state_dir.exists() and any(args.state_dir.iterdir()):
        parser.error(f"--state-dir {args.state_dir} is not empty")
    record = DecisionRecordV1.model_validate_json(args.record.read_bytes())
    row = time_commits(args.state_dir, record, rate=args.rate, count=args.count)
    print(
        f"{NAME}: {row['requests']} at {row['per_s']}/s, p50 {row['p50_ms']} p95 "
        f"{row['p95_ms']} p99 {row['p99_ms']} max {row['max_ms']} ms, "
        f"{row['cpu_ms_per_req']} ms CPU each"
    )
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
