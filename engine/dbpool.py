"""Connection pool sizes of the service's SQLAlchemy engines (log, tokens, approvals).

The service answers on up to 40 worker threads (anyio's default). A pool smaller than that
concurrency closes its overflow connections when they are returned, so each of those requests
paid for a new connection (on SQLite with its pragmas, on PostgreSQL with a TCP handshake and
authentication): measured at about 4 % of the service's CPU at 16 clients.

SQLite connections are cheap file handles, so its pools keep many. A PostgreSQL server is
shared by every replica (three pools each: log, tokens, approvals; ``max_connections`` is
100 by default), so its pools keep more connections open than SQLAlchemy's default (10
instead of 5) but never hold more at once (15).
"""

from __future__ import annotations

SQLITE_POOL: dict[str, int] = {"pool_size": 16, "max_overflow": 48}
POSTGRES_POOL: dict[str, int] = {"pool_size": 10, "max_overflow": 5}
