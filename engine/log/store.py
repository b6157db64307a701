"""Record storage: the :class:`RecordStore` seam and its SQL implementation.

SQLite (default) and PostgreSQL, through SQLAlchemy Core (the writer runs statements Core
compiled, on the driver's cursor). Appends are serialized:

* in-process, by *group commit*: every queued append gets consecutive indexes, and records
  + tree nodes + head are written in one transaction before each caller's future is
  completed, so concurrent requests share one fsync. Appends awaited on an event loop
  (the service) are sealed and inserted on that loop and committed on a helper thread
  when the log is a SQLite file (:mod:`engine.log.loop_commit`); the others, and every
  append to PostgreSQL, go to one writer thread (:mod:`engine.log.writer`);
* across processes, by the database: ``BEGIN IMMEDIATE`` on SQLite (WAL,
  ``synchronous=FULL``), taken after an exclusive ``flock`` that hands the write lock from
  process to process without SQLite's sleeping busy handler (:mod:`engine.log.filelock`),
  and ``pg_advisory_xact_lock`` on PostgreSQL, with the head row re-read inside the lock,
  so several processes or replicas yield one sequence.

``append`` returns only after the commit (the record is durable); any database failure
raises :class:`StoreError` and nothing of the batch is visible. On SQLite no commit
checkpoints the write-ahead log: a thread of the store does (:mod:`engine.log.wal`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    event,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.pool import ConnectionPoolEntry

from engine.dbpool import POSTGRES_POOL, SQLITE_POOL
from engine.errors import StoreError, map_errors
from engine.log import tables as t
from engine.log.canonical import ZERO_HASH
from engine.log.filelock import ProcessWriteLock, sqlite_lock_path
from engine.log.loop_commit import LoopGroupCommit
from engine.log.merkle import NodeKey
from engine.log.wal import EVERY_COMMITS, IDLE_S, WalCheckpointer
from engine.log.writer import Batch, GroupCommitWriter, NodeFetch, RecordDraft, Sealer
from engine.sqldriver import DriverStatement

PG_LOCK_KEY = 0x72656C6561736567  # "releaseg": the advisory lock serializing appends
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another's lock (the event loop's transactions: 0)."""


@dataclass(frozen=True)
class QueryFilter:
    """Record filters; ``None`` means no constraint. ``since`` <= ts < ``until``."""

    service: str | None = None
    environment: str | None = None
    verdict: str | None = None
    release_id: str | None = None
    artifact_digest: str | None = None
    reason: str | None = None
    since: str | None = None
    until: str | None = None
    exclude_adapter: str | None = None
    dry_run: bool | None = None


class RecordStore(Protocol):
    """Where records, tree nodes and the head live."""

    def append(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """Seal ``draft`` at the next index and commit it; returns the full record."""

    async def append_async(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """``append`` awaited from an event loop."""

    def head(self) -> tuple[int, str]:
        """``(size, last record hash)`` of the committed log."""

    def read_nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored complete-subtree hashes; raises :class:`StoreError` if one is missing."""

    def index_of(self, decision_id: str) -> int | None:
        """The index of a decision, or None."""

    def get_body(self, index: int) -> str | None:
        """The record JSON text at ``index``, or None."""

    def query(self, flt: QueryFilter, *, limit: int, before: int | None) -> list[tuple[int, str]]:
        """Up to ``limit`` ``(index, body)`` matching ``flt`` with index < ``before``, newest
        first."""

    def scan(self, flt: QueryFilter, *, start: int, end: int) -> Iterator[tuple[int, str]]:
        """``(index, body)`` matching ``flt`` with start <= index < end, oldest first."""

    def close(self) -> None:
        """Stop the writer and release connections."""


# The writer's statements. They are compiled once per database dialect and run on the
# driver's cursor (:class:`DriverStatement`): with SQLAlchemy's execution layer around each
# of them, a one-record commit cost about twice its CPU.
_READ_HEAD = select(t.head.c.size, t.head.c.last_hash).where(t.head.c.id == 1)
_INSERT_RECORDS = insert(t.records)
_INSERT_REASONS = insert(t.reasons)
_INSERT_NODES = insert(t.nodes)
_MOVE_HEAD = (
    t.head.update()
    .where(t.head.c.id == 1)
    .values(size=bindparam("new_size"), last_hash=bindparam("new_last"))
)
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


@dataclass(frozen=True)
class _WriterStatements:
    read_head: DriverStatement
    insert_records: DriverStatement
    insert_reasons: DriverStatement
    insert_nodes: DriverStatement
    move_head: DriverStatement
    pg_lock: DriverStatement

    @classmethod
    def for_dialect(cls, dialect: Any) -> _WriterStatements:
        def c(stmt: Any) -> DriverStatement:
            return DriverStatement.compile(stmt, dialect)

        return cls(
            c(_READ_HEAD), c(_INSERT_RECORDS), c(_INSERT_REASONS), c(_INSERT_NODES),
            c(_MOVE_HEAD), c(_PG_LOCK),
        )  # fmt: skip


def _sqlite_pragmas(dbapi_conn: Any, _entry: ConnectionPoolEntry) -> None:
    # NOTE: pysqlite's implicit BEGIN is turned off; the "begin" hooks below issue it.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_writer_pragmas(dbapi_conn: Any, entry: ConnectionPoolEntry) -> None:
    _sqlite_pragmas(dbapi_conn, entry)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")  # the WalCheckpointer's thread checkpoints
    cur.close()


def _sqlite_engine(url: str, *, begin: str, writer: bool = False) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 10}, **SQLITE_POOL
    )
    event.listen(engine, "connect", _sqlite_writer_pragmas if writer else _sqlite_pragmas)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


@dataclass(frozen=True)
class _Transaction:
    """An open write transaction on the driver's connection, at head ``(size, last)``."""

    raw: Any
    cursor: Any
    size: int
    last: str
    read_nodes: Callable[[Any, Iterable[NodeKey]], dict[NodeKey, bytes]]
    kept: bool = False
    """On the store's kept connection (the event loop's, SQLite): not returned at the end."""

    def fetch(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored Merkle nodes, read inside this transaction."""
        return self.read_nodes(self.cursor, keys)


class SqlRecordStore:
    """:class:`RecordStore` over SQLite or PostgreSQL (SQLAlchemy Core)."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 512,
        checkpoint_every: int = EVERY_COMMITS,
        checkpoint_idle_s: float = IDLE_S,
    ) -> None:
        with map_errors(StoreError, "cannot open the decision log database"):
            self.is_sqlite = url.startswith("sqlite")
            self._process_lock = ProcessWriteLock(sqlite_lock_path(url))
            self.checkpointer: WalCheckpointer | None = None
            """SQLite: the thread that checkpoints the write-ahead log (:mod:`engine.log.wal`)."""
            self._kept: Any = None
            """SQLite: the event loop's connection (:meth:`_begin_kept`), once opened."""
            if self.is_sqlite:
                self._write = _sqlite_engine(url, begin="BEGIN IMMEDIATE", writer=True)
                self._read = _sqlite_engine(url, begin="BEGIN")
                self.checkpointer = WalCheckpointer(
                    self._read.raw_connection,
                    every_commits=checkpoint_every,
                    idle_s=checkpoint_idle_s,
                )
            else:
                self._write = create_engine(url, pool_pre_ping=True, **POSTGRES_POOL)
                self._read = self._write
            with self._write.begin() as conn:
                self._lock(conn)
                t.metadata.create_all(conn)
                if conn.execute(select(t.head.c.id)).first() is None:
                    conn.execute(insert(t.head).values(id=1, size=0, last_hash=ZERO_HASH))
            self._sql = _WriterStatements.for_dialect(self._write.dialect)
        self._writer = GroupCommitWriter(self._commit_batch, max_batch=max_batch)
        self._loop_commit = (
            LoopGroupCommit[_Transaction](self, self._writer, max_batch=max_batch)
            if self.is_sqlite
            else None
        )

    def _lock(self, conn: Connection) -> None:
        if not self.is_sqlite:  # SQLite: BEGIN IMMEDIATE already holds the write lock
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})

    # -- writes ---------------------------------------------------------------------

    def append(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """Queue for the writer thread and wait for the commit."""
        return self._writer.submit(draft, seal)

    async def append_async(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """Await the commit (no thread waits): on this loop for SQLite, else the writer's."""
        if self._loop_commit is not None:
            return await self._loop_commit.submit(draft, seal)
        return await self._writer.submit_async(draft, seal)

    def _commit_batch(self, run: Callable[[int, str, NodeFetch], Batch]) -> Batch:
        """The writer thread's transaction: lock, read the head, let the writer seal, write.

        Runs on the driver's connection (pooled by SQLAlchemy): ``BEGIN IMMEDIATE`` on
        SQLite (the connection is in autocommit mode, see ``_sqlite_pragmas``), the advisory
        lock on PostgreSQL (psycopg opens the transaction itself); commit, or roll back on
        any error.
        """
        with self._process_lock:
            txn = self._begin()
            try:
                batch = run(txn.size, txn.last, txn.fetch)
                self.write_rows(txn, batch)
            except BaseException:
                self._end(txn, commit=False)
                raise
            self._end(txn, commit=True)
        self._committed(batch)
        return batch

    def commit_alone_on_the_loop(self, alone: Callable[[], bool]) -> None:
        """Let the event loop commit a batch of one record itself while ``alone()`` says its
        request is the only one in flight (:class:`LoopGroupCommit`; SQLite only)."""
        if self._loop_commit is not None:
            self._loop_commit.alone = alone

    def try_begin(self) -> _Transaction | None:
        """The event loop's transaction, if the writer lock is free now: it never waits for
        the lock, nor for SQLite's own (a writer that does not take the lock makes
        ``BEGIN IMMEDIATE`` fail at once here)."""
        if not self._process_lock.acquire(blocking=False):
            return None
        try:
            return self._begin(wait=False)
        except BaseException:
            self._process_lock.release()
            raise

    def write_rows(self, txn: _Transaction, batch: Batch) -> None:
        """The batch's rows and the new head, inside ``txn``."""
        if not batch.records:
            return
        sql, cur = self._sql, txn.cursor
        sql.insert_records.executemany(cur, batch.records)
        if batch.reasons:
            sql.insert_reasons.executemany(cur, batch.reasons)
        sql.insert_nodes.executemany(cur, batch.nodes)
        sql.move_head.execute(cur, {"new_size": batch.size, "new_last": batch.last_hash})

    def commit(self, txn: _Transaction, batch: Batch) -> None:
        """Commit the event loop's transaction (on its commit thread), release the lock."""
        try:
            self._end(txn, commit=True)
            self._writer.remember(batch)
        except BaseException:
            self._writer.forget()
            raise
        finally:
            self._process_lock.release()
        self._committed(batch)

    def _committed(self, batch: Batch) -> None:
        if self.checkpointer is not None and batch.records:
            self.checkpointer.committed()

    def abort(self, txn: _Transaction) -> None:
        """Roll back the event loop's transaction, release the lock."""
        try:
            self._end(txn, commit=False)
        finally:
            self._process_lock.release()

    def _begin(self, *, wait: bool = True) -> _Transaction:
        """Open the write transaction (the caller holds the writer lock); read the head."""
        if self.is_sqlite and not wait:
            return self._begin_kept()
        raw = self._write.raw_connection()
        try:
            return self._begin_on(raw, kept=False)
        except BaseException:
            raw.close()
            raise

    def _begin_kept(self) -> _Transaction:
        """The event loop's transaction on SQLite, on a connection the store keeps for it.

        That connection's ``busy_timeout`` is 0, so ``BEGIN IMMEDIATE`` fails at once when
        another writer holds SQLite's lock, and it stays checked out of the pool: the loop's
        commits (one at a time, under the writer lock) skip the pool's checkout and return
        and the two ``PRAGMA busy_timeout`` that made a pooled connection fail fast and
        then wait again. After any failure it is closed (never returned to the pool) and
        the next transaction opens another.
        """
        raw, opened = self._kept, self._kept is None
        if raw is None:
            raw = self._kept = self._write.raw_connection()
        try:
            if opened:
                setup = raw.cursor()
                setup.execute("PRAGMA busy_timeout=0")
                setup.close()
            return self._begin_on(raw, kept=True)
        except BaseException:
            self._drop_kept()
            raise

    def _begin_on(self, raw: Any, *, kept: bool) -> _Transaction:
        """Begin on ``raw`` and read the head; rolled back when either fails."""
        cur = raw.cursor()
        try:
            if self.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
            else:
                self._sql.pg_lock.execute(cur, {"k": PG_LOCK_KEY})
            size, last = self._sql.read_head.execute(cur).fetchone()
        except BaseException:
            raw.rollback()
            cur.close()
            raise
        return _Transaction(raw, cur, int(size), str(last), self._read_nodes_raw, kept=kept)

    def _drop_kept(self) -> None:
        raw, self._kept = self._kept, None
        if raw is not None:
            # Closed for good, not returned to the pool: its busy_timeout is 0, and the
            # writer thread's transactions must wait for SQLite's lock.
            raw.invalidate()
            raw.close()

    def _end(self, txn: _Transaction, *, commit: bool) -> None:
        failed = True
        try:
            if commit:
                try:
                    txn.raw.commit()
                except BaseException:
                    txn.raw.rollback()
                    raise
            else:
                txn.raw.rollback()
            failed = False
        finally:
            txn.cursor.close()
            if not txn.kept:
                txn.raw.close()
            elif failed:
                self._drop_kept()

    def _read_nodes_raw(self, cursor: Any, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """:func:`_read_nodes` inside the writer's transaction (only after a cache miss)."""
        wanted = sorted(set(keys))
        found: dict[NodeKey, bytes] = {}
        for chunk in range(0, len(wanted), 200):
            query = DriverStatement.compile(
                _nodes_query(wanted[chunk : chunk + 200]), self._write.dialect
            )
            for lv, ix, h in query.execute(cursor).fetchall():
                found[(int(lv), int(ix))] = bytes(h)
        _check_complete(wanted, found)
        return found

    # -- reads ----------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """``(size, last record hash)``."""
        with map_errors(StoreError, "cannot read the log head"), self._read.connect() as conn:
            size, last = conn.execute(_READ_HEAD).one()
        return int(size), str(last)

    def read_nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored subtree hashes for ``keys``."""
        with map_errors(StoreError, "cannot read tree nodes"), self._read.connect() as conn:
            return _read_nodes(conn, keys)

    def index_of(self, decision_id: str) -> int | None:
        """The index of ``decision_id``."""
        stmt = select(t.records.c.idx).where(t.records.c.decision_id == decision_id)
        with map_errors(StoreError, "cannot read the log"), self._read.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else int(row[0])

    def get_body(self, index: int) -> str | None:
        """The record JSON at ``index``."""
        stmt = select(t.records.c.body).where(t.records.c.idx == index)
        with map_errors(StoreError, "cannot read the log"), self._read.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else str(row[0])

    def query(self, flt: QueryFilter, *, limit: int, before: int | None) -> list[tuple[int, str]]:
        """Newest first, index < ``before``."""
        cond = _conditions(flt)
        if before is not None:
            cond.append(t.records.c.idx < before)
        stmt = (
            select(t.records.c.idx, t.records.c.body)
            .where(and_(True, *cond))
            .order_by(t.records.c.idx.desc())
            .limit(limit)
        )
        with map_errors(StoreError, "cannot query the log"), self._read.connect() as conn:
            return [(int(i), str(b)) for i, b in conn.execute(stmt)]

    def scan(
        self, flt: QueryFilter, *, start: int, end: int, page: int = 500
    ) -> Iterator[tuple[int, str]]:
        """Oldest first, in pages of ``page`` rows."""
        cond = _conditions(flt)
        while start < end:
            stmt = (
                select(t.records.c.idx, t.records.c.body)
                .where(and_(t.records.c.idx >= start, t.records.c.idx < end, *cond))
                .order_by(t.records.c.idx)
                .limit(page)
            )
            with map_errors(StoreError, "cannot read the log"), self._read.connect() as conn:
                rows = [(int(i), str(b)) for i, b in conn.execute(stmt)]
            if not rows:
                return
            yield from rows
            start = rows[-1][0] + 1

    def close(self) -> None:
        """Stop the writers and the checkpoints, dispose of the engines."""
        if self._loop_commit is not None:
            self._loop_commit.close()
        self._writer.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self._drop_kept()
        self._write.dispose()
        if self._read is not self._write:
            self._read.dispose()
        self._process_lock.close()


def _nodes_query(part: list[NodeKey]) -> Any:
    cond = or_(*(and_(t.nodes.c.level == lv, t.nodes.c.idx == ix) for lv, ix in part))
    return select(t.nodes.c.level, t.nodes.c.idx, t.nodes.c.hash).where(cond)


def _check_complete(wanted: list[NodeKey], found: dict[NodeKey, bytes]) -> None:
    missing = [k for k in wanted if k not in found]
    if missing:
        raise StoreError(f"tree nodes missing from the store: {missing[:5]}")


def _read_nodes(conn: Connection, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    wanted = sorted(set(keys))
    found: dict[NodeKey, bytes] = {}
    for chunk in range(0, len(wanted), 200):
        for lv, ix, h in conn.execute(_nodes_query(wanted[chunk : chunk + 200])):
            found[(int(lv), int(ix))] = bytes(h)
    _check_complete(wanted, found)
    return found


def _conditions(flt: QueryFilter) -> list[Any]:
    c = t.records.c
    columns: Mapping[str, Any] = {
        "service": c.service,
        "environment": c.environment,
        "verdict": c.verdict,
        "release_id": c.release_id,
        "artifact_digest": c.artifact_digest,
    }
    cond: list[Any] = [
        col == getattr(flt, name) for name, col in columns.items() if getattr(flt, name) is not None
    ]
    if flt.reason is not None:
        cond.append(c.idx.in_(select(t.reasons.c.idx).where(t.reasons.c.code == flt.reason)))
    if flt.since is not None:
        cond.append(c.ts >= flt.since)
    if flt.until is not None:
        cond.append(c.ts < flt.until)
    if flt.exclude_adapter is not None:
        cond.append(c.adapter != flt.exclude_adapter)
    if flt.dry_run is not None:
        cond.append(c.dry_run == flt.dry_run)
    return cond
