"""The SQLite log's write-ahead-log checkpoints run on their own thread, never in a COMMIT.

What is in the database file itself (without its write-ahead log) shows who checkpointed:
a copy of the file alone holds exactly the records some checkpoint copied into it.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.log.decision_log import DecisionLog
from engine.log.keystore import load_signing_key
from engine.log.store import SqlRecordStore
from engine.log.wal import WalCheckpointer
from tests.log.helpers import input_doc, make_decision

NEVER = 10**9
WAIT_S = 30.0  # a bound on waiting for the thread, never asserted as a duration
PAGE = 4096


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def open_log(tmp_path: Path) -> Iterator[Callable[..., tuple[DecisionLog, SqlRecordStore]]]:
    opened: list[DecisionLog] = []

    def make(**store_options: Any) -> tuple[DecisionLog, SqlRecordStore]:
        state = tmp_path / "state"
        signer, ring = load_signing_key(state, create=True)
        store = SqlRecordStore(f"sqlite:///{state / 'log.db'}", **store_options)
        log = DecisionLog(store, signer, ring)
        opened.append(log)
        return log, store

    yield make
    for log in opened:
        log.close()


def _append(log: DecisionLog, count: int, *, threads: int = 1) -> None:
    def work(writer: int) -> None:
        for n in range(count // threads):
            log.append(
                make_decision(writer * 10_000 + n),
                input_document=input_doc(n),
                caller=f"t{writer}",
                adapter="check",
            )

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _records_in_the_file_alone(db: Path, scratch: Path) -> int:
    copy = scratch / "file-alone.db"
    shutil.copyfile(db, copy)  # without its -wal: only what checkpoints copied
    with closing(sqlite3.connect(copy)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        if ("log_records",) not in tables:  # not even the schema was checkpointed yet
            return 0
        return int(conn.execute("SELECT count(*) FROM log_records").fetchone()[0])


def test_no_commit_checkpoints_past_sqlites_threshold(
    open_log: Callable[..., tuple[DecisionLog, SqlRecordStore]], tmp_path: Path
) -> None:
    log, store = open_log(checkpoint_every=NEVER, checkpoint_idle_s=3600)
    _append(log, 150)  # one commit each
    db = tmp_path / "state" / "log.db"
    wal = db.with_name("log.db-wal")
    # Past the 1,000 pages at which a COMMIT would have checkpointed by itself ...
    assert wal.stat().st_size > 1000 * PAGE
    # ... and still nothing in the database file: no writer checkpointed.
    assert _records_in_the_file_alone(db, tmp_path) == 0
    assert store.checkpointer is not None and store.checkpointer.checkpoints == 0
    assert sum(1 for _ in log.iter_records()) == 150  # all there for readers


def test_the_checkpointer_copies_after_enough_commits(
    open_log: Callable[..., tuple[DecisionLog, SqlRecordStore]], tmp_path: Path
) -> None:
    log, store = open_log(checkpoint_every=40, checkpoint_idle_s=3600)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    _append(log, 39)  # one commit each
    assert checkpointer.checkpoints == 0  # below the count, and the idle wait is an hour
    _append(log, 1)
    assert _wait_for(lambda: checkpointer.checkpoints == 1)
    assert _records_in_the_file_alone(tmp_path / "state" / "log.db", tmp_path) == 40


def test_fewer_commits_are_checkpointed_once_idle(
    open_log: Callable[..., tuple[DecisionLog, SqlRecordStore]], tmp_path: Path
) -> None:
    log, store = open_log(checkpoint_every=NEVER, checkpoint_idle_s=0.05)
    _append(log, 3)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    assert _wait_for(lambda: checkpointer.checkpoints >= 1)
    assert _records_in_the_file_alone(tmp_path / "state" / "log.db", tmp_path) == 3


def test_closing_the_log_leaves_every_record_in_the_file(
    open_log: Callable[..., tuple[DecisionLog, SqlRecordStore]], tmp_path: Path
) -> None:
    log, store = open_log(checkpoint_every=NEVER, checkpoint_idle_s=3600)
    _append(log, 5)
    log.close()
    db = tmp_path / "state" / "log.db"
    assert not db.with_name("log.db-wal").exists()  # the last connection checkpointed
    assert _records_in_the_file_alone(db, tmp_path) == 5
    assert store.checkpointer is not None and store.checkpointer.checkpoints == 0


def test_reads_find_records_the_checkpointer_has_not_copied(
    open_log: Callable[..., tuple[DecisionLog, SqlRecordStore]],
) -> None:
    log, _ = open_log(checkpoint_every=NEVER, checkpoint_idle_s=3600)
    _append(log, 4)
    records, _ = log.query(limit=10)
    assert len(records) == 4


def _wal_database(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (x)")


def test_a_failed_checkpoint_is_retried_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    _wal_database(db)
    attempts: list[int] = []

    def connect() -> sqlite3.Connection:  # refused once, as a locked or vanished file would
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return sqlite3.connect(db, check_same_thread=False)

    checkpointer = WalCheckpointer(connect, every_commits=1, idle_s=0.05)
    try:
        checkpointer.committed()
        assert _wait_for(lambda: checkpointer.checkpoints == 1)
        assert checkpointer.failures == 1 and len(attempts) == 2
    finally:
        checkpointer.close()


def test_no_thread_before_a_commit_and_none_after_close(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    _wal_database(db)
    before = {t.name for t in threading.enumerate()}
    checkpointer = WalCheckpointer(lambda: sqlite3.connect(db, check_same_thread=False))
    assert {t.name for t in threading.enumerate()} == before
    checkpointer.committed()
    assert "releasegate-log-checkpoint" in {t.name for t in threading.enumerate()}
    checkpointer.close()
    assert "releasegate-log-checkpoint" not in {t.name for t in threading.enumerate()}
    checkpointer.committed()  # after close: ignored, no thread
    assert "releasegate-log-checkpoint" not in {t.name for t in threading.enumerate()}
