"""A short-lived cache of verified prior ``allow`` decisions for the admission fast path.

A rollout admits the same digest many times within seconds (the Deployment, its ReplicaSet,
every Pod). Each admission needs only *some* signed CI ``allow`` for the digest and
environment that is young enough, so a positive answer can be reused briefly: the age is
recomputed on every use against the caller's ``max_age_s``, so an allow never counts once
it is too old. Misses are never cached: an ``allow`` that CI just recorded is seen at once.
With ``refresh_ahead``, a hit in the second half of its lifetime is served and read again in
the background (:mod:`engine.refresh`), so that no admission waits for the log when it expires.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from engine.adapters.admission import PriorDecisions
from engine.models.decision import Decision
from engine.refresh import RefreshAhead


class CachedPriors:
    """Wraps a :class:`PriorDecisions` (the decision log) with a TTL cache of hits."""

    def __init__(
        self,
        priors: PriorDecisions,
        *,
        ttl_s: float = 5.0,
        refresh_ahead: bool = False,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._priors = priors
        self._ttl_s = ttl_s
        self.refresher = RefreshAhead("prior-refresh") if refresh_ahead else None
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], tuple[float, Decision]] = {}

    def latest_allow_for(
        self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
    ) -> Decision | None:
        """A recent cached allow, else the log's answer (cached when it is an allow)."""
        key = (artifact_digest, environment)
        with self._lock:
            entry = self._hits.get(key)
        if entry is not None:
            stored_at, decision = entry
            # ``format_timestamp``'s form (``...:00.123456Z``): ``fromisoformat`` reads it as
            # an aware UTC time, 25 times faster than ``strptime`` (engine.adapters.admission).
            stamp = datetime.fromisoformat(decision.timestamp)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            age = self._clock() - stored_at
            if age < self._ttl_s and (now - stamp).total_seconds() <= max_age_s:
                if self.refresher is not None and age >= self._ttl_s / 2:
                    self.refresher.schedule(key, functools.partial(self._read, key, max_age_s, now))
                return decision
        return self._read(key, max_age_s, now)

    def _read(self, key: tuple[str, str], max_age_s: float, now: datetime) -> Decision | None:
        found = self._priors.latest_allow_for(key[0], key[1], max_age_s, now)
        with self._lock:
            if found is None:
                self._hits.pop(key, None)
            else:
                if len(self._hits) >= self._max_entries:
                    self._hits.clear()
                self._hits[key] = (self._clock(), found)
        return found


__all__ = ["CachedPriors"]
