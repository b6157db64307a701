"""A short-lived cache of verified prior ``allow`` decisions for the admission fast path.

A rollout admits the same digest many times within seconds (the Deployment, its ReplicaSet,
every Pod). Each admission needs only *some* signed CI ``allow`` for the digest and
environment that is young enough, so a positive answer can be reused briefly: the age is
recomputed on every use against the caller's ``max_age_s``, so an allow never counts once
it is too old. Misses are never cached: an ``allow`` that CI just recorded is seen at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from engine.adapters.admission import PriorDecisions
from engine.models.decision import Decision

_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


class CachedPriors:
    """Wraps a :class:`PriorDecisions` (the decision log) with a TTL cache of hits."""

    def __init__(
        self,
        priors: PriorDecisions,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._priors = priors
        self._ttl_s = ttl_s
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
            stamp = datetime.strptime(decision.timestamp, _TIMESTAMP).replace(tzinfo=UTC)
            fresh = self._clock() - stored_at < self._ttl_s
            if fresh and (now - stamp).total_seconds() <= max_age_s:
                return decision
        found = self._priors.latest_allow_for(artifact_digest, environment, max_age_s, now)
        with self._lock:
            if found is None:
                self._hits.pop(key, None)
            else:
                if len(self._hits) >= self._max_entries:
                    self._hits.clear()
                self._hits[key] = (self._clock(), found)
        return found


__all__ = ["CachedPriors"]
