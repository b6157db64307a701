"""Table definitions of the decision log (SQLAlchemy Core, its own ``MetaData``).

* ``log_records``: one row per record; ``body`` is the record's exact JSON text (what an
  export emits), the other columns are copies for filtering.
* ``log_reasons``: ``(code, idx)`` per reason, for ``?reason=`` queries.
* ``log_nodes``: complete Merkle subtrees ``(level, idx) -> hash`` (see ``merkle.py``).
* ``log_head``: a single row (``id = 1``): tree size and the last record hash.

Records, nodes and the head row are written in one transaction, so a reader never sees a
record without its tree nodes or a head that points past committed data.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

# On SQLite a column declared exactly ``INTEGER PRIMARY KEY`` is the table's rowid: the
# records are stored in ``idx`` order and no separate index on ``idx`` is kept.
LOG_INDEX = BigInteger().with_variant(Integer(), "sqlite")

records = Table(
    "log_records",
    metadata,
    Column("idx", LOG_INDEX, primary_key=True, autoincrement=False),
    Column("decision_id", String(64), nullable=False, unique=True),
    Column("ts", String(32), nullable=False),
    Column("service", String(1024), nullable=False),
    Column("environment", String(1024), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("release_id", String(1024), nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("record_hash", String(80), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_log_records_service_env", "service", "environment", "idx"),
    Index("ix_log_records_artifact", "artifact_digest", "environment", "idx"),
    Index("ix_log_records_release", "release_id", "idx"),
    Index("ix_log_records_ts", "ts"),
)

reasons = Table(
    "log_reasons",
    metadata,
    Column("code", String(128), primary_key=True),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

nodes = Table(
    "log_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,
)

head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("last_hash", String(80), nullable=False),
)
