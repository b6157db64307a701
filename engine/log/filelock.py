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

    One instance belongs to one store; its thread lock also keeps the store's two writers
    (the writer thread, and the group commit on the event loop,
    :mod:`engine.log.loop_commit`) to one transaction at a time, and ``close`` waits for a
    transaction in progress. A lock file that cannot be created (a read-only state
    directory) costs only the hand-over: SQLite's own locking keeps the log correct, so the
    store works on without it, with a warning.
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

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, False at once when anyone holds it."""
        if not self._guard.acquire(blocking=blocking):
            return False
        if self._fd is None:
            return True
        try:
            with map_errors(StoreError, "cannot take the log writer lock"):
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:  # only without blocking: another process holds it
                    self._guard.release()
                    return False
        except BaseException:
            self._guard.release()
            raise
        return True

    def release(self) -> None:
        """Let the next writer in (any thread may release what another took)."""
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._guard.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def close(self) -> None:
        """Release the file (after any transaction in progress)."""
        with self._guard:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
