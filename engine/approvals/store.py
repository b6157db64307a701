"""The append-only approval store (table ``approvals``, in the decision log's database).

Rows are only ever inserted: never updated, never deleted. A revocation is a new record of
kind ``revoke`` naming the record it revokes. Whether an approval *counts* (roles, expiry,
revocation, separation of duties) is decided in Rego (``releasegate.approvals``); this
module only records who said what, when, and until when.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uuid6
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
)

from engine.auth.sql import make_engine, sqlite_pragmas
from engine.errors import FieldError, InputError, StoreError, map_errors
from engine.models.approvals import NO_APPROVALS, ApprovalFact, ApprovalKind, ApprovalsSection
from engine.models.common import SectionStatus
from engine.models.inputs import ArtifactFacts, ReleaseFacts
from engine.sqldriver import DriverStatement

NS = 1_000_000_000
MAX_RECORDS_PER_RELEASE = 1000
PROBE_TIMEOUT_MS = 500
BUSY_TIMEOUT_MS = 10_000

metadata = MetaData()

approvals_table = Table(
    "approvals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("approver", String(1024), nullable=False),
    Column("approver_roles", Text, nullable=False),
    Column("release_id", String(1024), nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("environment", String(1024), nullable=False),
    Column("comment", Text, nullable=True),
    Column("ticket", String(1024), nullable=True),
    Column("revokes", String(64), nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Index("ix_approvals_release", "release_id", "created_ns"),
)


@dataclass(frozen=True)
class ApprovalInput:
    """What an approver asks to record (the API body, minus who they are)."""

    release_id: str
    artifact_digest: str
    environment: str
    kind: ApprovalKind = "approve"
    revokes: str | None = None
    comment: str | None = None
    ticket: str | None = None
    expires_in_s: int | None = None


class ApprovalStore:
    """Records approvals and serves them to the pipeline (an ``ApprovalProvider``)."""

    def __init__(
        self,
        url: str,
        *,
        default_ttl_s: int,
        max_ttl_s: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.default_ttl_s = default_ttl_s
        self.max_ttl_s = max_ttl_s
        self._clock = clock
        with map_errors(StoreError, "cannot open the approval store"):
            self._engine = make_engine(url)
            # A SQLite read is a local file read (tens of microseconds); a database server
            # is a network round trip.
            self.may_block = not url.startswith("sqlite")
            metadata.create_all(self._engine)
            self._for_release = DriverStatement.compile(_FOR_RELEASE, self._engine.dialect)
        self._reader_path = _plain_sqlite_file(url)
        self._loop_readers: dict[int, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Release the connections."""
        with self._readers_lock:
            self._closed = True
            readers, self._loop_readers = self._loop_readers, {}
        for conn in readers.values():
            conn.close()
        self._engine.dispose()

    def _loop_reader(self) -> sqlite3.Connection | None:
        """The SQLite connection this event loop's thread reads approvals with, else None.

        Every decision reads the approvals on the service's event loop; checking a pooled
        connection out and back in (with its rollback) cost about as much as the query. A
        thread that runs an event loop is long-lived, so it keeps a connection of its own:
        autocommit, so every query reads what is committed at that moment. Other threads
        (the pool's workers come and go) use the pool.
        """
        if self._reader_path is None or self._closed:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        thread = threading.get_ident()
        conn = self._loop_readers.get(thread)
        if conn is None:
            conn = sqlite3.connect(
                self._reader_path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # a dead thread's id may come back on a new one
            )
            sqlite_pragmas(conn)
            if not self._keep_reader(thread, conn):
                conn.close()
                return None
        return conn

    def _keep_reader(self, thread: int, conn: sqlite3.Connection) -> bool:
        with self._readers_lock:
            if self._closed:  # closed meanwhile: the caller closes the connection
                return False
            self._loop_readers[thread] = conn
            return True

    def check_writable(self) -> None:
        """Take the database's write lock and release it; ``StoreError`` when refused.

        Used by ``/readyz``: the approval tables live in the log's database, so a database
        that refuses this lock refuses log appends too.
        """
        with map_errors(StoreError, "the database is not writable"):
            raw = self._engine.raw_connection()
            try:
                cur = raw.cursor()
                if self._engine.dialect.name == "sqlite":
                    # A probe waits briefly for a busy writer, not the full busy timeout.
                    cur.execute(f"PRAGMA busy_timeout={PROBE_TIMEOUT_MS}")
                    try:
                        cur.execute("BEGIN IMMEDIATE")
                        cur.execute("ROLLBACK")
                    finally:
                        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                else:
                    cur.execute("SHOW transaction_read_only")
                    row = cur.fetchone()
                    if row is not None and str(row[0]).lower() == "on":
                        raise StoreError("the database is read-only")
                cur.close()
            finally:
                raw.close()

    def _ttl(self, requested: int | None) -> int:
        if requested is None:
            return self.default_ttl_s
        if requested <= 0 or requested > self.max_ttl_s:
            raise InputError(
                f"expires_in_s: must be between 1 and {self.max_ttl_s} seconds",
                errors=[
                    FieldError(
                        "body.expires_in_s",
                        f"must be between 1 and the maximum {self.max_ttl_s}",
                    )
                ],
            )
        return requested

    def record(
        self, request: ApprovalInput, *, approver: str, approver_roles: Sequence[str]
    ) -> ApprovalFact:
        """Append one record; returns it. ``InputError`` for an inconsistent request."""
        # 1. A revocation names an existing record of the same release; nothing else may.
        if request.kind == "revoke":
            if not request.revokes:
                raise InputError(
                    "revokes: required for kind revoke",
                    errors=[FieldError("body.revokes", "required for kind revoke")],
                )
            target = self.get(request.revokes)
            if target is None or target.release_id != request.release_id:
                raise InputError(
                    f"revokes: no approval {request.revokes} for release {request.release_id}",
                    errors=[FieldError("body.revokes", "no such approval for this release")],
                )
        elif request.revokes is not None:
            raise InputError(
                "revokes: only a record of kind revoke may name one",
                errors=[FieldError("body.revokes", "only allowed with kind revoke")],
            )
        # 2. Expiry: the default, or the requested one if it does not exceed the maximum.
        ttl = self._ttl(request.expires_in_s)
        now = self._clock()
        fact = ApprovalFact(
            id=str(uuid6.uuid7()),
            kind=request.kind,
            approver=approver,
            approver_roles=sorted(set(approver_roles)),
            release_id=request.release_id,
            artifact_digest=request.artifact_digest,
            environment=request.environment,
            comment=request.comment,
            ticket=request.ticket,
            revokes=request.revokes,
            created_ns=now,
            expires_ns=now + ttl * NS,
        )
        # 3. Insert only: the store never updates or deletes a record.
        row = fact.model_dump()
        row["approver_roles"] = json.dumps(fact.approver_roles)
        with map_errors(StoreError, "cannot record the approval"), self._engine.begin() as conn:
            conn.execute(insert(approvals_table).values(**row))
        return fact

    def get(self, approval_id: str) -> ApprovalFact | None:
        """One record by id."""
        stmt = select(approvals_table).where(approvals_table.c.id == approval_id)
        with map_errors(StoreError, "cannot read approvals"), self._engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _fact(dict(row))

    def for_release(self, release_id: str) -> list[ApprovalFact]:
        """Every record about ``release_id``, oldest first (revocations included).

        Every decision runs this query, so it runs on the driver's cursor
        (:class:`engine.sqldriver.DriverStatement`): 20 instead of 50-80 µs of CPU.
        """
        with map_errors(StoreError, "cannot read approvals"):
            reader = self._loop_reader()
            if reader is not None:
                own = reader.cursor()
                try:
                    rows = self._for_release.rows(own, {"release_id": release_id})
                finally:
                    own.close()
                return [_fact(row) for row in rows]
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    rows = self._for_release.rows(cursor, {"release_id": release_id})
                finally:
                    cursor.close()
            finally:
                raw.close()  # back to the pool, which rolls back what the read opened
        return [_fact(row) for row in rows]

    def collect(self, release: ReleaseFacts, artifact: ArtifactFacts) -> ApprovalsSection:
        """The ``approvals`` section: every record of the release; ``unavailable`` on error."""
        try:
            records = self.for_release(release.id)
        except StoreError as exc:
            # Fail closed: Rego sees no usable approvals and pauses.
            return ApprovalsSection(status=SectionStatus.UNAVAILABLE, message=str(exc))
        return (
            ApprovalsSection(status=SectionStatus.OK, records=records) if records else NO_APPROVALS
        )


def _plain_sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///path`` URL, for the loop readers; None for a server,
    an in-memory database or a URL with options (those read through the engine's pool)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix) :]
    return None if not path or path == ":memory:" else path


# Built once, compiled once per store for its dialect.
_FOR_RELEASE = (
    select(approvals_table)
    .where(approvals_table.c.release_id == bindparam("release_id"))
    .order_by(approvals_table.c.created_ns, approvals_table.c.id)
    .limit(MAX_RECORDS_PER_RELEASE)
)


def _fact(row: dict[str, object]) -> ApprovalFact:
    row["approver_roles"] = json.loads(str(row["approver_roles"]))
    return ApprovalFact.model_validate(row)
