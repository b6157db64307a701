"""Refresh-ahead for the service's short-lived caches (tokens, prior admission decisions).

An entry past its refresh point is still served, and one background thread reads it again
(once per key at a time), so that no request waits for the read when the entry expires. The
caches keep their hard lifetime: a refresh that fails or has not finished changes nothing,
and an expired entry is read by the request as before. Measured on the admission path: the
request that refreshed a 5 s cache took 8-9 ms instead of 4 (``docs/benchmarks.md``, round 8).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable

from engine.one_thread import OneThread

_logger = logging.getLogger(__name__)


class RefreshAhead:
    """Runs ``refresh`` callables on one worker thread, one per key at a time."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._running: set[Hashable] = set()
        self._thread = OneThread(name)

    def schedule(self, key: Hashable, refresh: Callable[[], object]) -> bool:
        """Start ``refresh`` unless one for ``key`` is running; False when not started."""
        with self._lock:
            if key in self._running:
                return False
            pool = self._thread.executor()
            if pool is None:  # closed
                return False
            self._running.add(key)
        pool.submit(self._run, key, refresh)
        return True

    def _run(self, key: Hashable, refresh: Callable[[], object]) -> None:
        try:
            refresh()
        except Exception:  # noqa: BLE001 - the entry stays until it expires; the log says why
            _logger.exception("%s: background refresh failed", self._name)
        finally:
            with self._lock:
                self._running.discard(key)

    def idle(self) -> bool:
        """No refresh is running or queued."""
        with self._lock:
            return not self._running

    def close(self) -> None:
        """Wait for a running refresh, start no more."""
        self._thread.close()
