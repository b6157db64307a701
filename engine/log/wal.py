"""The SQLite log's write-ahead-log checkpoints, on a thread of their own.

SQLite's default is an *automatic* checkpoint: the connection whose COMMIT takes the
write-ahead log past 1,000 pages copies the log's pages into the database file and syncs it,
before that COMMIT returns. On the decision log that is about one commit in 80 (a commit of
one record with its indexes, Merkle nodes and head writes 12-13 pages, of five records 20),
and the checkpoint takes 2-3 ms (1.8-6.6 ms measured, ``docs/benchmarks.md``, round 14),
which that commit and every decision waiting on it paid: at 100 admissions/s, one in 80
lands in the slowest percent.

So the log's writing connections turn the automatic checkpoint off
(``PRAGMA wal_autocheckpoint=0``), and :class:`WalCheckpointer` runs the same checkpoint
(``PASSIVE``, as the automatic one: it never blocks a writer or a reader, it copies what no
reader still needs) on its own thread, after every ``every_commits`` commits, and within
``idle_s`` of a commit when fewer came. A commit never waits for it; SQLite lets
writers append to the log while a checkpoint runs. Durability does not change: each COMMIT
still syncs the write-ahead log (``synchronous=FULL``) before its callers are answered.
The last connection to close checkpoints what is left, as SQLite always does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.helper_threads import schedule_as_helper

_logger = logging.getLogger(__name__)

EVERY_COMMITS = 64
"""Commits between two checkpoints: 800-1,300 pages here, about SQLite's 1,000."""

IDLE_S = 2.0
"""At most how long commits that did not reach ``EVERY_COMMITS`` wait for a checkpoint."""


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on one thread, started by the first commit.

    ``connect`` returns a DB-API connection to the database (closed after each checkpoint:
    a pooled one goes back to its pool).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        every_commits: int = EVERY_COMMITS,
        idle_s: float = IDLE_S,
    ) -> None:
        self._connect = connect
        self._every = every_commits
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.checkpoints = 0
        """Checkpoints run (for tests and figures)."""
        self.failures = 0
        """Checkpoints that failed (logged; their commits wait for the next one)."""

    def committed(self) -> None:
        """Note a commit (from any thread; never waits for the database)."""
        with self._lock:
            if self._closed:
                return
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="releasegate-log-checkpoint", daemon=True
                )
                self._thread.start()
            if self._pending >= self._every:
                self._wake.set()

    def _run(self) -> None:
        schedule_as_helper()
        while True:
            self._wake.wait(self._idle_s)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                pending, self._pending = self._pending, 0
            if pending:
                self._checkpoint(pending)

    def _checkpoint(self, pending: int) -> None:
        try:
            conn = self._connect()
            try:
                cursor = conn.cursor()
                try:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.fetchall()
                finally:
                    cursor.close()
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - any database error: retried at the next
            with self._lock:
                self._pending += pending
            self.failures += 1
            _logger.warning("decision log checkpoint failed (retried later): %s", exc)
            return
        self.checkpoints += 1

    def close(self) -> None:
        """Stop the thread (a checkpoint in progress finishes first)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
