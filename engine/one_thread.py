"""One worker thread, started on first use, for work that must leave its caller's thread.

Used by the caches' refresh-ahead (:mod:`engine.refresh`) and the log's commits from the
event loop (:mod:`engine.log.loop_commit`): no thread exists until there is work, and
``close`` waits for the work in progress and starts no more. The thread is scheduled as a
helper (:mod:`engine.helper_threads`): it never preempts the event loop when it wakes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from engine.helper_threads import schedule_as_helper


class OneThread:
    """A one-thread executor created on first use; refused after :meth:`close`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def executor(self) -> ThreadPoolExecutor | None:
        """The thread's executor (its thread starts with the first task); None once closed."""
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=self._name, initializer=schedule_as_helper
                )
            return self._pool

    def close(self) -> None:
        """Wait for the work in progress, start no more."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
