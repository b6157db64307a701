"""Group commit on the event loop (SQLite): sealed and inserted on the loop, committed on a
helper thread; whatever the loop cannot do at once goes to the writer thread."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError, StoreError
from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.filelock import LOCK_SUFFIX, ProcessWriteLock
from engine.log.store import SqlRecordStore
from engine.log.writer import RecordDraft
from engine.models.decision import Decision
from tests.log.helpers import input_doc, make_decision


def _thread_names(*, since: set[threading.Thread] | None = None) -> set[str]:
    """Names (without the executor's ``_N``) of the live threads, or of those started since."""
    return {t.name.split("_")[0] for t in threading.enumerate() if t not in (since or set())}


async def _append(log: DecisionLog, n: int, decision: Decision | None = None) -> Decision:
    return await log.append_async(
        decision or make_decision(n), input_document=input_doc(n), caller="loop", adapter="api"
    )


def test_loop_appends_commit_without_the_writer_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    log = open_decision_log(tmp_path / "state")

    async def scenario() -> list[Decision]:
        return list(await asyncio.gather(*(_append(log, n) for n in range(40))))

    try:
        decisions = asyncio.run(scenario())
        names = _thread_names(since=before)
        assert sorted(d.log.index for d in decisions if d.log) == list(range(40))
        assert [log.get(d.decision_id) is not None for d in decisions] == [True] * 40
        assert "releasegate-log-commit" in names
        assert "releasegate-log-writer" not in names
        assert log.checkpoint().size == 40
    finally:
        log.close()


@pytest.mark.parametrize("alone", [True, False])
def test_a_lone_record_commits_on_the_loop_only_while_its_request_is_alone(
    tmp_path: Path, alone: bool
) -> None:
    before = set(threading.enumerate())
    log = open_decision_log(tmp_path / "state")
    asked: list[int] = []

    def is_alone() -> bool:
        asked.append(1)
        return alone

    log.commit_alone_on_the_loop(is_alone)

    async def one_at_a_time() -> list[Decision]:
        return [await _append(log, n) for n in range(5)]

    try:
        decisions = asyncio.run(one_at_a_time())
        names = _thread_names(since=before)
        assert [d.log.index for d in decisions if d.log] == list(range(5))
        assert [log.get(d.decision_id) is not None for d in decisions] == [True] * 5
        assert len(asked) == 5  # asked once per one-record batch
        # Alone: every COMMIT ran on the loop, the commit thread never started.
        assert ("releasegate-log-commit" in names) is not alone
        assert "releasegate-log-writer" not in names
        assert log.checkpoint().size == 5
    finally:
        log.close()
    reopened = open_decision_log(tmp_path / "state")  # durable: another store reads them
    try:
        assert reopened.checkpoint().size == 5
    finally:
        reopened.close()


def test_a_batch_of_many_records_never_commits_on_the_loop(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    log = open_decision_log(tmp_path / "state")
    log.commit_alone_on_the_loop(lambda: True)

    async def together() -> list[Decision]:
        return list(await asyncio.gather(*(_append(log, n) for n in range(8))))

    try:
        decisions = asyncio.run(together())
        assert sorted(d.log.index for d in decisions if d.log) == list(range(8))
        # The first record may be a batch of one; the seven queued behind it are not.
        assert "releasegate-log-commit" in _thread_names(since=before)
    finally:
        log.close()


def test_a_second_event_loop_appends_after_the_first(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    try:
        first = asyncio.run(_append(log, 1))
        second = asyncio.run(_append(log, 2))
        assert (first.log and first.log.index, second.log and second.log.index) == (0, 1)
        assert second.log is not None and first.log is not None
        assert second.log.prev_hash == first.log.record_hash
    finally:
        log.close()


class _FlockHolder:
    """Another process's writer: holds the log's writer lock (``flock``)."""

    def __init__(self, state: Path) -> None:
        self.fd = os.open(state / f"log.db{LOCK_SUFFIX}", os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # a separate open file: excluded as a process is

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class _SqliteHolder:
    """A writer that skips the writer lock: holds SQLite's own (``BEGIN EXCLUSIVE``)."""

    def __init__(self, state: Path) -> None:
        self.db = sqlite3.connect(
            state / "log.db", isolation_level=None, timeout=0, check_same_thread=False
        )
        self.db.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


@pytest.mark.parametrize("holder", [_FlockHolder, _SqliteHolder])
def test_the_loop_never_waits_for_another_writer(
    tmp_path: Path, holder: type[_FlockHolder | _SqliteHolder]
) -> None:
    """While another writer holds a lock, the append waits in the writer thread and the
    event loop keeps running; it commits once the lock is free."""
    before = set(threading.enumerate())
    log = open_decision_log(tmp_path / "state")
    held = holder(tmp_path / "state")
    release = threading.Timer(1.0, held.release)

    async def scenario() -> tuple[int, Decision]:
        pending = asyncio.create_task(_append(log, 1))
        ticks, started = 0, time.monotonic()
        while time.monotonic() - started < 0.5:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        return ticks, await asyncio.wait_for(pending, 30)

    try:
        release.start()
        ticks, decision = asyncio.run(scenario())
        assert ticks >= 20  # the loop ran all along (a loop held by the lock would not tick)
        assert decision.log is not None and decision.log.index == 0
        assert "releasegate-log-writer" in _thread_names(since=before)
    finally:
        release.join()
        log.close()


def test_a_loop_closed_before_its_transaction_ran_is_forgotten(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    first = asyncio.new_event_loop()

    async def submit_and_leave() -> None:
        asyncio.ensure_future(_append(log, 1))
        await asyncio.sleep(0)  # the append queues its draft; the loop stops before its answer

    try:
        first.run_until_complete(submit_and_leave())
        first.close()
        decision = asyncio.run(_append(log, 2))
        assert decision.log is not None
        assert decision.log.index == log.checkpoint().size - 1  # the first may have committed
        # The new loop took over: nothing of the closed loop is left to send later appends
        # to the writer thread (the first append may have been handed over to it, if its
        # commit still held the writer lock).
        committer = log.store._loop_commit  # type: ignore[attr-defined]
        assert committer._task is None
    finally:
        log.close()


def test_a_failed_transaction_is_retried_draft_by_draft(tmp_path: Path) -> None:
    """Two drafts with one decision id in one batch: the insert fails on the loop, the
    writer thread retries each draft, and only the second of the pair is refused."""
    log = open_decision_log(tmp_path / "state")
    twin = make_decision(7)

    async def scenario() -> list[Decision | BaseException]:
        jobs = [_append(log, 0), _append(log, 7, twin), _append(log, 8, twin), _append(log, 9)]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    try:
        results = asyncio.run(scenario())
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], StoreError)
        assert log.checkpoint().size == 3
        assert log.get(twin.decision_id) is not None
    finally:
        log.close()


def test_a_draft_that_cannot_be_sealed_fails_alone(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    store = log.store
    assert isinstance(store, SqlRecordStore)
    bad = make_decision(2)

    def seal(draft: RecordDraft, index: int, prev: str) -> tuple[dict[str, Any], bytes]:
        if draft.decision_id == bad.decision_id:
            raise InputError("this draft cannot be sealed")
        return log._seal(draft, index, prev)

    def draft(decision: Decision, n: int) -> RecordDraft:
        return log._draft(
            decision,
            input_document=input_doc(n),
            caller="loop",
            adapter="api",
            input_canonical=None,
        )

    async def scenario() -> list[dict[str, Any] | BaseException]:
        drafts = [draft(make_decision(1), 1), draft(bad, 2), draft(make_decision(3), 3)]
        jobs = [store.append_async(d, seal) for d in drafts]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    try:
        first, failed, third = asyncio.run(scenario())
        assert isinstance(failed, InputError)
        assert isinstance(first, dict) and isinstance(third, dict)
        assert (first["log"]["index"], third["log"]["index"]) == (0, 1)
        assert log.checkpoint().size == 2
    finally:
        log.close()


class _CommitFailsOnce(SqlRecordStore):
    """The real store, whose first loop commit fails as a full disk would make it fail."""

    failed = 0

    def commit(self, txn: Any, batch: Any) -> None:
        if not self.failed:
            self.failed += 1
            self.abort(txn)
            raise StoreError("disk full (injected)")
        super().commit(txn, batch)


def test_a_failed_commit_goes_to_the_writer_thread(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    log.store.close()
    store = _CommitFailsOnce(f"sqlite:///{tmp_path / 'state' / 'log.db'}")
    log.store = store

    async def scenario() -> list[Decision]:
        return list(await asyncio.gather(*(_append(log, n) for n in range(5))))

    try:
        decisions = asyncio.run(scenario())
        assert store.failed == 1
        assert sorted(d.log.index for d in decisions if d.log) == list(range(5))
        assert log.checkpoint().size == 5
    finally:
        log.close()


def test_a_cancelled_caller_still_gets_its_record_written(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    decision = make_decision(1)

    async def scenario() -> None:
        task = asyncio.create_task(_append(log, 1, decision))
        await asyncio.sleep(0)  # queued for this turn's transaction
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _append(log, 2)  # the next transaction starts after the first committed

    try:
        asyncio.run(scenario())
        assert log.get(decision.decision_id) is not None
        assert log.checkpoint().size == 2
    finally:
        log.close()


def test_appends_after_close_are_refused(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "state")
    asyncio.run(_append(log, 1))
    log.close()
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(_append(log, 2))


def test_the_writer_lock_can_be_tried_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / f"log.db{LOCK_SUFFIX}"
    lock = ProcessWriteLock(path)
    other = os.open(path, os.O_RDWR)
    try:
        assert lock.acquire(blocking=False)
        assert not lock.acquire(blocking=False)  # this process's other writer holds it
        lock.release()
        fcntl.flock(other, fcntl.LOCK_EX)  # another process holds it
        assert not lock.acquire(blocking=False)
        fcntl.flock(other, fcntl.LOCK_UN)
        assert lock.acquire(blocking=False)
        held_elsewhere = threading.Thread(target=lambda: fcntl.flock(other, fcntl.LOCK_EX))
        held_elsewhere.start()
        held_elsewhere.join(0.3)
        assert held_elsewhere.is_alive()  # the lock excludes other processes while held
        lock.release()
        held_elsewhere.join(10)
        assert not held_elsewhere.is_alive()
    finally:
        os.close(other)
        lock.close()
