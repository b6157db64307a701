"""A SQLAlchemy engine for the service's own tables (tokens, approvals).

They live in the same database as the decision log: the SQLite file of the state directory
(WAL, so readers never block the log writer) or the configured PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from engine.dbpool import POSTGRES_POOL, SQLITE_POOL

LOG_DB_FILE = "log.db"
"""The decision log's SQLite file name (``engine.log.decision_log.LOG_DB_FILE``)."""


def database_url(state_dir: Path, configured: str | None = None) -> str:
    """The configured database URL, else the state directory's SQLite file."""
    return configured or f"sqlite:///{os.fspath(state_dir / LOG_DB_FILE)}"


def sqlite_pragmas(dbapi_conn: Any, _entry: ConnectionPoolEntry | None = None) -> None:
    """WAL, full sync and a busy timeout: every SQLite connection of the service's tables."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, **SQLITE_POOL
        )
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **POSTGRES_POOL)
