"""Concurrent appends yield one gap-free, fork-free sequence (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from engine.log.decision_log import open_decision_log
from engine.log.filelock import LOCK_SUFFIX, sqlite_lock_path
from engine.log.keystore import load_signing_key
from engine.log.verify import verify_export
from tests.log.helpers import input_doc, make_decision

WRITERS, APPENDS = 4, 50


def append_many(state_dir: str, database_url: str | None, writer: int, count: int) -> list[str]:
    """Append ``count`` decisions through a log of its own; returns their ids."""
    log = open_decision_log(Path(state_dir), database_url=database_url, create_key=False)
    ids = []
    try:
        for n in range(count):
            d = make_decision(writer * 1000 + n)
            log.append(d, input_document=input_doc(n), caller=f"w{writer}", adapter="check")
            ids.append(d.decision_id)
    finally:
        log.close()
    return ids


def _verify_all(state_dir: Path, database_url: str | None, ids: list[str]) -> None:
    log = open_decision_log(state_dir, database_url=database_url, create_key=False)
    try:
        out = io.StringIO()
        log.export(out)
        lines = out.getvalue().splitlines()
        report = verify_export(lines, log.keyring)
        assert report.size == len(ids) == WRITERS * APPENDS
        exported = [json.loads(line)["decision_id"] for line in lines[:-1]]
        assert sorted(exported) == sorted(ids)
        first = log.checkpoint()
        assert log.consistency_proof(1, first.size)["second_root_hash"] == report.root_hash
    finally:
        log.close()


def test_sqlite_threads_share_one_writer(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = open_decision_log(state)
    ids: list[str] = []
    lock = threading.Lock()

    def work(writer: int) -> None:
        for n in range(APPENDS):
            d = log.append(
                make_decision(writer * 1000 + n),
                input_document=input_doc(n),
                caller=f"t{writer}",
                adapter="check",
            )
            with lock:
                ids.append(d.decision_id)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    _verify_all(state, None, ids)


def _run_processes(state: Path, url: str | None, writers: int, count: int) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(writers) as pool:
        results = pool.starmap(append_many, [(str(state), url, w, count) for w in range(writers)])
    return [i for ids in results for i in ids]


def test_sqlite_writer_processes_on_one_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    load_signing_key(state, create=True)
    ids = _run_processes(state, None, WRITERS, APPENDS)
    _verify_all(state, None, ids)


@pytest.mark.postgres
def test_postgres_writer_processes(tmp_path: Path, pg_database: str) -> None:
    state = tmp_path / "state"
    load_signing_key(state, create=True)
    ids = _run_processes(state, pg_database, WRITERS, APPENDS)
    _verify_all(state, pg_database, ids)


def test_sqlite_lock_path_sits_next_to_the_database(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    assert sqlite_lock_path(f"sqlite:///{db}") == Path(f"{db}-writer.lock")
    assert sqlite_lock_path(f"sqlite:///{db}?mode=rwc") == Path(f"{db}-writer.lock")
    assert sqlite_lock_path(f"sqlite:///file:{db}?mode=ro&uri=true") == Path(f"{db}-writer.lock")
    assert sqlite_lock_path("sqlite:///file:x?mode=memory&uri=true") is None
    assert sqlite_lock_path("sqlite://") is None
    assert sqlite_lock_path("sqlite:///:memory:") is None
    assert sqlite_lock_path("postgresql+psycopg://u@h/db") is None


def test_sqlite_append_waits_for_another_process_writer(tmp_path: Path) -> None:
    """While another process holds the writer lock, an append neither commits nor fails."""
    state = tmp_path / "state"
    log = open_decision_log(state)
    other = os.open(tmp_path / "state" / f"log.db{LOCK_SUFFIX}", os.O_RDWR)
    appended: list[str] = []
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # a separate open file: flock excludes it as it would
        worker = threading.Thread(  # another process
            target=lambda: appended.append(
                log.append(
                    make_decision(1), input_document=input_doc(1), caller="w", adapter="check"
                ).decision_id
            )
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and appended == [] and log.checkpoint().size == 0
        fcntl.flock(other, fcntl.LOCK_UN)
        worker.join(10)
        assert appended and log.checkpoint().size == 1
    finally:
        os.close(other)
        log.close()


def test_sqlite_appends_awaited_from_an_event_loop_share_commits(tmp_path: Path) -> None:
    """The service's path: many decisions awaiting their commit on one loop, one sequence."""
    state = tmp_path / "state"
    log = open_decision_log(state)

    async def append_all() -> list[str]:
        async def one(writer: int, n: int) -> str:
            d = await log.append_async(
                make_decision(writer * 1000 + n),
                input_document=input_doc(n),
                caller=f"a{writer}",
                adapter="api",
            )
            assert d.log is not None and d.signature is not None
            return d.decision_id

        jobs = [one(w, n) for w in range(WRITERS) for n in range(APPENDS)]
        return list(await asyncio.gather(*jobs))

    try:
        ids = asyncio.run(append_all())
    finally:
        log.close()
    _verify_all(state, None, ids)
