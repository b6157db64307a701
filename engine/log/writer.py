"""The log's writer thread, with group commit.

It serves synchronous appends (``check --local``, replay, routes run in worker threads),
every append to PostgreSQL, and the appends the event loop's group commit hands over
(:mod:`engine.log.loop_commit`: when the writer lock is held elsewhere, or a transaction
failed). The sealing itself (:meth:`GroupCommitWriter.seal_batch`) is shared by both.

Callers queue a :class:`RecordDraft`; one thread drains the queue, and for each batch
runs one database transaction (supplied by the store) in which it seals every draft at
consecutive indexes, extends the Merkle frontier and collects the rows. Only after the
transaction commits are the callers' futures completed. A failed batch of several drafts
is retried draft by draft so one bad draft cannot sink its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError, StoreError
from engine.helper_threads import schedule_as_helper
from engine.log.canonical import digest_ref
from engine.log.merkle import Frontier, NodeKey, leaf_hash
from engine.log.record import record_text

_logger = logging.getLogger(__name__)

Sealer = Callable[["RecordDraft", int, str], tuple[dict[str, Any], bytes]]
"""``(draft, index, prev_hash) -> (full record, raw record hash)``."""

NodeFetch = Callable[[Iterable[NodeKey]], dict[NodeKey, bytes]]
CommitFn = Callable[[Callable[[int, str, NodeFetch], "Batch"]], "Batch"]

APPEND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RecordDraft:
    """A record body awaiting its index, plus the columns stored for filtering."""

    body: dict[str, Any]
    members: dict[str, bytes]
    decision_id: str
    ts: str
    service: str
    environment: str
    verdict: str
    release_id: str
    artifact_digest: str
    adapter: str
    dry_run: bool
    reasons: tuple[str, ...]


@dataclass
class Pending:
    """A draft, its sealer, and the future its caller waits on."""

    draft: RecordDraft
    seal: Sealer
    future: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass
class Batch:
    """Rows one transaction writes, and each draft's outcome."""

    size: int
    last_hash: str
    frontier: Frontier
    records: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[tuple[Pending, dict[str, Any] | BaseException]] = field(default_factory=list)


class GroupCommitWriter:
    """One writer thread per store; started on the first append."""

    def __init__(self, commit: CommitFn, *, max_batch: int = 512) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._cache: tuple[Frontier, str] | None = None

    def submit(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """Queue ``draft``; block until it is committed. Raises :class:`StoreError`."""
        pending = self._enqueue(draft, seal)
        try:
            return pending.future.result(timeout=APPEND_TIMEOUT_S)
        except FutureTimeout as exc:
            raise StoreError("the decision log did not commit in time") from exc

    async def submit_async(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """``submit`` from an event loop: the caller awaits the commit instead of blocking.

        A caller that gives up (timeout, cancelled request) leaves the append queued: the
        record is still committed, as with ``submit``.
        """
        pending = self._enqueue(draft, seal)
        try:
            async with asyncio.timeout(APPEND_TIMEOUT_S):
                return await asyncio.shield(asyncio.wrap_future(pending.future))
        except TimeoutError as exc:
            raise StoreError("the decision log did not commit in time") from exc

    def _enqueue(self, draft: RecordDraft, seal: Sealer) -> Pending:
        with self._start_lock:
            if self._closed:
                raise StoreError("the decision log is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="releasegate-log-writer", daemon=True
                )
                self._thread.start()
        pending = Pending(draft, seal)
        self._queue.put(pending)
        return pending

    def close(self) -> None:
        """Finish queued appends and stop the thread."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        schedule_as_helper()
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._process(batch)

    def _process(self, pending: list[Pending]) -> None:
        try:
            outcomes = self._write(pending)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the callers
            self.forget()
            if len(pending) > 1:
                for one in pending:
                    self._process([one])
                return
            reason = _describe(exc)
            _logger.warning("decision log append failed: %s", reason)
            err = exc if isinstance(exc, EngineError) else StoreError(f"log write failed: {reason}")
            if err is not exc:
                err.__cause__ = exc
            pending[0].future.set_exception(err)
            return
        for item, outcome in outcomes:
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    def _write(self, pending: list[Pending]) -> list[tuple[Pending, Any]]:
        batch = self._commit(lambda size, last, fetch: self.seal_batch(pending, size, last, fetch))
        self.remember(batch)
        return batch.outcomes

    def seal_batch(self, pending: list[Pending], size: int, last: str, fetch: NodeFetch) -> Batch:
        """Seal ``pending`` at consecutive indexes after the head ``(size, last)``, inside
        the caller's transaction; the Merkle frontier comes from the last committed batch
        when it ends at that head, else from ``fetch``."""
        cached = self._cache
        if cached is not None and cached[0].size == size and cached[1] == last:
            frontier = Frontier(size, list(cached[0].nodes))
        else:
            keys = Frontier.keys_for(size)
            got = fetch(keys)
            frontier = Frontier(size, [(lv, got[(lv, ix)]) for lv, ix in keys])
        batch = Batch(size, last, frontier)
        for item in pending:
            _seal_into(batch, item)
        return batch

    def remember(self, batch: Batch) -> None:
        """``batch`` was committed: the next transaction may start from its frontier."""
        self._cache = (batch.frontier, batch.last_hash)

    def forget(self) -> None:
        """A transaction failed: read the frontier from the database next time."""
        self._cache = None


def _seal_into(batch: Batch, item: Pending) -> None:
    d = item.draft
    try:
        record, raw = item.seal(d, batch.size, batch.last_hash)
    except EngineError as exc:
        batch.outcomes.append((item, exc))
        return
    index = batch.size
    batch.records.append(
        {
            "idx": index,
            "decision_id": d.decision_id,
            "ts": d.ts,
            "service": d.service,
            "environment": d.environment,
            "verdict": d.verdict,
            "release_id": d.release_id,
            "artifact_digest": d.artifact_digest,
            "adapter": d.adapter,
            "dry_run": d.dry_run,
            "record_hash": digest_ref(raw),
            "body": record_text(record),
        }
    )
    batch.reasons.extend({"code": code, "idx": index} for code in sorted(set(d.reasons)))
    for level, node_index, h in batch.frontier.append(leaf_hash(raw)):
        batch.nodes.append({"level": level, "idx": node_index, "hash": h})
    batch.size += 1
    batch.last_hash = digest_ref(raw)
    batch.outcomes.append((item, record))


def _describe(exc: BaseException) -> str:
    """The driver's error without SQLAlchemy's statement and parameters (the record body)."""
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"
