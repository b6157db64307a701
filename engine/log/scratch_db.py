"""Throwaway PostgreSQL databases for tests, benchmarks and the hardening suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(server_url: str, *, prefix: str = "rg_") -> Iterator[str]:
    """A fresh, empty database on the server of ``server_url``; dropped afterwards.

    ``server_url`` is a SQLAlchemy URL (``postgresql+psycopg://user@host:port/db``); the
    URL yielded names the new database on the same server.
    """
    import psycopg

    name = prefix + uuid.uuid4().hex[:12]
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rpartition("/")[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
