"""One log writer at a time across the processes sharing a SQLite log file.

SQLite serializes writers itself (``BEGIN IMMEDIATE``), but a writer that finds the database
locked waits in SQLite's busy handler, which *sleeps* (1, 2, 5, 10 ... ms) and polls: with
several service processes on one log (``serve --workers N``), commits wait for sleeps rather
than for each other, and throughput and tail latency suffer (docs/benchmarks.md). An
exclusive ``flock`` on a file next to the database is taken before ``BEGIN IMMEDIATE``: the
kernel wakes the next writer the moment the previous one releases it, and the database lock
is then free. The lock is advisory: other writers (``approve``, token commands) still rely
on SQLite's own locking, which stays correct on its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from types import TracebackType

from engine.errors import StoreError, map_errors

_logger = logging.getLogger(__name__)

LOCK_SUFFIX = "-writer.lock"


def sqlite_lock_path(url: str) -> Path | None:
    """The lock file of a SQLite file URL (``sqlite:///path``); None for others and memory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    if path.startswith("file:"):  # a URI filename (``?uri=true``), e.g. ``file:/x?mode=ro``
        path = path[len("file:") :]
    if not path or path == ":memory:" or "mode=memory" in url:
        return None
    return Path(path + LOCK_SUFFIX)


class ProcessWriteLock:
    """An exclusive ``flock`` held around each log transaction (a no-op without a path).

    One instance belongs to one store, whose writer thread is the only one taking it; the
    thread lock only guards ``close`` against a transaction in progress. A lock file that
    cannot be created (a read-only state directory) costs only the hand-over: SQLite's own
    locking keeps the log correct, so the store works on without it, with a warning.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                _logger.warning("no log writer lock at %s (%s): SQLite's locking alone", path, exc)

    def __enter__(self) -> None:
        self._guard.acquire()
        if self._fd is None:
            return
        try:
            with map_errors(StoreError, "cannot take the log writer lock"):
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._guard.release()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._guard.release()

    def close(self) -> None:
        """Release the file (after any transaction in progress)."""
        with self._guard:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
