"""A bounded LRU cache of verification results, with hit/miss counters for metrics."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from engine.models.provenance import AttestationFact

CacheKey = tuple[str, str, str]
"""(bundle digest, trust digest, artifact digest); all ``sha256:<hex>``."""


@dataclass(frozen=True)
class CacheStats:
    """Counters the service exports as metrics."""

    hits: int
    misses: int
    size: int
    max_size: int


class VerificationCache:
    """Thread-safe LRU map from :data:`CacheKey` to the fact it produced.

    Verification is a pure function of the key: the bundle bytes (canonical digest), the
    trust material (trusted root + configured keys) and the artifact digest; the time
    used to check certificates is the log/TSA time inside the bundle, not the clock.
    """

    def __init__(self, max_size: int = 1024) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self._max_size = max_size
        self._entries: OrderedDict[CacheKey, AttestationFact] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: CacheKey) -> AttestationFact | None:
        """The cached fact for ``key`` (counted as a hit), or ``None`` (a miss)."""
        with self._lock:
            fact = self._entries.get(key)
            if fact is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return fact

    def put(self, key: CacheKey, fact: AttestationFact) -> None:
        """Store ``fact``, evicting the least recently used entry beyond ``max_size``."""
        if self._max_size == 0:
            return
        with self._lock:
            self._entries[key] = fact
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_size:
                self._entries.popitem(last=False)

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                size=len(self._entries),
                max_size=self._max_size,
            )
